"""Benchmark: 28 people using the platform at once, against the real server (uvicorn) on 127.0.0.1.

    .venv/bin/python benchmarks/mixed_load.py --seconds 120
    .venv/bin/python benchmarks/mixed_load.py --seconds 120 --database postgresql+psycopg://postgres@127.0.0.1:5432/postgres

Builds a small synthetic city (scale 0.005, without the bulk claims and shared data) in a scratch
database (a temporary SQLite file, or a new database on the given PostgreSQL server, dropped
afterwards), enters 400 农村低保 (ZS007) claims of 资中县 through the department-list path (they wait
at 县定 on the 民政 desk), starts `uvicorn yikatong.web.app:create_app` on a free local port and
runs, for --seconds, with httpx:

- 18 readers (county leader, supervisor, city finance, township reviewer): the inbox page, the
  inbox API, the application list, application pages and the API's application detail;
- 4 approvers at the same 县定 desk (county_handler and three colleagues of the same department),
  racing on the same inbox: each takes the top of the inbox and approves one application over the
  API, or the first five in one bulk decision;
- 2 village clerks entering one claim at a time at the counter, through the page form
  (POST /applications/new), timed;
- 4 department systems posting 5 claims at a time to POST /api/v1/applications with an
  Idempotency-Key, and sending every request a second time with the same key (a retry).

At the end it counts server errors (5xx, by path), doubled decisions (an application with two
approval records at the same station), lost writes (an application acknowledged with 2xx — a counter
claim's redirect, an API submission's ids — that is not in the database), and the p50/p95 of a
counter claim. No request leaves 127.0.0.1. Exit status 1 when any of the three counts is not 0.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from datetime import date
from pathlib import Path

import httpx

PASSWORD = "ykt-demo-2026"
COUNTY = "511025000000"  # 资中县: the demo county handler's
DEPARTMENT_ITEM = "ZS007"  # 农村低保: per person, monthly; department lists enter at 县定
COUNTER_ITEM = "ZS017"  # per person, monthly: a clerk can enter many claims for the few villagers
READERS = ("county_leader", "supervisor", "city_finance", "township_reviewer")
SYSTEMS = 4
APPROVERS = 4


def months(first_year: int, last: date) -> list[str]:
    out = []
    for year in range(first_year, last.year + 1):
        for month in range(1, 13):
            if (year, month) < (last.year, last.month):
                out.append(f"{year}-{month:02d}")
    return out


# ---------------------------------------------------------------- the city


def scratch(database: str, tmp: Path) -> str:
    from yikatong.core.db import create_database

    url = create_database(database, "ykt_load") if database else f"sqlite:///{tmp / 'city.db'}"
    os.environ["YKT_DATABASE_URL"] = url
    os.environ["YKT_DATA_DIR"] = str(tmp / "data")
    os.environ.setdefault("YKT_SECRET_KEY", "benchmark-secret-key")
    return url


def build(scale: float, seed: int, waiting: int) -> dict:
    """The city, three colleagues of the county handler, `waiting` claims at 县定, and what the
    simulated users need to know (clear ID numbers of the department systems' people, villagers)."""
    from sqlalchemy import select

    from yikatong.core import crypto
    from yikatong.core.clock import system_clock
    from yikatong.core.db import engine, transaction
    from yikatong.core.migrate import upgrade
    from yikatong.core.protect import reveal
    from yikatong.core.settings import reset_settings
    from yikatong.registry.models import Person
    from yikatong.security.models import User
    from yikatong.security.scope import within
    from yikatong.security.service import create_user
    from yikatong.synth.city import build_city
    from yikatong.workflow import service
    from yikatong.workflow.models import Source

    reset_settings()
    upgrade()
    started = time.perf_counter()
    report = build_city(engine(), scale, seed, claims=False, shared_data=False)
    now = system_clock.now()
    with transaction() as s:
        handler = s.scalar(select(User).where(User.username == "county_handler"))
        for k in range(1, APPROVERS):
            create_user(s, f"county_handler{k}", PASSWORD, handler.role, handler.region_code, f"民政局 审核员{k}",
                        now, department_code=handler.department_code)
        people = s.execute(select(Person.id, Person.id_number_enc, Person.name)
                           .where(within(Person.region_code, COUNTY)).order_by(Person.id)).all()
        # the desk's backlog, entered as a department list is
        backlog = [service.Claim(ref=k, person_id=p.id, item_code=DEPARTMENT_ITEM, period="2026-01")
                   for k, p in enumerate(people[:waiting], start=1)]
        prepared = service.prepare_claims(s, handler, backlog, Source.LIST, now)
        waiting_ids = service.enter_claims(s, handler, prepared, Source.LIST, now)
        villages = {}
        for clerk in ("village_clerk", "village_clerk2"):
            region = s.scalar(select(User.region_code).where(User.username == clerk))
            villages[clerk] = list(s.scalars(select(Person.id).where(Person.region_code == region)
                                             .order_by(Person.id)))
    print(f"city: scale {scale}, {report.persons:,} persons, {len(people):,} in 资中县, {len(waiting_ids)} claims "
          f"waiting at 县定; built in {time.perf_counter() - started:.0f} s")
    return {"people": [(reveal(crypto.ID_NUMBER, p.id_number_enc), p.name) for p in people[waiting:]],
            "villages": villages, "waiting": waiting_ids}


# ---------------------------------------------------------------- the server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int, log: Path) -> subprocess.Popen:
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parent.parent / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "yikatong.web.app:create_app", "--factory", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning"], env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/login", timeout=2).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.3)
    process.terminate()
    raise SystemExit(f"the server did not start; see {log}")


