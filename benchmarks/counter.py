"""Benchmark: one claim at a time at the village counter and through the business-system API, each
answered only after its screening, against the real server (`ykt serve`) on 127.0.0.1.

Reads a city that is already built (`ykt synth`), as benchmarks/job_and_counter.py does:

    YKT_DATABASE_URL=sqlite:////tmp/s1/s1.db YKT_DATA_DIR=/tmp/s1/data .venv/bin/python benchmarks/counter.py
    .venv/bin/python benchmarks/counter.py --database postgresql+psycopg://postgres@127.0.0.1:5432/ykt_s1
    # YKT_DATA_DIR must point at the same city's data directory (its shared data sets)

1. picks 2 × --claims + --warmup claims the counter will take (job_and_counter.pick_claims: persons of
   the demo village clerk's village, item --item, months with no live claim, checked by
   workflow.service.prepare_claims in a rolled-back session);
2. starts `ykt serve` (one process) on a free port and logs in the village clerk (the counter) and the
   demo county handler (a department's business system, which holds application.list);
3. enters --warmup claims of --item through the counter (not counted: the server's first requests
   load code);
4. enters --claims claims of --item one after another through the counter form (POST
   /applications/new: the server commits the claim, screens it with every active rule and answers
   303), then --claims claims of --api-item (民政's 农村低保 by default) through the API (POST
   /api/v1/applications, one claim per request with its own Idempotency-Key, ID number and name in
   the body: entered at the item's list station, committed, screened, 201);
5. reports p50/p95/max of each door, answers other than 303/201, and how many claims were screened
   (one rule run of scope `submit` per request).

The claims are LEFT in the database (committed, note "基准测试 counter"): run it on a scratch city; a
second run takes other (person, period) pairs. Exit status 1 on a wrong answer or an unscreened
claim, 2 when everything is right but a p95 is 300 ms or more (the target).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from datetime import date
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from job_and_counter import (  # noqa: E402 - the sibling benchmark's helpers
    PASSWORD,
    free_port,
    pct,
    pick_claims,
    screened,
    start_server,
    stop_process,
    summary,
)

NOTE = "基准测试 counter"
TARGET_SECONDS = 0.3


def with_identity(claims: list[dict]) -> list[dict]:
    """The ID number (in clear, as a business system holds it) and name of each claim's person."""
    from sqlalchemy import select

    from yikatong.core.db import new_session
    from yikatong.core.protect import reveal
    from yikatong.registry.models import Person

    with new_session() as s:
        people = {p.id: p for p in s.scalars(select(Person).where(Person.id.in_({c["person_id"] for c in claims})))}
        return [dict(c, id_number=reveal("id_number", people[c["person_id"]].id_number_enc),
                     name=people[c["person_id"]].name) for c in claims]


def at_counter(client: httpx.Client, headers: dict[str, str], claim: dict) -> tuple[float, bool]:
    started = time.perf_counter()
    r = client.post("/applications/new", headers=headers, data={
        "person_id": str(claim["person_id"]), "item_code": claim["item_code"], "period": claim["period"],
        "note": NOTE})
    return time.perf_counter() - started, r.status_code == 303


def through_api(client: httpx.Client, headers: dict[str, str], claim: dict) -> tuple[float, bool]:
    body = {"claims": [{"id_number": claim["id_number"], "name": claim["name"], "item_code": claim["item_code"],
                        "period": claim["period"], "note": NOTE}]}
    started = time.perf_counter()
    r = client.post("/api/v1/applications", json=body, headers={**headers, "Idempotency-Key": uuid.uuid4().hex})
    return time.perf_counter() - started, r.status_code == 201


def login(client: httpx.Client, username: str) -> dict[str, str]:
    r = client.post("/api/v1/auth/login", json={"username": username, "password": PASSWORD})
    if r.status_code != 200:
        raise SystemExit(f"login of {username} failed: {r.status_code} {r.text[:200]}")
    return {"Authorization": f"Bearer {r.json()['token']}"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", default="", help="database URL (default: YKT_DATABASE_URL)")
    parser.add_argument("--claims", type=int, default=50, help="claims through each door")
    parser.add_argument("--warmup", type=int, default=3, help="claims entered first, not counted")
    parser.add_argument("--clerk", default="village_clerk", help="the clerk at the counter (a demo user)")
    parser.add_argument("--system", default="county_handler", help="the business system's user (a demo user)")
    parser.add_argument("--item", default="ZS017", help="the item claimed at the counter")
    parser.add_argument("--api-item", default="ZS007",
                        help="the item claimed through the API (one of the system user's department)")
    args = parser.parse_args()
    if args.database:
        os.environ["YKT_DATABASE_URL"] = args.database
    if not 1 <= args.claims <= 500:
        raise SystemExit("--claims: 1 to 500")

    import yikatong.models  # noqa: F401 - every mapper, before the first query
    from yikatong.core.clock import system_clock
    from yikatong.core.db import engine
    from yikatong.core.settings import get_settings, reset_settings

    reset_settings()
    eng = engine()
    backend = "PostgreSQL" if eng.url.get_backend_name() == "postgresql" else "SQLite"
    print(f"database: {eng.url.render_as_string(hide_password=True)} ({backend}), data dir {get_settings().data_dir}")
    claims, village = pick_claims(args.clerk, args.item, args.warmup + args.claims, date.today())
    api, _ = pick_claims(args.clerk, args.api_item, args.claims, date.today())
    api = with_identity(api)
    warm, counter = claims[:args.warmup], claims[args.warmup:]
    print(f"{len(claims)} counter claims ({args.item}) and {len(api)} API claims ({args.api_item}) "
          f"for persons of village {village}")

    tmp = Path(tempfile.mkdtemp(prefix="ykt-counter-"))
    server = None
    load_before = os.getloadavg()
    times: dict[str, list[float]] = {"counter": [], "api": []}
    wrong = 0
    try:
        port = free_port()
        server = start_server(port, tmp / "server.log", time.monotonic() + 300)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
            clerk, system = login(client, args.clerk), login(client, args.system)
            since = system_clock.now()
            for claim in warm:
                at_counter(client, clerk, claim)
            for door, enter, headers, batch in (("counter", at_counter, clerk, counter),
                                                ("api", through_api, system, api)):
                for claim in batch:
                    took, ok = enter(client, headers, claim)
                    times[door].append(took)
                    wrong += not ok
    finally:
        stop_process(server)
    load_after = os.getloadavg()
    runs, _ = screened([], since)
    print(f"load average (1 min) {load_before[0]:.2f} -> {load_after[0]:.2f}")
    for door, values in times.items():
        print(f"  {door:<8} {summary(values)}")
    print(f"wrong answers: {wrong}; screened requests: {runs} of {args.warmup + 2 * args.claims}; "
          f"server log {tmp / 'server.log'}")
    if wrong or runs < args.warmup + 2 * args.claims:
        return 1
    return 2 if any(pct(v, 0.95) >= TARGET_SECONDS for v in times.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
