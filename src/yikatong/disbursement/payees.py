"""Who is paid, onto which card: the beneficiary's own active social security card, or — while a proxy
holding (代管代持) is valid on the day — the proxy holder's. Never an intermediate account."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from sqlalchemy import Row, or_, select
from sqlalchemy.orm import Session

from yikatong.core.db import KEYS_FROM, in_keys
from yikatong.registry.models import Card, CardStatus, Person, ProxyHolding

CHUNK = 900

NO_CARD = "无正常状态的社会保障卡"
HOLDER_NO_CARD = "代管人无正常状态的社会保障卡"


@dataclass(frozen=True)
class Payee:
    name: str
    card_id: int
    bank_code: str
    account_enc: bytes
    account_hash: str
    account_masked: str
    proxy_id: int | None  # set when paid to a proxy holder's card


def _chunks(values: list, size: int = CHUNK) -> Iterable[list]:
    for start in range(0, len(values), size):
        yield values[start:start + size]


def _where_in(session: Session, column, ids: list):
    """The statements' key conditions: chunks of IN (...) for a few keys, one in_keys for many."""
    if len(ids) > KEYS_FROM:
        yield in_keys(session, column, ids)
        return
    for chunk in _chunks(ids):
        yield column.in_(chunk)


def _active_cards(session: Session, person_ids: list[int]) -> dict[int, Row]:
    """Each person's active card (the most recently issued when there are several)."""
    cards: dict[int, Row] = {}
    columns = (Card.person_id, Card.id, Card.bank_code, Card.bank_account_enc, Card.bank_account_hash,
               Card.bank_account_masked)
    for where in _where_in(session, Card.person_id, sorted(set(person_ids))):
        active = select(*columns).where(where, Card.status == CardStatus.ACTIVE.value)
        for card in session.execute(active.order_by(Card.issued_on, Card.id)):
            cards[card.person_id] = card  # later issue wins
    return cards


def payees(session: Session, person_ids: Iterable[int], day: date) -> dict[int, Payee | str]:
    """person id -> the Payee on `day` (a Beijing date), or the Chinese reason none can be paid."""
    ids = sorted(set(person_ids))
    proxies: dict[int, ProxyHolding] = {}
    for where in _where_in(session, ProxyHolding.person_id, ids):
        for p in session.scalars(select(ProxyHolding).where(
                where, ProxyHolding.valid_from <= day,
                or_(ProxyHolding.valid_until.is_(None), ProxyHolding.valid_until >= day))
                .order_by(ProxyHolding.valid_from, ProxyHolding.id)):
            proxies[p.person_id] = p  # the latest valid holding wins
    holders: dict[str, tuple[int, str]] = {}  # holder's ID hash -> (person id, name)
    hashes = sorted({p.holder_id_number_hash for p in proxies.values()})
    for chunk in _chunks(hashes):
        for pid, h, name in session.execute(select(Person.id, Person.id_number_hash, Person.name)
                                            .where(Person.id_number_hash.in_(chunk))):
            holders[h] = (pid, name)
    names = {}
    for where in _where_in(session, Person.id, ids):
        names.update(session.execute(select(Person.id, Person.name).where(where)).all())
    cards = _active_cards(session, ids + [pid for pid, _ in holders.values()])
    out: dict[int, Payee | str] = {}
    for pid in ids:
        proxy = proxies.get(pid)
        if proxy is not None:
            holder = holders.get(proxy.holder_id_number_hash)
            card = cards.get(holder[0]) if holder else None
            out[pid] = _payee(proxy.holder_name, card, proxy.id) if card else HOLDER_NO_CARD
        else:
            card = cards.get(pid)
            out[pid] = _payee(names.get(pid, ""), card, None) if card else NO_CARD
    return out


def _payee(name: str, card: Row, proxy_id: int | None) -> Payee:
    return Payee(name=name, card_id=card.id, bank_code=card.bank_code, account_enc=card.bank_account_enc,
                 account_hash=card.bank_account_hash, account_masked=card.bank_account_masked, proxy_id=proxy_id)
