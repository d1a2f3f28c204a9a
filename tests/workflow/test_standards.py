"""A claim is priced with the standard in force for its period: the latest dated standard valid from
on or before the period's first day, the county's own standard winning over the city-wide one."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select

from yikatong.catalog.models import SubsidyItem
from yikatong.catalog.service import add_standard
from yikatong.registry.models import Region
from yikatong.workflow.models import Application
from yikatong.workflow.service import Claim, Source, enter_claims, prepare_claims

from .conftest import MONDAY

ITEM = "ZS007"  # 农村低保, per person and month


def _other_county_village(db, county: str) -> str:
    return db.scalar(select(Region.code).where(Region.level == "village", ~Region.code.startswith(county))
                     .order_by(Region.code))


def test_claims_are_priced_with_the_standard_of_their_period_and_county(db, users, claimant):
    finance, clerk = users["city_finance"], users["village_clerk"]
    county = clerk.region_code[:6]
    base = db.get(SubsidyItem, ITEM).standard_fen
    add_standard(db, finance, ITEM, date(2026, 10, 1), base + 1000, MONDAY, reason="全市提标")
    add_standard(db, finance, ITEM, date(2026, 11, 1), base + 3000, MONDAY, county_code=county, reason="本县自定标准")
    add_standard(db, finance, ITEM, date(2026, 12, 1), base - 500, MONDAY, reason="全市调整")
    here = claimant(ITEM)
    elsewhere = claimant(ITEM, village=_other_county_village(db, county))

    claims = [Claim(ref=n, person_id=here.id, item_code=ITEM, period=p)
              for n, p in enumerate(("2026-09", "2026-10", "2026-11", "2026-12"), 1)]
    claims += [Claim(ref=5, person_id=elsewhere.id, item_code=ITEM, period="2026-11"),
               Claim(ref=6, person_id=elsewhere.id, item_code=ITEM, period="2026-12")]
    prepared = prepare_claims(db, None, claims, Source.LIST, MONDAY)
    assert prepared.errors == []
    priced = {(r["person_id"], r["period"]): (r["standard_fen"], r["amount_fen"]) for r in prepared.rows}
    assert priced == {
        (here.id, "2026-09"): (base, base),  # before any change
        (here.id, "2026-10"): (base + 1000, base + 1000),  # the city-wide raise
        (here.id, "2026-11"): (base + 3000, base + 3000),  # the county's own standard
        (here.id, "2026-12"): (base + 3000, base + 3000),  # the county's standard still in force wins
        (elsewhere.id, "2026-11"): (base + 1000, base + 1000),  # another county: city-wide
        (elsewhere.id, "2026-12"): (base - 500, base - 500),
    }
    # the item shows the city-wide standard in force today (MONDAY is in November)
    assert db.get(SubsidyItem, ITEM).standard_fen == base + 1000

    ids = enter_claims(db, None, prepared, Source.LIST, MONDAY, screen=False)
    stored = {a.period: a.amount_fen for a in db.scalars(select(Application).where(Application.id.in_(ids)))
              if a.person_id == here.id}
    assert stored == {"2026-09": base, "2026-10": base + 1000, "2026-11": base + 3000, "2026-12": base + 3000}


def test_a_new_standard_does_not_reprice_earlier_claims(db, users, claimant):
    finance = users["city_finance"]
    base = db.get(SubsidyItem, ITEM).standard_fen
    person = claimant(ITEM)
    prepared = prepare_claims(db, None, [Claim(ref=1, person_id=person.id, item_code=ITEM, period="2026-11")],
                              Source.LIST, MONDAY)
    [app_id] = enter_claims(db, None, prepared, Source.LIST, MONDAY, screen=False)
    add_standard(db, finance, ITEM, date(2026, 11, 1), base * 2, MONDAY, reason="追溯提标")
    db.expire_all()
    app = db.get(Application, app_id)
    assert (app.standard_fen, app.amount_fen) == (base, base)


def test_a_period_before_the_first_standard_is_refused(db, claimant):
    person = claimant(ITEM)
    prepared = prepare_claims(db, None, [Claim(ref=1, person_id=person.id, item_code=ITEM, period="2019-12")],
                              Source.LIST, MONDAY)
    assert [e.reason for e in prepared.errors] == ["所属期早于该项目最早一条补贴标准的生效日期，无法计算金额"]
