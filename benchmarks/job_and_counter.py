"""Benchmark: the city run (全市比对) running as a background job while a village clerk enters claims
at the counter, against the real server (`ykt serve`) on 127.0.0.1.

Reads a city that is already built (`ykt synth`), as benchmarks/interception.py does:

    YKT_DATABASE_URL=sqlite:////tmp/s1/s1.db YKT_DATA_DIR=/tmp/s1/data .venv/bin/python benchmarks/job_and_counter.py
    .venv/bin/python benchmarks/job_and_counter.py --database postgresql+psycopg://postgres@127.0.0.1:5432/ykt_s1
    # YKT_DATA_DIR must point at the same city's data directory (its shared data sets)

What it does:

1. picks --claims + --baseline counter claims with a query: persons of the clerk's village (default the
   demo `village_clerk`), item --item (default ZS017, per person and month), the most recent months
   first, leaving out every (person, item, period) with a live claim; the candidates go through
   `workflow.service.prepare_claims` in a session that is rolled back (nothing is written), so only
   claims the counter will take are used;
2. starts `ykt serve` on a free port of 127.0.0.1 (one process, no --jobs: the server does not run
   jobs) and logs the clerk in (POST /api/v1/auth/login, Bearer token);
3. enters the --baseline claims (default 5) with no job running: the counter's time on a machine
   that only serves it (the first one includes the server's warm-up);
4. queues a city run with the jobs service (`jobs.service.start`, kind interception.city_run, started
   by --starter, default the demo `city_finance`, as the 规则 page's button does) and runs it in a
   separate process, `ykt jobs run-once` (what `ykt worker` does for each job);
5. once the job is 运行中, enters the --claims claims (default 20) one after another through the
   counter page's form, POST /applications/new, as the page does: the server commits the claim, then
   screens it (`service.screen_committed`: the 20 rules in DuckDB over the claim's focus snapshot)
   and only then answers (303 to the application's page). Each claim's answer time is measured from
   sending the request to the answer, and the job's status is read before and after each claim;
6. waits for the job to end and reports: p50/p95/max of the claims during the job and of the
   baseline, how many of the claims ran entirely while the job was 运行中, the job's time (started
   to finished, from the jobs table) and its stages, the server errors (5xx), answers other than
   303, and how many of the claims were screened (one rule run of scope `submit` each);
7. then (unless --no-explain), with the job over, shows where one claim's time goes: one more claim
   entered in this process as the page does (service.accept), its screening timed piece by piece
   (rules sync, focus snapshot, the rules in DuckDB, the whole screen), rolled back.

The claims are LEFT in the database (committed, as a clerk's would be; their note is
"基准测试 job_and_counter"), and so are the city run's flags and rule run; run the benchmark on a
scratch city. A second run picks other (person, period) pairs. Everything is bounded by --timeout:
past it the job is cancelled, the processes are stopped and the script exits with status 1.

Exit status 1 when there was a server error, an answer other than 303, a claim not screened, or the
job did not complete; 2 when all that is fine but the p95 during the job is 1 s or more (the target).
No request leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

import httpx

PASSWORD = "ykt-demo-2026"  # the demo accounts' (synth.users.DEMO_PASSWORD)
NOTE = "基准测试 job_and_counter"
TARGET_SECONDS = 1.0


def recent_months(today: date, count: int) -> list[str]:
    out, year, month = [], today.year, today.month
    for _ in range(count):
        out.append(f"{year}-{month:02d}")
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return out


def pick_claims(clerk_name: str, item_code: str, wanted: int, today: date) -> tuple[list[dict], str]:
    """`wanted` claims the counter will take: (person, item, period) with no live claim, checked by
    prepare_claims in a session that is rolled back."""
    from sqlalchemy import select

    from yikatong.core.clock import system_clock
    from yikatong.core.db import new_session
    from yikatong.registry.models import Person
    from yikatong.security.models import User
    from yikatong.workflow import service
    from yikatong.workflow.models import LIVE_STATUSES, Application, Source

    with new_session() as s:
        clerk = s.scalar(select(User).where(User.username == clerk_name))
        if clerk is None:
            raise SystemExit(f"no user {clerk_name!r} in this database (built by `ykt synth`?)")
        village = clerk.region_code
        people = list(s.scalars(select(Person.id).where(Person.region_code == village).order_by(Person.id)))
        periods = recent_months(today, 36)
        live = set(s.execute(select(Application.person_id, Application.period).where(
            Application.region_code == village, Application.item_code == item_code,
            Application.status.in_(LIVE_STATUSES))).all())
        candidates = []
        for period in periods:  # the latest free month of each person first, then older months
            for person_id in people:
                if (person_id, period) not in live:
                    candidates.append((person_id, period))
            if len(candidates) >= wanted * 10:
                break
        claims = [service.Claim(ref=k, person_id=p, item_code=item_code, period=period, note=NOTE)
                  for k, (p, period) in enumerate(candidates, start=1)]
        prepared = service.prepare_claims(s, clerk, claims, Source.COUNTER, system_clock.now())
        s.rollback()
    ok = set(prepared.refs)
    chosen = [{"person_id": c.person_id, "item_code": c.item_code, "period": c.period}
              for c in claims if c.ref in ok][:wanted]
    if len(chosen) < wanted:
        reasons = {e.reason for e in prepared.errors}
        raise SystemExit(f"only {len(chosen)} claims the counter would take in village {village} "
                         f"({len(people)} persons); refusals: {sorted(reasons)[:3]}")
    return chosen, village


# ---------------------------------------------------------------- the server and the job


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ykt() -> str:
    path = Path(sys.executable).parent / "ykt"
    return str(path) if path.exists() else "ykt"


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parent.parent / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    return env


def start_server(port: int, log: Path, deadline: float) -> subprocess.Popen:
    process = subprocess.Popen([ykt(), "serve", "--host", "127.0.0.1", "--port", str(port)], env=child_env(),
                               stdout=log.open("w"), stderr=subprocess.STDOUT)
    while time.monotonic() < min(deadline, time.monotonic() + 120):
        if process.poll() is not None:
            raise SystemExit(f"the server exited with {process.returncode}; see {log}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/login", timeout=2).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.3)
    stop_process(process)
    raise SystemExit(f"the server did not start; see {log}")


def stop_process(process: subprocess.Popen | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


def job_state(job_id: int) -> tuple[str, str, int, int]:
    from yikatong.core.db import new_session
    from yikatong.jobs.models import Job

    with new_session() as s:
        job = s.get(Job, job_id)
        return job.status, job.stage, job.done, job.total


class Watch(threading.Thread):
    """Reads the job's status and stage every `every` seconds (the timeline of its stages), and notes
    when the worker process exits."""

    def __init__(self, job_id: int, every: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.job_id, self.every = job_id, every
        self.stop = threading.Event()
        self.timeline: list[tuple[float, str, str]] = []  # (monotonic, status, stage) when it changed
        self.worker: subprocess.Popen | None = None
        self.worker_exit: float | None = None

    def run(self) -> None:
        last = None
        while not self.stop.is_set():
            if self.worker is not None and self.worker_exit is None and self.worker.poll() is not None:
                self.worker_exit = time.monotonic()
            try:
                status, stage, *_ = job_state(self.job_id)
            except Exception:  # noqa: BLE001 - a locked read now and then: try again
                status, stage = last or ("?", "?")
            if (status, stage) != last:
                self.timeline.append((time.monotonic(), status, stage))
                last = (status, stage)
            self.stop.wait(self.every)


# ---------------------------------------------------------------- the counter


def enter(client: httpx.Client, headers: dict[str, str], claim: dict) -> tuple[float, int, int | None, str]:
    """One claim through the counter form: (seconds, status, application id, error text)."""
    started = time.perf_counter()
    r = client.post("/applications/new", headers=headers, data={
        "person_id": str(claim["person_id"]), "item_code": claim["item_code"], "period": claim["period"],
        "note": NOTE})
    took = time.perf_counter() - started
    app_id, text = None, ""
    if r.status_code == 303:
        app_id = int(r.headers["location"].split("/applications/")[1].split("?")[0])
    else:
        text = r.text[-300:]
    return took, r.status_code, app_id, text


def explain(clerk_name: str, claim: dict, runs: int = 3) -> None:
    """Where one counter claim's time goes, in this process with no job running: the claim entered as
    the page does (service.accept), then the pieces of its screening (screening.screen): the built-in
    rules' sync, the focus snapshot (the claim's person, household, cards and their live claims read
    from the database by indexed keys, the shared data sets' rows of those people looked up in each
    delivery's look-up file), the 20 rules in DuckDB. Rolled back each time; the best of `runs`. The
    snapshot's helpers are wrapped with timers while it runs (this process only; the shared rows'
    time includes their _put)."""
    from yikatong.interception import snapshot as snapshot_module

    spent: dict[str, float] = {}

    def timed(name: str, fn):
        def wrapper(*a, **kw):
            t = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                spent[name] = spent.get(name, 0.0) + time.perf_counter() - t
        return wrapper

    originals = {name: getattr(snapshot_module, name) for name in ("_rows_in", "_look_up_shared", "_put")}
    labels = {"_rows_in": "  of which: platform rows read from the database (_rows_in)",
              "_look_up_shared": "  of which: shared data sets, looked up by key (_look_up_shared)",
              "_put": "  of which: rows into this thread's DuckDB tables (_put)"}
    for name, fn in originals.items():
        setattr(snapshot_module, name, timed(labels[name], fn))

    def rows_in(session, sql, column, keys):  # each read of the platform's rows, by table and key
        table = next((k for k, v in snapshot_module.EXPORTS.items() if v in sql), "?")
        return timed(f"    {table} by {column}", originals["_rows_in"])(session, sql, column, keys)

    snapshot_module._rows_in = timed(labels["_rows_in"], rows_in)
    best: dict[str, float] = {}
    counts: dict[str, int] = {}
    try:
        for _ in range(runs):
            _explain_once(clerk_name, claim, spent, best, counts)
    finally:
        for name, fn in originals.items():
            setattr(snapshot_module, name, fn)
    print(f"one counter claim in this process, no job (best of {runs}, rolled back):")
    for k, v in best.items():
        print(f"  {k:<62} {v * 1000:7.0f} ms")
    print("  focus snapshot rows: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))


def _explain_once(clerk_name: str, claim: dict, spent: dict[str, float], best: dict[str, float],
                  counts: dict[str, int]) -> None:
    from sqlalchemy import select

    from yikatong.core.clock import system_clock
    from yikatong.core.db import new_session
    from yikatong.interception import engine as rule_engine
    from yikatong.interception import screening
    from yikatong.interception.snapshot import focus_snapshot
    from yikatong.security.models import User
    from yikatong.sharing.store import current_snapshots
    from yikatong.workflow import service

    with new_session() as s:
        now = system_clock.now()
        clerk = s.scalar(select(User).where(User.username == clerk_name))
        times = {}
        t = time.perf_counter()
        app = service.accept(s, clerk, person_id=claim["person_id"], item_code=claim["item_code"],
                             period=claim["period"], note=NOTE, now=now, screen=False)
        s.flush()
        times["accept (checks, number, insert)"] = time.perf_counter() - t
        t = time.perf_counter()
        screening.sync_builtin_rules(s, now)
        pairs = screening.active_specs(s)
        times["sync rules, active rules"] = time.perf_counter() - t
        t = time.perf_counter()
        shared = current_snapshots(s)
        spent.clear()
        snap = focus_snapshot(s, [app.id], shared)
        times["focus snapshot"] = time.perf_counter() - t
        times.update(spent)
        try:
            t = time.perf_counter()
            rule_engine.run_rules(snap, [spec for _, spec in pairs])
            times[f"{len(pairs)} rules in DuckDB"] = time.perf_counter() - t
            counts.update(snap.counts)
        finally:
            snap.close()
        t = time.perf_counter()
        screening.screen(s, [app.id], now, clerk)
        times["screening.screen, whole (snapshot + rules + record)"] = time.perf_counter() - t
        s.rollback()
    for k, v in times.items():
        best[k] = min(best.get(k, v), v)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def summary(values: list[float]) -> str:
    if not values:
        return "none"
    return (f"p50 {statistics.median(values) * 1000:.0f} ms, p95 {pct(values, 0.95) * 1000:.0f} ms, "
            f"max {max(values) * 1000:.0f} ms ({len(values)} claims)")


def screened(app_ids: list[int], since) -> tuple[int, int]:
    """(rule runs of scope submit since `since`, flags on the benchmark's claims)."""
    from sqlalchemy import func, select

    from yikatong.core.db import new_session
    from yikatong.interception.models import Flag, RuleRun

    with new_session() as s:
        runs = s.scalar(select(func.count()).select_from(RuleRun).where(RuleRun.scope == "submit",
                                                                         RuleRun.started_at >= since))
        flags = s.scalar(select(func.count()).select_from(Flag).where(Flag.application_id.in_(app_ids))) \
            if app_ids else 0
    return runs or 0, flags or 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", default="", help="database URL (default: YKT_DATABASE_URL)")
    parser.add_argument("--claims", type=int, default=20, help="counter claims entered while the job runs")
    parser.add_argument("--baseline", type=int, default=5, help="counter claims entered before, with no job")
    parser.add_argument("--clerk", default="village_clerk", help="the clerk at the counter (a demo user)")
    parser.add_argument("--starter", default="city_finance", help="who starts the city run (needs rule.run)")
    parser.add_argument("--item", default="ZS017", help="the item claimed at the counter")
    parser.add_argument("--no-explain", dest="explain", action="store_false",
                        help="skip the breakdown of one claim's time (in this process, rolled back)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds for the whole benchmark")
    args = parser.parse_args()
    if args.database:
        os.environ["YKT_DATABASE_URL"] = args.database
    if not 1 <= args.claims <= 500 or not 0 <= args.baseline <= 100:
        raise SystemExit("--claims: 1 to 500, --baseline: 0 to 100")
    deadline = time.monotonic() + args.timeout

    from sqlalchemy import select

    import yikatong.models  # noqa: F401 - every mapper, before the first query
    from yikatong.core.clock import system_clock
    from yikatong.core.db import engine, new_session, transaction
    from yikatong.core.settings import get_settings, reset_settings
    from yikatong.interception.jobs import CITY_RUN
    from yikatong.jobs import service as jobs
    from yikatong.jobs.models import FINISHED, Job, JobStatus
    from yikatong.security.models import User

    reset_settings()
    eng = engine()
    backend = "PostgreSQL" if eng.url.get_backend_name() == "postgresql" else "SQLite"
    print(f"database: {eng.url.render_as_string(hide_password=True)} ({backend}), data dir {get_settings().data_dir}")
    with new_session() as s:
        busy = s.scalar(select(Job.id).where(Job.status.in_([JobStatus.QUEUED.value, JobStatus.RUNNING.value]))
                        .limit(1))
    if busy is not None:
        raise SystemExit(f"job #{busy} is queued or running: `ykt jobs run-once` would take it first")

    started = time.perf_counter()
    claims, village = pick_claims(args.clerk, args.item, args.baseline + args.claims + 1, date.today())
    args.explain_claim = claims.pop()  # for the breakdown, after the job
    print(f"picked {len(claims)} claims ({args.item}, periods {claims[-1]['period']}..{claims[0]['period']}) "
          f"for persons of village {village} in {time.perf_counter() - started:.1f} s")

    tmp = Path(tempfile.mkdtemp(prefix="ykt-job-counter-"))
    server = worker = None
    job_id = None
    watch = None
    failed = False
    load_before = os.getloadavg()
    results: list[dict] = []
    try:
        port = free_port()
        server = start_server(port, tmp / "server.log", deadline)
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=120) as client:
            r = client.post("/api/v1/auth/login", json={"username": args.clerk, "password": PASSWORD})
            if r.status_code != 200:
                raise SystemExit(f"login of {args.clerk} failed: {r.status_code} {r.text[:200]}")
            headers = {"Authorization": f"Bearer {r.json()['token']}"}
            print(f"server: ykt serve on {base}; {args.clerk} logged in")

            since = system_clock.now()
            for claim in claims[:args.baseline]:
                took, code, app_id, text = enter(client, headers, claim)
                results.append(dict(phase="baseline", seconds=took, code=code, app_id=app_id, text=text,
                                    running=(False, False)))
                print(f"  baseline claim: {took * 1000:.0f} ms ({code})")

            # the job: queued by the jobs service, run by `ykt jobs run-once` in its own process
            with transaction() as s:
                starter = s.scalar(select(User).where(User.username == args.starter))
                job_id = jobs.start(s, CITY_RUN, {"ip": "127.0.0.1"}, starter, system_clock.now()).id
            watch = Watch(job_id)
            queued_at = time.monotonic()
            worker = subprocess.Popen([ykt(), "jobs", "run-once"], env=child_env(),
                                      stdout=(tmp / "worker.log").open("w"), stderr=subprocess.STDOUT)
            watch.worker = worker
            watch.start()
            while job_state(job_id)[0] == JobStatus.QUEUED.value:
                if time.monotonic() > deadline or worker.poll() is not None:
                    raise SystemExit(f"job #{job_id} was not taken by the worker; see {tmp / 'worker.log'}")
                time.sleep(0.05)
            print(f"job #{job_id} (全市比对) running after {time.monotonic() - queued_at:.1f} s; "
                  f"entering {args.claims} claims")

            for claim in claims[args.baseline:]:
                if time.monotonic() > deadline:
                    raise TimeoutError("--timeout reached while entering claims")
                before = job_state(job_id)
                took, code, app_id, text = enter(client, headers, claim)
                after = job_state(job_id)
                running = (before[0] == JobStatus.RUNNING.value, after[0] == JobStatus.RUNNING.value)
                results.append(dict(phase="job", seconds=took, code=code, app_id=app_id, text=text,
                                    running=running, stage=before[1]))
                print(f"  claim during job: {took * 1000:.0f} ms ({code}); job {before[0]} {before[1]} -> "
                      f"{after[0]} {after[1]}")

            while worker.poll() is None:
                if time.monotonic() > deadline:
                    raise TimeoutError("--timeout reached while waiting for the job")
                time.sleep(0.2)
        load_after = os.getloadavg()
        time.sleep(0.5)
        watch.stop.set()
        watch.join(5)
        worker_exit = watch.worker_exit or time.monotonic()

        with new_session() as s:
            job = s.get(Job, job_id)
            job_seconds = (job.finished_at - job.started_at).total_seconds() \
                if job.finished_at and job.started_at else float("nan")
            job_status, job_result, job_error = job.status, jobs.result_of(job), job.error
        app_ids = [r["app_id"] for r in results if r["app_id"]]
        submit_runs, flags = screened(app_ids, since)

        during = [r["seconds"] for r in results if r["phase"] == "job"]
        in_job = [r["seconds"] for r in results if r["phase"] == "job" and all(r["running"])]
        inside = len(in_job)
        base_times = [r["seconds"] for r in results if r["phase"] == "baseline"]
        errors = [r for r in results if r["code"] >= 500]
        other = [r for r in results if r["code"] != 303 and r["code"] < 500]
        p95 = pct(during, 0.95)
        print()
        print(f"counter claims during the job:  {summary(during)}")
        print(f"  of which entirely while the job was 运行中: {inside} of {len(during)}: {summary(in_job)}")
        print(f"counter claims with no job:     {summary(base_times)}")
        print(f"job #{job_id}: {job_status}, {job_seconds:.1f} s from started to finished (jobs table); "
              f"worker process {worker_exit - queued_at:.1f} s; result {job_result or job_error}")
        t0 = watch.timeline[0][0] if watch.timeline else 0
        print("  stages: " + "; ".join(f"{t - t0:.1f} s {status} {stage}" for t, status, stage in watch.timeline))
        print(f"server errors (5xx): {len(errors)}; other answers than 303: {len(other)}")
        for r in (errors + other)[:5]:
            print(f"  {r['code']}: {r['text']}")
        print(f"screened: {submit_runs} rule runs of scope submit for {len(app_ids)} claims; {flags} flags raised "
              f"on them")
        print(f"claims left in the database: {len(app_ids)} (note {NOTE!r})")
        print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} (1 min); nproc {os.cpu_count()}")
        print(f"target: p95 {p95 * 1000:.0f} ms during the job {'<' if p95 < TARGET_SECONDS else '>='} "
              f"{TARGET_SECONDS * 1000:.0f} ms: {'met' if p95 < TARGET_SECONDS else 'NOT met'}")
        if args.explain:
            explain(args.clerk, args.explain_claim)
        print()
        print("| database | claims during job (in job) | p50 | p95 | max | no job: p50 / p95 | job time | 5xx |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        print(f"| {backend} | {len(during)} ({inside}) | {statistics.median(during):.2f} s | {p95:.2f} s | "
              f"{max(during):.2f} s | "
              + (f"{statistics.median(base_times):.2f} / {pct(base_times, 0.95):.2f} s" if base_times else "-")
              + f" | {job_seconds:.1f} s | {len(errors)} |")
        failed = bool(errors or other or submit_runs < len(app_ids) or job_status != JobStatus.DONE.value)
        slow = p95 >= TARGET_SECONDS
    except (TimeoutError, KeyboardInterrupt) as e:
        print(f"stopped: {e!r}")
        failed, slow = True, False
    finally:
        if watch is not None:
            watch.stop.set()
        if job_id is not None and worker is not None and worker.poll() is None:
            try:
                with transaction() as s:
                    if s.get(Job, job_id).status not in FINISHED:
                        jobs.cancel(s, None, job_id, system_clock.now())
                worker.wait(60)
            except Exception:  # noqa: BLE001
                pass
        stop_process(worker)
        stop_process(server)
        for name in ("server.log", "worker.log"):
            log = tmp / name
            if failed and log.exists():
                print(f"--- {name} (last lines)")
                print("\n".join(log.read_text(errors="replace").splitlines()[-20:]))
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failed else (2 if slow else 0)


if __name__ == "__main__":
    sys.exit(main())
