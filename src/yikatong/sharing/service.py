"""The shared data sets for people: what each holds, which deliveries are in force, where every
delivery came from (provenance), and empty templates for agencies to fill in."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from yikatong.core.errors import Invalid
from yikatong.security.models import User
from yikatong.security.roles import Perm, has_perm, require_perm
from yikatong.sharing import store
from yikatong.sharing.datasets import DATASETS, Dataset, Field, Kind
from yikatong.sharing.importer import dataset_or_404, snapshot_out
from yikatong.sharing.models import SharedSnapshot
from yikatong.sharing.schemas import ColumnOut, DatasetOut

FORMATS = ("csv", "xlsx")
MEDIA_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
TEXT_ROWS = 2000  # rows pre-formatted as text in the .xlsx template, so Excel keeps ID numbers whole


@dataclass
class DatasetView:
    """One data set with its deliveries: those in force (the latest of each agency) and all of them."""

    dataset: Dataset
    current: list[SharedSnapshot] = field(default_factory=list)
    history: list[SharedSnapshot] = field(default_factory=list)  # newest first

    @property
    def rows_in_force(self) -> int:
        return sum(s.rows for s in self.current)

    @property
    def latest(self) -> SharedSnapshot | None:
        """The newest delivery in force (by as_of, then id)."""
        return max(self.current, key=lambda s: (s.as_of, s.id), default=None)

    def in_force(self, snapshot: SharedSnapshot) -> bool:
        return any(s.id == snapshot.id for s in self.current)


def may_read(user: User | None) -> bool:
    return user is None or has_perm(user.role, Perm.SHARED_READ)


def may_import(user: User | None) -> bool:
    return user is None or has_perm(user.role, Perm.SHARED_IMPORT)


def _require(user: User | None, perm: Perm) -> None:
    if user is not None:
        require_perm(user, perm)


def overview(session: Session, user: User | None) -> list[DatasetView]:
    """Every data set, in catalogue order, with its deliveries. `user` None is the system."""
    _require(user, Perm.SHARED_READ)
    current = store.current_snapshots(session)
    views = {d.code: DatasetView(d, current.get(d.code, [])) for d in DATASETS}
    for snap in session.scalars(select(SharedSnapshot).order_by(SharedSnapshot.as_of.desc(),
                                                                SharedSnapshot.id.desc())):
        if snap.dataset in views:
            views[snap.dataset].history.append(snap)
    return list(views.values())


def dataset_view(session: Session, user: User | None, code: str) -> DatasetView:
    _require(user, Perm.SHARED_READ)
    dataset = dataset_or_404(code)
    current = store.current_snapshots(session).get(dataset.code, [])
    history = list(session.scalars(select(SharedSnapshot).where(SharedSnapshot.dataset == dataset.code)
                                   .order_by(SharedSnapshot.as_of.desc(), SharedSnapshot.id.desc())))
    return DatasetView(dataset, current, history)


# ---------------------------------------------------------------- formats, in words


_KIND_ZH = {
    Kind.ID_NUMBER: "18位居民身份证号（GB 11643），校验位正确，末位可为X；须为文本",
    Kind.DATE: "日期 YYYY-MM-DD（也可为 YYYY/MM/DD、YYYYMMDD、YYYY年M月D日或Excel日期）",
    Kind.YUAN: "金额（元），非负，最多两位小数",
    Kind.DECIMAL2: "数值，非负，最多两位小数",
    Kind.INT: "整数",
    Kind.REGION: "12位统计用区划代码（2/4/6/9位前缀补0到12位）",
}

_KIND_EN = {
    Kind.ID_NUMBER: "18-character ID number (GB 11643), valid check character, text",
    Kind.DATE: "date YYYY-MM-DD (also YYYY/MM/DD, YYYYMMDD, YYYY年M月D日, an Excel date cell, a Parquet date)",
    Kind.YUAN: "yuan, not negative, at most 2 decimals",
    Kind.DECIMAL2: "number, not negative, at most 2 decimals",
    Kind.INT: "whole number",
    Kind.REGION: "12-digit statistical region code (2/4/6/9-digit prefixes are padded with zeros)",
}


def format_zh(f: Field) -> str:
    if f.kind is Kind.TEXT:
        return f"文本，不超过{f.max_len}个字符"
    if f.kind is Kind.CHOICE:
        return "以下之一：" + "、".join(f.choices)
    return _KIND_ZH[f.kind]


def format_en(f: Field) -> str:
    if f.kind is Kind.TEXT:
        return f"text, at most {f.max_len} characters"
    if f.kind is Kind.CHOICE:
        return "one of " + ", ".join(f.choices)
    return _KIND_EN[f.kind]


def stored_en(f: Field) -> str:
    """What the column becomes in the snapshot (what rules read)."""
    if f.kind is Kind.ID_NUMBER:
        return f"`{f.key}_hash` (keyed hash), `{f.key}_masked`"
    if f.kind is Kind.YUAN:
        return f"`{f.key}` (fen)"
    if f.kind is Kind.DECIMAL2:
        return f"`{f.key}` (×100)"
    return f"`{f.key}`"


def markdown_columns(dataset: Dataset) -> str:
    """The column table of one data set, as it appears in docs/data-formats.md."""
    lines = ["| header (中文) | alias | required | format | stored as | meaning |",
             "| --- | --- | --- | --- | --- | --- |"]
    for f in dataset.fields:
        lines.append(f"| {f.header} | `{f.alias}` | {'yes' if f.required else 'no'} | {format_en(f)} | "
                     f"{stored_en(f)} | {f.description} |")
    return "\n".join(lines)


def dataset_out(view: DatasetView) -> DatasetOut:
    d = view.dataset
    latest = view.latest
    return DatasetOut(
        code=d.code, label=d.label, provider=d.provider, summary=d.summary, rows_in_force=view.rows_in_force,
        latest=snapshot_out(latest, True) if latest else None,
        in_force=[snapshot_out(s, True) for s in view.current],
        columns=[ColumnOut(key=f.key, header=f.header, alias=f.alias, required=f.required, kind=f.kind.value,
                           format=format_zh(f), description=f.description, stored=list(f.stored))
                 for f in d.fields])


# ---------------------------------------------------------------- templates


def template_filename(dataset: Dataset, fmt: str) -> str:
    return f"{dataset.code}-template.{fmt}"


def template_bytes(dataset_code: str, fmt: str) -> bytes:
    """An empty file with the Chinese headers. CSV: UTF-8 with a byte-order mark (so Excel opens it
    as UTF-8). XLSX: the header row, text format on ID-number, text and code columns (so Excel keeps
    18 digits), and a second sheet 填写说明 describing each column (only the first sheet is read)."""
    dataset = dataset_or_404(dataset_code)
    headers = [f.header for f in dataset.fields]
    if fmt == "csv":
        buf = io.StringIO(newline="")
        csv.writer(buf, lineterminator="\r\n").writerow(headers)
        return b"\xef\xbb\xbf" + buf.getvalue().encode("utf-8")
    if fmt != "xlsx":
        raise Invalid("模板格式只能是 csv 或 xlsx")
    from openpyxl import Workbook
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    wb = Workbook()
    ws = wb.active
    ws.title = dataset.label
    ws.append(headers)
    for index, f in enumerate(dataset.fields, start=1):
        letter = get_column_letter(index)
        ws[f"{letter}1"].font = Font(bold=True)
        ws.column_dimensions[letter].width = max(14, len(f.header) * 2 + 4, 22 if f.kind is Kind.ID_NUMBER else 0)
        if f.kind in (Kind.ID_NUMBER, Kind.TEXT, Kind.REGION, Kind.CHOICE):
            for row in range(2, TEXT_ROWS + 2):
                ws.cell(row=row, column=index).number_format = "@"
    ws.freeze_panes = "A2"
    notes = wb.create_sheet("填写说明")
    notes.append(["列名", "英文别名", "是否必填", "格式", "说明"])
    for cell in notes[1]:
        cell.font = Font(bold=True)
    for f in dataset.fields:
        notes.append([f.header, f.alias, "是" if f.required else "否", format_zh(f), f.description])
    notes.append([])
    notes.append(["只导入第一个工作表；第1行为列名，数据从第2行开始；空行会被跳过。每次交付应为截至某日的全量数据。"])
    for letter, width in zip("ABCDE", (22, 22, 10, 50, 40), strict=True):
        notes.column_dimensions[letter].width = width
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
