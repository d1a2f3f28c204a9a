"""Flat bank files (CSV with a delimiter, or fixed width in bytes), GBK or UTF-8, as a bank's template says:
a header line, the record lines, a trailer line with the record count and the total in fen. The same
layouts serve the batch file (代发文件), the return (回盘文件) and the statement (对账单); the layout of
each is in docs/data-formats.md ("Bank files")."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from itertools import accumulate
from pathlib import Path

from yikatong.core.clock import BEIJING, beijing_time
from yikatong.core.errors import Invalid
from yikatong.disbursement.bank import checks
from yikatong.disbursement.bank.checks import Declared, Problems, ReturnRow, StatementRow
from yikatong.disbursement.bank.files import (
    KIND_BATCH,
    KIND_RETURN,
    KIND_STATEMENT,
    FileHeader,
    HashedFile,
    WrittenFile,
    amounts_of,
    bulk,
    chunks,
    export_parts,
)
from yikatong.disbursement.bank.reasons import reason_text
from yikatong.disbursement.bank.records import (
    BatchFile,
    PaymentRecord,
    ReturnRecord,
    ReturnStatus,
    StatementLine,
)
from yikatong.disbursement.bank.template import (
    HEADER_FIELDS,
    HEADER_WIDTHS,
    NUMERIC,
    TRAILER_FIELDS,
    TRAILER_WIDTHS,
    BankTemplate,
    Layout,
)

KIND_NAMES = {KIND_BATCH: "代发文件", KIND_RETURN: "回盘文件", KIND_STATEMENT: "对账单"}
_BLOCK = 20_000  # lines encoded and written at a time


@dataclass
class _Parsed:
    header: FileHeader | None
    records: list[tuple[int, list[str]]]  # (line number, fields)
    trailer: tuple[int, int, int] | None  # (line number, count, total)


class FlatConnector:
    """A bank whose files are flat text, described by its template."""

    def __init__(self, template: BankTemplate):
        if template.is_xml:
            raise ValueError(f"{template.code} is an ISO 20022 template")
        self.template = template
        self.bank_code = template.code
        self._fixed = template.format == "fixed"
        self._suffix = ".txt" if self._fixed else ".csv"

    # --- the connector interface ---------------------------------------------------------------------

    def export_batch(self, batch: BatchFile, folder: Path) -> list[Path]:
        return [f.path for f in self.export_files(batch, folder)]

    def export_files(self, batch: BatchFile, folder: Path) -> list[WrittenFile]:
        """The batch's files in `folder`, split at the bank's maximum records per file, each with its
        SHA-256, count and total."""
        return export_parts(batch, self.bank_code, folder, self.template.max_records_per_file, self._suffix,
                            lambda path, header, part: self._write(path, header, self.template.batch,
                                                                   _batch_getters(), list(enumerate(part, 1))))

    @bulk
    def read_return(self, path: Path, batch: BatchFile) -> list[ReturnRecord]:
        problems = Problems(f"回盘文件 {path.name} 与批次 {batch.batch_number} 不符")
        layout, t = self.template.returns, self.template
        wanted = [f for f in ("end_to_end_id", "amount_fen", "status", "reason_code", "reason") if f in layout.fields]
        parsed = self._parse(path, layout, problems, wanted)
        part = self._part_answered(parsed.header, KIND_RETURN, batch, problems)
        has_code, has_reason = "reason_code" in wanted, "reason" in wanted
        i_reason = wanted.index("reason") if has_reason else 0
        paid_mark, failed_mark = t.paid_mark, t.failed_mark
        rows: list[ReturnRow] = []
        for line, f in parsed.records:
            e2e, amount_text, status = f[0], f[1], f[2]
            amount = int(amount_text) if amount_text.isdigit() else _amount(amount_text, line, problems)
            if status == paid_mark:
                rows.append(ReturnRow(line, e2e, amount, True, "", ""))
            elif status == failed_mark:
                code = f[3] if has_code else ""
                rows.append(ReturnRow(line, e2e, amount, False, code,
                                      reason_text(code, f[i_reason] if has_reason else "")))
            else:
                problems.add(line, f"处理结果应为 {paid_mark} 或 {failed_mark}，文件为 {status!r}")
        return checks.check_return(rows, part, self._declared(parsed), problems)

    @bulk
    def read_statement(self, path: Path, batch: BatchFile | None = None) -> list[StatementLine]:
        """The statement's lines; checked against `batch` too when it is given."""
        problems = Problems(f"对账单 {path.name} 有误" if batch is None
                            else f"对账单 {path.name} 与批次 {batch.batch_number} 不符")
        parsed = self._parse(path, self.template.statement, problems,
                             ("end_to_end_id", "amount_fen", "direction", "booked_on"))
        self._check_header(parsed.header, KIND_STATEMENT, problems)
        rows: list[StatementRow] = []
        days: dict[str, date | None] = {}  # a statement has few booking days: parse each once
        for line, (e2e, amount_text, direction, day_text) in parsed.records:
            amount = int(amount_text) if amount_text.isdigit() else _amount(amount_text, line, problems)
            day = days[day_text] if day_text in days else _day(day_text)
            days[day_text] = day
            if day is None:
                problems.add(line, f"记账日期 {day_text!r} 应为 YYYYMMDD")
            elif direction == "D":
                rows.append(StatementRow(line, e2e, amount, day))
            elif direction == "C":
                rows.append(StatementRow(line, e2e, -amount, day))
            else:
                problems.add(line, f"借贷方向应为 D 或 C，文件为 {direction!r}")
        return checks.check_statement(rows, amounts_of(batch) if batch else None, self._declared(parsed), problems)

    # --- what the bank writes (the simulator) and reads (a batch file) -------------------------------

    @bulk
    def read_batch_file(self, path: Path) -> tuple[FileHeader, list[PaymentRecord]]:
        """A batch file as the bank reads it (for `ykt bank-sim`), checked against its own header and trailer."""
        problems = Problems(f"代发文件 {path.name} 有误")
        wanted = ["end_to_end_id", "payee_name", "account", "amount_fen"]
        wanted += ["purpose"] if "purpose" in self.template.batch.fields else []
        parsed = self._parse(path, self.template.batch, problems, wanted)
        header = self._check_header(parsed.header, KIND_BATCH, problems)
        records = [PaymentRecord(f[0], f[1], f[2], _amount(f[3], line, problems), f[4] if len(f) > 4 else "")
                   for line, f in parsed.records]
        checks.check_declared(self._declared(parsed), len(records), sum(r.amount_fen for r in records), problems)
        problems.raise_if_any()
        assert header is not None
        return header, records

    def write_return(self, path: Path, batch_header: FileHeader, created: datetime,
                     answers: Sequence[tuple[PaymentRecord, ReturnRecord]]) -> WrittenFile:
        header = _answer_header(batch_header, KIND_RETURN, created, len(answers),
                                sum(a.amount_fen for _, a in answers))
        return self._write(path, header, self.template.returns, _return_getters(self.template), answers)

    def write_statement(self, path: Path, batch_header: FileHeader, created: datetime,
                        lines: Sequence[StatementLine]) -> WrittenFile:
        header = _answer_header(batch_header, KIND_STATEMENT, created, len(lines), sum(x.amount_fen for x in lines))
        return self._write(path, header, self.template.statement, _statement_getters(), list(enumerate(lines, 1)))

    def header_of(self, path: Path) -> FileHeader | None:
        """The header of a flat file if it is one of this bank's (used to tell which bank wrote a file)."""
        with path.open("rb") as f:
            first = f.readline().rstrip(b"\r\n")
        try:
            header = self._header(first, 1, Problems(""))
        except (UnicodeDecodeError, ValueError):
            return None
        return header if header is not None and header.bank_code == self.bank_code else None

    # --- writing -------------------------------------------------------------------------------------

    def _write(self, path: Path, header: FileHeader, layout: Layout, getters: list[tuple[str, Callable]],
               items: Sequence) -> WrittenFile:
        t = self.template
        end = t.line_end
        make = self._fixed_line if self._fixed else self._csv_line
        by_name = dict(getters)
        fns = [by_name[f] for f in layout.fields]
        numeric = [f in NUMERIC for f in layout.fields]
        with HashedFile(path) as out:
            out.write(self._encode(make(_header_values(header), HEADER_WIDTHS, _HEADER_NUMERIC, 1) + end))
            for start in range(0, len(items), _BLOCK):
                block = []
                for n, item in enumerate(items[start:start + _BLOCK], start + 2):
                    block.append(make([g(item) for g in fns], layout.widths, numeric, n))
                block.append("")
                out.write(self._encode(end.join(block), start + 2))
            trailer = make(["T", header.record_count, header.total_fen], TRAILER_WIDTHS, (False, True, True),
                           len(items) + 2)
            out.write(self._encode(trailer + end))
        return WrittenFile(path, out.sha256, header.record_count, header.total_fen)

    def _encode(self, text: str, first_line: int = 1) -> bytes:
        try:
            return text.encode(self.template.encoding)
        except UnicodeEncodeError as exc:
            line = first_line + text.count("\n", 0, exc.start)
            raise Invalid(f"第 {line} 行含有 {self.template.encoding.upper()} 编码无法表示的字符 "
                          f"{text[exc.start:exc.end]!r}，文件未生成") from None

    def _csv_line(self, values: list, widths: Sequence[int], numeric: Sequence[bool], line: int) -> str:
        d = self.template.delimiter
        text = d.join([v if isinstance(v, str) else str(v) for v in values])
        if text.count(d) != len(values) - 1 or "\n" in text or "\r" in text:
            raise Invalid(f"第 {line} 行的内容含有分隔符 {d!r} 或换行，文件未生成")
        return text

    def _fixed_line(self, values: list, widths: Sequence[int], numeric: Sequence[bool], line: int) -> str:
        enc = self.template.encoding
        parts = []
        for v, w, is_number in zip(values, widths, numeric, strict=True):
            if is_number:
                s = format(v, f"0{w}d")
                room = w - len(s)
            else:
                s = v
                room = w - (len(s) if s.isascii() else len(s.encode(enc, "replace")))
                if "\n" in s or "\r" in s:
                    room = -1
            if room < 0:
                raise Invalid(f"第 {line} 行的 {s!r} 超过 {w} 字节的字段宽度（或含有换行），文件未生成")
            parts.append(s + " " * room)
        return "".join(parts)

    # --- reading -------------------------------------------------------------------------------------

    def _parse(self, path: Path, layout: Layout, problems: Problems, wanted: Sequence[str]) -> _Parsed:
        """Header, trailer and the `wanted` fields of each record line (in that order)."""
        lines = path.read_bytes().splitlines()
        while lines and not lines[-1].strip():
            lines.pop()
        if not lines:
            problems.add(None, "文件为空")
            problems.raise_if_any()
        header = self._header(lines[0], 1, problems)
        split = self._split_fixed if self._fixed else self._split_csv
        trailer = None
        last = len(lines)
        if last >= 2:
            t = split(lines[-1], TRAILER_WIDTHS, last, None, len(TRAILER_FIELDS))
            if t is not None and t[0] == "T":
                count, total = _int(t[1], last, problems, "尾行笔数"), _int(t[2], last, problems, "尾行金额")
                trailer = (last, count, total)
                lines.pop()
        if trailer is None:
            problems.add(None, "缺少尾行（T 开头，记载笔数与金额）")
        records: list[tuple[int, list[str]]] = []
        at = {f: i for i, f in enumerate(layout.fields)}
        pick = [at[f] for f in wanted]
        enc = self.template.encoding
        # One loop per format, inlined: this runs once per line of files of a million lines.
        if self._fixed:
            offsets = [0, *accumulate(layout.widths)]
            spans = [(offsets[i], offsets[i + 1]) for i in pick]
            width = offsets[-1]
            for n in range(1, len(lines)):
                raw = lines[n]
                if len(raw) != width:
                    problems.add(n + 1, f"长度应为 {width} 字节，文件为 {len(raw)} 字节")
                    continue
                try:
                    records.append((n + 1, [raw[a:b].decode(enc).strip() for a, b in spans]))
                except UnicodeDecodeError:
                    problems.add(n + 1, f"不是 {enc.upper()} 编码，或字段宽度切断了汉字")
        else:
            d, n_fields = self.template.delimiter, len(layout.fields)
            for n in range(1, len(lines)):
                try:
                    parts = lines[n].decode(enc).split(d)
                except UnicodeDecodeError:
                    problems.add(n + 1, f"不是 {enc.upper()} 编码")
                    continue
                if len(parts) != n_fields:
                    problems.add(n + 1, f"应有 {n_fields} 个字段，文件为 {len(parts)} 个")
                    continue
                records.append((n + 1, [parts[i].strip() for i in pick]))
        return _Parsed(header, records, trailer)

    def _split_csv(self, raw: bytes, widths: Sequence[int], line: int, problems: Problems | None,
                   n_fields: int = 0) -> list[str] | None:
        try:
            fields = raw.decode(self.template.encoding).split(self.template.delimiter)
        except UnicodeDecodeError:
            if problems is not None:
                problems.add(line, f"不是 {self.template.encoding.upper()} 编码")
            return None
        if n_fields and len(fields) != n_fields:
            if problems is not None:
                problems.add(line, f"应有 {n_fields} 个字段，文件为 {len(fields)} 个")
            return None
        return [f.strip() for f in fields]

    def _split_fixed(self, raw: bytes, widths: Sequence[int], line: int, problems: Problems | None,
                     n_fields: int = 0) -> list[str] | None:
        if len(raw) != sum(widths):
            if problems is not None:
                problems.add(line, f"长度应为 {sum(widths)} 字节，文件为 {len(raw)} 字节")
            return None
        enc, fields, at = self.template.encoding, [], 0
        try:
            for w in widths:
                fields.append(raw[at:at + w].decode(enc).strip())
                at += w
        except UnicodeDecodeError:
            if problems is not None:
                problems.add(line, f"不是 {enc.upper()} 编码，或字段宽度切断了汉字")
            return None
        return fields

    def _header(self, raw: bytes, line: int, problems: Problems) -> FileHeader | None:
        split = self._split_fixed if self._fixed else self._split_csv
        f = split(raw, HEADER_WIDTHS, line, None, len(HEADER_FIELDS))
        if f is None or f[0] != "H":
            problems.add(1, "首行不是表头（H 开头）")
            return None
        try:
            created = datetime.strptime(f[6], "%Y%m%d%H%M%S").replace(tzinfo=BEIJING)
        except ValueError:
            problems.add(1, f"表头的生成时间 {f[6]!r} 应为 YYYYMMDDHHMMSS（北京时间）")
            return None
        numbers = [_int(f[i], 1, problems, "表头数字") for i in (4, 5, 9, 10)]
        return FileHeader(f[1], f[2], f[3], numbers[0], numbers[1], created, f[7], f[8], numbers[2], numbers[3])

    def _check_header(self, header: FileHeader | None, kind: str, problems: Problems) -> FileHeader | None:
        if header is None:
            problems.raise_if_any()
            return None
        if header.kind != kind:
            problems.add(1, f"文件类型为 {header.kind}，应为 {kind}（{KIND_NAMES[kind]}）")
        if header.bank_code != self.bank_code:
            problems.add(1, f"银行代码为 {header.bank_code}，应为 {self.bank_code}")
        problems.raise_if_any()  # another kind of file, or another bank's: nothing below would mean anything
        return header

    def _part_answered(self, header: FileHeader | None, kind: str, batch: BatchFile,
                       problems: Problems) -> Sequence[PaymentRecord]:
        """The records of the batch file that this return answers (its header names the batch and file)."""
        header = self._check_header(header, kind, problems)
        assert header is not None
        parts = chunks(batch.records, self.template.max_records_per_file)
        if header.batch_number != batch.batch_number:
            problems.add(1, f"批次号为 {header.batch_number}，应为 {batch.batch_number}")
        elif header.file_count != len(parts) or not 1 <= header.file_no <= len(parts):
            problems.add(1, f"文件序号 {header.file_no}/{header.file_count} 与批次的 {len(parts)} 个文件不符")
        problems.raise_if_any()
        return parts[header.file_no - 1]

    @staticmethod
    def _declared(parsed: _Parsed) -> list[Declared]:
        out = []
        if parsed.header is not None:
            out.append(Declared("表头", 1, parsed.header.record_count, parsed.header.total_fen))
        if parsed.trailer is not None:
            out.append(Declared("尾行", *parsed.trailer))
        return out


