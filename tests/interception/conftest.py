"""A small world for interception tests, built in the real test database through the `db` fixture
(rolled back at the end of each test): its own regions, catalogue items, people, households, cards,
proxy holdings, applications and shared data snapshots. Rules then run on a focus snapshot of the
world's applications, exactly as the submission screen and the payment gate run them.

Codes and numbers never meet the synthetic city's: regions under province 97, people born in
1890-1899 (the city is born 1925-2025, the workflow pool 1900-1901), item codes, card numbers and
application numbers starting with TW.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import pyarrow as pa
import pytest

from yikatong.core.idnumber import make_id_number
from yikatong.core.masking import mask_id_number
from yikatong.core.protect import protect, search_hash

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
PROVINCE = "970000000000"
CITY = "970100000000"
COUNTY = "970101000000"  # the world's main county
COUNTY2 = "970102000000"  # a second county (e.g. not covered by a partial hukou delivery)
TOWNSHIP = "970101001000"
VILLAGE = "970101001001"
VILLAGE2 = "970101001002"
VILLAGE3 = "970102001001"  # in COUNTY2
_serial = itertools.count(1)  # shared by every world in the run: numbers stay unique run-wide


@dataclass(frozen=True)
class Hit:
    evidence: str
    amount_fen: int


class World:
    """Builders for the rows a rule reads. Every builder flushes, so ids are known at once."""

    def __init__(self, db) -> None:
        from yikatong.catalog.models import Bank, Department, SubsidyCategory
        from yikatong.registry.models import Region

        self.db = db
        self.applications: list[int] = []
        self.id_numbers: dict[int, str] = {}  # person id -> clear ID number
        tree = [(PROVINCE, "测试省", "province", None), (CITY, "测试市", "city", PROVINCE),
                (COUNTY, "甲县", "county", CITY), (COUNTY2, "乙县", "county", CITY),
                (TOWNSHIP, "甲镇", "township", COUNTY), ("970102001000", "乙镇", "township", COUNTY2),
                (VILLAGE, "一村", "village", TOWNSHIP), (VILLAGE2, "二村", "village", TOWNSHIP),
                (VILLAGE3, "三村", "village", "970102001000")]
        for code, name, level, parent in tree:
            if db.get(Region, code) is None:
                db.add(Region(code=code, name=name, full_name=f"测试省{name}", level=level, parent_code=parent))
                db.flush()
        self.bank = "TWB"
        if db.get(Bank, self.bank) is None:
            db.add(Bank(code=self.bank, name="测试银行", account_prefix="62179"))
            db.add(Department(code="TW-MZ", name="甲县民政局", region_code=COUNTY, sector="民政"))
            db.add(SubsidyCategory(code="TW", name="测试类别"))
            db.flush()

    # ------------------------------------------------------------ catalogue

    def item(self, code: str, *, basis: str = "人", standard_fen: int = 10000, frequency: str = "月",
             means_tested: bool = False, min_age: int | None = None, max_age: int | None = None):
        """A subsidy item. `code` is prefixed with TW (so `item("A")` is TWA)."""
        from yikatong.catalog.models import SubsidyItem

        item = SubsidyItem(code=f"TW{code}", name=f"测试项目{code}", category_code="TW", funding_level="县",
                           department_code="TW-MZ", basis=basis, standard_fen=standard_fen, frequency=frequency,
                           village_publicity=True, means_tested=means_tested, min_age=min_age, max_age=max_age)
        self.db.add(item)
        self.db.flush()
        return item

    def exclusion(self, a, b) -> None:
        from yikatong.catalog.models import ItemExclusion

        first, second = sorted((a.code, b.code))
        self.db.add(ItemExclusion(item_code=first, other_code=second, reason="测试互斥"))
        self.db.flush()

    # ------------------------------------------------------------ registry

    def household(self, village: str = VILLAGE):
        from yikatong.registry.models import Household

        household = Household(code=f"TW{next(_serial):08d}", region_code=village, address="", created_at=NOW,
                              updated_at=NOW)
        self.db.add(household)
        self.db.flush()
        return household

    def id_number(self, birth: date | None = None, county: str = COUNTY) -> str:
        """A fresh valid ID number (for a person, a proxy holder, a cadre...)."""
        n = next(_serial)
        birth = birth or date(1890 + n // 336 % 10, 1 + n // 28 % 12, 1 + n % 28)
        return make_id_number(county[:6], birth, n % 500, n % 2 == 0)

    def person(self, name: str = "张三", *, village: str = VILLAGE, household=None, birth: date | None = None):
        from yikatong.registry.models import Person

        number = self.id_number(birth, village)
        protected = protect("id_number", number)
        person = Person(id_number_enc=protected.enc, id_number_hash=protected.hash, id_number_masked=protected.masked,
                        name=name, gender="男" if int(number[16]) % 2 else "女",
                        birth_date=date(int(number[6:10]), int(number[10:12]), int(number[12:14])),
                        region_code=village, household_id=household.id if household else None,
                        relation="户主" if household else None, is_beneficiary=True, created_at=NOW, updated_at=NOW)
        self.db.add(person)
        self.db.flush()
        self.id_numbers[person.id] = number
        return person

    def card(self, person, *, account: str | None = None, status: str = "正常", card_number: str | None = None):
        """A social security card; `account` (clear) defaults to a fresh one."""
        from yikatong.registry.models import Card

        n = next(_serial)
        account = account or f"62179970101{n:08d}"
        protected = protect("bank_account", account)
        card = Card(card_number=card_number or f"TW{n:010d}", person_id=person.id, bank_code=self.bank,
                    bank_account_enc=protected.enc, bank_account_hash=protected.hash,
                    bank_account_masked=protected.masked, status=status, issued_on=date(2020, 1, 1),
                    created_at=NOW, updated_at=NOW)
        self.db.add(card)
        self.db.flush()
        return card

    def proxy(self, person, holder_number: str, *, valid_from: date = date(2020, 1, 1),
              valid_until: date | None = None):
        """代管代持: `holder_number` holds `person`'s card."""
        from yikatong.registry.models import ProxyHolding

        protected = protect("id_number", holder_number)
        holding = ProxyHolding(person_id=person.id, holder_name="代管人", holder_id_number_enc=protected.enc,
                               holder_id_number_hash=protected.hash, holder_id_number_masked=protected.masked,
                               holder_relation="子女", reason="年老", approver_name="测试", approved_on=valid_from,
                               valid_from=valid_from, valid_until=valid_until, created_at=NOW)
        self.db.add(holding)
        self.db.flush()
        return holding

    # ------------------------------------------------------------ applications

    def apply(self, person, item, period: str = "2026-11", *, status: str = "办理中", region: str | None = None,
              quantity_centi: int | None = None, amount_fen: int | None = None, household=None,
              frequency: str | None = None):
        """An application inserted directly (status 办理中, 已通过, or a dead one: 已否决, 已撤回).
        `frequency` reads the period in another form than the item's (a claim entered before the
        item's payment cycle changed)."""
        from yikatong.workflow.models import Application
        from yikatong.workflow.periods import amount_fen as computed
        from yikatong.workflow.periods import parse_period

        p = parse_period(frequency or item.frequency, period)
        quantity = quantity_centi if quantity_centi is not None else (1250 if item.basis == "亩" else 100)
        if household is None and item.basis == "户":
            household_id = person.household_id
        else:
            household_id = household.id if household else None
        app = Application(
            number=f"TW{next(_serial):010d}", item_code=item.code, sector="民政", person_id=person.id,
            household_id=household_id, region_code=region or person.region_code, period=p.label,
            period_start=p.start, period_end=p.end, basis=item.basis, quantity_centi=quantity,
            standard_fen=item.standard_fen,
            amount_fen=amount_fen if amount_fen is not None else computed(item.standard_fen, quantity),
            source="村级受理", status=status, stage="村评" if status == "办理中" else None,
            owner_region=region or person.region_code, stage_entered_at=NOW, created_at=NOW,
            decided_at=None if status == "办理中" else NOW)
        self.db.add(app)
        self.db.flush()
        self.applications.append(app.id)
        return app

    # ------------------------------------------------------------ shared data

    def share(self, dataset: str, rows: list[dict[str, Any]], *, as_of: date = date(2026, 11, 30),
              agency: str | None = None):
        """Deliver a shared data snapshot. Rows use the stored column names, except that an ID-number
        field is given in clear under its key (`id`, `cadre_id`) and is hashed and masked here.
        Every call is a different agency unless `agency` is given, so deliveries add up."""
        from yikatong.sharing.datasets import BY_CODE, Kind
        from yikatong.sharing.store import arrow_schema, save_snapshot

        spec = BY_CODE[dataset]
        stored = []
        for row in rows:
            row = dict(row)
            for f in spec.fields:
                if f.kind is Kind.ID_NUMBER and f.key in row:
                    number = row.pop(f.key)
                    row[f"{f.key}_hash"] = search_hash("id_number", number)
                    row[f"{f.key}_masked"] = mask_id_number(number)
            stored.append(row)
        schema = arrow_schema(spec)
        table = pa.Table.from_pylist([{c: r.get(c) for c in schema.names} for r in stored], schema=schema)
        n = next(_serial)
        return save_snapshot(self.db, dataset, table, agency=agency or f"测试单位{n}", as_of=as_of,
                             filename=f"{dataset}-{n}.csv", file_sha256=hashlib.sha256(str(n).encode()).hexdigest(),
                             file_format="csv", actor=None, now=NOW)

    def number(self, person) -> str:
        return self.id_numbers[person.id]

    # ------------------------------------------------------------ running rules

    def run(self, code: str, application_ids: list[int] | None = None, **params: int) -> dict[int, Hit]:
        """Run built-in rule `code` (with `params` overriding its defaults) on a focus snapshot of the
        world's applications (or of `application_ids`): {application id: hit}."""
        from yikatong.interception.engine import run_rule
        from yikatong.interception.rulefile import builtin_rules
        from yikatong.interception.snapshot import focus_snapshot
        from yikatong.sharing.store import current_snapshots

        spec = next(s for s in builtin_rules() if s.code == code)
        if params:
            spec = dataclasses.replace(spec, params={**spec.params, **params})
        self.db.flush()
        snap = focus_snapshot(self.db, application_ids if application_ids is not None else self.applications,
                              current_snapshots(self.db))
        try:
            result = run_rule(snap, spec)
        finally:
            snap.close()
        assert result.error is None, result.error
        return {row["application_id"]: Hit(row["evidence"], row["amount_fen"]) for row in result.hits.to_pylist()}


@pytest.fixture
def world(db) -> World:
    return World(db)
