"""Registry logic: scoped search, the person page, audited clear reads, region counts."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Select, func, select, update
from sqlalchemy.orm import Session, selectinload

from yikatong.catalog.models import Bank
from yikatong.core import crypto
from yikatong.core.errors import Conflict, Forbidden, Invalid, NotFound
from yikatong.core.idnumber import normalize
from yikatong.core.protect import reveal as decrypt
from yikatong.core.protect import search_hash
from yikatong.registry import schemas
from yikatong.registry.models import (
    Card,
    CardStatus,
    Document,
    Person,
    ProxyDocument,
    ProxyHolding,
    Region,
    VillageCount,
)
from yikatong.security import audit
from yikatong.security.models import User
from yikatong.security.roles import Perm, require_perm
from yikatong.security.scope import child_prefix_length, in_subtree, level_of, within

PAGE_MAX = 100


def scoped_persons(user: User) -> Select[tuple[Person]]:
    """Every person query starts here: persons inside the user's region subtree."""
    require_perm(user, Perm.PERSON_READ)
    return select(Person).where(within(Person.region_code, user.region_code))


def looks_like_id(q: str) -> bool:
    q = normalize(q)
    return len(q) == 18 and q[:17].isdigit()


def search_persons(session: Session, user: User, q: str, page: int = 1, size: int = 20) -> schemas.PersonPage:
    """By full ID number (exact, through the keyed hash) or by name (prefix), within scope."""
    q = (q or "").strip()
    size = max(1, min(size, PAGE_MAX))
    page = max(1, page)
    stmt = scoped_persons(user)
    if looks_like_id(q):
        stmt = stmt.where(Person.id_number_hash == search_hash(crypto.ID_NUMBER, normalize(q)))
    elif q:
        if len(q) > 40:
            raise Invalid("查询内容过长")
        # Names hold no wildcards; dropping them (rather than an ESCAPE clause) keeps the prefix
        # search on the name index (SQLite's LIKE optimisation does not apply with ESCAPE).
        prefix = q.replace("%", "").replace("_", "").replace("\\", "")
        if not prefix:
            raise Invalid("请输入身份证号或姓名")
        stmt = stmt.where(Person.name.like(prefix + "%"))
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = session.scalars(stmt.options(selectinload(Person.cards)).order_by(Person.name, Person.id)
                          .offset((page - 1) * size).limit(size)).all()
    names = region_names(session, {p.region_code for p in rows})
    return schemas.PersonPage(total=total, page=page, size=size,
                              items=[_brief(p, names) for p in rows])


def get_person(session: Session, user: User, person_id: int) -> Person:
    """Load a person the user may see. Another region's person is refused (403), not hidden."""
    require_perm(user, Perm.PERSON_READ)
    person = session.get(Person, person_id)
    if person is None:
        raise NotFound("人员不存在")
    if not in_subtree(user.region_code, person.region_code):
        raise Forbidden("无权查看本辖区以外的人员")
    return person


def person_detail(session: Session, user: User, person_id: int) -> schemas.PersonOut:
    person = get_person(session, user, person_id)
    household = person.household
    members = household.members if household else [person]
    banks = dict(session.execute(select(Bank.code, Bank.name)).all())
    proxies = session.scalars(
        select(ProxyHolding).where(ProxyHolding.person_id == person.id)
        .options(selectinload(ProxyHolding.documents)).order_by(ProxyHolding.valid_from.desc())
    ).all()
    names = region_names(session, {person.region_code})
    return schemas.PersonOut(
        **_brief(person, names).model_dump(),
        phone_masked=person.phone_masked,
        relation=person.relation,
        household_id=household.id if household else None,
        household_code=household.code if household else None,
        household_address=household.address if household else None,
        members=[schemas.MemberOut(id=m.id, name=m.name, relation=m.relation,
                                   id_number_masked=m.id_number_masked) for m in members],
        cards=[schemas.CardOut(card_number=c.card_number, bank_code=c.bank_code,
                               bank_name=banks.get(c.bank_code, c.bank_code),
                               bank_account_masked=c.bank_account_masked, status=c.status,
                               issued_on=c.issued_on) for c in person.cards],
        no_card_reason=person.no_card_reason,
        proxies=[schemas.ProxyOut(holder_name=p.holder_name, holder_id_number_masked=p.holder_id_number_masked,
                                  holder_relation=p.holder_relation, reason=p.reason,
                                  approver_name=p.approver_name, approved_on=p.approved_on,
                                  valid_from=p.valid_from, valid_until=p.valid_until,
                                  documents=[schemas.DocumentOut(title=d.title, sha256=d.document_sha256)
                                             for d in p.documents]) for p in proxies],
    )


def proxy_document(session: Session, user: User, person_id: int, sha256: str, now: datetime,
                   ip: str = "") -> tuple[Document, bytes]:
    """A file of the person's proxy-holding archive (代管代持电子档案), checked against its hash; the
    read is audited like any other look at personal papers."""
    from yikatong.registry.documents import read_document

    person = get_person(session, user, person_id)
    linked = session.scalar(
        select(ProxyDocument.id).join(ProxyHolding, ProxyHolding.id == ProxyDocument.proxy_id)
        .where(ProxyHolding.person_id == person.id, ProxyDocument.document_sha256 == sha256.lower())
    )
    if linked is None:
        raise NotFound("档案文件不存在")
    document = session.get(Document, sha256.lower())
    try:
        data = read_document(document.sha256)
    except ValueError:
        raise Conflict("档案文件与登记的哈希不一致，可能已被篡改，已拒绝提供") from None
    audit.record(session, user, "document.read", "document", document.sha256, now,
                 region_code=person.region_code, ip=ip, detail={"person_id": person.id})
    return document, data


