"""Proxy-holding cases (代管代持) with their electronic archive: an agreement and, for some cases,
a village certificate or a medical certificate, as small UTF-8 text documents."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy.orm import Session

from yikatong.core import crypto
from yikatong.core.masking import mask_id_number
from yikatong.core.protect import protect
from yikatong.registry.documents import store_document
from yikatong.registry.models import ProxyDocument, ProxyHolding
from yikatong.synth.people import ProxyCase

TEXT = "text/plain; charset=utf-8"


def _cn_date(d: date) -> str:
    return f"{d.year}年{d.month}月{d.day}日"


def agreement_text(case_no: str, case: ProxyCase) -> str:
    until = _cn_date(case.valid_until) if case.valid_until else "长期（情况变化时重新备案）"
    return (
        "社会保障卡代管代持协议书\n"
        f"编号：{case_no}\n\n"
        f"被代管人：{case.person_name}，身份证号：{case.person_id_masked}，年龄：{case.person_age}岁\n"
        f"住址：{case.village_name}\n"
        f"代管人：{case.holder_name}，身份证号：{mask_id_number(case.holder_id_number)}，"
        f"与被代管人关系：{case.holder_relation}\n\n"
        f"代管原因：{case.reason}。\n"
        "一、代管人代为保管被代管人的社会保障卡，代为领取惠民惠农财政补贴资金，"
        "所领资金全部用于被代管人的生活、医疗和照料，不得挪作他用。\n"
        "二、代管人每季度向村（居）民委员会报告资金使用情况，接受乡镇和村级监督。\n"
        "三、被代管人情况发生变化（死亡、迁出、恢复自理能力等）的，代管人应在10日内报告。\n"
        f"代管期限：自{_cn_date(case.valid_from)}至{until}。\n\n"
        f"审核人：{case.approver_name}    审核日期：{_cn_date(case.approved_on)}\n"
    )


def certificate_text(case_no: str, case: ProxyCase, medical: bool) -> tuple[str, str]:
    if medical:
        title = "医疗机构诊断证明"
        body = (
            f"诊断证明书\n编号：{case_no}-Y\n\n患者：{case.person_name}，{case.person_age}岁\n"
            f"诊断意见：{case.reason}，建议由家属代为管理财物。\n"
            f"开具日期：{_cn_date(case.approved_on)}\n"
        )
    else:
        title = "村（社区）委员会证明"
        body = (
            f"证明\n编号：{case_no}-C\n\n兹证明{case.village_name}村（居）民{case.person_name}"
            f"（身份证号{case.person_id_masked}）因{case.reason}，"
            f"经本人及家属同意，由{case.holder_relation}{case.holder_name}代为保管社会保障卡并领取补贴资金。\n"
            f"特此证明。\n{_cn_date(case.approved_on)}\n"
        )
    return title, body


def write_cases(session: Session, cases: list[tuple[int, str, ProxyCase]], now: datetime) -> int:
    """cases: (person id, case number, case). Returns the number of documents attached."""
    documents = 0
    for n, (person_id, case_no, case) in enumerate(cases):
        holder_id = protect(crypto.ID_NUMBER, case.holder_id_number)
        holding = ProxyHolding(
            person_id=person_id, holder_name=case.holder_name, holder_id_number_enc=holder_id.enc,
            holder_id_number_hash=holder_id.hash, holder_id_number_masked=holder_id.masked,
            holder_relation=case.holder_relation, reason=case.reason, approved_by=None,
            approver_name=case.approver_name, approved_on=case.approved_on, valid_from=case.valid_from,
            valid_until=case.valid_until, created_at=now,
        )
        session.add(holding)
        session.flush()
        papers = [("代管代持协议书", agreement_text(case_no, case), f"代管代持协议书-{case_no}.txt")]
        if n % 3 != 2:  # two cases in three also file a certificate
            title, body = certificate_text(case_no, case, medical=n % 3 == 1)
            papers.append((title, body, f"{title}-{case_no}.txt"))
        for title, body, filename in papers:
            doc = store_document(session, body.encode("utf-8"), filename, TEXT, now)
            session.add(ProxyDocument(proxy_id=holding.id, document_sha256=doc.sha256, title=title))
            documents += 1
    session.flush()
    return documents
