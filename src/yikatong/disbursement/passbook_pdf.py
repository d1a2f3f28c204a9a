"""The passbook as an A4 PDF. Chinese text uses reportlab's built-in CID font STSong-Light (the PDF
names it and the reader supplies the glyphs), so no font file ships with the platform."""

from __future__ import annotations

import io
from xml.sax.saxutils import escape

from yikatong.core.errors import DomainError
from yikatong.disbursement.passbook import Passbook

FONT = "STSong-Light"


class PdfUnavailable(DomainError):
    status_code = 503


def title(book: Passbook) -> str:
    return f"{book.city_name}惠民惠农财政补贴资金明白折" + ("（家庭）" if book.kind == "household" else "")


def render(book: Passbook) -> bytes:
    """The passbook, header and years, as PDF bytes."""
    try:
        from reportlab.lib import colors
        from reportlab.lib.pagesizes import A4
        from reportlab.lib.styles import ParagraphStyle
        from reportlab.lib.units import mm
        from reportlab.pdfbase import pdfmetrics
        from reportlab.pdfbase.cidfonts import UnicodeCIDFont
        from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle
    except ImportError:
        raise PdfUnavailable("PDF组件（reportlab）未安装，请使用打印页面") from None
    if FONT not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(FONT))

    base = ParagraphStyle("base", fontName=FONT, fontSize=9.5, leading=13)
    head = ParagraphStyle("head", parent=base, fontSize=16, leading=22, alignment=1)
    year_style = ParagraphStyle("year", parent=base, fontSize=12, leading=18, spaceBefore=8)
    number = ParagraphStyle("number", parent=base, alignment=2)  # amounts align right
    household = book.kind == "household"

    def para(text: str, style: ParagraphStyle = base) -> Paragraph:
        return Paragraph(escape(text), style)

    story = [para(title(book), head), Spacer(1, 3 * mm)]
    facts = [("户主" if household else "姓名", book.name), ("身份证号", book.id_number_masked),
             ("户编号", book.household_code or "—"), ("所在村（社区）", book.region_name),
             ("打印日期", f"{book.printed_on:%Y-%m-%d}"), ("年度", f"{book.year}年" if book.year else "全部年度")]
    if household:
        facts.append(("家庭成员", "、".join(f"{m.name}（{m.relation}）" if m.relation else m.name
                                       for m in book.members)))
    rows = [[para(k), para(v)] for k, v in facts]
    story.append(Table(rows, colWidths=[30 * mm, 150 * mm], style=TableStyle([
        ("VALIGN", (0, 0), (-1, -1), "TOP"), ("BOTTOMPADDING", (0, 0), (-1, -1), 1)])))

    columns = (["成员"] if household else []) + ["发放日期", "补贴项目", "期次", "金额（元）", "代发银行", "收款卡"]
    widths = [16, 21, 45, 24, 22, 30, 22] if household else [22, 54, 26, 24, 32, 22]  # mm: 180 between margins
    if not book.years:
        story.append(Spacer(1, 6 * mm))
        story.append(para("暂无已到账的补贴资金"))
    for year in book.years:
        story.append(para(f"{year.year}年度　合计 {year.total} 元　共{len(year.lines)}笔", year_style))
        amount_col = columns.index("金额（元）")
        data = [[para(c) for c in columns]]
        for line in year.lines:
            cells = ([line.member] if household else []) + [
                f"{line.paid_on:%Y-%m-%d}" if line.paid_on else "", line.item_name, line.period_words,
                line.amount, line.bank_name, line.card_words]
            data.append([para(c, number if i == amount_col else base) for i, c in enumerate(cells)])
        total_row = [""] * len(columns)
        total_row[0] = "本年合计"
        total_row[amount_col] = year.total
        data.append([para(c, number if i == amount_col else base) for i, c in enumerate(total_row)])
        story.append(Table(data, colWidths=[w * mm for w in widths], repeatRows=1, style=TableStyle([
            ("GRID", (0, 0), (-1, -1), 0.5, colors.black),
            ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
        ])))
    if len(book.years) > 1:
        story.append(Spacer(1, 4 * mm))
        story.append(para(f"以上各年度合计 {book.total} 元", year_style))

    def footer(canvas, doc) -> None:
        canvas.saveState()
        canvas.setFont(FONT, 8)
        canvas.drawString(15 * mm, 10 * mm, f"{title(book)}　打印日期 {book.printed_on:%Y-%m-%d}")
        canvas.drawRightString(A4[0] - 15 * mm, 10 * mm, f"第 {doc.page} 页")
        canvas.restoreState()

    out = io.BytesIO()
    doc = SimpleDocTemplate(out, pagesize=A4, leftMargin=15 * mm, rightMargin=15 * mm, topMargin=15 * mm,
                            bottomMargin=18 * mm, title=title(book), author=book.city_name)
    doc.build(story, onFirstPage=footer, onLaterPages=footer)
    return out.getvalue()
