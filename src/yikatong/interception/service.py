"""Interception (存疑信息拦截): verifying flags and the pre-payment gate.

An application with an open flag cannot pass 县定 or 市管 (workflow.service.decide refuses) and
cannot be paid: the pre-payment gate (`gate`) moves only those without one to 待支付. The
department of the item verifies each flag (核实): confirmed, the
application is rejected and the case is kept as a lead (问题线索) for supervisors; cleared, with an
opinion and optionally a document, it may go on. Both are written on the application's append-only
trail. Running the rules is in interception.screening (re-exported here).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from yikatong.catalog.models import Department, SubsidyItem
from yikatong.core.db import KEYS_FROM, in_keys
from yikatong.core.errors import Conflict, Forbidden, Invalid, NotFound
from yikatong.interception import tallies
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
from yikatong.security.scope import in_subtree, pad_code, require_region, subtree_prefix, within
from yikatong.workflow import service as workflow
from yikatong.workflow.models import Application

CHUNK = 900
OUT_OF_SCOPE = "不存在或无权处理"
GATE_MAX = 10_000  # applications per gate request (the page and the API)


def sector_items(sector: str):
    """Subquery: the codes of the items a sector's departments handle."""
    return (select(SubsidyItem.code).join(Department, Department.code == SubsidyItem.department_code)
            .where(Department.sector == sector))


def visible_flags(session: Session, user: User):
    """A select of the flags `user` may read: their region subtree, and for a county department
    handler only the items of their department's sector (flags carry their application's item, so
    no join to the applications)."""
    require_perm(user, Perm.FLAG_READ)
    query = select(Flag).where(within(Flag.region_code, user.region_code))
    sector = workflow.user_sector(session, user)
    if sector is not None:
        query = query.where(Flag.item_code.in_(sector_items(sector)))
    return query


