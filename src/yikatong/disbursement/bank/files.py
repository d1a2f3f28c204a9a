"""Writing a bank file safely: into the folder given (the restricted folder for files with clear account
numbers), readable by its owner only, whole or not at all (written under a temporary name, then renamed),
with its SHA-256 computed from the bytes as they are written, so the core can record it."""

from __future__ import annotations

import functools
import gc
import hashlib
import os
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import ParamSpec, TypeVar

from yikatong.core.errors import Invalid
from yikatong.disbursement.bank.checks import Problems
from yikatong.disbursement.bank.records import BatchFile, PaymentRecord

KIND_BATCH, KIND_RETURN, KIND_STATEMENT = "PAY", "RET", "STM"


@dataclass(frozen=True)
class FileHeader:
    """What a bank file says about itself: which batch, which of its files, the paying account, and the
    count and total it carries (for ISO 20022 files, taken from the group header)."""

    kind: str  # PAY, RET or STM
    batch_number: str
    bank_code: str
    file_no: int
    file_count: int
    created: datetime  # aware; written in Beijing time, to the second
    debtor_account: str
    debtor_name: str
    record_count: int
    total_fen: int


@dataclass(frozen=True)
class WrittenFile:
    """One file handed to (or made for) a bank: what the core records about it."""

    path: Path
    sha256: str  # hex digest of the file's bytes
    records: int
    total_fen: int


def chunks(records: Sequence[PaymentRecord], size: int) -> list[Sequence[PaymentRecord]]:
    """A batch split at the bank's maximum records per file, in batch order (file n holds records
    (n-1)*size ... n*size-1): the reader of a return finds the records a file answers the same way."""
    return [records[i:i + size] for i in range(0, len(records), size)] or [records[:0]]


def export_parts(batch: BatchFile, bank_code: str, folder: Path, max_records: int, suffix: str,
                 write: Callable[[Path, FileHeader, Sequence[PaymentRecord]], WrittenFile]) -> list[WrittenFile]:
    """Every connector's export: the batch checked, split at the bank's maximum records per file, each
    part written by `write` under `<batch>_<n>of<m><suffix>` with its header; all of the batch's files
    or none of them."""
    check_batch(batch)
    parts = chunks(batch.records, max_records)
    written: list[WrittenFile] = []
    try:
        for no, part in enumerate(parts, 1):
            header = FileHeader(KIND_BATCH, batch.batch_number, bank_code, no, len(parts), batch.created_at,
                                batch.debtor_account, batch.debtor_name, len(part), sum(r.amount_fen for r in part))
            written.append(write(folder / f"{batch.batch_number}_{no:03d}of{len(parts):03d}{suffix}", header, part))
    except BaseException:
        for w in written:
            w.path.unlink(missing_ok=True)
        raise
    return written


P = ParamSpec("P")
R = TypeVar("R")


def bulk(fn: Callable[P, R]) -> Callable[P, R]:
    """Run a reader with the cyclic garbage collector paused: reading a million lines makes millions of
    small objects without cycles, which the collector would otherwise rescan again and again (it halves
    the time of reading a 1,000,000-line return)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        was = gc.isenabled()
        gc.disable()
        try:
            return fn(*args, **kwargs)
        finally:
            if was:
                gc.enable()

    return wrapper


_amounts_of: list[tuple[weakref.ref[BatchFile], dict[str, int]]] = []


def amounts_of(batch: BatchFile) -> dict[str, int]:
    """流水号 -> amount of a batch, kept for the last batch asked about: the statements of a batch's
    twenty files are all checked against the same million records."""
    cached = _amounts_of[0] if _amounts_of else None  # read once: another thread may replace it
    if cached is not None and cached[0]() is batch:
        return cached[1]
    quick = getattr(batch.records, "amounts", None)  # records read from the database know a quicker way
    amounts = quick() if quick is not None else {r.end_to_end_id: r.amount_fen for r in batch.records}
    _amounts_of[:] = [(weakref.ref(batch), amounts)]
    return amounts


def check_batch(batch: BatchFile) -> None:
    """What every bank file needs of a batch before a byte is written: each 流水号 present, at most 35
    characters and once only; each amount a positive number of fen."""
    problems = Problems(f"批次 {batch.batch_number} 不能导出")
    seen: set[str] = set()
    for n, r in enumerate(batch.records, 1):
        e2e = r.end_to_end_id
        if not 0 < len(e2e) <= 35 or e2e in seen:
            problems.add(None, f"第 {n} 笔：流水号 {e2e!r} 为空、超过 35 个字符或重复")
        if r.amount_fen <= 0:
            problems.add(None, f"第 {n} 笔：金额 {r.amount_fen} 分不是正数")
        seen.add(e2e)
    problems.raise_if_any()


def file_sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def check_sha256(path: Path, expected: str) -> None:
    """Refuse a file whose bytes are not the ones recorded (a file changed after it was written or sent)."""
    found = file_sha256(path)
    if found != expected.lower():
        raise Invalid(f"文件 {path.name} 的 SHA-256 为 {found}，与登记的 {expected} 不符，文件已被改动，不能使用")


class HashedFile:
    """A binary file written under a temporary name in its folder, renamed into place on close."""

    def __init__(self, path: Path):
        if not path.parent.is_dir():  # never made here: the restricted folder's owner and mode are the operator's
            raise Invalid(f"文件夹 {path.parent} 不存在，文件未生成")
        self.path = path
        self._tmp = path.with_name(f".{path.name}.partial")
        fd = os.open(self._tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        self._file = os.fdopen(fd, "wb", buffering=1 << 20)
        self._hash = hashlib.sha256()

    def write(self, data: bytes) -> None:
        self._hash.update(data)
        self._file.write(data)

    def __enter__(self) -> HashedFile:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self._file.flush()
            os.fsync(self._file.fileno())  # the bytes are on disk before the name says the file is whole
        self._file.close()
        if exc_type is None:
            os.replace(self._tmp, self.path)
        else:
            self._tmp.unlink(missing_ok=True)

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()