# ---------------------------------------------------------------- the users


class Tally:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.status: Counter[tuple[str, int]] = Counter()
        self.server_errors: Counter[str] = Counter()
        self.samples: list[str] = []
        self.acknowledged: set[int] = set()  # application ids answered 2xx
        self.counter_seconds: list[float] = []
        self.transport_errors = 0

    def note(self, kind: str, response: httpx.Response) -> None:
        with self.lock:
            self.status[(kind, response.status_code)] += 1
            if response.status_code >= 500:
                self.server_errors[kind] += 1
                if len(self.samples) < 5:
                    text = response.text[-300:] if response.text.startswith("<") else response.text[:300]
                    self.samples.append(f"{kind} {response.status_code} after "
                                        f"{response.elapsed.total_seconds():.1f} s: {text}")


def login(client: httpx.Client, username: str) -> dict[str, str]:
    for _ in range(5):
        r = client.post("/api/v1/auth/login", json={"username": username, "password": PASSWORD})
        if r.status_code == 200:
            return {"Authorization": f"Bearer {r.json()['token']}"}
        time.sleep(1)
    raise SystemExit(f"login of {username} failed: {r.status_code} {r.text[:200]}")


def reader(base: str, username: str, tally: Tally, stop: threading.Event, ids: list[int], rnd: random.Random):
    with httpx.Client(base_url=base, timeout=60) as c:
        h = login(c, username)
        reviews = username != "supervisor"
        while not stop.is_set():
            choice = rnd.random()
            if choice < 0.25:
                kind, r = "GET /applications", c.get("/applications", headers=h)
            elif choice < 0.45 and reviews:
                kind, r = "GET /api/v1/inbox", c.get("/api/v1/inbox", headers=h,
                                                     params={"page": rnd.randint(1, 5)})
            elif choice < 0.6:
                kind, r = "GET /applications?view=list", c.get("/applications", headers=h,
                                                               params={"view": "list"})
            elif choice < 0.8:
                kind = "GET /applications/{id}"
                r = c.get(f"/applications/{rnd.choice(ids)}", headers=h)
            else:
                kind = "GET /api/v1/applications/{id}"
                r = c.get(f"/api/v1/applications/{rnd.choice(ids)}", headers=h)
            tally.note(kind, r)


def approver(base: str, username: str, tally: Tally, stop: threading.Event, rnd: random.Random):
    with httpx.Client(base_url=base, timeout=60) as c:
        h = login(c, username)
        while not stop.is_set():
            r = c.get("/api/v1/inbox", headers=h, params={"size": 10})
            tally.note("GET /api/v1/inbox", r)
            rows = r.json().get("rows", []) if r.status_code == 200 else []
            if not rows:
                time.sleep(0.2)
                continue
            ids = [row["id"] for row in rows]
            if rnd.random() < 0.5:  # the version seen in the inbox goes back with the decision
                r = c.post(f"/api/v1/applications/{ids[0]}/decision", headers=h,
                           json={"decision": "approve", "opinion": "", "version": rows[0]["version"]})
                tally.note("POST /api/v1/applications/{id}/decision", r)
            else:
                r = c.post("/api/v1/applications/bulk-decision", headers=h,
                           json={"decision": "approve", "opinion": "", "ids": ids[:5]})
                tally.note("POST /api/v1/applications/bulk-decision", r)


def clerk(base: str, username: str, people: list[int], tally: Tally, stop: threading.Event, today: date):
    periods = months(2020, today)
    with httpx.Client(base_url=base, timeout=60) as c:
        h = login(c, username)
        for period in periods:
            for person_id in people:
                if stop.is_set():
                    return
                started = time.perf_counter()
                r = c.post("/applications/new", headers=h, data={
                    "person_id": str(person_id), "item_code": COUNTER_ITEM, "period": period, "note": "窗口受理"})
                took = time.perf_counter() - started
                tally.note("POST /applications/new", r)
                if r.status_code == 303:
                    app_id = int(r.headers["location"].split("/applications/")[1].split("?")[0])
                    with tally.lock:
                        tally.acknowledged.add(app_id)
                        tally.counter_seconds.append(took)


