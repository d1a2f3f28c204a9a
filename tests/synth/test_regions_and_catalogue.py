"""The region tree, departments, banks and catalogue of the synthetic city."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import select

from yikatong.catalog.models import Bank, Department, SubsidyCategory, SubsidyItem, TreasuryAccount
from yikatong.registry.models import Person, Region, RegionLevel
from yikatong.security.scope import level_of, parent_of, within
from yikatong.synth.catalog_data import BANKS
from yikatong.synth.regions import plan_city

# Other tests add their own little areas (codes 80...) to the shared database: look at ours only.
IN_SICHUAN = within(Region.code, "510000000000")
IN_CITY = "511000000000"

COUNTIES = {"511002000000": "市中区", "511011000000": "东兴区", "511024000000": "威远县",
            "511025000000": "资中县", "511083000000": "隆昌市"}


def test_five_counties_with_real_codes_and_names(city, db):
    counties = dict(db.execute(select(Region.code, Region.name)
                               .where(IN_SICHUAN, Region.level == RegionLevel.COUNTY)).all())
    assert counties == COUNTIES
    neijiang = db.get(Region, "511000000000")
    assert (neijiang.name, neijiang.level, neijiang.parent_code) == ("内江市", "city", "510000000000")
    sichuan = db.get(Region, "510000000000")
    assert (sichuan.name, sichuan.level, sichuan.parent_code) == ("四川省", "province", None)


def test_region_tree_is_consistent(city, db):
    regions = {r.code: r for r in db.scalars(select(Region).where(IN_SICHUAN))}
    assert len(regions) == city.regions
    for r in regions.values():
        assert r.level == level_of(r.code).value, r.code
        assert r.parent_code == parent_of(r.code), r.code
        if r.parent_code:
            parent = regions[r.parent_code]
            assert r.full_name.startswith(parent.full_name if parent.level != "province" else ""), r.code
            assert r.full_name.endswith(r.name)
    by_level = Counter(r.level for r in regions.values())
    assert by_level["township"] == 110  # the township layer is the city's at every scale
    townships = [r for r in regions.values() if r.level == "township"]
    for t in townships:
        kind = int(t.code[6:9])
        suffix = "街道" if kind < 100 else ("镇" if kind < 200 else "乡")
        assert t.name.endswith(suffix), t.name
        villages = [r for r in regions.values() if r.parent_code == t.code]
        assert len(villages) >= 2, t.code
        for v in villages:
            assert v.name.endswith("社区" if int(v.code[9:]) < 200 else "村"), v.name
    assert len({t.name for t in townships}) == len(townships)
    assert regions["511025000000"].full_name == "内江市资中县"


def test_persons_and_households_live_in_villages(city, db):
    levels = dict(db.execute(select(Region.code, Region.level).where(IN_SICHUAN)).all())
    person_regions = db.scalars(select(Person.region_code).where(within(Person.region_code, IN_CITY))
                                .distinct()).all()
    assert person_regions and all(levels[c] == "village" for c in person_regions)
    # every village has people (the demo clerks' villages in particular)
    assert len(person_regions) == sum(1 for lv in levels.values() if lv == "village")


def test_plan_sizes_at_scale_one_and_small_scales():
    full = plan_city(1.0, 1)
    assert len(full.townships) == 110
    assert 1800 <= len(full.villages) <= 2000
    assert 3_050_000 <= full.population <= 3_150_000
    small = plan_city(0.01, 1)
    assert len(small.townships) == 110 and all(len(t.villages) >= 2 for t in small.townships)
    assert len(small.villages) < len(full.villages) / 5


def test_exactly_436_departments_with_one_sector_name_across_levels(city, db):
    departments = db.scalars(select(Department).where(within(Department.region_code, IN_CITY))).all()
    assert len(departments) == 436 == city.departments
    assert len({d.code for d in departments}) == 436
    city_level = {d.sector: d for d in departments if d.region_code == "511000000000"}
    assert city_level["民政"].name == "内江市民政局" and city_level["民政"].code == "D511000-MZ"
    zizhong = {d.sector: d for d in departments if d.region_code == "511025000000"}
    assert zizhong["民政"].name == "资中县民政局" and zizhong["民政"].code == "D511025-MZ"
    # every county and township sector also exists at city level
    assert {d.sector for d in departments} <= set(city_level)
    regions = dict(db.execute(select(Region.code, Region.level).where(IN_SICHUAN)).all())
    township_offices = [d for d in departments if regions[d.region_code] == "township"]
    assert len(township_offices) == 330 and all(d.code.startswith("D" + d.region_code[:9]) for d in township_offices)


def test_catalogue_has_119_items_in_102_categories(city, db):
    own = SubsidyItem.code.startswith("ZS") | SubsidyItem.code.startswith("SD")  # other tests add items of theirs
    items = db.scalars(select(SubsidyItem).where(SubsidyItem.department_code.like("D511000-%"), own)).all()
    categories = db.scalars(select(SubsidyCategory).where(
        SubsidyCategory.code.in_({i.category_code for i in items}))).all()
    assert (len(categories), len(items)) == (102, 119)
    central = [i for i in items if i.code.startswith("ZS")]
    local = [i for i in items if i.code.startswith("SD")]
    assert len(central) == 29 and len(local) == 90
    assert len({i.category_code for i in central}) == 17 and len({i.category_code for i in local}) == 85
    assert {i.funding_level for i in central} <= {"中央", "省"}
    assert {i.funding_level for i in local} <= {"市", "县"}
    assert len({i.name for i in items}) == 119  # no duplicate names
    departments = {d.code: d for d in db.scalars(select(Department))}
    assert {c.code[:2] for c in categories} == {"ZS", "SD"}
    for item in items:
        assert departments[item.department_code].region_code == "511000000000", item.code
        assert item.standard_fen > 0 and item.basis in ("人", "户", "亩")
        assert item.frequency in ("月", "季", "半年", "年", "一次性")
    names = {i.name: i for i in items}
    assert names["耕地地力保护补贴"].basis == "亩" and 5_000 <= names["耕地地力保护补贴"].standard_fen <= 20_000
    assert names["城乡居民最低生活保障金（农村低保）"].means_tested
    assert names["临时救助"].village_publicity


def test_three_banks_and_treasury_accounts(city, db):
    banks = db.scalars(select(Bank).where(Bank.code.in_([b.code for b in BANKS])).order_by(Bank.code)).all()
    assert [b.code for b in banks] == ["ABC", "PSBC", "SCRCU"] and city.banks == 3
    assert all(len(b.account_prefix) == 6 and b.account_prefix.isdigit() for b in banks)
    accounts = db.scalars(select(TreasuryAccount).where(within(TreasuryAccount.region_code, IN_CITY))).all()
    assert len(accounts) == 12
    assert Counter(a.kind for a in accounts) == {"国库": 6, "专户": 6}
    assert {a.region_code for a in accounts} == {"511000000000", *COUNTIES}
    assert {a.bank_code for a in accounts} <= {b.code for b in banks}
