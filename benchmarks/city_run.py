"""Benchmark: the city-wide run (全市比对) on the kept snapshot — a first run, a run with nothing
changed, a run after 1,000 claims were entered — against the rules alone, with peak memory.

Reads a city that is already built (`ykt synth`), migrated to the head (the change log):

    YKT_DATABASE_URL=sqlite:////tmp/s1.db YKT_DATA_DIR=/tmp/s1data .venv/bin/python benchmarks/city_run.py
    .venv/bin/python benchmarks/city_run.py --database postgresql+psycopg://postgres@127.0.0.1:5432/ykt_s1
    # YKT_DATA_DIR must point at the same city's data directory (its shared data sets; the kept
    # snapshot goes to YKT_DATA_DIR/snapshot/)

Each phase runs in a process of its own, so its peak memory (ru_maxrss of the process and of its
children: the SQLite reader of a rebuild) is its own. A phase does what `screening.run_city` does,
timed piece by piece with time.perf_counter: the snapshot (`snapshot.city_snapshot`: the kept file
rebuilt, refreshed or found unchanged), the 20 rules (`engine.run_rules`) and the recording
(`screening.record_hits`: dedupe, flags, 存疑拦截 records, open_flags) in a transaction that is ROLLED
BACK, as benchmarks/interception.py does.

  export  (for comparison) the whole export into memory that every run did before the kept snapshot
          (`snapshot.export_city`), timed alone;
  first   no kept snapshot (the file is removed first) and no flags (the flags and leads are deleted
          and the open-flag counts set to 0 inside the rolled-back transaction, untimed): every hit
          is written, with its trail record and its application's count;
  same    nothing changed since `first`: the kept file is found fresh, every hit is already flagged;
  noflags the kept file fresh, but no flags (deleted as in `first`): every hit is written;
  changed 1,000 claims are entered first (untimed, through `workflow.service.prepare_claims` and
          `enter_claims` as a department list is, COMMITTED: they stay in the database; a second run
          of the benchmark picks other people), then the run: the kept file is refreshed by them.

"rules alone" is the rules' time over the kept snapshot in `same`; "whole / rules" is each run's
total over it. Prints a table and a Markdown block for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

PHASES = ("export", "first", "same", "noflags", "changed")


def peak_gb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return (own + children) / 1024 / 1024


def enter_claims(n: int, seed: int) -> int:
    """Enter up to `n` claims of a monthly item for random residents with no live claim of it this
    month, through the doors' code path (prepare_claims, enter_claims with screening). Committed."""
    import random

    from sqlalchemy import select

    from yikatong.catalog.models import SubsidyItem
    from yikatong.core.clock import beijing_date, system_clock
    from yikatong.core.db import transaction
    from yikatong.registry.models import Person
    from yikatong.workflow.models import Source
    from yikatong.workflow.periods import period_of
    from yikatong.workflow.service import Claim, enter_claims, prepare_claims

    now = system_clock.now()
    with transaction() as session:
        item = session.scalars(select(SubsidyItem).where(SubsidyItem.frequency == "月", SubsidyItem.basis == "人",
                                                         SubsidyItem.min_age.is_(None))
                               .order_by(SubsidyItem.code)).first()
        period = period_of(item.frequency, beijing_date(now))
        top = session.scalar(select(Person.id).order_by(Person.id.desc()).limit(1))
        rng = random.Random(seed + int(time.time()))
        candidates = rng.sample(range(1, top + 1), n * 3)
        claims = [Claim(ref=i, person_id=p, item_code=item.code, period=period) for i, p in enumerate(candidates)]
        prepared = prepare_claims(session, None, claims, Source.LIST, now)
        bad = {e.ref for e in prepared.errors}
        good = [c for c in claims if c.ref not in bad][:n]
        prepared = prepare_claims(session, None, good, Source.LIST, now)
        assert not prepared.errors, prepared.errors[:3]
        ids = enter_claims(session, None, prepared, Source.LIST, now, source_ref="bench:city_run")
    return len(ids)