def newest_flag_ids(session: Session, user: User, *, status: str | None, rule: str, item: str, region: str | None,
                    offset: int, limit: int) -> list[int]:
    """Ids of the flags `user` may read (as visible_flags), with that status, rule and item (each
    optional), in `region` (a checked 12-digit code; None: the user's own), newest first.

    Read from an index in id order rather than sorted: with a status the (status, id, region, item)
    index (or the rule's); with every status the flags themselves, newest first. On SQLite (which
    plans without statistics) a region no smaller than a county is compared as a prefix, so that the
    region index, which would hand out every flag of the city to be sorted, is not chosen; a township
    or village takes it. PostgreSQL weighs the range by its statistics."""
    require_perm(user, Perm.FLAG_READ)
    code = region or pad_code(user.region_code)
    require_region(user.region_code, code)
    if tallies.tallied(code) and session.get_bind().dialect.name == "sqlite":
        prefix = subtree_prefix(code)
        condition = func.substr(Flag.region_code, 1, len(prefix)) == prefix
    else:
        condition = within(Flag.region_code, code)
    sector = workflow.user_sector(session, user)
    if sector is not None:
        condition &= Flag.item_code.in_(sector_items(sector))
    for column, value in ((Flag.status, status), (Flag.rule_code, rule), (Flag.item_code, item)):
        if value:
            condition &= column == value
    return list(session.scalars(select(Flag.id).where(condition).order_by(Flag.id.desc()).offset(offset).limit(limit)))


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
    Clear: it may go on (once no other flag is open). Both need an opinion.

    The verdict is a conditional write (only while the flag is still 待核实): of two verifiers at
    the same moment exactly one succeeds, the other gets Conflict — never two leads or two records."""
    require_perm(user, Perm.FLAG_VERIFY)
    if flag.status != FlagStatus.OPEN.value:
        raise Conflict(f"该存疑信息已{flag.status}，不能重复核实")
    if not can_verify(session, user, flag):
        raise Forbidden("只有该补贴项目所属部门（本辖区）可以核实此存疑信息")
    opinion = (opinion or "").strip()
    if not opinion:
        raise Invalid("请填写核实意见：说明核实的方式和结论")
    status = (FlagStatus.CONFIRMED if confirm else FlagStatus.CLEARED).value
    won = session.execute(
        update(Flag).where(Flag.id == flag.id, Flag.status == FlagStatus.OPEN.value)
        .values(status=status, verified_by=user.id, verified_at=now, opinion=opinion,
                evidence_document=document_sha256).execution_options(synchronize_session=False)).rowcount
    if won != 1:
        raise Conflict("该存疑信息已被他人核实，请刷新")
    session.refresh(flag)
    app = session.get(Application, flag.application_id)
    rule = session.get(Rule, flag.rule_code)
    refresh_open_flags(session, [app.id])
    tallies.flag_verified(session, flag.id, FlagStatus.OPEN.value)
    session.refresh(app)
    detail = {"flag_id": flag.id, "rule": flag.rule_code, "evidence": flag.evidence, "document": document_sha256}
    workflow.record_flag_verified(session, app, user, now, confirmed=confirm, opinion=opinion, detail=detail)
    if confirm:
        session.add(Lead(flag_id=flag.id, application_id=app.id, rule_code=flag.rule_code,
                         region_code=app.region_code, amount_fen=flag.amount_fen,
                         summary=f"{rule.name if rule else flag.rule_code}：{flag.evidence}", status="待处理",
                         created_at=now))
    audit.record(session, user, "flag.verify", "flag", str(flag.id), now, region_code=app.region_code, ip=ip,
                 detail={"decision": flag.status, "rule": flag.rule_code, "application": app.number})
    session.flush()
    return flag


@dataclass
class BlockedApplication:
    application_id: int
    flags: list[Flag]  # its open flags


@dataclass
class GateResult:
    """What the pre-payment gate found. `allowed` moved from 已通过 to 待支付; `blocked` have open
    flags (listed); `not_payable` were not 已通过 (id -> status, or 不存在) and were not moved."""

    checked: int  # applications in the set
    new_flags: int  # raised by this check
    allowed: list[int] = field(default_factory=list)
    blocked: list[BlockedApplication] = field(default_factory=list)
    not_payable: dict[int, str] = field(default_factory=dict)

    @property
    def blocked_ids(self) -> list[int]:
        return [b.application_id for b in self.blocked]

    @property
    def open_flags(self) -> int:
        return sum(len(b.flags) for b in self.blocked)

    @property
    def passed(self) -> bool:
        """Every application of the set may be paid."""
        return not self.blocked and not self.not_payable

    def message(self) -> str:
        """The verdict in Chinese, for the page, the API and the CLI."""
        verdict = "通过" if self.passed else "未通过"
        parts = [f"发放前比对{verdict}：{self.checked:,}笔申请，{len(self.allowed):,}笔转入待支付"]
        if self.blocked:
            parts.append(f"{len(self.blocked):,}笔有{self.open_flags:,}条存疑信息未核实，不能发放")
        if self.not_payable:
            parts.append(f"{len(self.not_payable):,}笔不是“已通过”状态，未转入待支付")
        return "，".join(parts) + f"（本次新发现存疑信息{self.new_flags:,}条）"


def _key_conditions(session: Session, column: Any, ids: list[int]) -> list[Any]:
    """`column IN ids`: in chunks for a few ids, as one condition for many (a batch of a million)."""
    if len(ids) > KEYS_FROM:
        return [in_keys(session, column, ids)]
    return [column.in_(ids[start:start + CHUNK]) for start in range(0, len(ids), CHUNK)]


def gate(session: Session, application_ids: Sequence[int], now: datetime, actor: User | None = None) -> GateResult:
    """The pre-payment gate (发放前比对): run every active rule for the set, then move the
    applications with no open flag from 已通过 to 待支付 — by a conditional update in this same
    transaction, so none flagged, rejected or withdrawn meanwhile is moved — and report the rest:
    blocked (with their open flags) or not 已通过. Nothing is raised: the caller commits, so the
    flags found here are kept even when applications are blocked."""
    ids = sorted(set(application_ids))
    hidden: dict[int, str] = {}
    if actor is not None:  # a person (the page, the API, the CLI's --user): their permission and region
        require_perm(actor, Perm.PAYMENT_GATE)
        seen: set[int] = set()
        for where in _key_conditions(session, Application.id, ids):
            seen.update(session.scalars(select(Application.id).where(
                where, within(Application.region_code, actor.region_code))))
        hidden = {i: OUT_OF_SCOPE for i in ids if i not in seen}  # says nothing about what it is
        ids = [i for i in ids if i in seen]
    run = screen(session, ids, now, actor, scope="gate")
    open_by_app: dict[int, list[Flag]] = {}
    for where in _key_conditions(session, Flag.application_id, ids):
        for f in session.scalars(select(Flag).where(where, Flag.status == FlagStatus.OPEN.value).order_by(Flag.id)):
            open_by_app.setdefault(f.application_id, []).append(f)
    payable = workflow.mark_payable(session, [i for i in ids if i not in open_by_app], actor, now)
    # an application with open flags is reported as blocked, whatever its status
    return GateResult(checked=len(ids) + len(hidden), new_flags=run.new_flags if run else 0, allowed=payable.moved,
                      blocked=[BlockedApplication(i, fs) for i, fs in sorted(open_by_app.items())],
                      not_payable=dict(sorted({**payable.not_moved, **hidden}.items())))


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