def system(base: str, k: int, people: list[tuple[str, str]], tally: Tally, stop: threading.Event, today: date):
    mine = people[k::SYSTEMS]
    periods = months(2024, today)
    with httpx.Client(base_url=base, timeout=120) as c:
        h = login(c, "county_handler")
        for period in periods:
            for start in range(0, len(mine) - 4, 5):
                if stop.is_set():
                    return
                body = {"claims": [{"id_number": number, "name": name, "item_code": DEPARTMENT_ITEM, "period": period}
                                   for number, name in mine[start:start + 5]]}
                key = uuid.uuid4().hex
                first_ids = None
                for attempt in range(2):  # the system retries every request with the same key
                    r = c.post("/api/v1/applications", headers={**h, "Idempotency-Key": key}, json=body)
                    tally.note("POST /api/v1/applications" + (" (retry)" if attempt else ""), r)
                    if r.status_code in (200, 201):
                        ids = [a["id"] for a in r.json()["applications"]]
                        if first_ids is not None and ids != first_ids:
                            with tally.lock:
                                tally.samples.append(f"a retry answered other ids: {first_ids} / {ids}")
                        first_ids = ids
                        with tally.lock:
                            tally.acknowledged.update(ids)


# ---------------------------------------------------------------- the count


def count(tally: Tally) -> tuple[int, int]:
    """(doubled decisions, lost writes), read from the database."""
    from sqlalchemy import func, select

    from yikatong.core.db import new_session
    from yikatong.workflow.models import Action, Application, ReviewRecord

    with new_session() as s:
        doubled = s.execute(select(ReviewRecord.application_id, ReviewRecord.step).where(
            ReviewRecord.action == Action.APPROVE.value).group_by(ReviewRecord.application_id, ReviewRecord.step)
            .having(func.count() > 1)).all()
        acknowledged = sorted(tally.acknowledged)
        found: set[int] = set()
        for start in range(0, len(acknowledged), 900):
            found.update(s.scalars(select(Application.id).where(
                Application.id.in_(acknowledged[start:start + 900]))))
    return len(doubled), len(set(acknowledged) - found)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=120)
    parser.add_argument("--scale", type=float, default=0.005)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--waiting", type=int, default=400, help="claims waiting at 县定 at the start")
    parser.add_argument("--database", default="", help="a PostgreSQL server URL (default: a SQLite file)")
    parser.add_argument("--readers", type=int, default=18, help="readers among the users (default 18: 28 in all)")
    args = parser.parse_args()
    if not 1 <= args.seconds <= 1800:
        raise SystemExit("--seconds: 1 to 1800")

    tmp = Path(tempfile.mkdtemp(prefix="ykt-load-"))
    url = scratch(args.database, tmp)
    server = None
    try:
        city = build(args.scale, args.seed, args.waiting)
        port = free_port()
        server = start_server(port, tmp / "server.log")
        base = f"http://127.0.0.1:{port}"
        tally, stop = Tally(), threading.Event()
        today = date.today()
        ids = list(city["waiting"])
        rnd = random.Random(args.seed)
        users = []
        for k in range(args.readers):
            users.append(threading.Thread(target=reader, args=(base, READERS[k % len(READERS)], tally, stop, ids,
                                                               random.Random(rnd.random()))))
        for k in range(APPROVERS):
            name = "county_handler" if k == 0 else f"county_handler{k}"
            users.append(threading.Thread(target=approver, args=(base, name, tally, stop,
                                                                 random.Random(rnd.random()))))
        for name, people in city["villages"].items():
            users.append(threading.Thread(target=clerk, args=(base, name, people, tally, stop, today)))
        for k in range(SYSTEMS):
            users.append(threading.Thread(target=system, args=(base, k, city["people"], tally, stop, today)))
        print(f"{len(users)} users for {args.seconds} s against {base} "
              f"({'PostgreSQL' if args.database else 'SQLite'}) ...")
        started = time.perf_counter()
        for u in users:
            u.start()
        stop.wait(args.seconds)
        stop.set()
        for u in users:
            u.join(180)
        elapsed = time.perf_counter() - started

        doubled, lost = count(tally)
        errors = sum(tally.server_errors.values())
        requests = sum(tally.status.values())
        print(f"\n{requests:,} requests in {elapsed:.0f} s ({requests / elapsed:.0f}/s)")
        kinds = sorted({k for k, _ in tally.status})
        for kind in kinds:
            codes = ", ".join(f"{code}: {n}" for (k, code), n in sorted(tally.status.items()) if k == kind)
            print(f"  {kind:<44} {codes}")
        seconds = sorted(tally.counter_seconds)
        if seconds:
            p95 = seconds[min(len(seconds) - 1, int(len(seconds) * 0.95))]
            print(f"\ncounter claims: {len(seconds)}, p50 {statistics.median(seconds) * 1000:.0f} ms, "
                  f"p95 {p95 * 1000:.0f} ms, max {seconds[-1] * 1000:.0f} ms")
        print(f"server errors (5xx): {errors}  {dict(tally.server_errors) or ''}")
        print(f"doubled decisions:   {doubled}")
        print(f"lost writes:         {lost} (of {len(tally.acknowledged):,} applications acknowledged)")
        for sample in tally.samples:
            print("  " + sample)
        failed = errors or doubled or lost
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
        from yikatong.core.db import drop_database, reset_engine

        reset_engine()
        if args.database:
            drop_database(url)
        shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