def run_phase(phase: str, threads: int | None) -> dict:
    from sqlalchemy import text

    import yikatong.models  # noqa: F401 - every mapper, before the first query
    from yikatong.core.clock import system_clock
    from yikatong.core.db import engine, new_session
    from yikatong.interception import engine as rule_engine
    from yikatong.interception import kept
    from yikatong.interception.models import RuleRun
    from yikatong.interception.screening import active_specs, record_hits, sync_builtin_rules
    from yikatong.interception.snapshot import city_snapshot, export_city
    from yikatong.sharing.store import current_snapshots

    eng = engine()
    out: dict = {"phase": phase}
    if phase == "changed":
        t = time.perf_counter()
        out["entered"] = enter_claims(1000, 1)
        out["enter_s"] = time.perf_counter() - t
    with eng.connect() as conn:
        out["pending_changes"] = conn.execute(text("SELECT count(*) FROM snapshot_changes")).scalar_one()
    session = new_session()
    shared = current_snapshots(session)
    if phase == "export":
        t = time.perf_counter()
        snap = export_city(eng, shared, threads=threads)
        out["snapshot_s"] = time.perf_counter() - t
        out["applications"] = snap.counts["applications"]
        snap.close()
        session.close()
        out["peak_gb"] = peak_gb()
        return out
    if phase == "first":
        kept.discard()
    if phase in ("first", "noflags"):
        out["removed_flags"] = session.execute(text("DELETE FROM flags")).rowcount
        session.execute(text("DELETE FROM leads"))
        # as in a city never screened: every flagged application's count is written by the run
        session.execute(text("UPDATE applications SET open_flags = 0 WHERE open_flags <> 0"))
        session.flush()
    now = system_clock.now()
    sync_builtin_rules(session, now)
    pairs = active_specs(session)
    t0 = time.perf_counter()
    snap = city_snapshot(eng, shared, threads=threads)
    t1 = time.perf_counter()
    try:
        out["kept"] = snap.kept
        out["applications"] = snap.counts["applications"]
        results = rule_engine.run_rules(snap, [spec for _, spec in pairs])
        t2 = time.perf_counter()
        errors = [r.error for r in results if r.error]
        assert not errors, errors
        hits = rule_engine.combined_hits(results)
        run = RuleRun(scope="city", started_at=now, applications=out["applications"], hits=hits.num_rows,
                      new_flags=0, snapshots="{}", timings="{}", triggered_by=None)
        session.add(run)
        session.flush()
        out["new_flags"] = record_hits(session, snap, hits, {v.rule_code: v for v, _ in pairs}, run, now)
        t3 = time.perf_counter()
        out["hits"] = hits.num_rows
    finally:
        snap.close()
        session.rollback()
        session.close()
    out.update(snapshot_s=t1 - t0, rules_s=t2 - t1, record_s=t3 - t2, total_s=t3 - t0, peak_gb=peak_gb())
    with eng.connect() as conn:
        out["pending_after"] = conn.execute(text("SELECT count(*) FROM snapshot_changes")).scalar_one()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", default="", help="database URL (default: YKT_DATABASE_URL)")
    parser.add_argument("--threads", type=int, default=0, help="DuckDB threads (default: one per core)")
    parser.add_argument("--phases", default=",".join(PHASES), help=f"which, in order (default {','.join(PHASES)})")
    parser.add_argument("--phase", default="", help=argparse.SUPPRESS)  # one phase, in a child process
    args = parser.parse_args()
    if args.database:
        os.environ["YKT_DATABASE_URL"] = args.database
    if args.phase:
        print(json.dumps(run_phase(args.phase, args.threads or None)))
        return 0

    import duckdb

    from yikatong.core.settings import get_settings

    url = os.environ.get("YKT_DATABASE_URL", "")
    backend = "PostgreSQL" if url.startswith("postgresql") else "SQLite"
    print(f"database {url} ({backend}), data dir {get_settings().data_dir}", flush=True)
    load_before = os.getloadavg()
    rows = []
    for phase in args.phases.split(","):
        command = [sys.executable, __file__, "--phase", phase]
        if args.threads:
            command += ["--threads", str(args.threads)]
        done = subprocess.run(command, capture_output=True, text=True, env=os.environ.copy())
        if done.returncode:
            print(done.stdout, done.stderr, file=sys.stderr)
            return 1
        row = json.loads(done.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(json.dumps(row), flush=True)
    load_after = os.getloadavg()
    by = {r["phase"]: r for r in rows}
    rules_alone = by.get("same", {}).get("rules_s")

    def cell(r: dict, key: str) -> str:
        return f"{r[key]:.1f}" if key in r else "-"

    lines = [
        f"Machine: `nproc` {os.cpu_count()}, {platform.processor() or platform.machine()}, Python "
        f"{platform.python_version()}, DuckDB {duckdb.__version__}, {backend}. Load average "
        f"{load_before[0]:.1f} before, {load_after[0]:.1f} after. Measured {date.today()}.",
        "",
        "| run | snapshot | rules | recording | **whole run** | whole / rules alone | new flags | peak memory |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        if r["phase"] == "export":
            lines.append(f"| whole export into memory (before; for comparison) | {r['snapshot_s']:.1f} | | | | | | "
                         f"{r['peak_gb']:.2f} GB |")
            continue
        label = {"first": "first run (no kept snapshot, no flags)", "same": "nothing changed",
                 "noflags": "kept snapshot fresh, no flags",
                 "changed": f"after {r.get('entered', 0):,} claims entered ({r.get('pending_changes', 0):,} "
                            f"changes logged)"}[r["phase"]]
        ratio = f"{r['total_s'] / rules_alone:.2f}" if rules_alone else "-"
        lines.append(f"| {label}: snapshot {r['kept']} | {cell(r, 'snapshot_s')} | {cell(r, 'rules_s')} | "
                     f"{cell(r, 'record_s')} | **{r['total_s']:.1f}** | {ratio} | {r['new_flags']:,} | "
                     f"{r['peak_gb']:.2f} GB |")
    apps = next((r["applications"] for r in rows if "applications" in r), 0)
    lines += ["", f"Live applications: {apps:,}; hits: {by.get('same', {}).get('hits', 0):,}; rules alone over the "
                  f"kept snapshot: {rules_alone or 0:.1f} s."]
    print("\n" + "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
