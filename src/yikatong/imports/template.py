"""Empty import files with the right headers, for offices to fill in (导入模板)."""

from __future__ import annotations

import csv
import io

from yikatong.imports.kinds import NUM_ANY, Kind

FORMATS = ("csv", "xlsx")
MEDIA_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
TEXT_ROWS = 2000  # rows pre-formatted as text in the .xlsx template, so Excel keeps ID numbers whole


def template_filename(kind: Kind, fmt: str) -> str:
    return f"{kind.name}-template.{fmt}"


def template_bytes(kind: Kind, fmt: str) -> bytes:
    """CSV: UTF-8 with a byte-order mark (so Excel opens it as UTF-8), the header row only.
    XLSX: the header row, columns that hold codes and numbers formatted as text, and a second
    sheet 填写说明 describing every column (only the first sheet is ever imported)."""
    headers = [c.header for c in kind.columns]
    if fmt == "csv":
        buf = io.StringIO(newline="")
        csv.writer(buf, lineterminator="\r\n").writerow(headers)
        return b"\xef\xbb\xbf" + buf.getvalue().encode("utf-8")
    if fmt != "xlsx":
        raise ValueError(fmt)
    from openpyxl import Workbook
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    wb = Workbook()
    ws = wb.active
    ws.title = kind.label
    ws.append(headers)
    for index, column in enumerate(kind.columns, start=1):
        letter = get_column_letter(index)
        ws[f"{letter}1"].font = Font(bold=True)
        ws.column_dimensions[letter].width = max(12, len(column.header) * 2 + 4, len(column.example) + 4)
        if column.numeric != NUM_ANY:
            for row in range(2, TEXT_ROWS + 2):
                ws.cell(row=row, column=index).number_format = "@"
    ws.freeze_panes = "A2"
    notes = wb.create_sheet("填写说明")
    notes.append(["列名", "英文别名", "是否必填", "格式", "示例"])
    for cell in notes[1]:
        cell.font = Font(bold=True)
    for column in kind.columns:
        notes.append([column.header, ", ".join(column.aliases), "是" if column.required else "否", column.fmt_zh,
                      column.example])
    notes.append([])
    notes.append(["只导入第一个工作表；第1行为列名，数据从第2行开始；空行会被跳过。"])
    for letter, width in zip("ABCDE", (18, 24, 10, 60, 24), strict=True):
        notes.column_dimensions[letter].width = width
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
