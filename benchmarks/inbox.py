"""Benchmark: one reviewer's inbox (待办) with 100,000 applications waiting, by service call and over HTTP.

    .venv/bin/python benchmarks/inbox.py
    .venv/bin/python benchmarks/inbox.py --database postgresql+psycopg://postgres@127.0.0.1:5432/postgres

The reviewer is the demo county handler of 资中县民政局 (county 511025, sector 民政). Department lists
enter at 县定, so after a month's 民政 lists a county department's desk is where 100,000 claims wait
at once (at scale 1, 资中县 has about 800,000 residents: 100,000 claims is 低保, 特困 and the old-age
allowances of one or two months). The benchmark builds a synthetic city (scale 0.05; only the
number of applications matters for the inbox, the residents are reused across months and items),
then enters through workflow.service (as department lists do):

- 100,000 民政 claims of 资中县 at 县定: ZS007 农村低保 for 2026-10 and 2026-11, SD004 养老服务补贴 for
  2026-11, entered on the last 20 working days, so deadlines spread over 20 days and about half are
  overdue on the benchmark's day;
- around them, what the handler must not see: 20,000 耕地地力保护补贴 (农业农村) claims of the same
  county at 县定, and 30,000 低保 claims of the other counties at 县定.

Then it times `workflow.service.inbox()` (a new session per request, as a web request has) and
`GET /api/v1/inbox` through the real app (TestClient, bearer token) for 200 requests mixing no filter,
item, village (a village and a township), overdue, due-before, and deep pages (50 and 100), 20 rows a
page. Prints p50 and p95 per kind and overall. On PostgreSQL the tables are ANALYZEd after loading
(autovacuum would do the same); SQLite is measured without statistics, as the application runs it.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from department_list import scratch_city  # noqa: E402

COUNTY = "511025000000"
TODAY = date(2026, 11, 30)  # a Monday
REQUESTS = 200


def working_days_back(n: int) -> list[date]:
    days, day = [], TODAY
    while len(days) < n:
        day -= timedelta(days=1)
        if day.weekday() < 5:
            days.append(day)
    return days


def load(session, handler) -> dict[str, int]:
    """Enter the applications (see the module docstring); returns counts by kind."""
    from sqlalchemy import select

    from yikatong.registry.models import Person
    from yikatong.security.scope import within
    from yikatong.workflow.models import Application, Source
    from yikatong.workflow.service import Claim, enter_claims, prepare_claims

    own = list(session.scalars(select(Person.id).where(within(Person.region_code, COUNTY)).order_by(Person.id)))
    others = list(session.scalars(select(Person.id).where(~within(Person.region_code, COUNTY))
                                  .order_by(Person.id).limit(30_000)))
    # the demo city's own applications stay; their claimants are left out of the same item and period
    taken = set(session.execute(select(Application.person_id, Application.item_code, Application.period)).all())
    own = [p for p in own if not any((p, i, q) in taken for i, q in (("ZS007", "2026-11"), ("ZS007", "2026-10"),
                                                                     ("SD004", "2026-11"), ("ZS001", "2026")))]
    others = [p for p in others if (p, "ZS007", "2026-11") not in taken]
    mine = [(p, "ZS007", "2026-11") for p in own] + [(p, "ZS007", "2026-10") for p in own]
    mine += [(p, "SD004", "2026-11") for p in own[: 100_000 - len(mine)]]
    mine = mine[:100_000]
    noise = [(p, "ZS001", "2026", "3.5") for p in own[:20_000]]
    elsewhere = [(p, "ZS007", "2026-11") for p in others]
    days = working_days_back(20)
    counts: dict[str, int] = {}

    def enter(actor, rows: list[tuple], label: str, spread: bool) -> None:
        batches = len(days) if spread else 1
        size = -(-len(rows) // batches)
        for b in range(batches):
            part = rows[b * size:(b + 1) * size]
            if not part:
                continue
            now = datetime.combine(days[b], datetime.min.time()).replace(hour=10)
            claims = [Claim(ref=i, person_id=r[0], item_code=r[1], period=r[2], quantity=r[3] if len(r) > 3 else None)
                      for i, r in enumerate(part)]
            prepared = prepare_claims(session, actor, claims, Source.LIST, now)
            assert not prepared.errors, prepared.errors[:3]
            enter_claims(session, actor, prepared, Source.LIST, now, source_ref=f"bench:{label}:{b}")
        counts[label] = len(rows)

    random.Random(7).shuffle(mine)
    enter(handler, mine, "民政 at 县定, 资中县 (the handler's)", spread=True)
    enter(None, noise, "农业农村 at 县定, 资中县", spread=True)
    enter(None, elsewhere, "民政 at 县定, other counties", spread=True)
    return counts


def requests_mix(session, handler) -> list[tuple[str, dict]]:
    """(kind, filter and page) x 200, in a fixed shuffled order."""
    from sqlalchemy import func, select

    from yikatong.workflow.models import Application

    villages = [r[0] for r in session.execute(
        select(Application.region_code, func.count()).where(Application.owner_region == COUNTY,
                                                            Application.sector == "民政")
        .group_by(Application.region_code).order_by(func.count().desc()).limit(10)).all()]
    township = villages[0][:9] + "000"
    kinds: list[tuple[str, dict]] = []
    kinds += [("no filter, page 1", {})] * 40
    kinds += [("item ZS007, page 1", {"item_code": "ZS007"})] * 20
    kinds += [("item SD004, page 1", {"item_code": "SD004"})] * 10
    kinds += [("village, page 1", {"village": v}) for v in villages * 2]
    kinds += [("township, page 1", {"village": township})] * 10
    kinds += [("overdue, page 1", {"overdue": True})] * 20
    kinds += [("overdue + item, page 3", {"overdue": True, "item_code": "ZS007", "page": 3})] * 10
    kinds += [("due before, page 1", {"due_before": TODAY + timedelta(days=3)})] * 20
    kinds += [("no filter, page 50", {"page": 50})] * 20
    kinds += [("item ZS007, page 100", {"item_code": "ZS007", "page": 100})] * 10
    kinds += [("village, page 10", {"village": villages[0], "page": 10})] * 20
    random.Random(11).shuffle(kinds)
    assert len(kinds) == REQUESTS, len(kinds)
    return kinds


def percentiles(samples: list[float]) -> tuple[float, float]:
    samples = sorted(samples)
    return statistics.median(samples), samples[max(0, round(len(samples) * 0.95) - 1)]


def report(title: str, timings: dict[str, list[float]]) -> None:
    everything = [t for ts in timings.values() for t in ts]
    p50, p95 = percentiles(everything)
    print(f"\n{title}: {len(everything)} requests, p50 {p50:.0f} ms, p95 {p95:.0f} ms, max {max(everything):.0f} ms")
    print("| request | n | p50 ms | p95 ms |\n| --- | ---: | ---: | ---: |")
    for kind, ts in sorted(timings.items()):
        a, b = percentiles(ts)
        print(f"| {kind} | {len(ts)} | {a:.0f} | {b:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--database", default="", help="a PostgreSQL server URL; default: a temporary SQLite file")
    parser.add_argument("--reuse", default="", help="time an inbox database kept by an earlier --keep run")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database and print its URL")
    args = parser.parse_args()

    if args.reuse:
        import os

        from yikatong.core.settings import reset_settings

        os.environ["YKT_DATABASE_URL"] = args.reuse
        os.environ.setdefault("YKT_SECRET_KEY", "benchmark-secret-key")
        reset_settings()
        run(args.reuse.startswith("postgresql"), load_first=False)
        return
    tmp = Path(tempfile.mkdtemp(prefix="ykt-bench-inbox-"))
    url, drop = scratch_city(args.database, args.scale, args.seed, tmp)
    try:
        run(bool(args.database))
    finally:
        if args.keep:
            print(f"kept: --reuse {url}")
        else:
            drop()


def run(postgres: bool, load_first: bool = True) -> None:
    from fastapi.testclient import TestClient
    from sqlalchemy import select, text

    from yikatong.core.clock import FixedClock
    from yikatong.core.db import new_session, transaction
    from yikatong.security.models import User
    from yikatong.web.app import create_app
    from yikatong.workflow import service

    if load_first:
        t = time.perf_counter()
        with transaction() as s:
            handler = s.scalar(select(User).where(User.username == "county_handler"))
            counts = load(s, handler)
        if postgres:
            with transaction() as s:
                s.execute(text("ANALYZE"))
        print(f"entered in {time.perf_counter() - t:.0f} s: " + "; ".join(f"{k} {n:,}" for k, n in counts.items()))

    with new_session() as s:
        handler = s.scalar(select(User).where(User.username == "county_handler"))
        box = service.inbox(s, handler, service.InboxFilter(), TODAY)
        print(f"county_handler's inbox: {box.total:,} waiting, {box.overdue:,} overdue, "
              f"{box.pages:,} pages; by item {[(c, n) for c, _, n in box.by_item]}")
        mix = requests_mix(s, handler)
        handler_id = handler.id

    timings: dict[str, list[float]] = {}
    for kind, params in mix:
        params = dict(params)
        page = params.pop("page", 1)
        t0 = time.perf_counter()
        with new_session() as s:
            user = s.get(User, handler_id)
            box = service.inbox(s, user, service.InboxFilter(**params), TODAY, page, 20)
            assert box.rows, kind
        timings.setdefault(kind, []).append((time.perf_counter() - t0) * 1000)
    report("service.inbox()", timings)

    app = create_app(clock=FixedClock(datetime.combine(TODAY, datetime.min.time()).replace(hour=9)))
    with TestClient(app) as client:
        r = client.post("/api/v1/auth/login", json={"username": "county_handler", "password": "ykt-demo-2026"})
        auth = {"Authorization": f"Bearer {r.json()['token']}"}
        timings = {}
        for kind, params in mix:
            query = {k: (v.isoformat() if isinstance(v, date) else str(v).lower() if isinstance(v, bool) else v)
                     for k, v in params.items()}
            t0 = time.perf_counter()
            r = client.get("/api/v1/inbox", params=query, headers=auth)
            elapsed = (time.perf_counter() - t0) * 1000
            assert r.status_code == 200 and r.json()["rows"], (kind, r.status_code, r.text[:200])
            timings.setdefault(kind, []).append(elapsed)
        report("GET /api/v1/inbox (TestClient, JSON of 20 rows)", timings)


if __name__ == "__main__":
    main()
