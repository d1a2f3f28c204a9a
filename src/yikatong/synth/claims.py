"""Bulk claims (批量申请): the live applications of the synthetic city beyond the demo stories, about
1.9 per resident (the reference city: 5,774,200 applications for 3.1 million people), so that the
interception rules, the inboxes and the statistics have a city-sized workload.

Who claims what: residents who receive subsidies (享受补贴人员) and hold an active card, each for
the items that fit them -- pensions and old-age allowances by age, the means-tested assistance of
one group each (特困, 低保 or 低保边缘, never two: those items exclude each other), farmland and
livestock subsidies for rural heads of household by the mu, children's and students' items by
age. Every period of an item the claim covers lies in the build's year: the current month and the
two before it for monthly items (they may reach into December), the current quarter, half or year
otherwise. A claim whose applicant is too young or too old for the item at the period's start is
not made. Amounts are the standard times the quantity. Residents who already have a live claim
(the demo stories), and their households, are left alone.

State: three in four are approved (已通过, waiting for payment); the rest wait at 县定 (entered from
a department list in the last few working days, as lists enter there) or at 市管. Each carries one
trail record: its entry, or the approval that put it where it is. Numbers are SY + a 10-digit
serial (the review road's own numbers are SQ + date).

How: people and the catalogue are read through ADBC into DuckDB, the claims are one SQL statement
with seeded hash-based chance (synth.shared's `u01`), and they are written by ADBC bulk ingest
(SQLite's prepared INSERT in C, PostgreSQL's binary COPY), with the tables' secondary indexes
dropped during the load (synth.loader).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

import duckdb
import pyarrow as pa
from sqlalchemy import BigInteger, Boolean, Date, DateTime, Engine, Integer, Table
from sqlalchemy.orm import Session

from yikatong import models
from yikatong.catalog.models import SubsidyItem
from yikatong.core.db import UTCDateTime
from yikatong.interception.snapshot import _adbc_connect
from yikatong.synth.loader import Loader
from yikatong.synth.regions import CITY_CODE
from yikatong.synth.shared import duck, load_tables, u01_salt
from yikatong.workflow import road as roads
from yikatong.workflow.calendar import load_calendar
from yikatong.workflow.models import Action, Source, Status, Step
from yikatong.workflow.periods import parse_period, period_of

__all__ = ["PROGRAMS", "ClaimsReport", "Program", "ingest", "next_ids", "stations", "write_claims"]

Progress = Callable[[str, int, int], None]
SOURCE_REF = "synth:claims"
NUMBER_PREFIX = "SY"
SYSTEM_NAME = "系统"
APPROVED_SHARE, COUNTY_SHARE = 0.75, 0.20  # the rest waits at 市管
MONTHS_BACK = 2  # monthly items: the current month and the two before it
_OURS = f"number >= '{NUMBER_PREFIX}' AND number < '{NUMBER_PREFIX}~'"  # SY numbers ('~' sorts after digits)


@dataclass(frozen=True)
class Program:
    """One item and who claims it: `who` is a DuckDB condition over a claimant row (age, male,
    head, community, grp, u = this program's chance in [0, 1)); `share` the chance when it holds."""

    code: str
    who: str
    share: float = 1.0
    mu: tuple[int, int] | None = None  # centi-mu, for items paid by the mu
    salt: int = 0  # programs with the same salt draw the same chance (to split one group between items)


_RURAL_HEAD = "head AND NOT community"
_POOR = "grp IN ('低保', '特困')"
# Assistance groups (one each, exclusive): 特困 2.5 %, 低保 13.5 %, 低保边缘 3 % of the claimants.
GROUPS = (("特困", 0.025), ("低保", 0.16), ("低保边缘", 0.19))

PROGRAMS: tuple[Program, ...] = (
    # basic living assistance (民政)
    Program("ZS008", "grp = '特困'", 0.95),  # 特困人员救助供养金
    Program("ZS009", "grp = '特困'", 0.6),  # 特困人员照料护理补贴
    Program("ZS006", "grp = '低保' AND community", 0.97),  # 城市低保
    Program("ZS007", "grp = '低保' AND NOT community", 0.97),  # 农村低保
    Program("SD008", "grp = '低保边缘'", 0.9),  # 低保边缘家庭生活补助
    Program("ZS010", "grp = '低保'", 0.12),  # 困难残疾人生活补贴
    Program("SD014", _POOR, 0.2),  # 困难群众价格临时补贴
    Program("SD006", _POOR, 0.5),  # 春节慰问金
    Program("SD007", _POOR, 0.35),  # 中秋国庆慰问金
    Program("SD074", "grp <> ''", 0.6),  # 医保参保缴费资助
    Program("SD004", f"{_POOR} AND age >= 60", 0.3),  # 经济困难老年人养老服务补贴
    Program("SD005", f"{_POOR} AND age >= 60", 0.08),  # 失能老年人护理补贴
    Program("SD021", "grp = '特困'", 0.05),  # 残疾人居家托养服务补贴
    Program("SD075", _POOR, 0.04),  # 困难群众医疗救助金
    Program("ZS024", "grp IN ('低保', '低保边缘')", 0.05),  # 临时救助
    Program("SD080", "grp = '低保'", 0.03),  # 受灾群众冬春生活救助
    Program("SD067", "grp IN ('低保', '低保边缘') AND head AND community", 0.3),  # 住房租赁补贴（按户）
    # children and students of poor families
    Program("SD012", "grp = '低保' AND NOT community AND age <= 15", 0.5),  # 农村留守儿童关爱
    Program("SD069", "grp IN ('低保', '低保边缘') AND age BETWEEN 3 AND 6", 0.6),  # 学前教育资助
    Program("SD070", "grp IN ('低保', '低保边缘') AND age BETWEEN 7 AND 15", 0.5),  # 寄宿生生活补助
    Program("SD072", "grp IN ('低保', '低保边缘') AND age BETWEEN 15 AND 19", 0.3),  # 高中免学杂费
    # pensions and old age: one of the two basic pensions (they exclude each other)
    Program("ZS029", "age >= 60 AND u < 0.9", salt=1),  # 城乡居民基础养老金
    Program("SD037", "age >= 60 AND u >= 0.9 AND u < 0.95", salt=1),  # 被征地农民养老保障补贴
    Program("SD036", "age >= 60 AND u < 0.2", salt=1),  # 基础养老金地方加发 (with ZS029)
    Program("SD001", "age BETWEEN 80 AND 89", 0.93),  # 高龄津贴（80至89周岁）
    Program("SD002", "age BETWEEN 90 AND 99", 0.93),  # 高龄津贴（90至99周岁）
    Program("SD003", "age >= 100", 0.95),  # 百岁老人长寿补助金
    Program("SD013", "NOT community AND age >= 60", 0.08),  # 农村留守老年人关爱
    Program("ZS016", "NOT community AND age >= 60", 0.1),  # 农村部分计划生育家庭奖励扶助
    # disability, family planning, veterans
    Program("ZS011", "TRUE", 0.02),  # 重度残疾人护理补贴
    Program("SD022", "age BETWEEN 40 AND 68", 0.06),  # 独生子女父母奖励
    Program("ZS019", "male AND age >= 45", 0.01),  # 重点优抚对象抚恤补助
    Program("ZS020", "male AND age >= 60", 0.004),  # 在乡复员军人定期生活补助
    Program("SD031", "male AND age >= 55", 0.003),  # 参战参试退役人员生活补助
    Program("SD032", "male AND age >= 45", 0.01),  # 优抚对象节日慰问金
    # jobs and posts
    Program("SD035", "community AND age BETWEEN 18 AND 59", 0.02),  # 城镇公益性岗位
    Program("SD059", "grp IN ('低保', '低保边缘') AND NOT community AND age BETWEEN 18 AND 64", 0.1),  # 乡村公益性岗位
    Program("SD034", "community AND age BETWEEN 18 AND 59", 0.015),  # 就业困难人员社会保险补贴
    Program("SD064", "NOT community AND age BETWEEN 30 AND 64", 0.004),  # 农村饮水工程管护员
    Program("SD065", "NOT community AND age BETWEEN 30 AND 64", 0.004),  # 河道保洁员
    Program("SD051", "NOT community AND age BETWEEN 30 AND 64", 0.003),  # 村级动物防疫员
    # farmland, forest and livestock (rural heads of household)
    Program("ZS001", _RURAL_HEAD, 0.8, mu=(120, 850)),  # 耕地地力保护补贴
    Program("SD076", _RURAL_HEAD, 0.4, mu=(120, 850)),  # 耕地保护补偿金
    Program("ZS004", _RURAL_HEAD, 0.35, mu=(100, 600)),  # 稻谷目标价格补贴
    Program("ZS014", _RURAL_HEAD, 0.15, mu=(300, 4500)),  # 森林生态效益补偿
    Program("SD046", _RURAL_HEAD, 0.15, mu=(100, 500)),  # 油菜种植补贴
    Program("ZS012", _RURAL_HEAD, 0.08, mu=(100, 1000)),  # 退耕还林补助
    Program("SD084", _RURAL_HEAD, 0.05, mu=(200, 1500)),  # 优质稻订单收购奖励
    Program("ZS028", _RURAL_HEAD, 0.3),  # 政策性农业保险保费补贴（按户）
    Program("ZS027", _RURAL_HEAD, 0.08),  # 能繁母猪补贴（按户）
    Program("SD052", _RURAL_HEAD, 0.05),  # 病死畜禽无害化处理补助（按户，季）
)


@dataclass
class ClaimsReport:
    total: int
    by_status: dict[str, int]
    ids: tuple[int, int] | None
    seconds: float


# ---------------------------------------------------------------- bulk ingest


def _cast(column, postgres: bool) -> str:
    """How a DuckDB value is sent to a column: what ADBC's COPY expects on PostgreSQL, and on
    SQLite what SQLAlchemy itself stores (ISO text for dates and times, 0/1 for booleans)."""
    name, kind = f'"{column.name}"', column.type
    if isinstance(kind, Boolean):
        return f"CAST({name} AS BOOLEAN)" if postgres else f"CAST(CAST({name} AS BOOLEAN) AS INTEGER)"
    if isinstance(kind, BigInteger):
        return f"CAST({name} AS BIGINT)"
    if isinstance(kind, Integer):
        return f"CAST({name} AS INTEGER)"
    if isinstance(kind, DateTime | UTCDateTime):
        return (f"CAST({name} AS TIMESTAMP)" if postgres
                else f"strftime(CAST({name} AS TIMESTAMP), '%Y-%m-%d %H:%M:%S.%f')")
    if isinstance(kind, Date):
        return f"CAST({name} AS DATE)" if postgres else f"CAST(CAST({name} AS DATE) AS VARCHAR)"
    return f"CAST({name} AS VARCHAR)"


def ingest(loader: Loader, con: duckdb.DuckDBPyConnection, table: Table, query: str,
           params: dict | None = None, batch: int = 100_000) -> int:
    """Bulk-insert the rows of a DuckDB query (columns named as `table`'s) and commit. PostgreSQL:
    ADBC's ingest (binary COPY) on a connection of its own, after the loader's transaction is
    committed. SQLite: executemany of plain tuples on the loader's own connection (ADBC's driver
    links another copy of SQLite, which must not write a file this process has open)."""
    postgres = loader.postgres
    names = [d[0] for d in con.execute(f"SELECT * FROM ({query}) q LIMIT 0", params or {}).description]
    columns = ", ".join(f'{_cast(table.c[n], postgres)} AS "{n}"' for n in names)
    select = f"SELECT {columns} FROM ({query}) q"
    written = 0
    loader.commit()
    if postgres:
        reader = con.sql(select, params=params or None).to_arrow_reader(batch)
        with _adbc_connect(loader.engine) as adbc_con:
            with adbc_con.cursor() as cursor:
                for record_batch in reader:
                    written += cursor.adbc_ingest(table.name, pa.Table.from_batches([record_batch]), mode="append")
            adbc_con.commit()
        return written
    insert = f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
    cursor = con.execute(select, params or {})
    while rows := cursor.fetchmany(batch):
        loader.conn.exec_driver_sql(insert, rows)
        written += len(rows)
    loader.commit()
    return written


def _table(name: str) -> Table:
    return models.metadata.tables[name]


# ---------------------------------------------------------------- the claims


def _periods(today: date) -> list[tuple[str, str, date, date]]:
    """(frequency, label, start, end) of every period a bulk claim may cover."""
    rows = []
    for frequency in ("月", "季", "半年", "年", "一次性"):
        days = [today]
        if frequency == "月":
            year, month = today.year, today.month
            for _ in range(MONTHS_BACK):
                year, month = (year, month - 1) if month > 1 else (year - 1, 12)
                days.append(date(year, month, 1))
        for day in days:
            period = parse_period(frequency, period_of(frequency, day))
            rows.append((frequency, period.label, period.start, period.end))
    return rows


def stations(session: Session, today: date) -> list[tuple]:
    """(item, stage, k, entered, due, remind, owner digits) for claims waiting at 县定 or 市管 that
    entered k working days before `today` (k = 0..3), by each item's road and the calendar."""
    calendar = load_calendar(session)
    anchor = today if calendar.is_working(today) else calendar.subtract_working_days(today, 1)
    rows = []
    for item in session.query(SubsidyItem).order_by(SubsidyItem.code):
        road = roads.road_for(session, item)
        for step in (Step.COUNTY, Step.CITY):
            if step not in road.steps:
                continue
            station = road.station(step)
            for k in range(4):
                entered = calendar.subtract_working_days(anchor, k) if k else anchor
                due = calendar.add_working_days(entered, station.days)
                remind = calendar.subtract_working_days(due, station.remind_before)
                rows.append((item.code, step.value, k, entered, due, remind, roads.owner_digits(step)))
    return rows


def _programs_sql(seed: int) -> str:
    parts = []
    for n, p in enumerate(PROGRAMS):
        salt = u01_salt(seed, 100 + (p.salt or 1000 + n))
        share = f" AND u01(person_id, {salt} + 7) < {p.share}" if p.share < 1 else ""
        quantity = "100"
        if p.mu:
            lo, hi = p.mu
            quantity = f"{lo} + pick(person_id, {salt} + 3, {hi - lo + 1})"
        parts.append(f"SELECT person_id, household_id, region_code, '{p.code}' AS item_code, "
                     f"{quantity} AS quantity_centi "
                     f"FROM (SELECT *, u01(person_id, {salt}) AS u FROM claimants) c WHERE ({p.who}){share}")
    return "\nUNION ALL\n".join(parts)


def write_claims(engine: Engine, loader: Loader, today: date, seed: int,
                 progress: Progress | None = None) -> ClaimsReport:
    """Generate and write the bulk claims (see the module docstring). The loader's connection must
    have nothing uncommitted; its indexes of applications and review_records are dropped and put back."""
    progress = progress or (lambda stage, done, total: None)
    started = time.perf_counter()
    postgres = engine.dialect.name == "postgresql"
    con = duck()
    city = CITY_CODE[:4]
    progress("批量申请", 0, 4)
    load_tables(engine, con, {
        "residents": (
            "SELECT id AS person_id, CAST(birth_date AS VARCHAR) AS birth_date, gender, region_code, household_id, "
            "COALESCE(relation, '') AS relation, CASE WHEN is_beneficiary THEN 1 ELSE 0 END AS beneficiary, "
            "CASE WHEN has_active_card THEN 1 ELSE 0 END AS active_card FROM persons "
            f"WHERE region_code LIKE '{city}%'",
            {"birth_date": "DATE", "beneficiary": "BOOLEAN", "active_card": "BOOLEAN"}),
        "taken": ("SELECT person_id, household_id FROM applications "
                  "WHERE status IN ('办理中', '已通过', '待支付')", {}),
        "items": (
            "SELECT i.code AS item_code, i.basis, i.frequency, i.standard_fen, i.min_age, i.max_age, "
            "COALESCE(d.sector, '') AS sector FROM subsidy_items i "
            "LEFT JOIN departments d ON d.code = i.department_code",
            {"min_age": "INTEGER", "max_age": "INTEGER"}),
        "last_ids": (
            f"SELECT COALESCE(MAX(id), 0) AS max_id, COALESCE(MAX(CASE WHEN {_OURS} "
            "THEN number END), '') AS last_number FROM applications", {}),
    })
    first_id, serial = _ids(*con.execute("SELECT max_id, last_number FROM last_ids").fetchall()[0])
    con.execute("CREATE TABLE periods (frequency VARCHAR, period VARCHAR, period_start DATE, period_end DATE)")
    con.executemany("INSERT INTO periods VALUES (?, ?, ?, ?)", _periods(today))
    with Session(bind=loader.conn) as session:
        rows = stations(session, today)
    con.execute("CREATE TABLE stations (item_code VARCHAR, stage VARCHAR, k INTEGER, entered DATE, due DATE, "
                "remind DATE, digits INTEGER)")
    if rows:
        con.executemany("INSERT INTO stations VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    progress("批量申请", 1, 4)

    group_salt = u01_salt(seed, 99)
    groups = " ".join(f"WHEN g < {bound} THEN '{name}'" for name, bound in GROUPS)
    con.execute(f"""
        CREATE TABLE claimants AS
        SELECT person_id, household_id, region_code, gender = '男' AS male, relation = '户主' AS head,
               TRY_CAST(substr(region_code, 10, 3) AS INTEGER) BETWEEN 1 AND 199 AS community,
               age_at(birth_date, $today) AS age, birth_date,
               CASE {groups} ELSE '' END AS grp
        FROM (SELECT *, u01(person_id, {group_salt}) AS g FROM residents) r
        WHERE beneficiary AND active_card
          AND person_id NOT IN (SELECT person_id FROM taken)
          AND COALESCE(household_id, -person_id) NOT IN (
            SELECT r2.household_id FROM residents r2 JOIN taken t USING (person_id) WHERE r2.household_id IS NOT NULL
            UNION ALL SELECT household_id FROM taken WHERE household_id IS NOT NULL)""", {"today": today}).fetchall()
    status_salt = u01_salt(seed, 98)
    con.execute(f"""
        CREATE TABLE claims AS
        WITH chosen AS ({_programs_sql(seed)}),
        dated AS (
          SELECT c.*, i.basis, i.frequency, i.standard_fen, i.sector, p.period, p.period_start, p.period_end
          FROM chosen c
          JOIN items i USING (item_code)
          JOIN periods p ON p.frequency = i.frequency
          JOIN claimants k USING (person_id)
          WHERE (i.min_age IS NULL OR age_at(k.birth_date, p.period_start) >= i.min_age)
            AND (i.max_age IS NULL OR age_at(k.birth_date, p.period_start) <= i.max_age)
        ), numbered AS (
          SELECT *, row_number() OVER (ORDER BY region_code, person_id, item_code, period_start) - 1 AS n
          FROM dated
        )
        SELECT n.*, u01(n, {status_salt}) AS s, pick(n, {status_salt} + 1, 4) AS k,
               pick(n, {status_salt} + 2, 21) AS offset_days, pick(n, {status_salt} + 3, 480) AS minute
        FROM numbered n""").fetchall()
    total = con.execute("SELECT count(*) FROM claims").fetchall()[0][0]
    progress("批量申请", 2, 4)
    if not total:
        con.close()
        return ClaimsReport(0, {}, None, round(time.perf_counter() - started, 2))

    detail = json.dumps({"source": Source.LIST.value, "source_ref": SOURCE_REF}, ensure_ascii=False)
    # state: approved, or waiting at 县定 (or at 市管) since k working days
    con.execute(f"""
        CREATE TABLE rows AS
        SELECT c.*, {first_id} + c.n AS id,
               '{NUMBER_PREFIX}' || lpad(CAST({serial} + c.n AS VARCHAR), 10, '0') AS number,
               CASE WHEN c.s < {APPROVED_SHARE} OR st.item_code IS NULL THEN '{Status.APPROVED.value}'
                    ELSE '{Status.OPEN.value}' END AS status,
               CASE WHEN c.s < {APPROVED_SHARE} OR st.item_code IS NULL THEN NULL ELSE st.stage END AS stage,
               st.entered, st.due, st.remind, st.digits,
               -- approved claims were entered at least 15 days ago, near the start of their period; instants
               -- are stored in UTC: 01:00 is 09:00 and 06:00 is 14:00 in Beijing, on the same day
               CAST(least(CAST(c.period_start + c.offset_days AS DATE), CAST($today - 15 - c.offset_days AS DATE))
                    AS TIMESTAMP) + to_minutes(CAST(60 + c.minute AS INTEGER)) AS approved_entry
        FROM claims c
        LEFT JOIN stations st ON st.item_code = c.item_code AND st.k = c.k
          AND st.stage = CASE WHEN c.s < {APPROVED_SHARE + COUNTY_SHARE} THEN '{Step.COUNTY.value}'
                              ELSE '{Step.CITY.value}' END""", {"today": today}).fetchall()
    app_query = f"""
        SELECT id, number, item_code, sector, person_id,
               CASE WHEN basis = '户' THEN household_id END AS household_id, region_code, period, period_start,
               period_end, basis, quantity_centi, standard_fen,
               CAST((standard_fen * quantity_centi + 50) // 100 AS BIGINT) AS amount_fen,
               '{Source.LIST.value}' AS source, '{SOURCE_REF}' AS source_ref, status, stage,
               CASE WHEN stage IS NULL THEN 6 ELSE 4 END AS stage_seq, FALSE AS returned,
               CASE WHEN stage IS NULL THEN NULL ELSE left(region_code, digits) || repeat('0', 12 - digits) END
                 AS owner_region,
               CASE WHEN stage IS NULL THEN approved_entry + INTERVAL 10 DAY + INTERVAL 6 HOUR
                    ELSE CAST(entered AS TIMESTAMP) + INTERVAL 6 HOUR END AS stage_entered_at,
               CASE WHEN stage IS NULL THEN NULL ELSE due END AS due_on,
               CASE WHEN stage IS NULL THEN NULL ELSE remind END AS remind_on,
               FALSE AS reminded, FALSE AS escalated, 0 AS open_objections, 0 AS open_flags,
               NULL AS publicity_id, '' AS note, NULL AS created_by,
               CASE WHEN stage IS NULL THEN approved_entry
                    WHEN stage = '{Step.COUNTY.value}' THEN CAST(entered AS TIMESTAMP) + INTERVAL 6 HOUR
                    ELSE CAST(entered AS TIMESTAMP) - INTERVAL 9 DAY + INTERVAL 6 HOUR END AS created_at,
               CASE WHEN stage IS NULL THEN approved_entry + INTERVAL 10 DAY + INTERVAL 6 HOUR END AS decided_at
        FROM rows ORDER BY id"""
    record_query = f"""
        SELECT id AS application_id,
               CASE WHEN stage IS NULL THEN '{Step.CITY.value}' WHEN stage = '{Step.COUNTY.value}'
                    THEN '{Step.APPLY.value}' ELSE '{Step.COUNTY.value}' END AS step,
               CASE WHEN stage = '{Step.COUNTY.value}' THEN '{Action.SUBMIT.value}' ELSE '{Action.APPROVE.value}' END
                 AS action,
               stage AS to_stage, status AS status_after, NULL AS user_id, '{SYSTEM_NAME}' AS actor_name,
               'system' AS actor_role,
               CASE WHEN stage IS NULL THEN approved_entry + INTERVAL 10 DAY + INTERVAL 6 HOUR
                    ELSE CAST(entered AS TIMESTAMP) + INTERVAL 6 HOUR END AS at,
               CASE WHEN stage IS NULL THEN '已纳入资金发放计划'
                    WHEN stage = '{Step.CITY.value}' THEN '经信息比对核实，符合政策规定，同意' ELSE '' END AS opinion,
               '{detail}' AS detail
        FROM rows ORDER BY id"""
    loader.commit()
    loader.drop_indexes(["applications", "review_records"])
    try:
        progress("批量申请", 3, 4)
        ingest(loader, con, _table("applications"), app_query)
        ingest(loader, con, _table("review_records"), record_query)
        if postgres:
            loader.conn.exec_driver_sql("SELECT setval(pg_get_serial_sequence('applications', 'id'), "
                                        "COALESCE((SELECT MAX(id) FROM applications), 0) + 1, false)")
            loader.commit()
    finally:
        loader.create_indexes()
    by_status = dict(con.execute("SELECT status, count(*) FROM rows GROUP BY status ORDER BY status").fetchall())
    con.close()
    progress("批量申请", 4, 4)
    return ClaimsReport(total, by_status, (first_id, first_id + total - 1), round(time.perf_counter() - started, 2))


def _ids(max_id: int, last_number: str | None) -> tuple[int, int]:
    return int(max_id) + 1, (int(last_number[len(NUMBER_PREFIX):]) + 1 if last_number else 1)


def next_ids(loader: Loader) -> tuple[int, int]:
    """The first free application id and the next SY serial (read on the loader's connection)."""
    max_id, last = loader.conn.exec_driver_sql(
        f"SELECT COALESCE(MAX(id), 0), MAX(CASE WHEN {_OURS} THEN number END) "
        "FROM applications").one()
    return _ids(max_id, last)
