"""Planted anomalies (植入的存疑样本): for every built-in interception rule, a known number of live
applications is given exactly the fact that rule looks for -- a death record, a payroll row, a
second claim in another village, a shared bank account, an amount above the standard... -- so a
run of the rules must flag precisely the applications listed in the manifest, and nothing else
(the rest of the city is clean, synth.shared).

How many: a share of the live applications per rule (DEFAULT_RATES, at least one each), drawn by
seeded chance among applications of people who are otherwise beyond reproach (alive, free, one
active card, no payroll or wealth, no cadre in the family, no proxy holder), each person used
once: a planted fact can then raise only its own rule. A fact about a person (a death, a hukou
cancelled, a card reported lost) flags every live application of that person that the rule
covers; the manifest lists all of them, and both sides where a rule flags two (two villages, two
exclusive items, a shared account).

The facts go where a real delivery or a real mistake would put them: the shared data sets of the
workspace (before they are saved), the applications table (a claim inserted, an amount changed) or
the cards table (a bank account copied from another person's card). The manifest is also written
to YKT_DATA_DIR/synth/planted.csv.
"""

from __future__ import annotations

import csv
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from sqlalchemy import text

from yikatong.core.settings import get_settings
from yikatong.synth.claims import NUMBER_PREFIX, SYSTEM_NAME, _table, ingest, next_ids, stations
from yikatong.synth.loader import Loader
from yikatong.synth.shared import PENSION_LIMIT_FEN, VEHICLE_LIMIT_FEN, Workspace, insert_rows, u01_salt
from yikatong.workflow.models import Action, Source, Status, Step
from yikatong.workflow.periods import parse_period, period_of

__all__ = ["DEFAULT_RATES", "RULE_CODES", "Manifest", "plant", "read_manifest"]

Progress = Callable[[str, int, int], None]
SOURCE_REF = "synth:anomalies"

# Share of the live applications that gets each kind of fact (at least one each). A fact about a
# person flags all of that person's claims the rule covers (about 4 on average), so these rates
# flag about 7 % of the live applications, as the reference city intercepted 391,400 of 5,774,200.
DEFAULT_RATES: dict[str, float] = {
    "ID_NOT_IN_HUKOU": 0.0006,
    "HUKOU_MOVED_OUT": 0.00075,
    "NAME_MISMATCH": 0.0006,
    "DECEASED": 0.001,
    "PAYROLL_MEANS_TESTED": 0.0005,
    "RETIREE_PENSION_MEANS_TESTED": 0.0005,
    "VEHICLE_MEANS_TESTED": 0.0005,
    "BUSINESS_MEANS_TESTED": 0.0005,
    "PROPERTIES_MEANS_TESTED": 0.0005,
    "IN_CUSTODY": 0.00025,
    "AGE_OUT_OF_RANGE": 0.001,
    "DUPLICATE_PAYMENT": 0.0015,
    "TWO_REGIONS": 0.0004,
    "EXCLUSIVE_ITEMS": 0.0004,
    "OVER_STANDARD": 0.0015,
    "SHARED_ACCOUNT": 0.0003,
    "CARD_NOT_ACTIVE": 0.0006,
    "CARD_HOLDER_MISMATCH": 0.0004,
    "CADRE_OWN_VILLAGE": 0.0005,
    "HOUSEHOLD_TWICE": 0.00075,
}
RULE_CODES = tuple(DEFAULT_RATES)
# The rarest candidates choose first, so the common kinds do not use them up.
ORDER = ("HOUSEHOLD_TWICE", "EXCLUSIVE_ITEMS", "TWO_REGIONS", "AGE_OUT_OF_RANGE", "PAYROLL_MEANS_TESTED",
         "RETIREE_PENSION_MEANS_TESTED", "VEHICLE_MEANS_TESTED", "BUSINESS_MEANS_TESTED", "PROPERTIES_MEANS_TESTED",
         "IN_CUSTODY", "SHARED_ACCOUNT", "CADRE_OWN_VILLAGE", "ID_NOT_IN_HUKOU", "HUKOU_MOVED_OUT", "NAME_MISMATCH",
         "DECEASED", "DUPLICATE_PAYMENT", "OVER_STANDARD", "CARD_NOT_ACTIVE", "CARD_HOLDER_MISMATCH")
assert sorted(ORDER) == sorted(RULE_CODES)

# Items a planted second claim uses: one-off relief any adult may get (TWO_REGIONS), and the
# pension (from 60) or the preschool grant (to 6) for someone of the wrong age (AGE_OUT_OF_RANGE).
RELIEF_ITEMS = ("ZS024", "SD080", "SD075")
OLD_AGE_ITEM, PRESCHOOL_ITEM = "ZS029", "SD069"
NAME_CHARS = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰"
EMPLOYERS = ("内江市市中区人民医院", "资中县教育和体育局", "威远县人民政府办公室", "隆昌市第一中学",
             "内江市东兴区农业农村局")


@dataclass
class Fact:
    rule_code: str
    person_id: int
    application_id: int  # the application chosen (or inserted) for the fact
    note: str  # what was planted, in Chinese
    day: date | None = None  # the fact's date (died on, moved out on, payroll from...)
    until: date | None = None
    other_person_id: int | None = None  # the second person (shared account)
    item_code: str | None = None
    region_code: str | None = None


