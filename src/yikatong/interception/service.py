"""Interception (存疑信息拦截): verifying flags and the pre-payment gate.

An application with an open flag cannot pass 县定 or 市管 (workflow.service.decide refuses) and
cannot be paid (`gate`). The department of the item verifies each flag (核实): confirmed, the
application is rejected and the case is kept as a lead (问题线索) for supervisors; cleared, with an
opinion and optionally a document, it may go on. Both are written on the application's append-only
trail. Running the rules is in interception.screening (re-exported here).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from yikatong.core.errors import Blocked, Conflict, Forbidden, Invalid, NotFound
from yikatong.interception.models import Flag, FlagStatus, Lead, Rule
from yikatong.interception.screening import (  # noqa: F401 - the service's public face
    active_specs,
    refresh_open_flags,
    run_city,
    screen,
    spec_of,
    sync_builtin_rules,
)
from yikatong.security import audit
from yikatong.security.models import User
from yikatong.security.roles import Perm, has_perm, require_perm
from yikatong.security.scope import in_subtree, within
from yikatong.workflow import service as workflow
from yikatong.workflow.models import Action, Application, Status, Step

CHUNK = 900


def visible_flags(session: Session, user: User):
    """A select of the flags `user` may read: their region subtree, and for a county department
    handler only the items of their department's sector."""
    require_perm(user, Perm.FLAG_READ)
    query = select(Flag).where(within(Flag.region_code, user.region_code))
    sector = workflow.user_sector(session, user)
    if sector is not None:
        query = query.join(Application, Application.id == Flag.application_id).where(Application.sector == sector)
    return query


def get_flag(session: Session, user: User, flag_id: int) -> Flag:
    require_perm(user, Perm.FLAG_READ)
    flag = session.get(Flag, flag_id)
    if flag is None:
        raise NotFound("存疑信息不存在")
    workflow.get_application(session, user, flag.application_id)  # refuses other regions and duties (403)
    return flag


def can_verify(session: Session, user: User, flag: Flag) -> bool:
    """The item's department at the county (or any department office above it) verifies."""
    from yikatong.security.roles import has_perm

    if not has_perm(user.role, Perm.FLAG_VERIFY) or flag.status != FlagStatus.OPEN.value:
        return False
    app = session.get(Application, flag.application_id)
    sector = workflow.user_sector(session, user)
    return in_subtree(user.region_code, app.region_code) and (sector is None or sector == app.sector)


def verify(session: Session, flag: Flag, user: User, *, confirm: bool, opinion: str, document_sha256: str | None,
           now: datetime, ip: str = "") -> Flag:
    """核实 one flag. Confirm: the application is rejected (if still live) and a lead is kept.
    Clear: it may go on (once no other flag is open). Both need an opinion."""
    require_perm(user, Perm.FLAG_VERIFY)
    if flag.status != FlagStatus.OPEN.value:
        raise Conflict(f"该存疑信息已{flag.status}，不能重复核实")
    if not can_verify(session, user, flag):
        raise Forbidden("只有该补贴项目所属部门（本辖区）可以核实此存疑信息")
    opinion = (opinion or "").strip()
    if not opinion:
        raise Invalid("请填写核实意见：说明核实的方式和结论")
    app = session.get(Application, flag.application_id)
    rule = session.get(Rule, flag.rule_code)
    flag.status = (FlagStatus.CONFIRMED if confirm else FlagStatus.CLEARED).value
    flag.verified_by = user.id
    flag.verified_at = now
    flag.opinion = opinion
    flag.evidence_document = document_sha256
    session.flush()
    refresh_open_flags(session, [app.id])
    session.refresh(app)
    step = app.stage or Step.CITY.value
    detail = {"flag_id": flag.id, "rule": flag.rule_code, "evidence": flag.evidence, "document": document_sha256}
    workflow.add_record(session, app, step, Action.FLAG_CONFIRMED if confirm else Action.FLAG_CLEARED, user, now,
                        opinion, detail)
    if confirm:
        session.add(Lead(flag_id=flag.id, application_id=app.id, rule_code=flag.rule_code,
                         region_code=app.region_code, amount_fen=flag.amount_fen,
                         summary=f"{rule.name if rule else flag.rule_code}：{flag.evidence}", status="待处理",
                         created_at=now))
        if app.status in (Status.OPEN.value, Status.APPROVED.value):
            workflow.leave_road(app, Status.REJECTED, now)
            workflow.add_record(session, app, step, Action.REJECT, user, now, f"存疑信息核实属实：{opinion}",
                                {"flag_id": flag.id})
    audit.record(session, user, "flag.verify", "flag", str(flag.id), now, region_code=app.region_code, ip=ip,
                 detail={"decision": flag.status, "rule": flag.rule_code, "application": app.number})
    session.flush()
    return flag


@dataclass
class GateResult:
    checked: int  # applications in the set
    new_flags: int  # raised by this check
    blocked_ids: list[int]  # applications of the set with an open flag
    open_flags: int  # open flags on them


def gate(session: Session, application_ids: Sequence[int], now: datetime, actor: User | None = None) -> GateResult:
    """The pre-payment gate (发放前比对): run every active rule for the set, then refuse the set
    (Blocked) if any of its applications has an open flag. Payment batches call this just before
    money moves; new flags raised here stay recorded even when the set is refused (the caller
    commits either way)."""
    ids = sorted(set(application_ids))
    run = screen(session, ids, now, actor, scope="gate")
    blocked: list[int] = []
    open_flags = 0
    for start in range(0, len(ids), CHUNK):
        rows = session.execute(select(Flag.application_id, func.count()).where(
            Flag.application_id.in_(ids[start:start + CHUNK]), Flag.status == FlagStatus.OPEN.value)
            .group_by(Flag.application_id)).all()
        blocked.extend(r[0] for r in rows)
        open_flags += sum(r[1] for r in rows)
    result = GateResult(checked=len(ids), new_flags=run.new_flags if run else 0, blocked_ids=sorted(blocked),
                        open_flags=open_flags)
    if blocked:
        raise GateRefused(result)
    return result


class GateRefused(Blocked):
    """The set may not be paid: some applications have open flags. Carries the result."""

    def __init__(self, result: GateResult):
        super().__init__(f"发放前比对未通过：{len(result.blocked_ids)}笔申请有{result.open_flags}条存疑信息未核实，"
                         f"本批资金不能发放（其中本次新发现{result.new_flags}条）")
        self.result = result


def application_flags(session: Session, user: User, application_id: int) -> list[dict[str, Any]]:
    """The flags of one application for its page (the caller has checked the user may read it).
    Evidence and links only for those who may read flags."""
    readable = has_perm(user.role, Perm.FLAG_READ)
    rows = session.execute(select(Flag.id, Flag.rule_code, Rule.name, Flag.evidence, Flag.status, Flag.severity,
                                  Flag.amount_fen, Flag.raised_at)
                           .join(Rule, Rule.code == Flag.rule_code)
                           .where(Flag.application_id == application_id).order_by(Flag.id)).all()
    return [{"id": r.id, "rule_code": r.rule_code, "rule_name": r.name, "evidence": r.evidence if readable else None,
             "status": r.status, "severity": r.severity, "amount_fen": r.amount_fen, "raised_at": r.raised_at,
             "link": readable, "open": r.status == FlagStatus.OPEN.value} for r in rows]
