"""The passbook (明白折): every subsidy that reached a person's card, or the cards of a household's members,
year by year, to the fen.

A line is a payment order the bank answered 成功 (paid); failed attempts never appear, and a failed
order paid again shows once, as the re-payment that succeeded (the database holds at most one live
order per application). Lines are grouped by the order's year (the budget year of its period: the
December allowance paid in January stays in the year it is for).

Who may read it: staff with `person.read` inside their region subtree. The passbook is the citizen's
own record of what they were paid, read to them at the counter by the village or township clerk who
opened their person page, and read by county departments, city finance and supervisors, who all hold
`person.read` too. `payment.read` (budgets and batches, the treasury's side) would shut out exactly
the counter clerk who serves the citizen, and it adds nobody: every holder of it also holds
`person.read`. The passbook shows no more than the person page does (a card tail, not an account).

`user=None` is the citizen's own request (a future portal): no role or region check here, the caller
has proved who the citizen is and asks only for their own person or household. Every read is on the
audit trail either way."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from yikatong.catalog.models import Bank, SubsidyItem
from yikatong.core.clock import beijing_date
from yikatong.core.errors import NotFound
from yikatong.core.masking import mask_name
from yikatong.core.money import format_fen
from yikatong.disbursement.models import OrderStatus, PaymentOrder
from yikatong.disbursement.service import period_words
from yikatong.registry.models import Household, Person, Region
from yikatong.security import audit
from yikatong.security.models import User
from yikatong.security.roles import Perm, require_perm
from yikatong.security.scope import in_subtree

NOT_FOUND = "人员不存在或无权查看"
HOUSEHOLD_NOT_FOUND = "家庭户不存在或无权查看"
PROXY = "代管"


@dataclass(frozen=True)
class Member:
    person_id: int
    name: str  # masked (张*明): lists show masked names
    relation: str


@dataclass(frozen=True)
class Line:
    """One paid order as the citizen reads it."""

    order_id: int
    person_id: int
    member: str  # the beneficiary's masked name
    item_code: str
    item_name: str
    period: str
    period_words: str  # 2026年11月
    amount_fen: int
    paid_on: date | None
    bank_code: str
    bank_name: str
    card_tail: str  # the last 4 digits of the card the money went to
    by_proxy: bool  # paid to the proxy holder's card (代管代持)
    payee: str  # masked name of whose card it was

    @property
    def amount(self) -> str:
        return format_fen(self.amount_fen)

    @property
    def card_words(self) -> str:
        """尾号1234, or 代管 尾号1234（张*） when it went to the proxy holder's card."""
        tail = f"尾号{self.card_tail}" if self.card_tail else ""
        return f"{PROXY} {tail}（{self.payee}）" if self.by_proxy else tail


@dataclass
class Year:
    year: int
    lines: list[Line] = field(default_factory=list)
    total_fen: int = 0
    member_totals: dict[int, int] = field(default_factory=dict)  # person id -> fen (a household's year)

    @property
    def total(self) -> str:
        return format_fen(self.total_fen)


@dataclass
class Passbook:
    """A person's (kind "person") or a household's (kind "household") passbook."""

    kind: str
    person_id: int | None  # the person's passbook; None for a household's
    name: str  # the person's name (the header); the household's head for a household
    id_number_masked: str
    household_id: int | None
    household_code: str
    household_address: str
    region_name: str
    city_name: str
    members: list[Member]
    years: list[Year]  # newest year first; only the filtered year when one is asked for
    all_years: list[int]  # every year with a payment, for the filter
    year: int | None  # the year filter, None for all
    printed_on: date

    @property
    def total_fen(self) -> int:
        return sum(y.total_fen for y in self.years)

    @property
    def total(self) -> str:
        return format_fen(self.total_fen)

    @property
    def line_count(self) -> int:
        return sum(len(y.lines) for y in self.years)


def person_passbook(session: Session, user: User | None, person_id: int, now: datetime, *,
                    year: int | None = None, fmt: str = "page", ip: str = "") -> Passbook:
    """The passbook of one person. Another region's person is 404 (nothing said about them)."""
    person = session.get(Person, person_id)
    _check(user, person.region_code if person else None, NOT_FOUND)
    household = person.household
    book = _assemble(session, "person", person, household, [person], now, year)
    book.person_id = person.id
    _audit(session, user, "person", person.id, person.region_code, book, fmt, now, ip)
    return book


