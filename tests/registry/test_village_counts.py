"""village_counts is kept by database triggers: check it against a live count after every kind of write."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import case, func, select

from yikatong.core import crypto
from yikatong.core.idnumber import make_id_number
from yikatong.core.protect import protect
from yikatong.registry.models import Person, Region, VillageCount

NOW = datetime(2026, 2, 1, tzinfo=UTC)


def live(session, village: str) -> tuple[int, int, int, int]:
    row = session.execute(select(
        func.count(),
        func.coalesce(func.sum(case((Person.is_beneficiary, 1), else_=0)), 0),
        func.coalesce(func.sum(case((Person.is_beneficiary & Person.has_active_card, 1), else_=0)), 0),
        func.coalesce(func.sum(case((Person.has_active_card, 1), else_=0)), 0),
    ).where(Person.region_code == village)).one()
    return tuple(int(x) for x in row)


def kept(session, village: str) -> tuple[int, int, int, int]:
    row = session.execute(select(VillageCount.persons, VillageCount.beneficiaries,
                                 VillageCount.beneficiaries_with_card, VillageCount.card_holders)
                          .where(VillageCount.region_code == village)).one_or_none()
    return tuple(row) if row else (0, 0, 0, 0)


def new_person(village: str, n: int, beneficiary: bool, card: bool) -> Person:
    number = make_id_number("511025", date(1960, 1, 1), 400 + n, True)
    p = protect(crypto.ID_NUMBER, number)
    return Person(id_number_enc=p.enc, id_number_hash=p.hash, id_number_masked=p.masked, name=f"计数{n}",
                  gender="男", birth_date=date(1960, 1, 1), region_code=village, is_beneficiary=beneficiary,
                  has_active_card=card, created_at=NOW, updated_at=NOW)


def test_counts_follow_inserts_updates_moves_and_deletes(db, city):
    v1, v2 = db.scalars(select(Region.code).where(Region.level == "village").order_by(Region.code).limit(2)).all()
    assert kept(db, v1) == live(db, v1) and kept(db, v2) == live(db, v2)  # after the bulk build

    a, b = new_person(v1, 1, True, True), new_person(v1, 2, True, False)
    db.add_all([a, b])
    db.flush()
    assert kept(db, v1) == live(db, v1)

    b.has_active_card = True  # a card was issued
    db.flush()
    assert kept(db, v1) == live(db, v1)

    a.region_code = v2  # moved to the next village
    a.is_beneficiary = False
    db.flush()
    assert kept(db, v1) == live(db, v1) and kept(db, v2) == live(db, v2)

    before = live(db, v2)
    db.delete(a)
    db.flush()
    assert kept(db, v2) == live(db, v2) == (before[0] - 1, before[1], before[2], before[3] - 1)
    db.rollback()  # the fixture's session: leave the shared city as it was
    assert kept(db, v1) == live(db, v1) and kept(db, v2) == live(db, v2)
