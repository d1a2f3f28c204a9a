"""Households, persons and social security cards of one township.

A township is the unit of work: it is generated from its own random stream (seeded by the city seed
and the township code), so the result does not depend on the order or the process it runs in, and
only one township's people are in memory at a time. Rows come out as tuples in the column order of
the *_COLUMNS lists, with their final database ids (each township owns a block of ids).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, timedelta

from yikatong.core import crypto
from yikatong.core.masking import mask_id_number
from yikatong.core.protect import protect
from yikatong.registry.models import CardStatus
from yikatong.synth.catalog_data import BANKS
from yikatong.synth.names import NamePicker
from yikatong.synth.numbers import IdAllocator, bank_account, card_number, mobile_number
from yikatong.synth.regions import COUNTIES, FORMER_CODES, Township, Village, street_address

# Everything is dated relative to this day, not to "today", so the same seed gives the same city
# whenever it is built.
REFERENCE_DATE = date(2025, 12, 31)
FIRST_CARD_DATE = date(2010, 1, 1)

# Neijiang: 1,277,400 of 1,286,600 beneficiaries hold a card (99.28%).
BENEFICIARY_CARD_RATE = 0.9928
ADULT_CARD_RATE = 0.95  # non-beneficiary adults
MINOR_CARD_RATE = 0.60  # non-beneficiary children (cards for medical insurance)
OLD_CARD_RATE = 0.12  # holders of a card issued since 2016 whose earlier card was then cancelled

NEWBORN = "新生儿待办卡"
BEDRIDDEN = "卧床失能待上门办卡"
MIGRANT = "长期外出务工未领卡"
MOVED_IN = "户籍新迁入待办"
DAMAGED = "卡片损坏补办中"
LOST = "卡片挂失补办中"
PRISON = "服刑人员"
JUDICIAL = "账户被司法冻结"
REFUSED = "本人拒绝办卡"
NOT_APPLIED = "未申领社保卡"
NO_CARD_REASONS = (NEWBORN, BEDRIDDEN, MIGRANT, MOVED_IN, DAMAGED, LOST, PRISON, JUDICIAL, REFUSED, NOT_APPLIED)
# A reason may leave an inactive card behind: the damaged card cancelled, the lost one reported,
# a prisoner's or a judicially frozen account frozen.
_CARD_LEFT_BEHIND = {DAMAGED: CardStatus.CANCELLED, LOST: CardStatus.LOST, PRISON: CardStatus.FROZEN,
                     JUDICIAL: CardStatus.FROZEN}
_ADULT_REASONS = ((MIGRANT, 0.32), (MOVED_IN, 0.15), (DAMAGED, 0.15), (LOST, 0.12), (PRISON, 0.05),
                  (JUDICIAL, 0.06), (REFUSED, 0.08), (BEDRIDDEN, 0.07))
_CHILD_REASONS = ((MOVED_IN, 0.4), (DAMAGED, 0.3), (LOST, 0.3))

# People whose ID number carries another region code: from elsewhere in the city, or from outside
# (neighbouring Sichuan cities and Chongqing).
OUTSIDE_CODES = ("510104 510107 510122 510302 510311 510321 510322 510502 510521 511102 512002 512021 "
                 "512022 500101 500111 500151 500152 500153 510902").split()

PERSON_COLUMNS = [
    "id", "id_number_enc", "id_number_hash", "id_number_masked", "name", "gender", "birth_date", "region_code",
    "household_id", "relation", "phone_enc", "phone_hash", "phone_masked", "is_beneficiary", "has_active_card",
    "no_card_reason",
]
HOUSEHOLD_COLUMNS = ["id", "code", "region_code", "address"]
CARD_COLUMNS = [
    "id", "card_number", "person_id", "bank_code", "bank_account_enc", "bank_account_hash",
    "bank_account_masked", "status", "issued_on", "status_changed_on",
]

# generation relative to the head of household, for working out who is whose relative
GENERATION = {"户主": 0, "配偶": 0, "子": -1, "女": -1, "儿媳": -1, "女婿": -1, "孙子": -2, "孙女": -2,
              "父亲": 1, "母亲": 1}


@dataclass
class Member:
    relation: str
    age: int
    male: bool
    name: str = ""
    id_number: str = ""
    birth: date = REFERENCE_DATE
    id: int = 0  # persons.id
    beneficiary: bool = False
    active_card: bool = False


@dataclass
class TownshipJob:
    township: Township
    seed: int
    townships_in_county: int
    card_block: int  # card serials of this township: [index_in_city * card_block, ... + card_block)
    proxy_quota: int
    # First database ids of the township's blocks: every township owns a range of ids, so townships
    # can be generated in parallel and written in any order, and ids still depend on the seed only.
    first_household_id: int = 1
    first_person_id: int = 1
    first_card_id: int = 1
    id_block: int = 10**9  # at most this many households and persons, twice as many cards
    dates_as_text: bool = False  # ISO text for SQLite, date objects for PostgreSQL's COPY


@dataclass
class ProxyCase:
    person_id: int
    person_name: str
    person_id_masked: str
    person_age: int
    holder_name: str
    holder_id_number: str
    holder_relation: str
    reason: str
    approver_name: str
    approved_on: date
    valid_from: date
    valid_until: date | None
    village_name: str


@dataclass
class TownshipBatch:
    township_code: str
    households: list[tuple] = field(default_factory=list)
    persons: list[tuple] = field(default_factory=list)
    cards: list[tuple] = field(default_factory=list)
    proxies: list[ProxyCase] = field(default_factory=list)
    beneficiaries: int = 0
    beneficiaries_with_card: int = 0


# --- household composition ----------------------------------------------------------------------
# Household size 1..6, mean about 2.6 (Sichuan's 2020 census: 2.5-2.7 in most cities).
SIZE_WEIGHTS = (0.25, 0.31, 0.20, 0.12, 0.08, 0.04)
# (weight in villages, weight in communities, head's age range, other members). Many elderly live
# alone or as couples, and many rural grandparents raise grandchildren (留守儿童) while the middle
# generation works elsewhere.
TEMPLATES: dict[int, list[tuple[float, float, tuple[int, int], tuple[str, ...]]]] = {
    1: [(0.55, 0.38, (60, 95), ()), (0.45, 0.62, (19, 59), ())],
    2: [(0.42, 0.32, (58, 92), ("配偶",)), (0.20, 0.32, (22, 57), ("配偶",)), (0.12, 0.16, (28, 58), ("子女",)),
        (0.16, 0.06, (55, 78), ("孙",)), (0.10, 0.14, (36, 62), ("父母",))],
    3: [(0.50, 0.66, (25, 52), ("配偶", "子女")), (0.34, 0.12, (54, 78), ("配偶", "孙")),
        (0.16, 0.22, (30, 58), ("配偶", "父母"))],
    4: [(0.46, 0.60, (29, 50), ("配偶", "子女", "子女")), (0.34, 0.15, (54, 76), ("配偶", "孙", "孙")),
        (0.20, 0.25, (30, 56), ("配偶", "子女", "父母"))],
    5: [(0.55, 0.40, (48, 72), ("配偶", "子", "儿媳", "孙")), (0.30, 0.38, (30, 52), ("配偶", "子女", "子女", "父母")),
        (0.15, 0.22, (30, 52), ("配偶", "子女", "父亲", "母亲"))],
    6: [(0.60, 0.45, (50, 74), ("配偶", "子", "儿媳", "孙", "孙")),
        (0.40, 0.55, (30, 52), ("配偶", "子女", "子女", "父亲", "母亲"))],
}
# Old heads are drawn skewed to the young end of their range: fewer survive to each next year.
_OLD_SKEW = 1.5


def _pick(rng: random.Random, weighted) -> object:
    r = rng.random() * sum(w for _, w in weighted)
    for value, w in weighted:
        r -= w
        if r < 0:
            return value
    return weighted[-1][0]


def _household(rng: random.Random, community: bool) -> list[Member]:
    size = 1 + _index(rng, SIZE_WEIGHTS)
    choices = TEMPLATES[size]
    weights = [c[1] if community else c[0] for c in choices]
    _, _, (lo, hi), others = choices[_index(rng, weights)]
    head_age = lo + int((hi - lo + 1) * rng.random() ** (_OLD_SKEW if lo >= 50 else 1.0))
    elderly_single = size == 1 and head_age >= 60
    head_male = rng.random() < (0.4 if elderly_single else (0.62 if size == 1 else 0.72))
    members = [Member("户主", head_age, head_male)]
    first_child_age: int | None = None
    son: Member | None = None
    for kind in others:
        if kind == "配偶":
            age = max(18, head_age + (round(rng.gauss(-2, 3)) if head_male else round(rng.gauss(2, 3))))
            members.append(Member("配偶", min(age, 100), not head_male))
        elif kind in ("子女", "子"):
            male = kind == "子" or rng.random() < 0.515
            if first_child_age is None:
                age = head_age - rng.randint(22, 34)
            else:
                age = first_child_age - rng.randint(1, 7)
            if age < 0:  # a young head: any age a parent of that age can have
                age = rng.randint(0, max(0, min(head_age - 18, (first_child_age or 99))))
            first_child_age = age if first_child_age is None else first_child_age
            child = Member("子" if male else "女", age, male)
            members.append(child)
            if male and son is None:
                son = child
        elif kind == "儿媳":
            base = son.age if son else head_age - 26
            members.append(Member("儿媳", max(18, base + rng.randint(-4, 2)), False))
        elif kind == "孙":
            male = rng.random() < 0.52
            age = head_age - rng.randint(44, 62)
            age = age if age >= 0 else rng.randint(0, 6)
            members.append(Member("孙子" if male else "孙女", age, male))
        elif kind == "父母":
            male = rng.random() < 0.35  # mothers outlive fathers
            members.append(Member("父亲" if male else "母亲", min(99, head_age + rng.randint(21, 32)), male))
        elif kind in ("父亲", "母亲"):
            members.append(Member(kind, min(99, head_age + rng.randint(21, 32)), kind == "父亲"))
    return members


def _index(rng: random.Random, weights) -> int:
    r = rng.random() * sum(weights)
    for i, w in enumerate(weights):
        r -= w
        if r < 0:
            return i
    return len(weights) - 1


def beneficiary_probability(age: int, is_head: bool, rural: bool) -> float:
    """Chance that a person receives at least one subsidy (享受补贴人员).

    Skewed to the elderly (pensions, old-age allowances) and to rural households (farmland
    subsidies are paid to the household head); calibrated to 41.5% of all residents."""
    if age >= 80:
        return 0.96
    if age >= 60:
        return 0.87 if rural else 0.57
    if is_head:
        return 0.86 if rural else 0.25
    if age < 16:
        return 0.10 if rural else 0.04
    return 0.17 if rural else 0.08


# --- the township generator ----------------------------------------------------------------------


class _Generator:
    def __init__(self, job: TownshipJob):
        self.job = job
        t = job.township
        self.township = t
        self.rng = random.Random(f"yikatong-township-{job.seed}-{t.code}")
        self.names = NamePicker(self.rng)
        own = {t.county.code6}
        former = FORMER_CODES.get(t.county.code6)
        if former:
            own.add(former[0])
        self.ids = IdAllocator(own, t.index_in_county, job.townships_in_county, t.index_in_city, REFERENCE_DATE)
        self.other_counties = [c.code6 for c in COUNTIES if c.code6 != t.county.code6]
        self.batch = TownshipBatch(t.code)
        self.card_serial = t.index_in_city * job.card_block
        self.card_serial_end = self.card_serial + job.card_block
        # Systematic sampling keeps the card-holding rate of beneficiaries on target in every
        # township, instead of drifting by chance in small ones.
        self.no_card_acc = self.rng.random()
        self.proxy_candidates: list[tuple[Member, list[Member], Village]] = []

    def _date(self, d: date | None):
        return d.isoformat() if self.job.dates_as_text and d is not None else d

    def run(self) -> TownshipBatch:
        for village in self.township.villages:
            people = 0
            seq = 0
            while people < village.population:
                seq += 1
                members = _household(self.rng, village.is_community)
                self._add_household(village, seq, members)
                people += len(members)
        self._choose_proxies()
        job, batch = self.job, self.batch
        if max(len(batch.households), len(batch.persons), len(batch.cards) / 2) > job.id_block:
            raise RuntimeError("township id block exhausted")  # the plan sizes blocks generously
        return batch

    # .. one household
    def _add_household(self, village: Village, seq: int, members: list[Member]) -> None:
        rng = self.rng
        batch = self.batch
        household_id = self.job.first_household_id + len(batch.households)
        batch.households.append((household_id, f"{village.code}{seq:05d}", village.code,
                                 street_address(rng, village, seq)))
        rural = not village.is_community
        family_name = self.names.surname()  # the children's surname (the father's)
        head_male = members[0].male
        head_surname = family_name if head_male else self.names.surname()
        phones: list[str] = []
        for m in members:
            if m.relation in ("子", "女", "孙子", "孙女") or (m.relation == "配偶" and m.male):
                surname = family_name
            elif m.relation in ("户主", "父亲"):
                surname = head_surname
            else:
                surname = self.names.surname()
            m.name = surname + self.names.given_name(m.male)
            birth = date(REFERENCE_DATE.year - m.age, 1, 1) + timedelta(days=int(rng.random() * 365))
            if birth > REFERENCE_DATE:
                birth = REFERENCE_DATE
            m.id_number, m.birth = self.ids.allocate(self._region_code(m, birth, village), birth, m.male)
            m.age = REFERENCE_DATE.year - m.birth.year
            m.beneficiary = rng.random() < beneficiary_probability(m.age, m.relation == "户主", rural)
            phone = self._phone(m, phones)
            if phone:
                phones.append(phone)
            self._add_person(m, village, household_id, phone)
        for m in members:
            # mostly the very old; a few younger people with a mental or severe physical disability
            if m.beneficiary and m.active_card and (m.age >= 70 or rng.random() < 0.03):
                self.proxy_candidates.append((m, members, village))

    def _region_code(self, m: Member, birth: date, village: Village) -> str:
        rng = self.rng
        r = rng.random()
        in_city_moves = 0.10 if village.is_community else 0.03
        if r < 0.025:
            return OUTSIDE_CODES[int(rng.random() * len(OUTSIDE_CODES))]
        if r < 0.025 + in_city_moves and m.relation in ("户主", "配偶", "儿媳", "女婿", "父亲", "母亲"):
            return self.other_counties[int(rng.random() * len(self.other_counties))]
        code6 = self.township.county.code6
        former = FORMER_CODES.get(code6)
        if former and birth.year < former[1] and rng.random() < 0.9:
            return former[0]
        return code6

    def _phone(self, m: Member, phones: list[str]) -> str | None:
        rng = self.rng
        if m.age < 14:
            return None
        own = 0.4 if m.age < 18 else (0.93 if m.age < 70 else (0.7 if m.age < 80 else 0.35))
        if rng.random() < own:
            return mobile_number(rng)
        if m.age >= 70 and phones and rng.random() < 0.5:
            return phones[0]  # an old person registered with a family member's number
        return None

    def _add_person(self, m: Member, village: Village, household_id: int, phone: str | None) -> None:
        rng = self.rng
        batch = self.batch
        m.id = self.job.first_person_id + len(batch.persons)
        if m.beneficiary:
            batch.beneficiaries += 1
            self.no_card_acc += 1 - BENEFICIARY_CARD_RATE
            has_card = self.no_card_acc < 1
            if not has_card:
                self.no_card_acc -= 1
        else:
            has_card = rng.random() < (ADULT_CARD_RATE if m.age >= 16 else MINOR_CARD_RATE)
        reason = None
        if has_card:
            self._issue_cards(m, village)
        else:
            reason = self._no_card_reason(m)
            left = _CARD_LEFT_BEHIND.get(reason)
            if left is not None and m.age >= 1:
                self._card(m, village, left, self._issue_date(m.birth), changed=self._recent(m.birth))
        m.active_card = has_card
        if m.beneficiary and has_card:
            batch.beneficiaries_with_card += 1
        pid = protect(crypto.ID_NUMBER, m.id_number)
        ph = protect(crypto.PHONE, phone) if phone else (None, None, None)
        batch.persons.append((
            m.id, pid.enc, pid.hash, pid.masked, m.name, "男" if m.male else "女", self._date(m.birth), village.code,
            household_id, m.relation, ph[0], ph[1], ph[2], m.beneficiary, has_card, reason,
        ))

    def _no_card_reason(self, m: Member) -> str:
        rng = self.rng
        if m.age < 1:
            return NEWBORN
        if not m.beneficiary and rng.random() < 0.6:
            return NOT_APPLIED
        if m.age < 16:
            return _pick(rng, _CHILD_REASONS)
        if m.age >= 75 and rng.random() < 0.55:
            return BEDRIDDEN
        return _pick(rng, _ADULT_REASONS)

    # .. cards
    def _issue_date(self, birth: date) -> date:
        start = max(FIRST_CARD_DATE, birth + timedelta(days=30))
        if start >= REFERENCE_DATE:
            return REFERENCE_DATE
        return start + timedelta(days=int(self.rng.random() * (REFERENCE_DATE - start).days))

    def _recent(self, birth: date) -> date:
        start = max(date(2025, 1, 1), birth + timedelta(days=30))
        return start + timedelta(days=int(self.rng.random() * max(1, (REFERENCE_DATE - start).days)))

    def _issue_cards(self, m: Member, village: Village) -> None:
        issued = self._issue_date(m.birth)
        if issued.year >= 2016 and m.birth.year < 2008 and self.rng.random() < OLD_CARD_RATE:
            # the current card replaced an older one (e.g. a second-generation card)
            old_issued = FIRST_CARD_DATE + timedelta(days=int(self.rng.random() * (issued - FIRST_CARD_DATE).days))
            if old_issued > m.birth:
                self._card(m, village, CardStatus.CANCELLED, old_issued, changed=issued)
        self._card(m, village, CardStatus.ACTIVE, issued, changed=None)

    def _card(self, m: Member, village: Village, status: CardStatus, issued: date, changed: date | None) -> None:
        if self.card_serial >= self.card_serial_end:
            raise RuntimeError("card serial block exhausted")  # the plan sizes blocks generously
        serial = self.card_serial
        self.card_serial += 1
        rng = self.rng
        r = rng.random()
        bank = BANKS[-1]
        for b in BANKS:
            r -= b.urban_share if village.is_community else b.rural_share
            if r < 0:
                bank = b
                break
        account = protect(crypto.BANK_ACCOUNT, bank_account(bank.account_prefix, serial, self.job.seed))
        if changed is not None and changed < issued:
            changed = issued
        self.batch.cards.append((self.job.first_card_id + len(self.batch.cards), card_number(serial, self.job.seed),
                                 m.id, bank.code, account.enc, account.hash, account.masked, status.value,
                                 self._date(issued), self._date(changed)))

    # .. proxy holding (代管代持)
    def _choose_proxies(self) -> None:
        quota = self.job.proxy_quota
        if quota <= 0 or not self.proxy_candidates:
            return
        rng = self.rng
        old = [c for c in self.proxy_candidates if c[0].age >= 75]
        pool = old if len(old) >= quota else self.proxy_candidates
        for person, members, village in rng.sample(pool, min(quota, len(pool))):
            self.batch.proxies.append(self._proxy_case(person, members, village))

    def _proxy_case(self, person: Member, members: list[Member], village: Village) -> ProxyCase:
        rng = self.rng
        holders = [h for h in members if h is not person and 18 <= h.age <= 72]
        holders.sort(key=lambda h: (GENERATION[h.relation] - GENERATION[person.relation], -h.age))
        if holders:
            holder = holders[0]
            name, id_number = holder.name, holder.id_number
            relation = holder_relation(person.relation, holder.relation, holder.male)
        else:  # a relative outside the household, or a person the village appoints
            male = rng.random() < 0.5
            age = rng.randint(30, 60)
            birth = date(REFERENCE_DATE.year - age, 1, 1) + timedelta(days=int(rng.random() * 365))
            id_number, _ = self.ids.allocate(self.township.county.code6, birth, male)
            name = self.names.full_name(male)
            relation = rng.choice(["侄子" if male else "侄女", "外甥" if male else "外甥女", "村（社区）指定代管人"])
        if person.age >= 60:
            reason = rng.choice([
                "年老体弱，行动不便，无法自行到银行网点办理取款",
                "患阿尔茨海默病，不能正确保管和使用社会保障卡",
                "长期卧床失能，日常生活由家属照料",
                "视力残疾，无法自行操作银行卡和自助设备",
                "高龄独居，本人书面委托亲属代为管理补贴资金",
            ])
        else:
            reason = rng.choice([
                "智力残疾二级，无民事行为能力",
                "精神残疾，经人民法院认定为限制民事行为能力人",
                "重度肢体残疾，长期卧床",
            ])
        approved = date(2018, 1, 1) + timedelta(days=int(rng.random() * (REFERENCE_DATE - date(2018, 1, 1)).days))
        until = approved + timedelta(days=3 * 365) if rng.random() < 0.7 else None
        approver = f"{self.township.name}民政办 {self.names.full_name(rng.random() < 0.5)}"
        return ProxyCase(person.id, person.name, mask_id_number(person.id_number), person.age, name, id_number,
                         relation, reason, approver, approved, approved, until, village.full_name)


def holder_relation(person_relation: str, holder_relation_to_head: str, holder_male: bool) -> str:
    """What the holder is to the person (与被代管人关系), from both relations to the head."""
    gap = GENERATION[holder_relation_to_head] - GENERATION[person_relation]
    if gap == 0:
        if {person_relation, holder_relation_to_head} == {"户主", "配偶"}:
            return "配偶"
        return "其他亲属"
    if gap == -1:
        if holder_relation_to_head in ("儿媳", "女婿"):
            return holder_relation_to_head
        if person_relation in ("父亲", "母亲") and holder_relation_to_head == "配偶":
            return "女婿" if holder_male else "儿媳"
        return "儿子" if holder_male else "女儿"
    if gap == -2:
        return "孙子" if holder_male else "孙女"
    if gap == 1:
        return "父亲" if holder_male else "母亲"
    return "其他亲属"


def generate_township(job: TownshipJob) -> TownshipBatch:
    return _Generator(job).run()
