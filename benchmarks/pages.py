"""Benchmark: the pages people open all day, over HTTP against the real server (`ykt serve`) on
127.0.0.1 — the interception statistics (拦截统计), the flags list (存疑信息) and the inbox (待办) —
for each demo user who sees them.

Reads a city that is already built (`ykt synth`), as benchmarks/job_and_counter.py does, and writes
nothing but the login sessions and the audit rows of reading:

    YKT_DATABASE_URL=sqlite:////tmp/s1/s1.db YKT_DATA_DIR=/tmp/s1/data .venv/bin/python benchmarks/pages.py
    .venv/bin/python benchmarks/pages.py --database postgresql+psycopg://postgres@127.0.0.1:5432/ykt_s1

What it does:

1. picks the filters from the city: the rule with most flags, the 资中县 民政 item with most flags,
   the demo township reviewer's township, the county 资中县 and the Beijing day of the newest flag;
2. starts `ykt serve` on a free port of 127.0.0.1 (one process, as the default deployment) and logs
   in the demo users city_finance, supervisor (city-wide), county_handler (资中县民政局: the county,
   the 民政 items), township_reviewer (a township) and village_clerk (a village), Bearer tokens;
3. requests each (page, user) --warmup times (default 3, not counted), then --runs times (default
   30), one request at a time, and times each from sending the request to the last byte of the answer;
4. prints p50, p95 and max per page and user, and the load average before and after.

Which pages: the statistics page (default, a drill-down, a date range) and its JSON; the flags page
(default 待核实, status all, a rule, an item, a township, page 20) and its JSON; the inbox page
(/applications) and GET /api/v1/inbox (default, overdue, an item, page 50) for the users with a
station, and the supervisor's list (/applications, who has none). Users without the permission
(the township reviewer and the village clerk cannot read flags) are not asked.

Exit status 1 when an answer was not 200, 2 when all were 200 but a p95 is --target ms (300) or more.
No request leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from job_and_counter import free_port, start_server, stop_process  # noqa: E402 - the sibling benchmark's helpers

PASSWORD = "ykt-demo-2026"  # the demo accounts' (synth.users.DEMO_PASSWORD)
USERS = ("city_finance", "supervisor", "county_handler", "township_reviewer", "village_clerk")
FLAG_READERS = ("city_finance", "supervisor", "county_handler")
REVIEWERS = ("city_finance", "county_handler", "township_reviewer", "village_clerk")
COUNTY = "511025000000"  # 资中县, the county of the demo county handler


@dataclass
class Probe:
    page: str  # what is asked, for the table
    path: str
    params: dict[str, str]
    users: tuple[str, ...]


def login(client: httpx.Client, username: str) -> dict[str, str]:
    r = client.post("/api/v1/auth/login", json={"username": username, "password": PASSWORD})
    if r.status_code != 200:
        raise SystemExit(f"login of {username} failed: {r.status_code} {r.text[:200]}")
    return {"Authorization": f"Bearer {r.json()['token']}"}


# ---------------------------------------------------------------- what to ask


def pick_filters() -> dict[str, str]:
    """The filters the probes use, read from the city (nothing is written)."""
    from sqlalchemy import func, select

    import yikatong.models  # noqa: F401 - every mapper, before the first query
    from yikatong.core.clock import beijing_date
    from yikatong.core.db import new_session
    from yikatong.interception.models import Flag
    from yikatong.interception.service import sector_items
    from yikatong.security.models import User
    from yikatong.security.scope import within
    from yikatong.workflow.service import user_sector

    with new_session() as s:
        users = {u.username: u for u in s.scalars(select(User).where(User.username.in_(USERS)))}
        missing = set(USERS) - set(users)
        if missing:
            raise SystemExit(f"demo users missing: {', '.join(sorted(missing))} (is this a `ykt synth` city?)")
        rule = s.execute(select(Flag.rule_code, func.count()).group_by(Flag.rule_code)
                         .order_by(func.count().desc()).limit(1)).first()
        handler = users["county_handler"]
        item = s.execute(select(Flag.item_code, func.count())
                         .where(within(Flag.region_code, handler.region_code),
                                Flag.item_code.in_(sector_items(user_sector(s, handler))))
                         .group_by(Flag.item_code).order_by(func.count().desc()).limit(1)).first()
        newest = s.scalar(select(func.max(Flag.raised_at)))
    if rule is None or item is None or newest is None:
        raise SystemExit("the city has no flags: build it with `ykt synth` (its city run raises them)")
    day = beijing_date(newest)
    return {"rule": rule[0], "item": item[0], "township": users["township_reviewer"].region_code,
            "county": handler.region_code, "date_from": day.replace(day=1).isoformat(), "date_to": day.isoformat()}


def probes(f: dict[str, str]) -> list[Probe]:
    city, county = ("city_finance", "supervisor"), ("county_handler",)
    return [
        Probe("统计 /interception/stats", "/interception/stats", {}, FLAG_READERS),
        Probe("统计 下钻一级", "/interception/stats", {"region": f["county"]}, city),
        Probe("统计 下钻一级", "/interception/stats", {"region": f["township"]}, county),
        Probe("统计 日期范围", "/interception/stats", {"date_from": f["date_from"], "date_to": f["date_to"]},
              ("supervisor", "county_handler")),
        Probe("统计 API", "/api/v1/interception/stats", {}, ("supervisor", "county_handler")),
        Probe("存疑 /flags（待核实）", "/flags", {}, FLAG_READERS),
        Probe("存疑 全部状态", "/flags", {"status": "all"}, ("supervisor", "county_handler")),
        Probe("存疑 按规则", "/flags", {"rule": f["rule"]}, ("supervisor", "county_handler")),
        Probe("存疑 按项目", "/flags", {"item": f["item"]}, ("supervisor", "county_handler")),
        Probe("存疑 按乡镇", "/flags", {"region": f["township"]}, ("supervisor", "county_handler")),
        Probe("存疑 第20页", "/flags", {"page": "20"}, ("supervisor", "county_handler")),
        Probe("存疑 API", "/api/v1/flags", {}, ("supervisor", "county_handler")),
        Probe("待办 /applications", "/applications", {}, REVIEWERS),
        Probe("待办 逾期", "/applications", {"overdue": "true"}, ("city_finance", "county_handler")),
        Probe("待办 按项目", "/applications", {"item": f["item"]}, ("county_handler",)),
        Probe("待办 API", "/api/v1/inbox", {}, REVIEWERS),
        Probe("待办 API 第50页", "/api/v1/inbox", {"page": "50"}, ("city_finance", "county_handler")),
        Probe("申请列表（监督）", "/applications", {}, ("supervisor",)),
    ]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", default="", help="database URL (default: YKT_DATABASE_URL)")
    parser.add_argument("--runs", type=int, default=30, help="timed requests per page and user")
    parser.add_argument("--warmup", type=int, default=3, help="requests per page and user before timing")
    parser.add_argument("--target", type=float, default=300, help="p95 target in ms (exit status 2 above)")
    parser.add_argument("--only", default="", help="only the pages whose name contains this text")
    args = parser.parse_args()
    if args.database:
        os.environ["YKT_DATABASE_URL"] = args.database
    if not 1 <= args.runs <= 1000 or not 0 <= args.warmup <= 100:
        raise SystemExit("--runs: 1 to 1000, --warmup: 0 to 100")

    from yikatong.core.db import engine
    from yikatong.core.settings import get_settings, reset_settings

    reset_settings()
    url = engine().url
    backend = "PostgreSQL" if url.get_backend_name() == "postgresql" else "SQLite"
    print(f"database: {url.render_as_string(hide_password=True)} ({backend}), data dir {get_settings().data_dir}")
    filters = pick_filters()
    print("filters: " + ", ".join(f"{k}={v}" for k, v in filters.items()))
    chosen = [p for p in probes(filters) if args.only in p.page]

    tmp = Path(tempfile.mkdtemp(prefix="ykt-pages-"))
    server = None
    load_before = os.getloadavg()
    rows: list[tuple[str, str, float, float, float, int]] = []
    bad: list[str] = []
    try:
        port = free_port()
        server = start_server(port, tmp / "server.log", time.monotonic() + 120)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
            headers = {u: login(client, u) for u in USERS}
            print(f"server: ykt serve on 127.0.0.1:{port}; {len(USERS)} demo users logged in; "
                  f"{args.warmup} warm-up + {args.runs} timed requests per page and user\n")
            print("| page | user | p50 ms | p95 ms | max ms | answer |\n| --- | --- | ---: | ---: | ---: | ---: |")
            for probe in chosen:
                for user in probe.users:
                    times = []
                    size = 0
                    for n in range(args.warmup + args.runs):
                        started = time.perf_counter()
                        r = client.get(probe.path, params=probe.params, headers=headers[user])
                        took = time.perf_counter() - started
                        if r.status_code != 200:
                            bad.append(f"{probe.page} {user}: {r.status_code} {r.text[:200]}")
                            break
                        size = len(r.content)
                        if n >= args.warmup:
                            times.append(took * 1000)
                    if not times:
                        continue
                    p50, p95, top = pct(times, 0.5), pct(times, 0.95), max(times)
                    rows.append((probe.page, user, p50, p95, top, size))
                    mark = " **(over target)**" if p95 >= args.target else ""
                    shown = probe.page + (" " + "&".join(f"{k}={v}" for k, v in probe.params.items())
                                          if probe.params else "")
                    print(f"| {shown} | {user} | {p50:.0f} | {p95:.0f}{mark} | {top:.0f} | {size // 1024} KB |",
                          flush=True)
    finally:
        stop_process(server)
        log = (tmp / "server.log").read_text(encoding="utf-8", errors="replace") if (tmp / "server.log").exists() \
            else ""
        shutil.rmtree(tmp, ignore_errors=True)
    load_after = os.getloadavg()
    print(f"\nload average before {load_before[0]:.2f} / {load_before[1]:.2f} / {load_before[2]:.2f}, "
          f"after {load_after[0]:.2f} / {load_after[1]:.2f} / {load_after[2]:.2f}")
    if rows:
        worst = max(rows, key=lambda r: r[3])
        print(f"worst p95: {worst[3]:.0f} ms ({worst[0]}, {worst[1]}); target {args.target:.0f} ms")
    if bad:
        print("answers other than 200:\n  " + "\n  ".join(bad[:20]))
        if "Traceback" in log:
            print(log[-3000:])
        return 1
    return 2 if any(r[3] >= args.target for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
