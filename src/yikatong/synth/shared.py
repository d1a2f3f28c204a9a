"""The shared data sets of the synthetic city (共享数据): the eleven deliveries of other agencies
(户籍, 死亡, 财政供养, 退休, 机动车, 工商, 不动产, 服刑, 村干部及近亲属, 社保卡状态, 其他系统发放),
generated from the city's own people and claims, and stored as shared snapshots exactly like a
delivered file (sharing.store.save_snapshot, file format "synth").

Clean: by itself this data makes no interception rule fire for any live application.
- 户籍 (hukou): every person of the registry, same name and village, status 正常 (those who died
  and no longer claim anything: 注销); plus people who left the city or died in past years and
  are no longer in the registry.
- 社保卡状态 (card_registry): every card of the cards table, issued 正常 and, for a card that is no
  longer active, a later row with its status: its latest row says what the cards table says.
- 财政供养, high pensions, valuable vehicles, active businesses and second homes only for people
  without a live means-tested claim (people with one may have a small pension, a motorbike, a closed
  business or one home).
- 死亡 and 服刑: people outside the registry, or people of the registry without a live claim.
- 村干部: in each village, heads of households in which nobody claims, with their household, and
  for some a brother or sister living in another village.
- 其他系统发放: what another system paid for the periods just before the person's first claim here.

How: the registry and the live claims are read into an in-memory DuckDB (ADBC, as for the
interception snapshot), every data set is one SQL statement over them, and chance comes from a hash
of (key, salt) (`u01`), so the same seed gives the same rows, whatever the machine or the DuckDB
version. People outside the registry get generated ID numbers, hashed with the platform's key.
Scale 1 comes to about 9.4 million rows, as many as the reference city gathered (9,429,500).
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import duckdb
import pyarrow as pa
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from yikatong.core.masking import mask_id_number
from yikatong.core.protect import search_hash
from yikatong.interception.snapshot import _adbc_connect
from yikatong.sharing.datasets import BY_CODE, DATASETS
from yikatong.sharing.models import SharedSnapshot
from yikatong.sharing.store import arrow_schema, save_snapshot
from yikatong.synth.names import NamePicker
from yikatong.synth.people import OUTSIDE_CODES
from yikatong.synth.regions import COUNTIES, FORMER_CODES

__all__ = ["SharedReport", "Workspace", "generate", "insert_rows", "open_workspace", "save", "u01_salt"]

Progress = Callable[[str, int, int], None]
PENSION_LIMIT_FEN = 200_000  # the rules' default limits (interception/rules/*.sql): clean data stays below
VEHICLE_LIMIT_FEN = 5_000_000

# Randomness in SQL: DuckDB's 64-bit hash of one number made of the key and the salt (every key
# times a large odd constant plus a small salt is a distinct number), as a number in [0, 1). Stable
# for a DuckDB version (pyproject pins one minor version), independent between salts.
_MACROS = (
    "CREATE MACRO u01(k, salt) AS (hash(CAST(k AS BIGINT) * 2654435761 + CAST(salt AS BIGINT)) >> 11) "
    "/ 9007199254740992.0",
    "CREATE MACRO pick(k, salt, n) AS CAST(floor(u01(k, salt) * (n)) AS INTEGER)",
    # whole years at day d (the birthday counts once reached), as the age rule computes it
    "CREATE MACRO age_at(birth, d) AS year(d) - year(birth) "
    "- CASE WHEN month(d) * 100 + day(d) < month(birth) * 100 + day(birth) THEN 1 ELSE 0 END",
)


def u01_salt(seed: int, purpose: int) -> int:
    """The salt of one random choice: the seed and what it decides."""
    return seed * 1009 + purpose


# Every export is read as text where SQLite's ADBC driver would guess a type from the first rows
# (dates, text that may be NULL); DuckDB casts back. Only committed rows are seen.
_EXPORTS: dict[str, tuple[str, dict[str, str]]] = {
    "persons": (
        "SELECT id AS person_id, id_number_hash AS id_hash, id_number_masked AS id_masked, name, gender, "
        "CAST(birth_date AS VARCHAR) AS birth_date, region_code, household_id, COALESCE(relation, '') AS relation, "
        "CASE WHEN has_active_card THEN 1 ELSE 0 END AS has_active_card FROM persons",
        {"birth_date": "DATE", "has_active_card": "BOOLEAN"}),
    "households": ("SELECT id AS household_id, code, region_code, address FROM households", {}),
    "cards": (
        "SELECT id AS card_id, card_number, person_id, bank_code, bank_account_hash AS account_hash, status, "
        "CAST(issued_on AS VARCHAR) AS issued_on, COALESCE(CAST(status_changed_on AS VARCHAR), '') "
        "AS status_changed_on FROM cards",
        {"issued_on": "DATE", "status_changed_on": "DATE"}),
    "applications": (
        "SELECT id AS application_id, number, item_code, person_id, household_id, region_code, period, "
        "CAST(period_start AS VARCHAR) AS period_start, CAST(period_end AS VARCHAR) AS period_end, basis, "
        "quantity_centi, standard_fen, amount_fen, status FROM applications "
        "WHERE status IN ('办理中', '已通过', '待支付')",
        {"period_start": "DATE", "period_end": "DATE"}),
    "items": (
        "SELECT i.code AS item_code, i.name, i.basis, i.frequency, i.standard_fen, "
        "CASE WHEN i.means_tested THEN 1 ELSE 0 END AS means_tested, i.min_age, i.max_age, "
        "COALESCE(d.sector, '') AS sector FROM subsidy_items i LEFT JOIN departments d ON d.code = i.department_code",
        {"means_tested": "BOOLEAN", "min_age": "INTEGER", "max_age": "INTEGER"}),
    "item_exclusions": ("SELECT item_code, other_code FROM item_exclusions", {}),
    "proxy_holdings": (
        "SELECT person_id, holder_id_number_hash AS holder_id_hash, CAST(valid_from AS VARCHAR) AS valid_from, "
        "COALESCE(CAST(valid_until AS VARCHAR), '') AS valid_until FROM proxy_holdings",
        {"valid_from": "DATE", "valid_until": "DATE"}),
    "regions": ("SELECT code, name, full_name, level FROM regions", {}),
}


@dataclass
class Workspace:
    """An in-memory DuckDB holding the city (registry, catalogue, live claims) and the data sets
    being generated, one table per data set code. Anomalies are planted here before saving."""

    con: duckdb.DuckDBPyConnection
    seed: int
    as_of: date
    timings: dict[str, float] = field(default_factory=dict)

    def sql(self, query: str, params: dict | None = None) -> list[tuple]:
        return self.con.execute(query, params or {}).fetchall()

    def run(self, query: str, params: dict | None = None) -> None:
        self.con.execute(query, params or {}).fetchall()

    def count(self, table: str) -> int:
        return self.sql(f"SELECT count(*) FROM {table}")[0][0]

    def arrow(self, query: str) -> pa.Table:
        return self.con.sql(query).to_arrow_table()

    def close(self) -> None:
        self.con.close()


def insert_rows(ws: Workspace, table: str, rows: list[tuple]) -> None:
    """Append rows (in the table's column order) in one statement, through Arrow: DuckDB's
    executemany runs one INSERT per row."""
    if not rows:
        return
    columns = [d[0] for d in ws.con.execute(f"SELECT * FROM {table} LIMIT 0").description]
    arrow = pa.table([pa.array(values) for values in zip(*rows, strict=True)], names=columns)
    ws.con.register("new_rows", arrow)
    ws.run(f"INSERT INTO {table} SELECT * FROM new_rows")
    ws.con.unregister("new_rows")


def duck(threads: int | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB (with the rule engine's memory ceiling) and the random and age macros."""
    from yikatong.interception.snapshot import connect_duckdb

    con = connect_duckdb(threads)
    con.execute("SET enable_progress_bar = false").fetchall()
    for macro in _MACROS:
        con.execute(macro).fetchall()
    return con


def load_tables(engine: Engine, con: duckdb.DuckDBPyConnection, queries: dict[str, tuple[str, dict[str, str]]]
                ) -> dict[str, int]:
    """Read queries of the database behind `engine` (committed rows) into DuckDB tables, each
    {name: (sql, {column: DuckDB type to cast to})}; one ADBC connection for all (on SQLite it is
    served by a child process, see interception.snapshot)."""
    counts = {}
    with _adbc_connect(engine) as adbc_con:
        for name, (sql, casts) in queries.items():
            with adbc_con.cursor() as cursor:
                cursor.execute(sql)
                raw = cursor.fetch_arrow_table()
            columns = []
            for column in raw.column_names:
                kind = casts.get(column)
                if kind in ("DATE", "TIMESTAMP"):
                    columns.append(f"TRY_CAST(NULLIF(CAST({column} AS VARCHAR), '') AS {kind}) AS {column}")
                elif kind == "BOOLEAN":
                    columns.append(f"CAST(CAST({column} AS INTEGER) <> 0 AS BOOLEAN) AS {column}")
                elif kind:
                    columns.append(f"CAST({column} AS {kind}) AS {column}")
                else:
                    columns.append(column)
            con.register("raw_export", raw)
            con.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT {', '.join(columns)} FROM raw_export").fetchall()
            con.unregister("raw_export")
            del raw
            counts[name] = con.execute(f"SELECT count(*) FROM {name}").fetchall()[0][0]
    return counts


def open_workspace(engine: Engine, seed: int, as_of: date, *, threads: int | None = None) -> Workspace:
    """The city as it is committed in the database, read into a fresh workspace."""
    started = time.perf_counter()
    ws = Workspace(duck(threads), seed, as_of)
    load_tables(engine, ws.con, _EXPORTS)
    ws.timings["read"] = round(time.perf_counter() - started, 2)
    return ws


# ---------------------------------------------------------------- who is who


# Purposes of the random choices (salts), one per decision, so that changing one data set does not
# reshuffle another.
class S:
    DEAD, PRISON, CUSTODY, PAY, PAY_END, PAY_WHERE, RETIRE, PENSION = 1, 2, 3, 4, 5, 6, 7, 8
    CAR, CAR2, CAR_KIND, CAR_VALUE, CAR_DATE, CAR_PLATE = 10, 11, 12, 13, 14, 15
    FIRM, FIRM_KIND, FIRM_STATUS, FIRM_DATE, FIRM_CAPITAL, FIRM_NAME = 20, 21, 22, 23, 24, 25
    HOME, HOME2, HOME3, HOME_DATE, HOME_AREA, HOME_ROAD = 30, 31, 32, 33, 34, 35
    CADRE, CADRE_OUT, SIBLING = 40, 41, 42
    MOVED_IN, DEATH_DATE, DEATH_SOURCE = 50, 51, 52
    PAID, PAID_DAYS = 60, 61


def _people(ws: Workspace) -> None:
    """One row per person with what the data sets are drawn from: age, village kind, live and
    means-tested claims, and the two roles that exclude every other (died, in custody)."""
    seed = ws.seed
    own = {c.code6: {c.code6} | ({FORMER_CODES[c.code6][0]} if c.code6 in FORMER_CODES else set())
           for c in COUNTIES}
    ws.con.execute("CREATE OR REPLACE TABLE own_codes (county VARCHAR, code6 VARCHAR)").fetchall()
    insert_rows(ws, "own_codes", [(k, v) for k, vs in own.items() for v in sorted(vs)])
    ws.run("""
        CREATE OR REPLACE TABLE people AS
        WITH claims AS (
          SELECT a.person_id, count(*) AS live, count(*) FILTER (WHERE i.means_tested) AS means
          FROM applications a JOIN items i USING (item_code) GROUP BY a.person_id
        )
        SELECT p.*, h.code AS household_code, COALESCE(h.address, '') AS address,
               age_at(p.birth_date, $as_of) AS age,
               TRY_CAST(substr(p.region_code, 10, 3) AS INTEGER) BETWEEN 1 AND 199 AS community,
               COALESCE(c.live, 0) AS live, COALESCE(c.means, 0) AS means
        FROM persons p
        LEFT JOIN households h USING (household_id)
        LEFT JOIN claims c USING (person_id)""", {"as_of": ws.as_of})
    # died (the registry keeps them until someone cleans it up) and in custody: only people without
    # a live claim; the old die more often, men are more often in prison
    ws.run(f"""
        CREATE OR REPLACE TABLE people AS
        SELECT *,
               live = 0 AND u01(person_id, {u01_salt(seed, S.DEAD)}) <
                 CASE WHEN age >= 85 THEN 0.05 WHEN age >= 70 THEN 0.012 WHEN age >= 40 THEN 0.002 ELSE 0.0003 END
                 AS dead,
               live = 0 AND age BETWEEN 18 AND 65 AND u01(person_id, {u01_salt(seed, S.PRISON)}) <
                 CASE WHEN gender = '男' THEN 0.004 ELSE 0.0006 END AS prisoner_candidate
        FROM people""")
    ws.run("UPDATE people SET prisoner_candidate = FALSE WHERE dead")
    ws.run(f"""
        CREATE OR REPLACE TABLE people AS
        SELECT *, CASE WHEN dead THEN CAST($as_of - 1 - pick(person_id, {u01_salt(seed, S.DEATH_DATE)}, 700)
                       AS DATE) END AS death_date
        FROM people""", {"as_of": ws.as_of})


# ---------------------------------------------------------------- people outside the registry


@dataclass(frozen=True)
class Outsider:
    id_hash: str
    id_masked: str
    name: str
    region_code: str  # the village of their former hukou
    kind: str  # dead / moved
    day: date  # died on / moved out on


DEATHS_PER_RESIDENT = 0.028  # four years of deaths at about 7 per thousand a year
MOVED_OUT_PER_RESIDENT = 0.02
DEATH_SOURCES = ("户籍注销", "医学死亡证明", "火化记录")


def _outsiders(ws: Workspace) -> None:
    """People who died or moved away in the last years and are no longer in the registry: their
    own ID numbers (checked against the registry's), hashed with the platform's key."""
    persons, villages = ws.sql("SELECT count(*) FROM persons")[0][0], [
        r[0] for r in ws.sql("SELECT code FROM regions WHERE level = 'village' ORDER BY code")]
    if not villages:
        villages = [r[0] for r in ws.sql("SELECT DISTINCT region_code FROM persons ORDER BY 1")]
    rng = random.Random(f"yikatong-shared-outsiders-{ws.seed}")
    names = NamePicker(rng)
    from yikatong.core.idnumber import make_id_number

    county_codes = [c.code6 for c in COUNTIES]
    rows: list[tuple] = []
    seen: set[str] = set()
    for kind, count in (("dead", round(DEATHS_PER_RESIDENT * persons)), ("moved", round(MOVED_OUT_PER_RESIDENT
                                                                                        * persons))):
        for _ in range(count):
            male = rng.random() < 0.5
            age = 60 + int(rng.random() * 40) if kind == "dead" else 18 + int(rng.random() * 50)
            birth = date(ws.as_of.year - age, 1, 1) + timedelta(days=int(rng.random() * 365))
            region6 = county_codes[int(rng.random() * len(county_codes))] if rng.random() < 0.85 else \
                OUTSIDE_CODES[int(rng.random() * len(OUTSIDE_CODES))]
            number = make_id_number(region6, birth, int(rng.random() * 500), male)
            if number in seen:
                continue
            seen.add(number)
            day = ws.as_of - timedelta(days=1 + int(rng.random() * (4 * 365 if kind == "dead" else 5 * 365)))
            rows.append((search_hash("id_number", number), mask_id_number(number), names.full_name(male),
                         villages[int(rng.random() * len(villages))], kind, day))
    ws.run("CREATE OR REPLACE TABLE outsiders (n BIGINT, id_hash VARCHAR, id_masked VARCHAR, name VARCHAR, "
           "region_code VARCHAR, kind VARCHAR, day DATE)")
    if rows:
        insert_rows(ws, "outsiders", [(n, *row) for n, row in enumerate(rows, 1)])
    # a generated number that happens to be a resident's is not an outsider
    ws.run("DELETE FROM outsiders WHERE id_hash IN (SELECT id_hash FROM persons)")


# ---------------------------------------------------------------- the data sets


def _employers(ws: Workspace) -> None:
    """Places that pay salaries from the budget, per county: county offices, hospitals, schools,
    and the township governments, schools and health centres."""
    regions = ws.sql("SELECT code, name, level FROM regions ORDER BY code")
    counties = {code[:6]: name for code, name, level in regions if level == "county"}
    townships: dict[str, list[str]] = {}
    for code, name, level in regions:
        if level == "township":
            townships.setdefault(code[:6], []).append(name)
    city = ["内江市第一人民医院", "内江市第二人民医院", "内江师范学院", "内江市人民政府办公室", "内江市财政局",
            "内江市公安局", "内江市第六中学", "内江职业技术学院"]
    rows = []
    for code6, county in sorted(counties.items()):
        names = [f"{county}{office}" for office in (
            "人民医院", "中医医院", "妇幼保健院", "第一中学", "实验小学", "人民政府办公室", "财政局", "公安局",
            "教育和体育局", "卫生健康局", "农业农村局", "自然资源和规划局", "民政局", "人力资源和社会保障局")]
        for township in townships.get(code6, []):
            names += [f"{county}{township}人民政府", f"{county}{township}中心学校", f"{county}{township}卫生院"]
        names += city
        rows += [(code6, n, name) for n, name in enumerate(names)]
    ws.run("CREATE OR REPLACE TABLE employers (county VARCHAR, n BIGINT, name VARCHAR)")
    if rows:
        insert_rows(ws, "employers", rows)
    ws.run("CREATE OR REPLACE TABLE employer_counts AS SELECT county, count(*) AS n FROM employers GROUP BY county")
    ws.run("CREATE OR REPLACE TABLE county_names AS SELECT left(code, 6) AS county, name FROM regions "
           "WHERE level = 'county'")
    ws.run("CREATE OR REPLACE TABLE item_numbers AS SELECT item_code, row_number() OVER (ORDER BY item_code) AS n "
           "FROM items")


def _hukou(ws: Workspace) -> str:
    seed = ws.seed
    return f"""
        SELECT p.id_hash, p.id_masked, p.name, p.region_code, p.household_code,
               CASE WHEN p.dead THEN '注销' ELSE '正常' END AS status,
               CASE WHEN o.code6 IS NULL THEN
                 greatest(p.birth_date, least(CAST($as_of - 30 AS DATE),
                   CAST(p.birth_date + to_years(CAST(16 + pick(p.person_id, {u01_salt(seed, S.MOVED_IN)}, 40)
                        AS INTEGER)) AS DATE)))
               END AS moved_in_on,
               CASE WHEN p.dead THEN p.death_date END AS moved_out_on
        FROM people p
        LEFT JOIN own_codes o ON o.county = left(p.region_code, 6) AND o.code6 = left(p.id_masked, 6)
        UNION ALL
        SELECT id_hash, id_masked, name, region_code, NULL,
               CASE kind WHEN 'dead' THEN '注销' ELSE '迁出' END, NULL, day
        FROM outsiders"""


def _deaths(ws: Workspace) -> str:
    salt = u01_salt(ws.seed, S.DEATH_SOURCE)
    sources = "['户籍注销', '医学死亡证明', '火化记录']"
    return f"""
        SELECT id_hash, id_masked, name, death_date, {sources}[1 + pick(person_id, {salt}, 3)] AS source
        FROM people WHERE dead
        UNION ALL
        SELECT id_hash, id_masked, name, day, {sources}[1 + pick(n, {salt} + 1, 3)]
        FROM outsiders WHERE kind = 'dead'"""


def _payroll(ws: Workspace) -> str:
    seed = ws.seed
    return f"""
        WITH staff AS (
          SELECT p.*, ec.n AS employers
          FROM people p JOIN employer_counts ec ON ec.county = left(p.region_code, 6)
          WHERE NOT p.dead AND NOT p.prisoner_candidate AND p.means = 0 AND p.age BETWEEN 22 AND 59
            AND u01(p.person_id, {u01_salt(seed, S.PAY)}) < CASE WHEN p.community THEN 0.16 ELSE 0.05 END
        ), dated AS (
          SELECT s.*, e.name AS employer,
                 CAST($as_of - 1 - pick(s.person_id, {u01_salt(seed, S.PAY)} + 1, (s.age - 21) * 365) AS DATE)
                   AS start_on
          FROM staff s JOIN employers e ON e.county = left(s.region_code, 6)
           AND e.n = pick(s.person_id, {u01_salt(seed, S.PAY_WHERE)}, s.employers)
        )
        SELECT id_hash, id_masked, name, employer, start_on,
               CASE WHEN u01(person_id, {u01_salt(seed, S.PAY_END)}) < 0.08
                    THEN CAST(start_on + 1 + pick(person_id, {u01_salt(seed, S.PAY_END)} + 1,
                                                  greatest(1, $as_of - start_on - 1)) AS DATE) END AS end_on
        FROM dated"""


def _retirees(ws: Workspace) -> str:
    seed = ws.seed
    # the means-tested claimants' pensions stay at or below the limit (the rule flags above it)
    return f"""
        SELECT id_hash, id_masked, name,
               CASE WHEN means > 0 THEN 100000 + pick(person_id, {u01_salt(seed, S.PENSION)}, 100001)
                    ELSE 150000 + pick(person_id, {u01_salt(seed, S.PENSION)}, 500000) END AS pension_fen,
               least(CAST($as_of - 1 AS DATE),
                     CAST(birth_date + to_years(CASE WHEN gender = '女' THEN 55 ELSE 60 END) AS DATE)) AS retired_on
        FROM people
        WHERE NOT dead AND (age >= 60 OR (gender = '女' AND age >= 55))
          AND u01(person_id, {u01_salt(seed, S.RETIRE)}) < CASE WHEN community THEN 0.55 ELSE 0.12 END"""


# (type, lowest and highest value in yuan): the first three only for people without a means-tested claim
VEHICLE_KINDS = (("小型轿车", 60_000, 260_000), ("小型普通客车", 90_000, 360_000), ("轻型普通货车", 40_000, 150_000),
                 ("二轮摩托车", 3_000, 15_000), ("三轮汽车", 8_000, 30_000))
PLATE_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"


def _vehicles(ws: Workspace) -> str:
    seed = ws.seed
    kinds = "[" + ", ".join(f"'{k}'" for k, _, _ in VEHICLE_KINDS) + "]"
    lows = "[" + ", ".join(str(lo) for _, lo, _ in VEHICLE_KINDS) + "]"
    highs = "[" + ", ".join(str(hi) for _, _, hi in VEHICLE_KINDS) + "]"
    k = u01_salt(seed, S.CAR_KIND)
    return f"""
        WITH owners AS (
          SELECT person_id, id_hash, id_masked, birth_date, 1 AS n,
                 CASE WHEN means > 0 THEN 4 + pick(person_id, {k}, 2) ELSE 1 + pick(person_id, {k}, 5) END AS kind
          FROM people
          WHERE NOT dead AND age BETWEEN 18 AND 75
            AND u01(person_id, {u01_salt(seed, S.CAR)}) <
                CASE WHEN means > 0 THEN 0.06 WHEN community THEN 0.27 ELSE 0.15 END
          UNION ALL
          SELECT person_id, id_hash, id_masked, birth_date, 2, 1 + pick(person_id, {k} + 1, 5)
          FROM people
          WHERE NOT dead AND means = 0 AND age BETWEEN 25 AND 70
            AND u01(person_id, {u01_salt(seed, S.CAR2)}) < 0.04
        )
        SELECT id_hash, id_masked,
               '川K' || {repr(PLATE_LETTERS)}[1 + pick(person_id * 3 + n, {u01_salt(seed, S.CAR_PLATE)}, 24)]
                 || lpad(CAST(pick(person_id * 3 + n, {u01_salt(seed, S.CAR_PLATE)} + 1, 100000) AS VARCHAR), 5, '0')
                 AS plate,
               {kinds}[kind] AS vehicle_type,
               ({lows}[kind] + pick(person_id * 3 + n, {u01_salt(seed, S.CAR_VALUE)},
                                    {highs}[kind] - {lows}[kind] + 1)) * 100 AS value_fen,
               greatest(CAST(birth_date + to_years(18) AS DATE),
                        CAST($as_of - 1 - pick(person_id * 3 + n, {u01_salt(seed, S.CAR_DATE)}, 15 * 365) AS DATE))
                 AS registered_on
        FROM owners"""


FIRM_WORDS = ("鑫源", "恒达", "兴旺", "沱江", "甜城", "金桥", "华盛", "宏发", "蜀川", "佳和", "永盛", "荣昌", "顺通",
              "福满", "康达", "德润")
FIRM_KINDS = ("商贸有限公司", "建材有限公司", "运输有限公司", "食品有限公司", "农业开发有限公司", "餐饮管理有限公司",
              "农业专业合作社", "家庭农场", "五金经营部", "副食店")


def _businesses(ws: Workspace) -> str:
    seed = ws.seed
    words = "[" + ", ".join(f"'{w}'" for w in FIRM_WORDS) + "]"
    kinds = "[" + ", ".join(f"'{w}'" for w in FIRM_KINDS) + "]"
    status = u01_salt(seed, S.FIRM_STATUS)
    return f"""
        WITH founders AS (
          SELECT p.*, c.name AS county_name,
                 CASE WHEN p.means > 0 THEN (CASE WHEN u01(p.person_id, {status}) < 0.5 THEN '吊销' ELSE '注销' END)
                      WHEN u01(p.person_id, {status}) < 0.82 THEN '存续'
                      WHEN u01(p.person_id, {status}) < 0.9 THEN '吊销' ELSE '注销' END AS status,
                 1 + pick(p.person_id, {u01_salt(seed, S.FIRM_KIND)}, {len(FIRM_KINDS)}) AS kind
          FROM people p JOIN county_names c ON c.county = left(p.region_code, 6)
          WHERE NOT p.dead AND p.age BETWEEN 25 AND 65
            AND u01(p.person_id, {u01_salt(seed, S.FIRM)}) <
                CASE WHEN p.means > 0 THEN 0.01 WHEN p.community THEN 0.07 ELSE 0.03 END
        )
        SELECT id_hash, id_masked, name,
               CASE WHEN kind >= 9 THEN '负责人' WHEN u01(person_id, {status} + 1) < 0.7 THEN '法定代表人'
                    ELSE '股东' END AS role,
               '内江' || {words}[1 + pick(person_id, {u01_salt(seed, S.FIRM_NAME)}, {len(FIRM_WORDS)})]
                 || {kinds}[kind] AS company,
               CASE WHEN kind >= 9 THEN '92' WHEN kind = 7 THEN '93' ELSE '91' END || left(region_code, 6)
                 || upper(substr(md5(id_hash || '{seed}'), 1, 10)) AS credit_code,
               CASE WHEN kind >= 9 THEN NULL
                    ELSE (1 + pick(person_id, {u01_salt(seed, S.FIRM_CAPITAL)}, 500)) * 1000000 END AS capital_fen,
               status,
               greatest(CAST(birth_date + to_years(20) AS DATE),
                        CAST($as_of - 1 - pick(person_id, {u01_salt(seed, S.FIRM_DATE)}, 20 * 365) AS DATE))
                 AS registered_on
        FROM founders"""


LAND_REGISTRATION_FROM = date(2015, 3, 1)  # 不动产统一登记 began on 1 March 2015
ROADS = ("人民", "建设", "新华", "解放", "和平", "交通", "滨江", "沱江", "中兴", "公园", "大千", "文化", "玉溪")


def _real_estate(ws: Workspace) -> str:
    seed = ws.seed
    days = max(1, (ws.as_of - LAND_REGISTRATION_FROM).days - 1)
    roads = "[" + ", ".join(f"'{r}'" for r in ROADS) + "]"
    return f"""
        WITH homes AS (
          SELECT person_id, id_hash, id_masked, region_code, address, 1 AS n FROM people
          WHERE (relation = '户主'
                 AND u01(person_id, {u01_salt(seed, S.HOME)}) < CASE WHEN community THEN 0.8 ELSE 0.4 END)
             OR (relation <> '户主' AND age >= 22 AND u01(person_id, {u01_salt(seed, S.HOME)}) < 0.05)
        ), more AS (
          SELECT h.person_id, h.id_hash, h.id_masked, h.region_code, '', 2 FROM homes h JOIN people p USING (person_id)
          WHERE p.means = 0 AND u01(h.person_id, {u01_salt(seed, S.HOME2)}) < 0.15
          UNION ALL
          SELECT h.person_id, h.id_hash, h.id_masked, h.region_code, '', 3 FROM homes h JOIN people p USING (person_id)
          WHERE p.means = 0 AND u01(h.person_id, {u01_salt(seed, S.HOME3)}) < 0.03
        ), every AS (
          SELECT * FROM homes UNION ALL SELECT * FROM more
        ), dated AS (
          SELECT e.*, c.name AS county_name,
                 CAST(DATE '{LAND_REGISTRATION_FROM.isoformat()}'
                      + pick(person_id * 4 + n, {u01_salt(seed, S.HOME_DATE)}, {days}) AS DATE) AS registered_on
          FROM every e JOIN county_names c ON c.county = left(e.region_code, 6)
        )
        SELECT id_hash, id_masked,
               '川(' || year(registered_on) || ')' || county_name || '不动产权第'
                 || lpad(CAST(row_number() OVER (ORDER BY person_id, n) AS VARCHAR), 7, '0') || '号' AS certificate,
               4500 + pick(person_id * 4 + n, {u01_salt(seed, S.HOME_AREA)}, 14000) AS area_centi,
               CASE WHEN address <> '' THEN address
                    ELSE county_name
                         || {roads}[1 + pick(person_id * 4 + n, {u01_salt(seed, S.HOME_ROAD)}, {len(ROADS)})]
                         || '路' || (1 + pick(person_id * 4 + n, {u01_salt(seed, S.HOME_ROAD)} + 1, 300)) || '号'
               END AS address,
               registered_on
        FROM dated"""


def _prisoners(ws: Workspace) -> str:
    salt = u01_salt(ws.seed, S.CUSTODY)
    return f"""
        WITH held AS (
          SELECT id_hash, id_masked, name,
                 CAST($as_of - 30 - pick(person_id, {salt}, 6 * 365) AS DATE) AS custody_from, person_id
          FROM people WHERE prisoner_candidate
        )
        SELECT id_hash, id_masked, name, custody_from,
               CASE WHEN u01(person_id, {salt} + 1) < 0.3
                    THEN CAST(custody_from + 1 + pick(person_id, {salt} + 2, greatest(1, $as_of - custody_from - 2))
                              AS DATE) END AS custody_to
        FROM held"""


CADRES_PER_VILLAGE = 5
RURAL_POSTS = ("村党支部书记", "村民委员会主任", "村民委员会委员", "村务监督委员会主任", "村妇联主席")
COMMUNITY_POSTS = ("社区党委书记", "居民委员会主任", "居民委员会委员", "居务监督委员会主任", "社区妇联主席")
KIN = {"配偶": "配偶", "子": "子女", "女": "子女", "父亲": "父母", "母亲": "父母", "儿媳": "儿媳", "女婿": "女婿",
       "孙子": "孙子女", "孙女": "孙子女"}


def _village_cadres(ws: Workspace) -> str:
    """Five cadres per village: heads of households in which nobody claims anything, with every
    member of their household and, for some, a brother or sister in another village of the township."""
    seed = ws.seed
    rural = "[" + ", ".join(f"'{p}'" for p in RURAL_POSTS) + "]"
    community = "[" + ", ".join(f"'{p}'" for p in COMMUNITY_POSTS) + "]"
    kin = " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in KIN.items())
    ws.run(f"""
        CREATE OR REPLACE TABLE cadres AS
        WITH quiet AS (
          SELECT household_id FROM people GROUP BY household_id
          HAVING household_id IS NOT NULL AND sum(live) = 0 AND NOT bool_or(dead) AND NOT bool_or(prisoner_candidate)
        ), ranked AS (
          SELECT p.person_id, p.id_hash, p.id_masked, p.name, p.region_code, p.household_id, p.community,
                 row_number() OVER (PARTITION BY p.region_code
                                    ORDER BY u01(p.household_id, {u01_salt(seed, S.CADRE)}), p.person_id) AS rank
          FROM people p JOIN quiet USING (household_id)
          WHERE p.relation = '户主' AND p.age BETWEEN 28 AND 62
        )
        SELECT *, CASE WHEN community THEN {community}[rank] ELSE {rural}[rank] END AS post
        FROM ranked WHERE rank <= {CADRES_PER_VILLAGE}""")
    return f"""
        WITH family AS (
          SELECT m.id_hash, m.id_masked, m.name, c.region_code, c.post, c.id_hash AS cadre_id_hash,
                 c.id_masked AS cadre_id_masked,
                 CASE WHEN m.person_id = c.person_id THEN '本人' ELSE CASE m.relation {kin} ELSE '其他近亲属' END END
                   AS relation
          FROM cadres c JOIN people m ON m.household_id = c.household_id
        ), township_people AS (
          SELECT person_id, id_hash, id_masked, name, region_code,
                 row_number() OVER (PARTITION BY left(region_code, 9)
                                    ORDER BY u01(person_id, {u01_salt(seed, S.SIBLING)}), person_id) AS rank
          FROM people WHERE NOT dead AND age BETWEEN 18 AND 75
        ), numbered AS (
          SELECT c.*, row_number() OVER (PARTITION BY left(region_code, 9) ORDER BY person_id) AS k
          FROM cadres c WHERE u01(c.person_id, {u01_salt(seed, S.CADRE_OUT)}) < 0.4
        ), siblings AS (
          SELECT t.id_hash, t.id_masked, t.name, n.region_code, n.post, n.id_hash AS cadre_id_hash,
                 n.id_masked AS cadre_id_masked, '兄弟姐妹' AS relation
          FROM numbered n JOIN township_people t
            ON left(t.region_code, 9) = left(n.region_code, 9) AND t.rank = n.k
          WHERE t.region_code <> n.region_code
        )
        SELECT id_hash, id_masked, name, region_code, post, cadre_id_hash, cadre_id_masked, relation FROM family
        UNION ALL
        SELECT id_hash, id_masked, name, region_code, post, cadre_id_hash, cadre_id_masked, relation FROM siblings"""


def _card_registry(ws: Workspace) -> str:
    # every card as issued; a card no longer active gets a later row with its status (at least a
    # day after issue, so its latest row is never a tie with the issue)
    return """
        SELECT c.card_number, p.id_hash, p.id_masked, '正常' AS status, c.issued_on AS changed_on
        FROM cards c JOIN persons p USING (person_id)
        UNION ALL
        SELECT c.card_number, p.id_hash, p.id_masked, c.status,
               greatest(COALESCE(c.status_changed_on, c.issued_on), CAST(c.issued_on + 1 AS DATE))
        FROM cards c JOIN persons p USING (person_id)
        WHERE c.status <> '正常'"""


PAYING_SYSTEMS = {"民政": "四川省民政一体化服务平台", "农业农村": "四川省惠农补贴发放系统",
                  "人力资源社会保障": "四川省社会保险信息系统", "残联": "全国残疾人两项补贴信息系统",
                  "退役军人事务": "全国优抚信息管理系统", "林业": "四川省林业生态补偿管理系统",
                  "卫生健康": "全国计划生育家庭扶助管理信息系统", "教育": "全国学生资助管理信息系统",
                  "乡村振兴": "全国防返贫监测信息系统", "医疗保障": "四川省医疗保障信息平台"}
MONTHS_OF = {"月": 1, "季": 3, "半年": 6, "年": 12, "一次性": 12}
PERIODS_BEFORE = {"月": 3, "季": 2, "半年": 1, "年": 1, "一次性": 1}


def _other_payments(ws: Workspace) -> str:
    """Payments of other systems for the periods just before a person's first claim of the item
    here (the claim moved onto the platform): never overlapping a live claim."""
    seed = ws.seed
    systems = " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in PAYING_SYSTEMS.items())
    months = " ".join(f"WHEN '{k}' THEN {v}" for k, v in MONTHS_OF.items())
    before = " ".join(f"WHEN '{k}' THEN {v}" for k, v in PERIODS_BEFORE.items())
    return f"""
        WITH firsts AS (
          SELECT a.person_id, a.item_code, min(a.period_start) AS first_start, arg_min(a.amount_fen, a.period_start)
                   AS amount_fen, i.frequency, i.sector,
                 CASE i.frequency {months} END AS months, CASE i.frequency {before} END AS periods
          FROM applications a JOIN items i USING (item_code)
          GROUP BY a.person_id, a.item_code, i.frequency, i.sector
        ), chosen AS (
          SELECT f.*, p.id_hash, p.id_masked, p.name FROM firsts f JOIN people p USING (person_id)
          JOIN item_numbers k USING (item_code)
          WHERE u01(f.person_id * 256 + k.n, {u01_salt(seed, S.PAID)}) < 0.135
        ), periods AS (
          SELECT c.*, CAST(c.first_start - to_months(CAST(c.months * j AS INTEGER)) AS DATE) AS period_start
          FROM chosen c, range(1, 4) AS r(j)
          WHERE j <= c.periods
        )
        SELECT id_hash, id_masked, name, item_code, period_start,
               CAST(period_start + to_months(CAST(months AS INTEGER)) AS DATE) - 1 AS period_end, amount_fen,
               least(CAST($as_of - 1 AS DATE),
                     CAST(CAST(period_start + to_months(CAST(months AS INTEGER)) AS DATE)
                          + pick(person_id, {u01_salt(seed, S.PAID_DAYS)}, 20) AS DATE)) AS paid_on,
               CASE sector {systems} ELSE sector || '行业业务系统' END AS system
        FROM periods"""


_BUILDERS: dict[str, Callable[[Workspace], str]] = {
    "hukou": _hukou, "deaths": _deaths, "payroll": _payroll, "retirees": _retirees, "vehicles": _vehicles,
    "businesses": _businesses, "real_estate": _real_estate, "prisoners": _prisoners,
    "village_cadres": _village_cadres, "card_registry": _card_registry, "other_payments": _other_payments,
}
assert set(_BUILDERS) == set(BY_CODE)


def generate(ws: Workspace, progress: Progress | None = None) -> dict[str, int]:
    """Create one workspace table per data set (named by its code, in its stored columns).
    Returns the rows of each."""
    progress = progress or (lambda stage, done, total: None)
    started = time.perf_counter()
    _people(ws)
    _outsiders(ws)
    _employers(ws)
    counts: dict[str, int] = {}
    for done, dataset in enumerate(DATASETS, 1):
        columns = ", ".join(f.name for f in arrow_schema(dataset))
        query = _BUILDERS[dataset.code](ws)
        ws.run(f"CREATE OR REPLACE TABLE {dataset.code} AS SELECT {columns} FROM ({query}) generated",
               {"as_of": ws.as_of} if "$as_of" in query else None)
        counts[dataset.code] = ws.count(dataset.code)
        progress("共享数据", done, len(DATASETS) * 2)
    ws.timings["generate"] = round(time.perf_counter() - started, 2)
    return counts


@dataclass
class SharedReport:
    rows: dict[str, int]  # data set -> rows
    snapshots: dict[str, int]  # data set -> shared_snapshots.id
    seconds: float

    @property
    def total(self) -> int:
        return sum(self.rows.values())


def save(session: Session, ws: Workspace, now: datetime, *, scale: float | None = None,
         progress: Progress | None = None) -> dict[str, SharedSnapshot]:
    """Store every data set of the workspace as one delivery of its usual agency, as of the
    workspace's day (the caller commits)."""
    progress = progress or (lambda stage, done, total: None)
    out: dict[str, SharedSnapshot] = {}
    for done, dataset in enumerate(DATASETS, 1):
        table = ws.arrow(f"SELECT * FROM {dataset.code}")
        label = f"synth:{dataset.code}:seed={ws.seed}:scale={scale}:as_of={ws.as_of.isoformat()}:rows={table.num_rows}"
        out[dataset.code] = save_snapshot(
            session, dataset.code, table, agency=dataset.provider, as_of=ws.as_of,
            filename=f"synth-{dataset.code}-seed{ws.seed}.parquet",
            file_sha256=hashlib.sha256(label.encode()).hexdigest(), file_format="synth", actor=None, now=now,
            note="合成城市生成的共享数据")
        progress("共享数据", len(DATASETS) + done, len(DATASETS) * 2)
    return out
