"""A claim entered against existing ones: the screening of the new claim flags the existing claims it
conflicts with at once (where the rule flags both sides), not at the next city run — and with the
facts a city run would find, so the city run raises nothing more."""

from __future__ import annotations

from sqlalchemy import select

from yikatong.interception import screening
from yikatong.interception.models import Flag

from .conftest import NOW, VILLAGE2


def _person(world, name: str, **kw):
    person = world.person(name, **kw)
    world.card(person)  # a card in order, so only the conflict is flagged
    return person


def _flags(db, *apps) -> dict[int, set[tuple[str, str]]]:
    ids = [a.id for a in apps]
    rows = db.execute(select(Flag.application_id, Flag.rule_code, Flag.fact_key).where(Flag.application_id.in_(ids)))
    out: dict[int, set[tuple[str, str]]] = {i: set() for i in ids}
    for app_id, code, fact in rows:
        out[app_id].add((code, fact))
    return out


def test_exclusive_items_and_two_regions_flag_the_existing_claim_too(world, db):
    allowance, pension = world.item("BA"), world.item("BB")
    world.exclusion(allowance, pension)
    person = _person(world, "李四")
    existing = world.apply(person, allowance, "2026-11")
    screening.screen(db, [existing.id], NOW)
    assert _flags(db, existing)[existing.id] == set()  # alone it is clean

    exclusive = world.apply(person, pension, "2026-11")
    elsewhere = world.apply(person, allowance, "2026-10", region=VILLAGE2)
    other = world.apply(_person(world, "旁人"), allowance, "2026-11")
    run = screening.screen(db, [exclusive.id, elsewhere.id], NOW)

    flags = _flags(db, existing, exclusive, elsewhere, other)
    assert flags[exclusive.id] == {("EXCLUSIVE_ITEMS", f"application:{existing.id}")}
    assert flags[existing.id] == {("EXCLUSIVE_ITEMS", f"application:{exclusive.id}")}
    assert flags[other.id] == set()
    assert run.new_flags == 2
    # the existing claim's count of open flags and its trail say so at once
    db.refresh(existing)
    assert existing.open_flags == 1

    # the next screening of the existing claim on its own finds the same facts: nothing new
    again = screening.screen(db, [existing.id], NOW)
    assert again.new_flags == 0


def test_two_regions_flags_both_claims(world, db):
    item, other_item = world.item("BC"), world.item("BE")
    person = _person(world, "王五")
    here = world.apply(person, item, "2026-11")
    screening.screen(db, [here.id], NOW)
    there = world.apply(person, other_item, "2026-11", region=VILLAGE2)
    screening.screen(db, [there.id], NOW)
    flags = _flags(db, here, there)
    assert ("TWO_REGIONS", f"application:{there.id}") in flags[here.id]
    assert ("TWO_REGIONS", f"application:{here.id}") in flags[there.id]


def test_rules_that_flag_only_the_later_claim_leave_the_existing_one_alone(world, db):
    """DUPLICATE_PAYMENT and HOUSEHOLD_TWICE flag the later of two claims by design."""
    per_household = world.item("BD", basis="户")
    household = world.household()
    first = _person(world, "赵一", household=household)
    second = _person(world, "赵二", household=household)
    existing = world.apply(first, per_household, "2026-11")
    screening.screen(db, [existing.id], NOW)
    later = world.apply(second, per_household, "2026-11")
    screening.screen(db, [later.id], NOW)
    flags = _flags(db, existing, later)
    assert flags[later.id] == {("HOUSEHOLD_TWICE", f"application:{existing.id}")}
    assert flags[existing.id] == set()
