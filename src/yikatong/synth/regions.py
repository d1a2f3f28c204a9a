"""The region tree of the synthetic city: real county codes, generated townships and villages.

Codes follow the 12-digit statistical codes (统计用区划代码): county6 + township3 + village3. In a
township code 001-099 are streets (街道), 100-199 towns (镇), 200+ xiang (乡); in a village code
001-199 are communities (社区), 200+ villages (村).

The township layer (110 townships, as in a Neijiang-sized city) is the same at every scale, because
the 436 handling departments include three offices in every township; what shrinks with the scale
is the number of villages per township (at least two) and the people in them.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from yikatong.registry.models import RegionLevel

PROVINCE_CODE = "510000000000"
PROVINCE_NAME = "四川省"
CITY_CODE = "511000000000"
CITY_NAME = "内江市"

# Residents at scale 1: the city's resident population (about 3.1 million).
RESIDENTS_AT_SCALE_1 = 3_100_000


@dataclass(frozen=True)
class CountySpec:
    code6: str
    name: str
    population_share: float
    streets: int
    towns: int
    xiang: int
    urban: float  # share of the county's people living in street communities (rough)


# Real county-level divisions of Neijiang (GB/T 2260). Township counts are of the city's size.
COUNTIES: tuple[CountySpec, ...] = (
    CountySpec("511002", "市中区", 0.16, 8, 6, 0, 0.70),
    CountySpec("511011", "东兴区", 0.21, 6, 14, 2, 0.45),
    CountySpec("511024", "威远县", 0.20, 3, 16, 3, 0.30),
    CountySpec("511025", "资中县", 0.26, 4, 24, 4, 0.25),
    CountySpec("511083", "隆昌市", 0.17, 4, 15, 1, 0.35),
)

# 隆昌 became a county-level city in 2017 (511028 隆昌县 -> 511083 隆昌市); ID numbers issued before
# keep the old code for life.
FORMER_CODES = {"511083": ("511028", 2017)}

# Villages at scale 1: streets ~8 communities, towns 1 seat community + ~20 villages, xiang ~13.
_COMMUNITIES_PER_STREET = 8
_VILLAGES_PER_TOWN = 20
_VILLAGES_PER_XIANG = 13

_STREET_STEMS = (
    "城东 城西 城南 城北 玉溪 乐贤 牌楼 白马 新江 西林 高桥 胜利 东兴 重龙 水南 金川 古湖 望江 "
    "桂湖 甜城 沱江 凌家 大千 椑木 归德 黄河 文英 朝阳 新华 人民 和平 双凤 环城 龙门"
).split()
_PLACE_A = list(
    "金银龙凤双高新石白铁太永明归马鱼公狮板孟兴发东西南北青黄红宝福寿顺和平安清甘丰云连"
    "杨柳桂松竹梅莲荷响圣观三五六万千团胜光华民富庆同乐长仁义德球走罗镇苏靖界严观碑"
)
_PLACE_B = list("山河溪坝桥滩湾林坪岩塘田峰口寺庙场铺井池冲岭坡沟园堰岗嘴湖台门庄洞坎垭")
_COMMON_VILLAGE = (
    "新民 团结 光明 红星 五星 胜利 建设 和平 联合 先锋 幸福 永安 长春 大石 双河 白果 黄桷 "
    "柏树 桂花 高峰 民主 向阳 金星 友谊 爱国 群力 前进 新华 同心 龙泉"
).split()
_SURNAMES_FOR_PLACES = list("宋陈李王张刘杨黄赵周吴徐孙马朱胡郭何高罗郑谢曾彭邓")
_ROADS = "人民 建设 新华 解放 和平 交通 滨江 沱江 中兴 民族 汉渝 公园 大千 文化 东桐 玉溪 公民".split()


@dataclass
class Village:
    code: str
    name: str
    full_name: str
    is_community: bool
    weight: float = 1.0
    population: int = 0


@dataclass
class Township:
    code: str
    name: str
    full_name: str
    kind: str  # 街道 / 镇 / 乡
    county: CountySpec
    index_in_county: int
    index_in_city: int
    villages: list[Village] = field(default_factory=list)

    @property
    def code9(self) -> str:
        return self.code[:9]

    @property
    def population(self) -> int:
        return sum(v.population for v in self.villages)


@dataclass
class CityPlan:
    scale: float
    seed: int
    townships: list[Township]

    @property
    def villages(self) -> list[Village]:
        return [v for t in self.townships for v in t.villages]

    @property
    def population(self) -> int:
        return sum(t.population for t in self.townships)

    def township_count(self, code6: str) -> int:
        return sum(1 for t in self.townships if t.county.code6 == code6)


def county_code(spec: CountySpec) -> str:
    return spec.code6 + "000000"


def _unique(used: set[str], make: Callable[[], str]) -> str:
    for _ in range(200):
        name = make()
        if name not in used:
            used.add(name)
            return name
    raise RuntimeError("could not find a fresh place name")  # pragma: no cover - lists are large


def _stem(rng: random.Random) -> str:
    if rng.random() < 0.12:
        return rng.choice(_SURNAMES_FOR_PLACES) + "家"
    a, b = rng.choice(_PLACE_A), rng.choice(_PLACE_B)
    return a + b if a != b else a + "山"


def _village_stem(rng: random.Random) -> str:
    return rng.choice(_COMMON_VILLAGE) if rng.random() < 0.25 else _stem(rng)


def _spread(items: list, k: int) -> list:
    """k items spread evenly over the list (always the first), so a sample keeps the mix."""
    if k >= len(items):
        return list(items)
    return [items[round(i * len(items) / k)] for i in range(k)]


def plan_city(scale: float, seed: int) -> CityPlan:
    """Decide every township and village and how many people live in each. Pure function of
    (scale, seed): the same arguments always give the same plan."""
    if scale <= 0:
        raise ValueError("scale must be positive")
    rng = random.Random(f"yikatong-regions-{seed}")
    used_townships: set[str] = set()
    townships: list[Township] = []
    street_stems = list(_STREET_STEMS)
    rng.shuffle(street_stems)
    county_name_prefix = {c.code6: f"{CITY_NAME}{c.name}" for c in COUNTIES}
    city_index = 0
    for county in COUNTIES:
        kinds = ["街道"] * county.streets + ["镇"] * county.towns + ["乡"] * county.xiang
        counters = {"街道": 0, "镇": 99, "乡": 199}
        for index, kind in enumerate(kinds):
            counters[kind] += 1
            if kind == "街道":
                stem = street_stems.pop() if street_stems else _unique(used_townships, lambda: _stem(rng))
                used_townships.add(stem)
            else:
                stem = _unique(used_townships, lambda: _stem(rng))
            name = stem + kind
            code = f"{county.code6}{counters[kind]:03d}000"
            full = county_name_prefix[county.code6] + name
            township = Township(code, name, full, kind, county, index, city_index)
            city_index += 1
            township.villages = _villages_of(rng, township)
            townships.append(township)
    plan = CityPlan(scale, seed, townships)
    _sample_villages(plan)
    _allocate_people(plan)
    return plan


def _villages_of(rng: random.Random, township: Township) -> list[Village]:
    """The township's full list of villages (scale 1)."""
    used: set[str] = set()
    villages: list[Village] = []

    def add(number: int, community: bool) -> None:
        stem = _unique(used, lambda: _village_stem(rng))
        name = stem + ("社区" if community else "村")
        weight = rng.lognormvariate(0, 0.35) * (1.8 if community else 1.0)
        villages.append(Village(f"{township.code9}{number:03d}", name, township.full_name + name, community, weight))

    if township.kind == "街道":
        n = max(3, round(_COMMUNITIES_PER_STREET * rng.uniform(0.7, 1.3)))
        for i in range(1, n + 1):
            add(i, True)
    else:
        base = _VILLAGES_PER_TOWN if township.kind == "镇" else _VILLAGES_PER_XIANG
        if township.kind == "镇":
            add(1, True)  # the town seat (场镇) is a community
        n = max(3, round(base * rng.uniform(0.7, 1.3)))
        for i in range(n):
            add(200 + i + (1 if township.kind == "镇" else 0), False)
    return villages


