"""The daily reconciliation report (日终对账报表) as an Excel workbook: the day's latest reconciliation with
its figures, what each batch booked that day on the bank's and the treasury's side, and every difference
record by record. Amounts are numbers in yuan with two decimals (exact, from integer fen), dates are date
cells, headers Chinese; the download is on the audit trail as an export."""

from __future__ import annotations

import io
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from yikatong.catalog.models import Bank, SubsidyItem
from yikatong.core.clock import beijing_time
from yikatong.core.errors import Invalid
from yikatong.core.spreadsheet import append_row
from yikatong.disbursement.loop import latest_run
from yikatong.disbursement.models import MoneyLine, PaymentBatch
from yikatong.security import audit
from yikatong.security.models import User

XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MONEY = "#,##0.00"
DATE = "yyyy-mm-dd"
BATCH_HEADERS = ["批次号", "补贴项目", "代发银行", "银行支出（元）", "银行退回（元）", "国库支出（元）",
                 "国库退回（元）", "是否一致"]
DIFFERENCE_HEADERS = ["流水号", "差异类型", "支付指令金额（元）", "银行净额（元）", "国库净额（元）"]


def yuan(fen: int | None) -> Decimal | None:
    return None if fen is None else Decimal(fen) / 100


def _batches_of_day(session: Session, day: date) -> list[tuple]:
    """Per batch: what the bank and the treasury booked out and back on the day."""
    def side(source: str, sign: int):
        amount = MoneyLine.amount_fen * sign
        return func.coalesce(func.sum(case(((MoneyLine.source == source) & (amount > 0), amount), else_=0)), 0)

    return session.execute(
        select(PaymentBatch.number, SubsidyItem.name, Bank.name, side("B", 1), side("B", -1), side("T", 1),
               side("T", -1))
        .join(PaymentBatch, PaymentBatch.id == MoneyLine.batch_id)
        .join(SubsidyItem, SubsidyItem.code == PaymentBatch.item_code)
        .join(Bank, Bank.code == PaymentBatch.bank_code)
        .where(MoneyLine.booked_on == day)
        .group_by(PaymentBatch.number, SubsidyItem.name, Bank.name).order_by(PaymentBatch.number)).all()


def _money(sheet, columns: tuple[int, ...]) -> None:
    for column in columns:
        sheet.cell(row=sheet.max_row, column=column).number_format = MONEY


def day_report(session: Session, user: User, day: date, now: datetime, *, ip: str = "") -> tuple[str, bytes]:
    """The workbook of the day's latest reconciliation: (file name, bytes). Audited as an export."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    view = latest_run(session, user, day=day, limit=None)
    if view is None:
        raise Invalid(f"{day:%Y-%m-%d}尚未进行日终对账，请先对账")
    run = view.run
    book = Workbook()
    sheet = book.active
    sheet.title = "日终对账"
    sheet.append([f"日终对账报表 {day:%Y-%m-%d}"])
    sheet["A1"].font = Font(bold=True, size=14)
    sheet.append(["记账日期（北京时间）", day])
    sheet.cell(row=sheet.max_row, column=2).number_format = DATE
    sheet.append(["对账时间（北京时间）", beijing_time(run.at).replace(tzinfo=None)])
    sheet.cell(row=sheet.max_row, column=2).number_format = "yyyy-mm-dd hh:mm"
    append_row(sheet, ["对账人", run.by_name])
    sheet.append(["对账结果", "平" if run.balanced else "不平"])
    sheet.append(["当日涉及支付指令（笔）", run.orders])
    for label, fen in (("当日支付指令金额（元）", run.orders_fen), ("其中回盘成功（元）", run.paid_fen),
                       ("其中回盘失败（元）", run.failed_fen), ("银行支出（元）", run.bank_out_fen),
                       ("银行退回（元）", run.bank_back_fen), ("国库支出（元）", run.treasury_out_fen),
                       ("国库退回（元）", run.treasury_back_fen)):
        sheet.append([label, yuan(fen)])
        _money(sheet, (2,))
    sheet.append(["差异（笔）", run.differences])
    sheet.column_dimensions["A"].width = 26
    sheet.column_dimensions["B"].width = 22

    batches = book.create_sheet("当日批次")
    batches.append(BATCH_HEADERS)
    for number, item, bank, b_out, b_back, t_out, t_back in _batches_of_day(session, day):
        append_row(batches, [number, item, bank, yuan(b_out), yuan(b_back), yuan(t_out), yuan(t_back),
                             "是" if (b_out, b_back) == (t_out, t_back) else "否"])
        _money(batches, (4, 5, 6, 7))

    diffs = book.create_sheet("差异明细")
    diffs.append(DIFFERENCE_HEADERS)
    for d in view.differences:
        append_row(diffs, [d.end_to_end_id, d.kind, yuan(d.order_fen), yuan(d.bank_fen), yuan(d.treasury_fen)])
        _money(diffs, (3, 4, 5))
    for ws in (batches, diffs):
        for column in "ABCDEFGH":
            ws.column_dimensions[column].width = 18

    out = io.BytesIO()
    book.save(out)
    audit.record_export(session, user, "payment_reconciliation", "xlsx", {"day": day.isoformat()},
                        len(view.differences), now, ip=ip, object_id=day.isoformat())
    return f"日终对账_{day:%Y%m%d}.xlsx", out.getvalue()
