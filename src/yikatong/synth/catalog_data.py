"""The catalogue of the synthetic city: departments, banks, treasury accounts, subsidy categories
and items. Scale-independent: the same at every scale and seed.

Neijiang's figures: 436 handling departments; 102 categories with 119 items, of which 17 central or
provincial categories (29 items) and 85 city categories (90 items). Amounts are integer fen.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from yikatong.catalog.models import Basis, Frequency, FundingLevel
from yikatong.core.money import parse_yuan
from yikatong.synth.regions import CITY_CODE, CITY_NAME, COUNTIES, CityPlan, county_code

# sector -> (code suffix, bureau name without the place). The sector string is the same at every
# level, so an item's department and the county/township offices of that sector can be joined.
SECTORS: dict[str, tuple[str, str]] = {
    "财政": ("CZ", "财政局"),
    "民政": ("MZ", "民政局"),
    "农业农村": ("NY", "农业农村局"),
    "人力资源社会保障": ("RS", "人力资源和社会保障局"),
    "残联": ("CL", "残疾人联合会"),
    "卫生健康": ("WJ", "卫生健康局"),
    "林业": ("LY", "林业局"),
    "水利": ("SL", "水利局"),
    "退役军人事务": ("TY", "退役军人事务局"),
    "住房城乡建设": ("ZJ", "住房和城乡建设局"),
    "教育": ("JY", "教育和体育局"),
    "医疗保障": ("YB", "医疗保障局"),
    "乡村振兴": ("XZ", "乡村振兴局"),
    "自然资源": ("ZR", "自然资源和规划局"),
    "交通运输": ("JT", "交通运输局"),
    "应急管理": ("YJ", "应急管理局"),
    "发展改革": ("FG", "发展和改革局"),
    "生态环境": ("HB", "生态环境局"),
    "商务": ("SW", "商务局"),
    "粮食和物资储备": ("LS", "粮食和物资储备局"),
    "总工会": ("GH", "总工会"),
}
# The city has every sector (21); each county the first 17 (ecology, commerce, grain reserves and
# the trade union work through city-level offices). 21 + 5 x 17 + 110 x 3 = 436.
COUNTY_SECTORS = list(SECTORS)[:17]
CITY_NAME_OVERRIDES = {"卫生健康": "卫生健康委员会", "发展改革": "发展和改革委员会"}
# Township offices (乡镇站所): finance office, civil affairs office, and agriculture (towns) or
# labour and social security (streets, which have no farms).
TOWNSHIP_OFFICES = (("财政", "财政所"), ("民政", "民政办"))
TOWN_THIRD = ("农业农村", "农业农村服务中心")
STREET_THIRD = ("人力资源社会保障", "劳动保障所")

DEPARTMENT_COUNT = 436


@dataclass(frozen=True)
class BankSpec:
    code: str
    name: str
    account_prefix: str  # the BIN of its social security card accounts
    urban_share: float  # share of new cards issued through this bank in communities
    rural_share: float  # ... and in villages


BANKS: tuple[BankSpec, ...] = (
    BankSpec("ABC", "中国农业银行内江分行", "622848", 0.45, 0.30),
    BankSpec("PSBC", "中国邮政储蓄银行内江市分行", "621799", 0.25, 0.20),
    BankSpec("SCRCU", "四川农村商业联合银行内江分行", "621458", 0.30, 0.50),
)


def department_code(region_code: str, sector: str) -> str:
    """Readable, stable codes: D511000-MZ (city), D511025-MZ (county), D511025101-CZ (township)."""
    suffix = SECTORS[sector][0]
    if region_code == CITY_CODE:
        return f"D{region_code[:6]}-{suffix}"
    if region_code.endswith("000000"):
        return f"D{region_code[:6]}-{suffix}"
    return f"D{region_code[:9]}-{suffix}"


def department_rows(plan: CityPlan) -> list[dict]:
    rows = []
    for sector, (_, bureau) in SECTORS.items():
        name = CITY_NAME + CITY_NAME_OVERRIDES.get(sector, bureau)
        rows.append(dict(code=department_code(CITY_CODE, sector), name=name, region_code=CITY_CODE, sector=sector))
    for county in COUNTIES:
        code = county_code(county)
        for sector in COUNTY_SECTORS:
            rows.append(dict(code=department_code(code, sector), name=county.name + SECTORS[sector][1],
                             region_code=code, sector=sector))
    for t in plan.townships:
        third = STREET_THIRD if t.kind == "街道" else TOWN_THIRD
        for sector, office in (*TOWNSHIP_OFFICES, third):
            rows.append(dict(code=department_code(t.code, sector), name=f"{t.county.name}{t.name}{office}",
                             region_code=t.code, sector=sector))
    if len(rows) != DEPARTMENT_COUNT:  # the township layer is fixed, so this holds at every scale
        raise AssertionError(f"expected {DEPARTMENT_COUNT} departments, built {len(rows)}")
    return rows


def bank_rows() -> list[dict]:
    return [dict(code=b.code, name=b.name, account_prefix=b.account_prefix) for b in BANKS]


def treasury_rows() -> list[dict]:
    """The city's and each county's treasury (国库) and special subsidy account (惠民惠农资金专户).

    Money goes from these straight to the card (no intermediate account)."""
    places = [(CITY_CODE, CITY_NAME + "本级", "511000")] + [(county_code(c), c.name, c.code6) for c in COUNTIES]
    rows = []
    for n, (region, label, code6) in enumerate(places):
        rows.append(dict(code=f"T{code6}-GK", name=f"{label}国库单一账户", kind="国库", region_code=region,
                         bank_code="ABC", account_number=f"2253{code6}0104{n:04d}01"))
        rows.append(dict(code=f"T{code6}-ZH", name=f"{label}惠民惠农财政补贴资金专户", kind="专户",
                         region_code=region, bank_code=BANKS[n % len(BANKS)].code,
                         account_number=f"5110{code6}8800{n:04d}02"))
    return rows


# --------------------------------------------------------------------------------------------
# Subsidy items live in subsidy_items.csv beside this module, one row per item, so a finance
# officer can read and correct them: 目录 (中省 = central/provincial, 市定 = city), category, item,
# sector of the responsible department, basis, standard in yuan, frequency, funding level, village
# publicity, means test, description.

ITEMS_FILE = Path(__file__).with_name("subsidy_items.csv")
CENTRAL_CATEGORIES, CENTRAL_ITEMS = 17, 29
CITY_CATEGORIES, CITY_ITEMS = 85, 90
_YES = {"是": True, "否": False}


def _read_items() -> list[dict[str, str]]:
    with ITEMS_FILE.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def catalogue_rows() -> tuple[list[dict], list[dict]]:
    """(categories, items). Codes: ZS01../ZS001.. for central and provincial, SD01../SD001.. for city."""
    categories: list[dict] = []
    items: list[dict] = []
    category_codes: dict[tuple[str, str], str] = {}
    counters = {"ZS": [0, 0], "SD": [0, 0]}  # prefix -> [categories, items]
    for row in _read_items():
        prefix = {"中省": "ZS", "市定": "SD"}[row["目录"]]
        key = (prefix, row["类别"])
        if key not in category_codes:
            counters[prefix][0] += 1
            category_codes[key] = f"{prefix}{counters[prefix][0]:02d}"
            categories.append(dict(code=category_codes[key], name=row["类别"]))
        counters[prefix][1] += 1
        items.append(dict(
            code=f"{prefix}{counters[prefix][1]:03d}", name=row["项目"], category_code=category_codes[key],
            funding_level=FundingLevel(row["资金级次"]).value,
            department_code=department_code(CITY_CODE, row["行业"]), basis=Basis(row["发放依据"]).value,
            standard_fen=parse_yuan(row["标准（元）"]), frequency=Frequency(row["发放周期"]).value,
            village_publicity=_YES[row["村级公示"]], means_tested=_YES[row["家庭经济状况核查"]],
            min_age=None, max_age=None, description=row["说明"],
        ))
    by_name = {item["name"]: item for item in items}
    for name, (lo, hi) in AGE_LIMITS.items():
        by_name[name].update(min_age=lo, max_age=hi)  # a KeyError here: a renamed item in the CSV
    return categories, items


# The catalogue's standards are dated: every item's standard has been in force since this day.
STANDARDS_FROM = date(2020, 1, 1)


def standard_rows(items: list[dict], stamp: datetime) -> list[dict]:
    """The first dated standard of every item (city-wide), which pricing reads."""
    return [dict(item_code=i["code"], valid_from=STANDARDS_FROM, county_code=None, standard_fen=i["standard_fen"],
                 reason="现行标准", created_by=None, created_by_name="系统", created_at=stamp) for i in items]


# --------------------------------------------------------------------------------------------
# Age conditions (年龄条件): whole years at the start of the claimed period, (min, max), None for
# no limit. Only where the policy itself names an age: the elderly allowances and pensions, the
# children's and students' items, working-age posts. Items without a limit here may be claimed at
# any age (the demo stories and the test suite's claimants rely on that for 低保 and farmland).
AGE_LIMITS: dict[str, tuple[int | None, int | None]] = {
    "农村部分计划生育家庭奖励扶助": (60, None),  # parents of an only child or two daughters, from 60
    "计划生育特别扶助（独生子女伤残）": (49, None),  # mothers past child-bearing age
    "计划生育特别扶助（独生子女死亡）": (49, None),
    "孤儿基本生活费": (None, 17),
    "事实无人抚养儿童生活补贴": (None, 17),
    "城乡居民基础养老金": (60, None),
    "高龄津贴（80至89周岁）": (80, 89),
    "高龄津贴（90至99周岁）": (90, 99),
    "百岁老人长寿补助金": (100, None),
    "经济困难老年人养老服务补贴": (60, None),
    "失能老年人护理补贴": (60, None),
    "孤儿助学金": (6, 22),
    "农村留守儿童关爱补助": (None, 15),
    "农村留守老年人关爱服务补贴": (60, None),
    "残疾儿童康复救助": (None, 14),
    "困难残疾人家庭子女助学补贴": (6, 22),
    "农村孕产妇住院分娩补助": (16, 49),
    "老年乡村医生生活补助": (60, None),
    "退役士兵自主就业地方经济补助": (18, None),
    "就业困难人员社会保险补贴": (16, 60),
    "城镇公益性岗位补贴": (16, 60),
    "城乡居民基础养老金地方加发": (60, None),
    "被征地农民养老保障补贴": (60, None),
    "一次性创业补贴": (18, None),
    "返乡入乡创业补贴": (18, None),
    "职业技能培训补贴": (16, 60),
    "脱贫劳动力外出务工交通补贴": (16, 60),
    "雨露计划职业教育补助": (14, 25),
    "乡村公益性岗位补贴": (18, 65),
    "生态护林员补助": (18, 60),
    "学前教育家庭经济困难幼儿资助": (3, 6),
    "家庭经济困难寄宿生生活补助": (6, 16),
    "大学新生入学资助": (16, 25),
    "普通高中免学杂费补助": (14, 20),
    "乡村教师生活补助": (18, 65),
    "金秋助学金": (16, 25),
    "村（社区）干部报酬": (18, None),
    "村民小组长误工补贴": (18, None),
}

# Mutually exclusive items (互斥项目): one person cannot receive both for the same time. Each pair
# names two items paid by the same frequency. Not here on purpose: 低保 with 特困供养 itself, which
# the demo stories (synth.applications) may give one resident of a small demo village together;
# 特困 people are kept apart from 低保 through their care allowance instead.
EXCLUSIONS: tuple[tuple[str, str, str], ...] = (
    ("城乡居民最低生活保障金（城市低保）", "城乡居民最低生活保障金（农村低保）",
     "城市低保与农村低保只能按户籍所在地享受其一"),
    ("城乡居民最低生活保障金（城市低保）", "特困人员照料护理补贴",
     "特困人员照料护理补贴只发给特困供养人员，特困人员不再纳入低保"),
    ("城乡居民最低生活保障金（农村低保）", "特困人员照料护理补贴",
     "特困人员照料护理补贴只发给特困供养人员，特困人员不再纳入低保"),
    ("在乡复员军人定期生活补助", "带病回乡退伍军人生活补助", "同一优抚对象只能按一种身份享受定期生活补助"),
    ("孤儿基本生活费", "事实无人抚养儿童生活补贴", "孤儿与事实无人抚养儿童的基本生活保障不能同时享受"),
    ("城乡居民基础养老金", "被征地农民养老保障补贴", "两种基本养老保障待遇只能享受其一"),
    ("高龄津贴（80至89周岁）", "高龄津贴（90至99周岁）", "高龄津贴按年龄段享受一档"),
    ("高龄津贴（90至99周岁）", "百岁老人长寿补助金", "年满百岁改领长寿补助金，不再领取高龄津贴"),
    ("城镇公益性岗位补贴", "乡村公益性岗位补贴", "同一人只能在一个公益性岗位领取岗位补贴"),
)


def exclusion_rows(items: list[dict]) -> list[dict]:
    """item_exclusions rows, each pair once with item_code < other_code."""
    codes = {item["name"]: item["code"] for item in items}
    rows = []
    for first, second, reason in EXCLUSIONS:
        a, b = sorted((codes[first], codes[second]))
        rows.append(dict(item_code=a, other_code=b, reason=reason))
    return rows