def _sample_villages(plan: CityPlan) -> None:
    """At scale below 1 keep fewer villages (at least 2 per township) so each stays realistically
    populated; the first village (a town's seat community) is always kept."""
    for township in plan.townships:
        full = township.villages
        keep = max(2, min(len(full), round(len(full) * plan.scale)))
        township.villages = _spread(full, keep)


def _allocate_people(plan: CityPlan) -> None:
    total = round(RESIDENTS_AT_SCALE_1 * plan.scale)
    for county in COUNTIES:
        people = round(total * county.population_share)
        villages = [v for t in plan.townships if t.county is county for v in t.villages]
        urban = [v for v in villages if v.is_community]
        rural = [v for v in villages if not v.is_community]
        # Split urban/rural by the county's urban share, then by village weight inside each group.
        urban_people = round(people * county.urban) if urban and rural else (people if urban else 0)
        for group, group_people in ((urban, urban_people), (rural, people - urban_people)):
            weight = sum(v.weight for v in group)
            for v in group:
                v.population = max(1, round(group_people * v.weight / weight))


def level_rows(plan: CityPlan) -> list[dict]:
    """Region rows, parents before children."""
    rows = [
        dict(code=PROVINCE_CODE, name=PROVINCE_NAME, full_name=PROVINCE_NAME, level=RegionLevel.PROVINCE.value,
             parent_code=None),
        dict(code=CITY_CODE, name=CITY_NAME, full_name=CITY_NAME, level=RegionLevel.CITY.value,
             parent_code=PROVINCE_CODE),
    ]
    for c in COUNTIES:
        rows.append(dict(code=county_code(c), name=c.name, full_name=CITY_NAME + c.name,
                         level=RegionLevel.COUNTY.value, parent_code=CITY_CODE))
    for t in plan.townships:
        rows.append(dict(code=t.code, name=t.name, full_name=t.full_name, level=RegionLevel.TOWNSHIP.value,
                         parent_code=county_code(t.county)))
    for t in plan.townships:
        for v in t.villages:
            rows.append(dict(code=v.code, name=v.name, full_name=v.full_name, level=RegionLevel.VILLAGE.value,
                             parent_code=t.code))
    return rows


def street_address(rng: random.Random, village: Village, number: int) -> str:
    """A household's address: 组/号 in a village, road/number/building in a community."""
    if village.is_community:
        road = _ROADS[int(rng.random() * len(_ROADS))]
        return f"{village.full_name}{road}路{1 + int(rng.random() * 300)}号{1 + number % 30}栋{1 + number % 6}单元"
    group = 1 + number % 12
    return f"{village.full_name}{group}组{1 + number // 12}号"