@dataclass
class Manifest:
    counts: dict[str, int]  # rule -> planted facts
    wanted: dict[str, int]  # rule -> facts the rates asked for
    expected: set[tuple[int, str]]  # (application_id, rule_code) a run of the rules must flag
    facts: list[Fact] = field(default_factory=list)
    path: Path | None = None
    live_before: int = 0
    seconds: float = 0.0


def wanted_counts(live: int, rates: Mapping[str, float]) -> dict[str, int]:
    return {code: max(1, round(rates.get(code, 0.0) * live)) if code in rates else 0 for code in RULE_CODES}


class _Planter:
    def __init__(self, ws: Workspace, loader: Loader, today: date, rates: Mapping[str, float]):
        self.ws, self.loader, self.today, self.rates = ws, loader, today, rates
        self.rng = random.Random(f"yikatong-anomalies-{ws.seed}")
        self.reserved: set[int] = set()
        self.facts: list[Fact] = []
        self.new_apps: list[dict] = []  # applications to insert
        self.amounts: list[dict] = []  # application amount changes
        self.accounts: list[tuple[int, int]] = []  # (card id to change, card id whose account it gets)
        self.inserts: dict[str, list[tuple]] = {}  # shared data set -> rows to add
        self.hukou_deleted: list[str] = []
        self.hukou_changes: list[tuple] = []  # (id_hash, status, moved_out_on, name); None: unchanged
        self.retirees_replaced: list[str] = []

    # .. who may carry an anomaly
    def prepare(self) -> None:
        ws = self.ws
        ws.run("""
            CREATE OR REPLACE TABLE card_state AS
            SELECT card_number, status, id_hash FROM card_registry
            QUALIFY row_number() OVER (PARTITION BY card_number ORDER BY changed_on DESC,
                    CASE status WHEN '注销' THEN 4 WHEN '冻结' THEN 3 WHEN '挂失' THEN 2 ELSE 1 END DESC) = 1""")
        ws.run("""
            CREATE OR REPLACE TABLE active_cards AS
            SELECT c.person_id, count(*) AS n, min(c.card_id) AS card_id, min(c.card_number) AS card_number,
                   min(c.issued_on) AS issued_on
            FROM cards c JOIN card_state s USING (card_number)
            WHERE s.status = '正常' GROUP BY c.person_id""")
        ws.run(f"""
            CREATE OR REPLACE TABLE clean AS
            SELECT p.person_id, p.id_hash, p.id_masked, p.name, p.birth_date, p.household_id, p.region_code,
                   k.card_id, k.card_number, k.issued_on
            FROM people p JOIN active_cards k USING (person_id)
            WHERE k.n = 1 AND NOT p.dead AND NOT p.prisoner_candidate
              AND p.id_hash NOT IN (SELECT id_hash FROM village_cadres)
              AND p.id_hash NOT IN (SELECT cadre_id_hash FROM village_cadres)
              AND p.id_hash NOT IN (SELECT id_hash FROM payroll)
              AND p.id_hash NOT IN (SELECT id_hash FROM retirees WHERE pension_fen > {PENSION_LIMIT_FEN})
              AND p.id_hash NOT IN (SELECT id_hash FROM vehicles WHERE value_fen > {VEHICLE_LIMIT_FEN})
              AND p.id_hash NOT IN (SELECT id_hash FROM businesses WHERE status = '存续')
              AND p.id_hash NOT IN (SELECT id_hash FROM real_estate GROUP BY id_hash HAVING count(*) > 1)
              AND p.id_hash NOT IN (SELECT id_hash FROM prisoners)
              AND p.id_hash NOT IN (SELECT id_hash FROM deaths)
              AND p.id_hash NOT IN (SELECT h.id_hash FROM hukou h JOIN people q USING (id_hash)
                                    WHERE h.status <> '正常' OR h.name <> q.name OR h.region_code <> q.region_code)
              AND p.id_hash IN (SELECT id_hash FROM hukou)
              AND p.person_id NOT IN (SELECT person_id FROM proxy_holdings)""")
        ws.run("""
            CREATE OR REPLACE TABLE pool AS
            SELECT a.*, i.means_tested, i.frequency, i.sector, c.id_hash, c.id_masked, c.name, c.birth_date,
                   c.household_id AS home, c.card_id, c.card_number, c.issued_on
            FROM applications a JOIN items i USING (item_code) JOIN clean c USING (person_id)""")
        self.items = {r[0]: r for r in ws.sql(
            "SELECT item_code, name, basis, frequency, standard_fen, means_tested, min_age, max_age, sector "
            "FROM items")}
        self.exclusive: dict[str, set[str]] = {}
        for a, b in ws.sql("SELECT item_code, other_code FROM item_exclusions"):
            self.exclusive.setdefault(a, set()).add(b)
            self.exclusive.setdefault(b, set()).add(a)

    def candidates(self, rule: str, condition: str, n: int) -> list[dict]:
        """Applications of people beyond reproach that fit `condition`, in a seeded order, with what
        the kinds need to know of each person (their items, the latest date of their card)."""
        salt = u01_salt(self.ws.seed, 500 + RULE_CODES.index(rule))
        self.ws.run(f"""
            CREATE OR REPLACE TEMP TABLE picked AS
            SELECT * FROM pool WHERE {condition}
            ORDER BY u01(application_id, {salt}), application_id LIMIT {n * 6 + 200}""")
        cursor = self.ws.con.execute(f"""
            WITH held AS (
              SELECT a.person_id, list(DISTINCT a.item_code) AS held_items FROM applications a
              WHERE a.person_id IN (SELECT person_id FROM picked) GROUP BY a.person_id
            ), latest AS (
              SELECT card_number, max(changed_on) AS card_latest FROM card_registry
              WHERE card_number IN (SELECT card_number FROM picked) GROUP BY card_number
            ), homes AS (
              SELECT id_hash, count(*) AS homes FROM real_estate
              WHERE id_hash IN (SELECT id_hash FROM picked) GROUP BY id_hash
            )
            SELECT picked.*, held.held_items, latest.card_latest, COALESCE(homes.homes, 0) AS homes
            FROM picked LEFT JOIN held USING (person_id) LEFT JOIN latest USING (card_number)
            LEFT JOIN homes USING (id_hash)
            ORDER BY u01(application_id, {salt}), application_id""")
        names = [d[0] for d in cursor.description]
        out = []
        for row in cursor.fetchall():
            app = dict(zip(names, row, strict=True))
            app["held_items"] = set(app["held_items"] or ())
            out.append(app)
        return out

    def take(self, rule: str, condition: str, n: int, accept: Callable[[dict], bool] = lambda a: True) -> list[dict]:
        """Up to n applications of distinct, not yet used people (who are then used)."""
        chosen = []
        for app in self.candidates(rule, condition, n):
            if len(chosen) >= n:
                break
            if app["person_id"] in self.reserved or not accept(app):
                continue
            self.reserved.add(app["person_id"])
            chosen.append(app)
        return chosen

    def days_before(self, day: date, most: int) -> date:
        return day - timedelta(days=int(self.rng.random() * most))

    def yesterday_at_most(self, day: date) -> date:
        return min(day, self.today - timedelta(days=1))

    def fact(self, rule: str, app: dict, note: str, **extra) -> Fact:
        f = Fact(rule, app["person_id"], app["application_id"], note, **extra)
        self.facts.append(f)
        return f

    def add(self, table: str, row: tuple) -> None:
        """A row for a shared data set (in its stored columns' order), inserted with the others."""
        self.inserts.setdefault(table, []).append(row)

    # .. a new claim (inserted as a department list would, waiting at 县定)
    def new_claim(self, person_id: int, item_code: str, period_label: str, region_code: str,
                  household_id: int | None) -> int:
        item = self.items[item_code]
        period = parse_period(item[3], period_label)
        self.new_apps.append(dict(person_id=person_id, item_code=item_code, sector=item[8], basis=item[2],
                                  period=period.label, period_start=period.start, period_end=period.end,
                                  standard_fen=item[4], region_code=region_code,
                                  household_id=household_id if item[2] == "户" else None))
        return -len(self.new_apps)  # a placeholder id until written

    # .. the kinds
    def plant_all(self, wanted: dict[str, int], progress: Progress) -> None:
        for done, rule in enumerate(ORDER, 1):
            if wanted.get(rule):
                getattr(self, "_" + rule.lower())(rule, wanted[rule])
            progress("植入存疑样本", done, len(ORDER) + 2)

    def _id_not_in_hukou(self, rule: str, n: int) -> None:
        for k, app in enumerate(self.take(rule, "TRUE", n)):
            if k % 2 == 0:
                self.hukou_deleted.append(app["id_hash"])
                self.fact(rule, app, "户籍数据中删除了申请人的记录")
            else:
                self.hukou_changes.append((app["id_hash"], "注销", None, None))
                self.fact(rule, app, "申请人的户籍状态改为注销（未登记注销日期）")

    def _hukou_moved_out(self, rule: str, n: int) -> None:
        for app in self.take(rule, "TRUE", n):
            day = self.yesterday_at_most(self.days_before(app["period_end"], 120))
            self.hukou_changes.append((app["id_hash"], "迁出", day, None))
            self.fact(rule, app, f"户籍迁出，迁出日期 {day}", day=day)

    def _name_mismatch(self, rule: str, n: int) -> None:
        for app in self.take(rule, "TRUE", n):
            name = app["name"]
            start = int(self.rng.random() * len(NAME_CHARS))
            other = next(c for c in NAME_CHARS[start:] + NAME_CHARS if c != name[-1])
            changed = name[:-1] + other
            self.hukou_changes.append((app["id_hash"], None, None, changed))
            self.fact(rule, app, f"户籍登记姓名为“{changed}”，平台登记“{name}”")

    def _deceased(self, rule: str, n: int) -> None:
        for app in self.take(rule, "TRUE", n):
            span = (app["period_end"] - app["period_start"]).days + 1
            day = self.yesterday_at_most(app["period_start"] + timedelta(days=int(self.rng.random() * span)))
            source = ("火化记录", "医学死亡证明", "户籍注销")[int(self.rng.random() * 3)]
            self.add("deaths", (app["id_hash"], app["id_masked"], app["name"], day, source))
            self.fact(rule, app, f"死亡登记，死亡日期 {day}（{source}）", day=day)

    def _payroll_means_tested(self, rule: str, n: int) -> None:
        for app in self.take(rule, "means_tested", n):
            day = self.days_before(app["period_start"], 3 * 365)
            employer = EMPLOYERS[int(self.rng.random() * len(EMPLOYERS))]
            self.add("payroll", (app["id_hash"], app["id_masked"], app["name"], employer, day, None))
            self.fact(rule, app, f"财政供养人员（{employer}），{day} 起在职", day=day)

    def _retiree_pension_means_tested(self, rule: str, n: int) -> None:
        for app in self.take(rule, "means_tested", n):
            day = self.days_before(app["period_start"], 5 * 365)
            pension = PENSION_LIMIT_FEN + 10_000 + int(self.rng.random() * 300_000)
            self.retirees_replaced.append(app["id_hash"])
            self.add("retirees", (app["id_hash"], app["id_masked"], app["name"], pension, day))
            self.fact(rule, app, f"月养老金 {pension / 100:.2f} 元，{day} 起领取", day=day)

    def _vehicle_means_tested(self, rule: str, n: int) -> None:
        for app in self.take(rule, "means_tested", n):
            day = self.days_before(app["period_start"], 4 * 365)
            value = VEHICLE_LIMIT_FEN + 1_000_000 + int(self.rng.random() * 25_000_000)
            plate = f"川K{'ABCDEFGHJKLM'[int(self.rng.random() * 12)]}{int(self.rng.random() * 100000):05d}"
            self.add("vehicles", (app["id_hash"], app["id_masked"], plate, "小型轿车", value, day))
            self.fact(rule, app, f"名下小型轿车 {plate}，价值 {value / 100:.2f} 元，{day} 登记", day=day)

    def _business_means_tested(self, rule: str, n: int) -> None:
        for app in self.take(rule, "means_tested", n):
            day = self.days_before(app["period_start"], 6 * 365)
            company = f"内江{('鑫达', '恒兴', '蜀通', '润丰')[int(self.rng.random() * 4)]}商贸有限公司"
            code = f"91{app['region_code'][:6]}MA{app['application_id'] % 10**8:08d}"
            self.add("businesses", (app["id_hash"], app["id_masked"], app["name"], "法定代表人", company, code,
                                    50_000_000, "存续", day))
            self.fact(rule, app, f"{company} 法定代表人（存续，{day} 成立）", day=day)

    def _properties_means_tested(self, rule: str, n: int) -> None:
        for app in self.take(rule, "means_tested", n):
            more = 2 - app["homes"]
            for k in range(more):
                day = self.days_before(app["period_start"], 3 * 365)
                certificate = f"川({day.year})内江市不动产权第9{app['application_id'] % 10**6:06d}{k}号"
                self.add("real_estate", (app["id_hash"], app["id_masked"], certificate,
                                         8000 + int(self.rng.random() * 6000), "内江市市中区滨江路88号", day))
            self.fact(rule, app, f"名下增加 {more} 套房产（共 2 套）")

    def _in_custody(self, rule: str, n: int) -> None:
        for app in self.take(rule, "basis = '人'", n):
            day = self.yesterday_at_most(self.days_before(app["period_end"], 200))
            self.add("prisoners", (app["id_hash"], app["id_masked"], app["name"], day, None))
            self.fact(rule, app, f"{day} 收押，尚未释放", day=day)

    def _age_out_of_range(self, rule: str, n: int) -> None:
        month = parse_period("月", period_of("月", self.today))
        year = parse_period("年", period_of("年", self.today))

        def fits(app: dict) -> bool:
            held = app["held_items"]
            for item, period, too_old in ((OLD_AGE_ITEM, month, False), (PRESCHOOL_ITEM, year, True)):
                if item not in self.items or item in held or self.exclusive.get(item, set()) & held:
                    continue
                age = _age(app["birth_date"], period.start)
                low, high = self.items[item][6], self.items[item][7]
                if (too_old and high is not None and age > high + 1) or (
                        not too_old and low is not None and age < low - 1):
                    app["_item"], app["_period"] = item, period.label
                    return True
            return False

        for app in self.take(rule, "TRUE", n, fits):
            placeholder = self.new_claim(app["person_id"], app["_item"], app["_period"], app["region_code"],
                                         app["home"])
            name = self.items[app["_item"]][1]
            self.fact(rule, app, f"为不符合年龄条件的申请人新增 {name} 申请（{app['_period']}）",
                      item_code=app["_item"]).application_id = placeholder

    def _duplicate_payment(self, rule: str, n: int) -> None:
        for app in self.take(rule, "TRUE", n):
            paid = min(self.today - timedelta(days=1), app["period_start"] + timedelta(days=5))
            system = "四川省民政一体化服务平台" if app["sector"] == "民政" else f"{app['sector']}行业业务系统"
            self.add("other_payments", (app["id_hash"], app["id_masked"], app["name"], app["item_code"],
                                        app["period_start"], app["period_end"], app["amount_fen"], paid, system))
            self.fact(rule, app, f"{system} 已发放同一项目同一期次（{app['period']}）", day=app["period_start"],
                      until=app["period_end"], item_code=app["item_code"])

    def _two_regions(self, rule: str, n: int) -> None:
        year = period_of("一次性", self.today)
        villages = [r[0] for r in self.ws.sql("SELECT code FROM regions WHERE level = 'village' ORDER BY code")]
        by_township: dict[str, list[str]] = {}
        by_county: dict[str, list[str]] = {}
        for v in villages:
            by_township.setdefault(v[:9], []).append(v)
            by_county.setdefault(v[:6], []).append(v)

        def fits(app: dict) -> bool:
            held = app["held_items"]
            free = [code for code in RELIEF_ITEMS if code in self.items and code not in held
                    and not (self.exclusive.get(code, set()) & held)]
            here = app["region_code"]
            near = [v for v in by_township.get(here[:9], []) if v != here] or [
                v for v in by_county.get(here[:6], []) if v != here]
            if not free or not near:
                return False
            app["_item"] = free[int(self.rng.random() * len(free))]
            app["_region"] = near[int(self.rng.random() * len(near))]
            return True

        for app in self.take(rule, "basis IN ('人', '户')", n, fits):
            placeholder = self.new_claim(app["person_id"], app["_item"], year, app["_region"], None)
            name = self.items[app["_item"]][1]
            f = self.fact(rule, app, f"在另一村（社区）{app['_region']} 新增 {name} 申请（{year}）",
                          item_code=app["_item"], region_code=app["_region"])
            f.application_id = placeholder

    def _exclusive_items(self, rule: str, n: int) -> None:
        def fits(app: dict) -> bool:
            held = app["held_items"]
            for other in sorted(self.exclusive.get(app["item_code"], ())):
                item = self.items.get(other)
                if other in held or item is None or item[3] != app["frequency"] or self.exclusive.get(
                        other, set()) & (held - {app["item_code"]}):
                    continue
                age = _age(app["birth_date"], app["period_start"])
                if (item[6] is not None and age < item[6]) or (item[7] is not None and age > item[7]):
                    continue
                app["_item"] = other
                return True
            return False

        codes = ", ".join(f"'{c}'" for c in sorted(self.exclusive))
        for app in self.take(rule, f"item_code IN ({codes})" if codes else "FALSE", n, fits):
            placeholder = self.new_claim(app["person_id"], app["_item"], app["period"], app["region_code"],
                                         app["home"])
            name = self.items[app["_item"]][1]
            f = self.fact(rule, app, f"同期新增互斥项目 {name} 申请（{app['period']}）", item_code=app["_item"])
            f.application_id = placeholder

    def _over_standard(self, rule: str, n: int) -> None:
        for k, app in enumerate(self.take(rule, "TRUE", n)):
            due = (app["standard_fen"] * app["quantity_centi"] + 50) // 100
            if k % 3 == 2 and app["basis"] in ("人", "户"):
                quantity, amount = 200, 2 * app["standard_fen"]
                note = f"按{app['basis']}计发的项目数量改为 2，金额 {amount / 100:.2f} 元"
            else:
                quantity = app["quantity_centi"]
                amount = due + max(100, due // 10 + int(self.rng.random() * due // 2))
                note = f"申请金额由 {due / 100:.2f} 元改为 {amount / 100:.2f} 元"
            self.amounts.append(dict(id=app["application_id"], quantity_centi=quantity, amount_fen=amount))
            self.fact(rule, app, note)

    def _shared_account(self, rule: str, n: int) -> None:
        chosen = self.take(rule, "TRUE", n)
        salt = u01_salt(self.ws.seed, 499)
        partners = self.ws.sql(f"SELECT person_id, household_id, card_id FROM clean ORDER BY u01(person_id, {salt}), "
                               f"person_id LIMIT {len(chosen) * 4 + 100}")
        partners.reverse()  # taken from the end
        for app in chosen:
            while partners and partners[-1][0] in self.reserved:
                partners.pop()
            partner = next((p for p in reversed(partners[-3:]) if p[1] != app["home"] and p[0] not in self.reserved),
                           None)
            if partner is None:
                continue
            partners.remove(partner)
            self.reserved.add(partner[0])
            self.accounts.append((app["card_id"], partner[2]))
            self.fact(rule, app, "社会保障卡金融账户改为另一户人员卡上的账户", other_person_id=partner[0])

    def _card_not_active(self, rule: str, n: int) -> None:
        for app in self.take(rule, "TRUE", n):
            status = ("挂失", "冻结", "注销")[int(self.rng.random() * 3)]
            day = self._after_latest(app)
            self.add("card_registry", (app["card_number"], app["id_hash"], app["id_masked"], status, day))
            self.fact(rule, app, f"社保卡 {app['card_number']} 于 {day} {status}", day=day)

    def _card_holder_mismatch(self, rule: str, n: int) -> None:
        chosen = self.take(rule, "TRUE", n)
        salt = u01_salt(self.ws.seed, 498)
        others = self.ws.sql(f"SELECT person_id, id_hash, id_masked FROM people WHERE NOT dead "
                             f"ORDER BY u01(person_id, {salt}), person_id LIMIT {len(chosen) * 2 + 100}")
        mine = {a["person_id"] for a in chosen}
        others = [o for o in others if o[0] not in mine]
        for app, holder in zip(chosen, others, strict=False):
            day = self._after_latest(app)
            self.add("card_registry", (app["card_number"], holder[1], holder[2], "正常", day))
            self.fact(rule, app, f"社保卡 {app['card_number']} 于 {day} 登记持卡人为 {holder[2]}", day=day,
                      other_person_id=holder[0])

    def _after_latest(self, app: dict) -> date:
        day = self.today - timedelta(days=1 + int(self.rng.random() * 60))
        return max(day, app["card_latest"] + timedelta(days=1))

    def _cadre_own_village(self, rule: str, n: int) -> None:
        chosen = self.take(rule, "TRUE", n)
        villages = sorted({app["region_code"] for app in chosen})
        cadres = {v: (post, h, m) for v, post, h, m in self.ws.sql(
            "SELECT region_code, arg_min(post, cadre_id_hash), min(cadre_id_hash), arg_min(cadre_id_masked, "
            "cadre_id_hash) FROM village_cadres WHERE relation = '本人' AND region_code IN (SELECT UNNEST($v)) "
            "GROUP BY region_code", {"v": villages})}
        for app in chosen:
            village = app["region_code"]
            if village in cadres:
                post, cadre_hash, cadre_masked = cadres[village]
                relation = ("兄弟姐妹", "子女", "配偶的兄弟姐妹")[int(self.rng.random() * 3)]
            else:
                post, cadre_hash, cadre_masked, relation = "村民小组长", app["id_hash"], app["id_masked"], "本人"
            self.add("village_cadres", (app["id_hash"], app["id_masked"], app["name"], village, post, cadre_hash,
                                        cadre_masked, relation))
            self.fact(rule, app, f"列入本村（{village}）{post}的近亲属名单（{relation}）", region_code=village)

    def _household_twice(self, rule: str, n: int) -> None:
        condition = "basis = '户' AND NOT means_tested AND household_id IS NOT NULL"
        candidates = self.candidates(rule, condition, n)
        households = sorted({app["household_id"] for app in candidates})
        members: dict[int, list[tuple[int, set[str]]]] = {}
        for household, person, held in self.ws.sql(
                "SELECT c.household_id, c.person_id, list(a.item_code) FILTER (WHERE a.item_code IS NOT NULL) "
                "FROM clean c LEFT JOIN applications a USING (person_id) "
                "WHERE c.household_id IN (SELECT UNNEST($h)) GROUP BY c.household_id, c.person_id "
                "ORDER BY c.person_id", {"h": households}):
            members.setdefault(household, []).append((person, set(held or ())))

        def fits(app: dict) -> bool:
            free = [person for person, held in members.get(app["household_id"], [])
                    if person != app["person_id"] and person not in self.reserved and app["item_code"] not in held]
            if not free:
                return False
            app["_member"] = free[int(self.rng.random() * len(free))]
            return True

        chosen = []
        for app in candidates:
            if len(chosen) >= n:
                break
            if app["person_id"] in self.reserved or not fits(app):
                continue
            self.reserved.update((app["person_id"], app["_member"]))
            chosen.append(app)
        for app in chosen:
            member = app["_member"]
            placeholder = self.new_claim(member, app["item_code"], app["period"], app["region_code"],
                                         app["household_id"])
            name = self.items[app["item_code"]][1]
            f = self.fact(rule, app, f"同户另一成员新增同一按户项目 {name} 申请（{app['period']}）",
                          item_code=app["item_code"], other_person_id=app["person_id"])
            f.person_id, f.application_id = member, placeholder

    # .. the facts into the workspace's data sets
    def apply(self) -> None:
        ws = self.ws
        if self.hukou_deleted:
            ws.run("DELETE FROM hukou WHERE id_hash IN (SELECT UNNEST($h))", {"h": self.hukou_deleted})
        if self.hukou_changes:
            ws.run("CREATE OR REPLACE TEMP TABLE hukou_changes (id_hash VARCHAR, status VARCHAR, moved_out_on DATE, "
                   "name VARCHAR)")
            insert_rows(ws, "hukou_changes", self.hukou_changes)
            ws.run("""
                UPDATE hukou SET status = COALESCE(c.status, hukou.status),
                       moved_out_on = CASE WHEN c.status IS NULL THEN hukou.moved_out_on ELSE c.moved_out_on END,
                       name = COALESCE(c.name, hukou.name)
                FROM hukou_changes c WHERE hukou.id_hash = c.id_hash""")
        if self.retirees_replaced:
            ws.run("DELETE FROM retirees WHERE id_hash IN (SELECT UNNEST($h))", {"h": self.retirees_replaced})
        for table, rows in self.inserts.items():
            insert_rows(ws, table, rows)
        if self.amounts:
            ws.run("CREATE OR REPLACE TEMP TABLE amount_changes (id BIGINT, quantity_centi BIGINT, amount_fen BIGINT)")
            insert_rows(ws, "amount_changes", [(a["id"], a["quantity_centi"], a["amount_fen"]) for a in self.amounts])
            ws.run("UPDATE applications SET quantity_centi = c.quantity_centi, amount_fen = c.amount_fen "
                   "FROM amount_changes c WHERE applications.application_id = c.id")

    # .. writing
    def write(self, engine) -> None:
        """Insert the new claims (waiting at 县定, as a department list enters them), change amounts
        and bank accounts in the database, and mirror the new claims in the workspace."""
        loader, ws = self.loader, self.ws
        loader.commit()
        if self.new_apps:
            first_id, serial = next_ids(loader)
            waiting = {(row[0], row[2]): row for row in stations_for(loader, self.today) if row[1] == Step.COUNTY.value}
            for k, row in enumerate(self.new_apps):
                row["id"], row["number"] = first_id + k, f"{NUMBER_PREFIX}{serial + k:010d}"
                station = waiting.get((row["item_code"], 0))
                row["entered"], row["due"], row["remind"] = (station[3], station[4], station[5]) if station else (
                    self.today, self.today, self.today)
            for f in self.facts:
                if f.application_id < 0:
                    f.application_id = self.new_apps[-f.application_id - 1]["id"]
            ws.run("CREATE OR REPLACE TABLE new_apps (id BIGINT, number VARCHAR, person_id BIGINT, item_code VARCHAR, "
                   "sector VARCHAR, basis VARCHAR, period VARCHAR, period_start DATE, period_end DATE, "
                   "standard_fen BIGINT, region_code VARCHAR, household_id BIGINT, entered DATE, due DATE, "
                   "remind DATE)")
            columns = ("id", "number", "person_id", "item_code", "sector", "basis", "period", "period_start",
                       "period_end", "standard_fen", "region_code", "household_id", "entered", "due", "remind")
            insert_rows(ws, "new_apps", [tuple(r[c] for c in columns) for r in self.new_apps])
            # instants are stored in UTC: 07:00 is 15:00 in Beijing, on the same day
            ingest(loader, ws.con, _table("applications"), f"""
                SELECT id, number, item_code, sector, person_id, household_id, region_code, period, period_start,
                       period_end, basis, 100 AS quantity_centi, standard_fen, standard_fen AS amount_fen,
                       '{Source.LIST.value}' AS source, '{SOURCE_REF}' AS source_ref, '{Status.OPEN.value}' AS status,
                       '{Step.COUNTY.value}' AS stage, 1 AS stage_seq, FALSE AS returned,
                       left(region_code, 6) || '000000' AS owner_region,
                       CAST(entered AS TIMESTAMP) + INTERVAL 7 HOUR AS stage_entered_at, due AS due_on,
                       remind AS remind_on, FALSE AS reminded, FALSE AS escalated, 0 AS open_objections,
                       0 AS open_flags, NULL AS publicity_id, '' AS note, NULL AS created_by,
                       CAST(entered AS TIMESTAMP) + INTERVAL 7 HOUR AS created_at, NULL AS decided_at
                FROM new_apps ORDER BY id""")
            ingest(loader, ws.con, _table("review_records"), f"""
                SELECT id AS application_id, '{Step.APPLY.value}' AS step, '{Action.SUBMIT.value}' AS action,
                       '{Step.COUNTY.value}' AS to_stage, '{Status.OPEN.value}' AS status_after, NULL AS user_id,
                       '{SYSTEM_NAME}' AS actor_name, 'system' AS actor_role,
                       CAST(entered AS TIMESTAMP) + INTERVAL 7 HOUR AS at, '' AS opinion,
                       '{{"source": "{Source.LIST.value}", "source_ref": "{SOURCE_REF}"}}' AS detail
                FROM new_apps ORDER BY id""")
            ws.run("""
                INSERT INTO applications (application_id, number, item_code, person_id, household_id, region_code,
                                          period, period_start, period_end, basis, quantity_centi, standard_fen,
                                          amount_fen, status)
                SELECT id, number, item_code, person_id, CASE WHEN basis = '户' THEN household_id END, region_code,
                       period, period_start, period_end, basis, 100, standard_fen, standard_fen, '办理中'
                FROM new_apps""")
        if self.postgres():
            loader.conn.exec_driver_sql("SELECT setval(pg_get_serial_sequence('applications', 'id'), "
                                        "COALESCE((SELECT MAX(id) FROM applications), 0) + 1, false)")
        if self.amounts:
            loader.conn.execute(text("UPDATE applications SET quantity_centi = :quantity_centi, "
                                     "amount_fen = :amount_fen WHERE id = :id"), self.amounts)
        for target, source in self.accounts:
            account = loader.conn.execute(text(
                "SELECT bank_code, bank_account_enc, bank_account_hash, bank_account_masked FROM cards WHERE id = :id"),
                {"id": source}).one()
            loader.conn.execute(text(
                "UPDATE cards SET bank_code = :bank, bank_account_enc = :enc, bank_account_hash = :hash, "
                "bank_account_masked = :masked WHERE id = :id"),
                {"bank": account[0], "enc": account[1], "hash": account[2], "masked": account[3], "id": target})
        loader.commit()

    def postgres(self) -> bool:
        return self.loader.postgres

    # .. the manifest: every (application, rule) the facts must raise, worked out here from the facts
    # (not by running the rules), with the rules' documented meaning
    def expected(self) -> set[tuple[int, str]]:
        ws = self.ws
        ws.run("CREATE OR REPLACE TABLE facts (rule_code VARCHAR, person_id BIGINT, application_id BIGINT, "
               "day DATE, until DATE, other_person_id BIGINT, item_code VARCHAR, region_code VARCHAR)")
        if self.facts:
            insert_rows(ws, "facts", [(f.rule_code, f.person_id, f.application_id, f.day, f.until,
                                        f.other_person_id, f.item_code, f.region_code) for f in self.facts])
        rows = ws.sql("""
            WITH own AS (
              -- every live application of the people the facts are about (a few per fact)
              SELECT f.rule_code, f.day, f.until, f.item_code AS fact_item, f.region_code AS fact_region,
                     f.application_id AS planted, f.person_id AS fact_person, a.*, i.means_tested, p.id_hash
              FROM (SELECT *, person_id AS whose FROM facts
                    UNION ALL  -- a shared account: the other person's applications too
                    SELECT *, other_person_id FROM facts WHERE rule_code = 'SHARED_ACCOUNT') f
              JOIN applications a ON a.person_id = f.whose  -- an equi-join (an OR here is a nested loop)
              JOIN items i ON i.item_code = a.item_code
              JOIN persons p ON p.person_id = a.person_id
            ), homes AS (
              SELECT o.application_id, count(r.id_hash) AS homes
              FROM own o JOIN real_estate r ON r.id_hash = o.id_hash AND r.registered_on <= o.period_end
              WHERE o.rule_code = 'PROPERTIES_MEANS_TESTED' GROUP BY o.application_id
            ), elsewhere AS (
              SELECT DISTINCT o.application_id FROM own o JOIN own b
                ON b.rule_code = o.rule_code AND b.person_id = o.person_id AND b.region_code <> o.region_code
               AND b.basis IN ('人', '户') AND b.period_start <= o.period_end AND b.period_end >= o.period_start
              WHERE o.rule_code = 'TWO_REGIONS'
            ), exclusive AS (
              SELECT DISTINCT o.application_id FROM own o JOIN own b
                ON b.rule_code = o.rule_code AND b.person_id = o.person_id
               AND b.period_start <= o.period_end AND b.period_end >= o.period_start
              JOIN item_exclusions x ON (x.item_code = b.item_code AND x.other_code = o.item_code)
                                     OR (x.other_code = b.item_code AND x.item_code = o.item_code)
              WHERE o.rule_code = 'EXCLUSIVE_ITEMS'
            )
            SELECT application_id, rule_code FROM own
            WHERE rule_code IN ('ID_NOT_IN_HUKOU', 'NAME_MISMATCH', 'CARD_NOT_ACTIVE', 'CARD_HOLDER_MISMATCH',
                                'SHARED_ACCOUNT')
               OR (rule_code IN ('HUKOU_MOVED_OUT', 'DECEASED') AND period_end >= day)
               OR (rule_code IN ('PAYROLL_MEANS_TESTED', 'RETIREE_PENSION_MEANS_TESTED', 'VEHICLE_MEANS_TESTED',
                                 'BUSINESS_MEANS_TESTED') AND means_tested AND period_end >= day)
               OR (rule_code = 'PROPERTIES_MEANS_TESTED' AND means_tested
                   AND application_id IN (SELECT application_id FROM homes WHERE homes > 1))
               OR (rule_code = 'IN_CUSTODY' AND basis = '人' AND period_end >= day)
               OR (rule_code IN ('AGE_OUT_OF_RANGE', 'HOUSEHOLD_TWICE', 'OVER_STANDARD') AND application_id = planted)
               OR (rule_code = 'DUPLICATE_PAYMENT' AND item_code = fact_item AND period_start <= until
                   AND period_end >= day)
               OR (rule_code = 'CADRE_OWN_VILLAGE' AND region_code = fact_region)
               OR (rule_code = 'TWO_REGIONS' AND basis IN ('人', '户')
                   AND application_id IN (SELECT application_id FROM elsewhere))
               OR (rule_code = 'EXCLUSIVE_ITEMS' AND application_id IN (SELECT application_id FROM exclusive))""")
        return {(int(app_id), code) for app_id, code in rows}


def _age(birth: date, day: date) -> int:
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def stations_for(loader: Loader, today: date) -> list[tuple]:
    from sqlalchemy.orm import Session

    with Session(bind=loader.conn) as session:
        return stations(session, today)


def plant(ws: Workspace, loader: Loader, today: date, rates: Mapping[str, float] | None = None,
          progress: Progress | None = None) -> Manifest:
    """Plant the anomalies into the workspace's data sets and the database (committed), and write
    the manifest. `rates`: rule code -> share of the live applications (default DEFAULT_RATES; a rule
    left out gets none)."""
    progress = progress or (lambda stage, done, total: None)
    started = time.perf_counter()
    rates = DEFAULT_RATES if rates is None else rates
    planter = _Planter(ws, loader, today, rates)
    live = ws.count("applications")
    wanted = wanted_counts(live, rates)
    planter.prepare()
    planter.plant_all(wanted, progress)
    planter.apply()
    planter.write(loader.engine)
    progress("植入存疑样本", len(ORDER) + 1, len(ORDER) + 2)
    counts = {code: 0 for code in RULE_CODES}
    for f in planter.facts:
        counts[f.rule_code] += 1
    manifest = Manifest(counts=counts, wanted=wanted, expected=planter.expected(), facts=planter.facts,
                        live_before=live)
    manifest.path = _write_csv(ws, manifest)
    manifest.seconds = round(time.perf_counter() - started, 2)
    progress("植入存疑样本", len(ORDER) + 2, len(ORDER) + 2)
    return manifest


CSV_HEADER = ("application_id", "number", "rule_code", "person_id", "planted_on", "fact")


def _write_csv(ws: Workspace, manifest: Manifest) -> Path:
    """YKT_DATA_DIR/synth/planted.csv: one line per (application, rule) that must be flagged, with
    the fact planted for it (the fact's own application in planted_on)."""
    path = get_settings().data_dir / "synth" / "planted.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    ids = sorted({app_id for app_id, _ in manifest.expected})
    numbers, persons = {}, {}
    for app_id, number, person in ws.sql("SELECT application_id, number, person_id FROM applications "
                                         "WHERE application_id IN (SELECT UNNEST($ids))", {"ids": ids}):
        numbers[app_id], persons[app_id] = number, person
    by_person: dict[tuple[int, str], Fact] = {}
    for f in manifest.facts:
        by_person[(f.person_id, f.rule_code)] = f
        if f.other_person_id is not None and f.rule_code == "SHARED_ACCOUNT":
            by_person[(f.other_person_id, f.rule_code)] = f
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(CSV_HEADER)
        for app_id, code in sorted(manifest.expected):
            person = persons.get(app_id)
            f = by_person.get((person, code))
            writer.writerow((app_id, numbers.get(app_id, ""), code, person, f.application_id if f else "",
                             f.note if f else ""))
    return path


def read_manifest(path: Path) -> set[tuple[int, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return {(int(row["application_id"]), row["rule_code"]) for row in csv.DictReader(f)}
