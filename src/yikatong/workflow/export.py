"""The trail (审批留痕) and the inbox as a reader sees them, and as Excel or CSV files.

`describe` turns a record's JSON detail into a sentence (数量 5亩→4.5亩；金额 525.00→472.50), so the
page, the API and the exported file say the same thing."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from datetime import date
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

from yikatong.core.clock import format_beijing
from yikatong.core.money import format_fen
from yikatong.core.spreadsheet import append_row, safe_row
from yikatong.security.roles import ROLE_LABELS, Role
from yikatong.workflow.models import Action, Application, ReviewRecord
from yikatong.workflow.periods import format_quantity

XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CSV_TYPE = "text/csv; charset=utf-8"

ROLE_EXTRA = {"system": "系统", "public": "群众"}


def role_label(role: str) -> str:
    try:
        return ROLE_LABELS[Role(role)]
    except ValueError:
        return ROLE_EXTRA.get(role, role)


def actor_label(record: ReviewRecord) -> str:
    """The role of whoever wrote the record; an objection from the public has no user."""
    if record.user_id is None and record.action == Action.OBJECTION:
        return ROLE_EXTRA["public"]
    return role_label(record.actor_role)


def overdue_days(due_on: date | None, today: date) -> int:
    return (today - due_on).days if due_on is not None and due_on < today else 0


def detail_of(record: ReviewRecord) -> dict[str, Any]:
    if not record.detail:
        return {}
    try:
        value = json.loads(record.detail)
    except ValueError:
        return {"detail": record.detail}
    return value if isinstance(value, dict) else {"detail": value}


def describe(detail: dict[str, Any], basis: str) -> str:
    """A record's detail in words."""
    parts: list[str] = []
    rest = dict(detail)
    if "source" in rest:
        parts.append(f"来源：{rest.pop('source')}")
        rest.pop("source_ref", None)
    if "quantity_centi" in rest:
        old, new = rest.pop("quantity_centi")
        parts.append(f"数量 {format_quantity(basis, old)}→{format_quantity(basis, new)}")
    if "amount_fen" in rest:
        old, new = rest.pop("amount_fen")
        parts.append(f"金额 {format_fen(old)}→{format_fen(new)}")
    if "note" in rest:
        old, new = rest.pop("note")
        parts.append(f"说明 “{old}”→“{new}”")
    if "documents" in rest:
        parts.append("补充材料：" + "、".join(str(t) for t in rest.pop("documents")))
    if "returned_to" in rest:
        parts.append(f"退回至：{rest.pop('returned_to')}")
    if "starts_on" in rest or "ends_on" in rest:
        parts.append(f"公示期 {rest.pop('starts_on', '')} 至 {rest.pop('ends_on', '')}")
    if "publicity_id" in rest:
        parts.append(f"公示名单第{rest.pop('publicity_id')}号")
    if "objection_id" in rest:
        text = f"异议第{rest.pop('objection_id')}号"
        if "result" in rest:
            text += f"：{rest.pop('result')}"
        parts.append(text)
    # Whatever another writer put in the detail is still shown, plainly.
    parts.extend(f"{key}：{_plain(value)}" for key, value in sorted(rest.items()))
    return "；".join(parts)


def _plain(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "、".join(_plain(v) for v in value)
    if isinstance(value, dict):
        return "，".join(f"{k}={_plain(v)}" for k, v in value.items())
    return str(value)


# ---------------------------------------------------------------- tables

TRAIL_HEADERS = ["申请编号", "序号", "时间", "环节", "操作", "转入环节", "办理后状态", "办理人", "角色", "意见", "详情"]


def trail_table(app: Application, records: Sequence[ReviewRecord]) -> list[list[Any]]:
    return [[app.number, n, format_beijing(r.at, "%Y-%m-%d %H:%M:%S"), r.step, r.action, r.to_stage or "",
             r.status_after, r.actor_name, actor_label(r), r.opinion, describe(detail_of(r), app.basis)]
            for n, r in enumerate(records, start=1)]


INBOX_HEADERS = ["申请编号", "申请人", "身份证号", "所在村", "补贴项目", "期次", "金额（元）", "当前环节", "办理期限",
                 "超期天数", "退回补正", "未处理异议"]


def inbox_table(rows: Iterable[Any], region_names: dict[str, str], today: date) -> list[list[Any]]:
    return [[r.number, r.person_name, r.id_number_masked, region_names.get(r.region_code, r.region_code),
             r.item_name, r.period, format_fen(r.amount_fen).replace(",", ""), r.stage,
             r.due_on.isoformat() if r.due_on else "", overdue_days(r.due_on, today), "是" if r.returned else "",
             r.open_objections or ""] for r in rows]


def xlsx_bytes(title: str, headers: list[str], rows: list[list[Any]]) -> bytes:
    wb = Workbook()
    ws = wb.active
    ws.title = title[:31]
    ws.append(headers)
    for cell in ws[1]:
        cell.font = Font(bold=True)
    for row in rows:
        append_row(ws, row)
    for index, header in enumerate(headers, start=1):
        longest = max([len(str(header))] + [len(str(r[index - 1])) for r in rows[:500]])
        ws.column_dimensions[get_column_letter(index)].width = min(60, max(8, longest * 2 + 2))
    ws.freeze_panes = "A2"
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def csv_bytes(headers: list[str], rows: list[list[Any]]) -> bytes:
    """UTF-8 with a byte order mark, so Excel opens the Chinese text correctly."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(headers)
    writer.writerows(safe_row(row) for row in rows)
    return ("\ufeff" + out.getvalue()).encode("utf-8")
