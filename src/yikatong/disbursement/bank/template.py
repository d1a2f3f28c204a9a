"""A bank's file template (银行文件模板): one small TOML file per bank in `banks/`, so that a new bank is a
new template, not a change to the code. docs/data-formats.md ("Bank files") describes every key."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from yikatong.core.errors import Invalid

BANKS_DIR = Path(__file__).with_name("banks")

FORMATS = ("csv", "fixed", "iso20022")
ENCODINGS = {"gbk": "gbk", "gb18030": "gb18030", "utf-8": "utf-8", "utf8": "utf-8"}
LINE_ENDS = {"crlf": "\r\n", "lf": "\n"}

# The fields a record line may carry, per kind of file, in any order the bank wants.
BATCH_FIELDS = ("seq", "end_to_end_id", "account", "payee_name", "amount_fen", "purpose")
RETURN_FIELDS = ("seq", "end_to_end_id", "account", "payee_name", "amount_fen", "status", "reason_code", "reason")
STATEMENT_FIELDS = ("seq", "end_to_end_id", "amount_fen", "direction", "booked_on")
REQUIRED = {
    "batch": ("end_to_end_id", "account", "payee_name", "amount_fen"),
    "return": ("end_to_end_id", "amount_fen", "status"),
    "statement": ("end_to_end_id", "amount_fen", "direction", "booked_on"),
}
ALLOWED = {"batch": BATCH_FIELDS, "return": RETURN_FIELDS, "statement": STATEMENT_FIELDS}

# Header and trailer lines: the same layout for every flat template (widths used in fixed-width files).
HEADER_FIELDS = ("tag", "kind", "batch_number", "bank_code", "file_no", "file_count", "created",
                 "debtor_account", "debtor_name", "record_count", "total_fen")
HEADER_WIDTHS = (1, 3, 20, 10, 3, 3, 14, 34, 60, 10, 18)
TRAILER_FIELDS = ("tag", "record_count", "total_fen")
TRAILER_WIDTHS = (1, 10, 18)
NUMERIC = frozenset({"seq", "amount_fen", "file_no", "file_count", "record_count", "total_fen"})


@dataclass(frozen=True)
class Layout:
    """The record lines of one kind of file: field order, and widths in bytes for fixed-width files."""

    fields: tuple[str, ...]
    widths: tuple[int, ...] = ()


@dataclass(frozen=True)
class BankTemplate:
    code: str
    name: str
    format: str  # csv, fixed or iso20022
    encoding: str  # python codec name
    max_records_per_file: int
    delimiter: str = "|"
    line_end: str = "\r\n"
    paid_mark: str = "S"
    failed_mark: str = "F"
    batch: Layout = Layout(BATCH_FIELDS)
    returns: Layout = Layout(RETURN_FIELDS)
    statement: Layout = Layout(STATEMENT_FIELDS)

    @property
    def is_xml(self) -> bool:
        return self.format == "iso20022"


def parse_template(text: str, source: str = "模板") -> BankTemplate:
    """A template from its TOML text; every mistake is named in Chinese (a bad template never half-works)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise Invalid(f"银行模板 {source} 不是有效的 TOML：{exc}") from None
    problems: list[str] = []

    def need(key: str, kind: type, table: dict = data, where: str = "") -> object:
        value = table.get(key)
        if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
            problems.append(f"缺少或错误的设置 {where}{key}")
        return value

    code, name = need("code", str), need("name", str)
    fmt = data.get("format")
    if fmt not in FORMATS:
        problems.append(f"format 应为 {'、'.join(FORMATS)} 之一")
    encoding = ENCODINGS.get(str(data.get("encoding", "utf-8")).lower())
    if encoding is None:
        problems.append("encoding 应为 gbk、gb18030 或 utf-8")
    max_records = need("max_records_per_file", int)
    if isinstance(max_records, int) and max_records < 1:
        problems.append("max_records_per_file 应为正整数")
    line_end = LINE_ENDS.get(str(data.get("line_end", "crlf")))
    if line_end is None:
        problems.append("line_end 应为 crlf 或 lf")
    delimiter = data.get("delimiter", "|")
    if fmt == "csv" and (not isinstance(delimiter, str) or len(delimiter) != 1):
        problems.append("delimiter 应为一个字符")
    layouts: dict[str, Layout] = {}
    for kind in ("batch", "return", "statement"):
        table = data.get(kind, {})
        fields = tuple(table.get("fields", ALLOWED[kind]))
        widths = tuple(table.get("widths", ()))
        unknown = [f for f in fields if f not in ALLOWED[kind]]
        missing = [f for f in REQUIRED[kind] if f not in fields]
        if unknown:
            problems.append(f"[{kind}] 不认识的字段：{'、'.join(unknown)}")
        if missing:
            problems.append(f"[{kind}] 缺少必需字段：{'、'.join(missing)}")
        if len(set(fields)) != len(fields):
            problems.append(f"[{kind}] 字段重复")
        if fmt == "fixed" and (len(widths) != len(fields) or any(not isinstance(w, int) or w < 1 for w in widths)):
            problems.append(f"[{kind}] widths 应为与 fields 一一对应的正整数")
        layouts[kind] = Layout(fields, widths)
    marks = data.get("return", {})
    paid, failed = marks.get("paid_mark", "S"), marks.get("failed_mark", "F")
    if not (isinstance(paid, str) and isinstance(failed, str) and paid and failed and paid != failed):
        problems.append("[return] paid_mark 与 failed_mark 应为两个不同的非空文字")
    if problems:
        raise Invalid(f"银行模板 {source} 有误：" + "；".join(problems))
    return BankTemplate(code=str(code), name=str(name), format=str(fmt), encoding=str(encoding),
                        max_records_per_file=int(max_records), delimiter=str(delimiter), line_end=str(line_end),
                        paid_mark=paid, failed_mark=failed, batch=layouts["batch"], returns=layouts["return"],
                        statement=layouts["statement"])


def load_template(path: Path) -> BankTemplate:
    template = parse_template(path.read_text(encoding="utf-8"), path.name)
    if template.code != path.stem:
        raise Invalid(f"银行模板 {path.name} 的 code 应为 {path.stem}")
    return template


def shipped_templates(folder: Path = BANKS_DIR) -> dict[str, BankTemplate]:
    """Every template in `folder` (the package's `banks/` by default), by bank code."""
    return {p.stem: load_template(p) for p in sorted(folder.glob("*.toml"))}