def household_passbook(session: Session, user: User | None, household_id: int, now: datetime, *,
                       year: int | None = None, fmt: str = "page", ip: str = "") -> Passbook:
    """The passbook of a household: every member's paid orders in one book, with household year totals."""
    household = session.get(Household, household_id)
    _check(user, household.region_code if household else None, HOUSEHOLD_NOT_FOUND)
    members = list(household.members)
    if user is not None:  # a member registered outside the user's region stays out of their view
        members = [m for m in members if in_subtree(user.region_code, m.region_code)]
    head = next((m for m in members if m.relation == "户主"), members[0] if members else None)
    book = _assemble(session, "household", head, household, members, now, year)
    _audit(session, user, "household", household.id, household.region_code, book, fmt, now, ip)
    return book


def _check(user: User | None, region_code: str | None, message: str) -> None:
    if user is not None:
        require_perm(user, Perm.PERSON_READ)
    if region_code is None or (user is not None and not in_subtree(user.region_code, region_code)):
        raise NotFound(message)


def paid_years(session: Session, person_ids: list[int]) -> list[int]:
    """Years with at least one paid order of these persons, newest first."""
    if not person_ids:
        return []
    return sorted(session.scalars(select(PaymentOrder.year).distinct().where(
        PaymentOrder.person_id.in_(person_ids), PaymentOrder.status == OrderStatus.PAID.value)), reverse=True)


def paid_lines(session: Session, person_ids: list[int], year: int | None = None) -> list[Year]:
    """The paid orders of these persons, grouped by year (newest first), each year's lines by date paid."""
    if not person_ids:
        return []
    query = (select(PaymentOrder, Person.name).join(Person, Person.id == PaymentOrder.person_id)
             .where(PaymentOrder.person_id.in_(person_ids), PaymentOrder.status == OrderStatus.PAID.value))
    if year is not None:
        query = query.where(PaymentOrder.year == year)
    rows = session.execute(query.order_by(PaymentOrder.year.desc(), PaymentOrder.paid_on, PaymentOrder.id)).all()
    items = dict(session.execute(select(SubsidyItem.code, SubsidyItem.name).where(
        SubsidyItem.code.in_({o.item_code for o, _ in rows}))).all()) if rows else {}
    banks = dict(session.execute(select(Bank.code, Bank.name)).all()) if rows else {}
    years: dict[int, Year] = {}
    for order, name in rows:
        book_year = years.setdefault(order.year, Year(order.year))
        book_year.lines.append(Line(
            order_id=order.id, person_id=order.person_id, member=mask_name(name), item_code=order.item_code,
            item_name=items.get(order.item_code, order.item_code), period=order.period,
            period_words=period_words(order.period), amount_fen=order.amount_fen, paid_on=order.paid_on,
            bank_code=order.bank_code, bank_name=banks.get(order.bank_code, order.bank_code),
            card_tail=_tail(order.account_masked), by_proxy=order.by_proxy,
            payee=mask_name(order.payee_name) if order.payee_name else ""))
        book_year.total_fen += order.amount_fen
        book_year.member_totals[order.person_id] = book_year.member_totals.get(order.person_id, 0) + order.amount_fen
    return list(years.values())


def _tail(account_masked: str) -> str:
    digits = "".join(c for c in account_masked if c.isdigit())
    return digits[-4:]


def _assemble(session: Session, kind: str, person: Person | None, household: Household | None,
              members: list[Person], now: datetime, year: int | None) -> Passbook:
    ids = [m.id for m in members]
    region_code = household.region_code if kind == "household" else person.region_code
    city_code = region_code[:4].ljust(12, "0")
    regions = {r.code: r for r in session.scalars(select(Region).where(Region.code.in_([region_code, city_code])))}
    region_name = regions[region_code].full_name if region_code in regions else region_code
    return Passbook(
        kind=kind, person_id=None, name=person.name if person else "",
        id_number_masked=person.id_number_masked if person else "",
        household_id=household.id if household else None, household_code=household.code if household else "",
        household_address=household.address if household else "", region_name=region_name,
        city_name=regions[city_code].name if city_code in regions else "",
        members=[Member(m.id, mask_name(m.name), m.relation or "") for m in members],
        years=paid_lines(session, ids, year), all_years=paid_years(session, ids), year=year,
        printed_on=beijing_date(now))


def _audit(session: Session, user: User | None, object_type: str, object_id: int, region_code: str,
           book: Passbook, fmt: str, now: datetime, ip: str) -> None:
    detail = {"format": fmt, "year": book.year, "lines": book.line_count, "total_fen": book.total_fen}
    if user is None:
        detail["citizen"] = True  # the citizen's own request, identified by the caller
    audit.record(session, user, "passbook.view", object_type, object_id, now, region_code=region_code, ip=ip,
                 detail=detail)