REVEALABLE = {"id_number": crypto.ID_NUMBER, "phone": crypto.PHONE, "bank_account": crypto.BANK_ACCOUNT}


def reveal(session: Session, user: User, person_id: int, field: str, now: datetime, ip: str = "") -> str:
    """Return one clear value of a person and write the read to the audit trail (明文查看留痕)."""
    require_perm(user, Perm.PERSON_READ_CLEAR)
    if field not in REVEALABLE:
        raise Invalid(f"不支持查看的字段：{field}")
    person = get_person(session, user, person_id)
    if field == "id_number":
        blob = person.id_number_enc
    elif field == "phone":
        blob = person.phone_enc
    else:
        card = _current_card(person)
        blob = card.bank_account_enc if card else None
    if blob is None:
        raise NotFound("该人员没有此项信息")
    value = decrypt(REVEALABLE[field], blob)
    audit.record(session, user, "person.reveal", "person", person.id, now, region_code=person.region_code,
                 ip=ip, detail={"field": field})
    return value


def region_summary(session: Session, user: User, code: str | None = None) -> schemas.RegionSummary:
    """Counts for a region in the user's scope, with one line per child region."""
    require_perm(user, Perm.PERSON_READ)
    code = code or user.region_code
    if not in_subtree(user.region_code, code):
        raise Forbidden("无权查看本辖区以外的统计")
    region = session.get(Region, code)
    if region is None:
        raise NotFound("区划不存在")
    child_len = child_prefix_length(code)
    # village_counts is kept exact by triggers on persons: ~2,000 rows for a city, not 3 million.
    rows = session.execute(
        select(VillageCount.region_code, VillageCount.persons, VillageCount.beneficiaries,
               VillageCount.beneficiaries_with_card, VillageCount.card_holders)
        .where(within(VillageCount.region_code, code))
    ).all()
    by_child: dict[str, list[int]] = {}
    for village, *counts in rows:
        key = village[:child_len] if child_len else village
        acc = by_child.setdefault(key, [0, 0, 0, 0])
        for i, n in enumerate(counts):
            acc[i] += n
    proxies = session.scalar(
        select(func.count()).select_from(ProxyHolding).join(Person, Person.id == ProxyHolding.person_id)
        .where(within(Person.region_code, code))
    ) or 0
    children: list[schemas.RegionSummary] = []
    if child_len:
        child_names = dict(session.execute(
            select(Region.code, Region.name).where(Region.parent_code == code)).all())
        for child, counts in sorted(by_child.items()):
            if counts[0] == 0:
                continue
            child_code = child.ljust(12, "0")
            children.append(_summary(child_code, child_names.get(child_code, child_code),
                                     level_of(child_code), *counts, None))
    total = [sum(c[i] for c in by_child.values()) for i in range(4)]
    return _summary(code, region.full_name, region.level, *total, proxies, children)


def _summary(code, name, level, persons, ben, ben_card, cards, proxies, children=None) -> schemas.RegionSummary:
    persons, ben, ben_card, cards = (int(x or 0) for x in (persons, ben, ben_card, cards))
    return schemas.RegionSummary(
        code=code, name=name, level=str(level), persons=persons, beneficiaries=ben,
        beneficiaries_with_card=ben_card, card_holding_rate=(ben_card / ben) if ben else 0.0,
        active_cards=cards, proxy_cases=proxies or 0, children=children or [],
    )


def home_extras(session: Session, user: User) -> dict:
    """What the home page shows besides region counts, by duty."""
    from yikatong.security.models import AuditEvent
    from yikatong.security.roles import Role

    role = Role(user.role)
    if role is Role.BANK:
        bank = session.get(Bank, user.bank_code)
        by_status = dict(session.execute(
            select(Card.status, func.count()).where(Card.bank_code == user.bank_code).group_by(Card.status)).all())
        return {"bank": bank, "bank_cards": by_status}
    if role in (Role.SYSTEM_ADMIN, Role.SECURITY_ADMIN):
        by_role = dict(session.execute(select(User.role, func.count()).group_by(User.role)).all())
        return {"users_by_role": by_role}
    if role is Role.AUDIT_ADMIN:
        return {"audit_total": session.scalar(select(func.count()).select_from(AuditEvent)) or 0}
    return {}


def refresh_card_flags(session: Session, person_ids: Iterable[int] | None = None) -> None:
    """Recompute persons.has_active_card (all persons, or the given ones) from the cards table."""
    active = select(Card.id).where(Card.person_id == Person.id, Card.status == CardStatus.ACTIVE).exists()
    stmt = update(Person).values(has_active_card=active)
    if person_ids is not None:
        ids = list(person_ids)
        for start in range(0, len(ids), 1000):
            session.execute(stmt.where(Person.id.in_(ids[start:start + 1000])))
        return
    session.execute(stmt)


def _current_card(person: Person) -> Card | None:
    active = [c for c in person.cards if c.status == CardStatus.ACTIVE]
    return (active or person.cards or [None])[0]


def region_names(session: Session, codes: set[str]) -> dict[str, str]:
    """Full names of the given region codes (empty codes ignored)."""
    codes = {c for c in codes if c}
    if not codes:
        return {}
    return dict(session.execute(select(Region.code, Region.full_name).where(Region.code.in_(codes))).all())


def _brief(p: Person, names: dict[str, str]) -> schemas.PersonBrief:
    card = _current_card(p)
    return schemas.PersonBrief(
        id=p.id, name=p.name, gender=p.gender, birth_date=p.birth_date, id_number_masked=p.id_number_masked,
        region_code=p.region_code, region_name=names.get(p.region_code, p.region_code),
        is_beneficiary=p.is_beneficiary, card_status=card.status if card else None,
    )
