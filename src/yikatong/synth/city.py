"""Build the whole synthetic city into an empty, migrated database.

Regions, departments, banks, treasury accounts and the catalogue first; then the people, one
township at a time (generated in worker processes at large scales, written here in the order of the
township codes, so ids and contents do not depend on the number of workers); then the proxy-holding
cases with their documents, the demo users, and the demo applications (synth.applications: dated
from the demo day, `today`, everything else from the seed). Then, unless switched off, the city's
workload for the interception rules: the bulk claims (synth.claims, about 1.9 per resident), the
eleven shared data sets (synth.shared, consistent with the people: clean by themselves), the planted
anomalies of every rule at known rates (synth.anomalies, listed in YKT_DATA_DIR/synth/planted.csv)
and a city run of the rules, which flags them.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, date, datetime

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from yikatong.core.clock import beijing_date, system_clock
from yikatong.core.errors import Conflict
from yikatong.registry.models import Person, Region
from yikatong.security import audit
from yikatong.security.scope import subtree_bounds
from yikatong.synth import anomalies as planting
from yikatong.synth import catalog_data, proxies, shared
from yikatong.synth.applications import create_demo_applications
from yikatong.synth.claims import write_claims
from yikatong.synth.loader import Loader
from yikatong.synth.people import (
    CARD_COLUMNS,
    HOUSEHOLD_COLUMNS,
    PERSON_COLUMNS,
    REFERENCE_DATE,
    ProxyCase,
    TownshipBatch,
    TownshipJob,
    generate_township,
)
from yikatong.synth.regions import CITY_CODE, PROVINCE_CODE, CityPlan, level_rows, plan_city
from yikatong.synth.users import DEMO_PASSWORD, DemoLogin, create_demo_users

__all__ = ["DEMO_PASSWORD", "CityReport", "DemoLogin", "build_city", "proxy_quotas"]

Progress = Callable[[str, int, int], None]

# The stamp of every generated row: fixed, so the same seed gives the same database contents.
BUILD_STAMP = datetime(REFERENCE_DATE.year, REFERENCE_DATE.month, REFERENCE_DATE.day, 9, 0, tzinfo=UTC)
PROXY_CASES_AT_SCALE_1 = 500
MIN_PROXY_CASES = 3
# Below this many residents worker processes cost more to start than they save.
PARALLEL_FROM = 150_000
COMMIT_EVERY = 100_000  # persons per transaction


@dataclass
class CityReport:
    scale: float
    seed: int
    regions: int
    households: int
    persons: int
    beneficiaries: int
    cards: int
    beneficiaries_with_card: int
    proxy_cases: int
    departments: int
    items: int
    categories: int
    banks: int
    demo_logins: list[DemoLogin]
    seconds: float
    applications: int = 0  # demo applications, in every state (synth.applications)
    applications_by_status: dict[str, int] | None = None
    demo_day: date | None = None  # the day the applications are dated from
    application_ids: tuple[int, int] | None = None  # first and last id of the demo applications
    claims: int = 0  # bulk claims (synth.claims)
    claims_by_status: dict[str, int] | None = None
    claim_ids: tuple[int, int] | None = None
    shared_rows: dict[str, int] | None = None  # data set -> rows (synth.shared)
    planted: dict[str, int] | None = None  # rule code -> planted anomalies (synth.anomalies)
    expected_flags: int = 0  # (application, rule) pairs the planted anomalies must raise
    flagged: int = 0  # flags raised by the city run at the end of the build
    stage_seconds: dict[str, float] | None = None


def proxy_quotas(plan: CityPlan) -> dict[str, int]:
    """Proxy-holding cases per township: about 500 at scale 1, at least 3, shared by population
    (largest remainders, so the total is exact)."""
    total = max(MIN_PROXY_CASES, round(PROXY_CASES_AT_SCALE_1 * plan.scale))
    people = plan.population
    shares = [(t.code, total * t.population / people) for t in plan.townships]
    quotas = {code: int(share) for code, share in shares}
    rest = total - sum(quotas.values())
    for code, _ in sorted(shares, key=lambda s: (-(s[1] - int(s[1])), s[0]))[:rest]:
        quotas[code] += 1
    return quotas


def _jobs(plan: CityPlan, first_ids: dict[str, int], dates_as_text: bool) -> list[TownshipJob]:
    quotas = proxy_quotas(plan)
    # A township never has more people than planned plus one overshooting household per village,
    # nor more than two cards per person: its blocks of ids and card serials are sized from that.
    bounds = [t.population + 6 * len(t.villages) + 10 for t in plan.townships]
    counts = {c: plan.township_count(c) for c in {t.county.code6 for t in plan.townships}}
    jobs = []
    people_before = 0
    for t, bound in zip(plan.townships, bounds, strict=True):
        jobs.append(TownshipJob(
            t, plan.seed, counts[t.county.code6], 2 * max(bounds) + 1000, quotas[t.code],
            first_household_id=first_ids["households"] + people_before,
            first_person_id=first_ids["persons"] + people_before,
            first_card_id=first_ids["cards"] + 2 * people_before,
            id_block=bound, dates_as_text=dates_as_text,
        ))
        people_before += bound
    return jobs


def _batches(jobs: list[TownshipJob], workers: int) -> Iterator[TownshipBatch]:
    """Township batches; with workers in the order they are finished, a few ahead (bounded memory).

    Each township writes only its own blocks of ids, so the order does not change the result."""
    if workers <= 1:
        for job in jobs:
            yield generate_township(job)
        return
    # spawn, not fork: the children must not inherit the parent's open database connections.
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        todo = iter(jobs)
        pending = {pool.submit(generate_township, job) for job in itertools.islice(todo, workers * 3)}
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                nxt = next(todo, None)
                if nxt is not None:
                    pending.add(pool.submit(generate_township, nxt))
                yield future.result()


def database_is_empty(engine: Engine) -> bool:
    """No region and no person at all (what the command line requires before a build)."""
    with Session(engine) as s:
        return not (s.scalar(select(func.count()).select_from(Region))
                    or s.scalar(select(func.count()).select_from(Person)))


def _ensure_room(engine: Engine) -> None:
    """Refuse a database that already holds this province's regions (a city built before, or real
    data of Sichuan): the synthetic people must never mix with real or earlier ones. Other areas'
    rows (the test suite's own little areas, for example) do not stop the build."""
    lo, hi = subtree_bounds(PROVINCE_CODE)
    with Session(engine) as s:
        if s.scalar(select(func.count()).select_from(Region).where(Region.code.between(lo, hi))):
            raise Conflict(OCCUPIED)


OCCUPIED = "数据库已有数据……合成城市只能写入空数据库：请换一个数据库，或用 ykt synth --replace 清空后重建。"


def default_workers(population: int) -> int:
    if population < PARALLEL_FROM:
        return 1
    return max(1, min(2, os.cpu_count() or 1))


def build_city(engine: Engine, scale: float, seed: int, on_progress: Progress | None = None,
               *, workers: int | None = None, today: date | None = None, claims: bool = True,
               shared_data: bool = True, anomalies: bool = True,
               anomaly_rates: Mapping[str, float] | None = None) -> CityReport:
    """Write a Neijiang-like city of about 3.1 million x scale residents into the database behind
    `engine` (migrated, and without any region of Sichuan yet). The same scale and seed always give
    the same city; the demo applications' dates count back from `today` (default: the build's day).

    claims: the bulk claims; shared_data: the shared data sets and a city run of the rules at the
    end; anomalies (with shared_data): plant anomalies at `anomaly_rates` (rule code -> share of the
    live applications; default synth.anomalies.DEFAULT_RATES)."""
    started = time.perf_counter()
    stage_seconds: dict[str, float] = {}
    progress = on_progress or (lambda stage, done, total: None)
    _ensure_room(engine)
    plan = plan_city(scale, seed)
    region_rows = level_rows(plan)
    departments = catalog_data.department_rows(plan)
    categories, items = catalog_data.catalogue_rows()
    banks = catalog_data.bank_rows()

    loader = Loader(engine, BUILD_STAMP)
    try:
        loader.pause_change_log()
        progress("行政区划与补贴目录", 0, 1)
        loader.insert_dicts("regions", region_rows)
        loader.insert_dicts("banks", banks)
        loader.insert_dicts("treasury_accounts", catalog_data.treasury_rows())
        loader.insert_dicts("departments", departments)
        loader.insert_dicts("subsidy_categories", categories)
        loader.insert_dicts("subsidy_items", items)
        loader.insert_dicts("item_standards", catalog_data.standard_rows(items, BUILD_STAMP))
        loader.insert_dicts("item_exclusions", catalog_data.exclusion_rows(items))
        loader.commit()
        progress("行政区划与补贴目录", 1, 1)

        totals = dict(households=0, persons=0, cards=0, beneficiaries=0, with_card=0)
        cases: list[tuple[int, str, ProxyCase]] = []
        planned = plan.population
        # ids continue after rows other areas may already have (none in an empty database)
        first_ids = {name: loader.max_id(name) + 1 for name in ("households", "persons", "cards")}
        jobs = _jobs(plan, first_ids, dates_as_text=not loader.postgres)
        progress("人口、家庭与社保卡", 0, planned)
        loader.drop_indexes(["households", "persons", "cards"])
        since_commit = 0
        for batch in _batches(jobs, workers if workers is not None else default_workers(planned)):
            loader.insert_rows("households", HOUSEHOLD_COLUMNS, batch.households, dates_ready=True)
            loader.insert_rows("persons", PERSON_COLUMNS, batch.persons, dates_ready=True)
            loader.insert_rows("cards", CARD_COLUMNS, batch.cards, dates_ready=True)
            for k, case in enumerate(batch.proxies, start=1):
                cases.append((case.person_id, f"DC{batch.township_code[:9]}{k:03d}", case))
            totals["households"] += len(batch.households)
            totals["persons"] += len(batch.persons)
            totals["cards"] += len(batch.cards)
            totals["beneficiaries"] += batch.beneficiaries
            totals["with_card"] += batch.beneficiaries_with_card
            since_commit += len(batch.persons)
            if since_commit >= COMMIT_EVERY:
                loader.commit()
                since_commit = 0
            progress("人口、家庭与社保卡", min(totals["persons"], planned), planned)
        loader.commit()
        progress("建立索引", 0, 1)
        loader.create_indexes(lambda done, total: progress("建立索引", done, total))

        cases.sort(key=lambda c: c[1])  # by case number, whatever order the townships came in
        progress("代管代持档案", 0, len(cases))
        with Session(bind=loader.conn) as session:
            proxies.write_cases(session, cases, BUILD_STAMP)
            session.commit()
        progress("代管代持档案", len(cases), len(cases))

        progress("演示账号", 0, 1)
        names = {r["code"]: r["full_name"] for r in region_rows}
        with Session(bind=loader.conn) as session:
            logins = create_demo_users(session, plan, names, BUILD_STAMP)
            # The bulk load bypasses the services, so the build itself goes on the audit trail.
            audit.record(session, None, "synth.build", "city", CITY_CODE,
                         system_clock.now(), detail={"scale": scale, "seed": seed, **totals})
            session.commit()
        progress("演示账号", 1, 1)

        demo_day = today or beijing_date(system_clock.now())
        progress("演示申请", 0, 1)
        with Session(bind=loader.conn) as session:
            demo = create_demo_applications(session, plan, demo_day, seed)
            session.commit()
        progress("演示申请", 1, 1)
        stage_seconds["people_and_demo"] = round(time.perf_counter() - started, 2)

        bulk = None
        if claims:
            bulk = write_claims(engine, loader, demo_day, seed, progress)
            stage_seconds["claims"] = bulk.seconds

        planted = None
        shared_rows = None
        if shared_data:
            mark = time.perf_counter()
            progress("共享数据", 0, 1)
            ws = shared.open_workspace(engine, seed, demo_day)
            try:
                shared_rows = shared.generate(ws, progress)
                stage_seconds["shared_generate"] = round(time.perf_counter() - mark, 2)
                if anomalies:
                    mark = time.perf_counter()
                    planted = planting.plant(ws, loader, demo_day, anomaly_rates, progress)
                    stage_seconds["anomalies"] = round(time.perf_counter() - mark, 2)
                mark = time.perf_counter()
                with Session(bind=loader.conn) as session:
                    shared.save(session, ws, system_clock.now(), scale=scale, progress=progress)
                    session.commit()
                stage_seconds["shared_save"] = round(time.perf_counter() - mark, 2)
                shared_rows = {code: ws.count(code) for code in shared_rows}
            finally:
                ws.close()

        loader.resume_change_log()
        progress("更新统计信息", 0, 1)
        loader.finish()
        progress("更新统计信息", 1, 1)

        flagged = 0
        if shared_data:
            mark = time.perf_counter()
            flagged = _city_run(engine, loader, progress)
            stage_seconds["city_run"] = round(time.perf_counter() - mark, 2)
    except BaseException:
        loader.rollback_and_restore_indexes()  # a failed build must not leave the tables unindexed
        raise
    finally:
        loader.close()

    return CityReport(
        scale=scale, seed=seed, regions=len(region_rows), households=totals["households"],
        persons=totals["persons"], beneficiaries=totals["beneficiaries"], cards=totals["cards"],
        beneficiaries_with_card=totals["with_card"], proxy_cases=len(cases), departments=len(departments),
        items=len(items), categories=len(categories), banks=len(banks), demo_logins=logins,
        seconds=round(time.perf_counter() - started, 2), applications=demo.total,
        applications_by_status=demo.by_status, demo_day=demo.demo_day, application_ids=demo.ids,
        claims=bulk.total if bulk else 0, claims_by_status=bulk.by_status if bulk else None,
        claim_ids=bulk.ids if bulk else None, shared_rows=shared_rows,
        planted=planted.counts if planted else None, expected_flags=len(planted.expected) if planted else 0,
        flagged=flagged, stage_seconds=stage_seconds,
    )


def _city_run(engine: Engine, loader: Loader, progress: Progress) -> int:
    """All rules over the whole city (interception.service.run_city): the planted anomalies become
    flags. Returns the flags raised."""
    from yikatong.interception.service import run_city

    progress("全市比对", 0, 1)
    with Session(bind=loader.conn) as session:
        run = run_city(engine, session, system_clock.now(), progress=lambda stage, done, total: progress(
            "全市比对", done, total) if stage.startswith("规则") else None)
        flagged = run.new_flags
        session.commit()
    progress("全市比对", 1, 1)
    return flagged