_HEADER_NUMERIC = tuple(f in NUMERIC for f in HEADER_FIELDS)


def _header_values(h: FileHeader) -> list:
    return ["H", h.kind, h.batch_number, h.bank_code, h.file_no, h.file_count,
            beijing_time(h.created).strftime("%Y%m%d%H%M%S"), h.debtor_account, h.debtor_name,
            h.record_count, h.total_fen]


def _answer_header(batch_header: FileHeader, kind: str, created: datetime, count: int, total: int) -> FileHeader:
    h = batch_header
    return FileHeader(kind, h.batch_number, h.bank_code, h.file_no, h.file_count, created, h.debtor_account,
                      h.debtor_name, count, total)


def _batch_getters() -> list[tuple[str, Callable]]:
    return [("seq", lambda x: x[0]), ("end_to_end_id", lambda x: x[1].end_to_end_id),
            ("account", lambda x: x[1].account), ("payee_name", lambda x: x[1].payee_name),
            ("amount_fen", lambda x: x[1].amount_fen), ("purpose", lambda x: x[1].purpose)]


def _return_getters(t: BankTemplate) -> list[tuple[str, Callable]]:
    paid = ReturnStatus.PAID
    seq = iter(range(1, 1 << 62))
    return [("seq", lambda x: next(seq)), ("end_to_end_id", lambda x: x[1].end_to_end_id),
            ("account", lambda x: x[0].account), ("payee_name", lambda x: x[0].payee_name),
            ("amount_fen", lambda x: x[1].amount_fen),
            ("status", lambda x: t.paid_mark if x[1].status is paid else t.failed_mark),
            ("reason_code", lambda x: x[1].reason_code), ("reason", lambda x: x[1].reason)]


def _statement_getters() -> list[tuple[str, Callable]]:
    return [("seq", lambda x: x[0]), ("end_to_end_id", lambda x: x[1].end_to_end_id),
            ("amount_fen", lambda x: abs(x[1].amount_fen)),
            ("direction", lambda x: "D" if x[1].amount_fen > 0 else "C"),
            ("booked_on", lambda x: x[1].booked_on.strftime("%Y%m%d"))]


def _int(text: str, line: int, problems: Problems, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        problems.add(line, f"{what} {text!r} 不是整数")
        return 0


def _amount(text: str, line: int, problems: Problems) -> int:
    if text.isdigit():
        return int(text)
    problems.add(line, f"金额 {text!r} 应为非负整数（单位：分）")
    return 0


def _day(text: str) -> date | None:
    try:
        return datetime.strptime(text, "%Y%m%d").date()
    except ValueError:
        return None
