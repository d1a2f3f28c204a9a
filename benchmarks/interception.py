"""Benchmark: every built-in interception rule over a whole city, set-based in DuckDB, against the
same rules checked one application at a time in plain Python (benchmarks/rules_python.py).

Reads a city that is already built (e.g. by `ykt synth --scale 1`), with its shared data sets:

    YKT_DATABASE_URL=sqlite:////tmp/s1.db YKT_DATA_DIR=/tmp/s1data .venv/bin/python benchmarks/interception.py
    .venv/bin/python benchmarks/interception.py --database postgresql+psycopg://postgres@127.0.0.1:5432/ykt_s1

Steps, each timed with time.perf_counter, with the process's peak resident memory (ru_maxrss) after it:
  a. the snapshot (interception.snapshot.city_snapshot): since the kept snapshot, the DuckDB file
     under YKT_DATA_DIR/snapshot/ refreshed by what changed (benchmarks/city_run.py times it); with
     YKT_KEPT_SNAPSHOT=0 every live application, the registry and catalogue read through ADBC into
     an in-memory DuckDB database, as the figures below were measured; the current shared data
     snapshots attached (Parquet) either way;
  b. run the 20 rule files (interception.engine.run_rules), seconds per rule;
  c. record the hits as flags (interception.screening.record_hits: dedupe against existing flags,
     insert flags, 存疑拦截 trail records, open_flags) in a transaction that is ROLLED BACK, so the
     benchmark leaves the database as it found it. By default it is timed as a FIRST run: the flags
     (and leads) already in the database -- `ykt synth` runs the rules once -- are deleted inside that
     transaction before the clock starts, so every hit is written. --rerun keeps them (the cost of
     the nightly rerun: mostly the dedupe); --keep commits (implies --rerun); --no-record skips c.
     a + b + c is what `ykt intercept` (service.run_city) does: the "full run";
  d. the plain-Python way: load the same snapshot's tables into Python tuples and per-key indexes
     (timed apart), then check N random applications (seeded) one at a time; time per application,
     extrapolated to every application, and the speed-up (extrapolated / DuckDB rules time).
     The Python hits on the sample must equal the DuckDB hits on those applications, pair by pair
     (application, rule); mismatches are printed and the exit status is 1.

Peak memory (this process plus its child, the SQLite reader) for the full run is the figure after
step c; step d loads millions of Python objects and is reported separately. Prints a Rich summary
and a Markdown block for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import resource
import sys
import time
from collections import Counter
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def peak_gb() -> float:
    """Peak resident memory so far, in GB (Linux: ru_maxrss in KiB): this process's plus that of its
    largest finished child (the SQLite reader of city_snapshot runs in one) -- an upper bound, as
    both peaks are counted as if they were at the same moment."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return (own + children) / 1024 / 1024


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def memory_total_gb() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return 0.0


def times(ratio: float) -> str:
    return f"{ratio:,.0f}" if ratio >= 10 else f"{ratio:.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", default="", help="database URL (default: YKT_DATABASE_URL)")
    parser.add_argument("--sample", type=int, default=20_000, help="applications checked in plain Python")
    parser.add_argument("--seed", type=int, default=1, help="seed of the random sample")
    parser.add_argument("--threads", type=int, default=0, help="DuckDB threads (default: DuckDB's, one per core)")
    parser.add_argument("--memory-limit", default="", help="DuckDB memory_limit for the rules, e.g. 4GB "
                                                           "(set after the export; default DuckDB's 80%% of RAM)")
    parser.add_argument("--no-record", action="store_true", help="skip step c (recording the flags)")
    parser.add_argument("--rerun", action="store_true", help="record against the flags already raised "
                                                                 "(default: as a first run, existing flags "
                                                                 "deleted inside the rolled-back transaction)")
    parser.add_argument("--keep", action="store_true", help="commit the recorded flags instead of rolling back "
                                                            "(implies --rerun)")
    parser.add_argument("--no-python", action="store_true", help="skip step d (the plain-Python comparison)")
    args = parser.parse_args()
    if args.database:
        os.environ["YKT_DATABASE_URL"] = args.database

    import duckdb
    import pyarrow as pa
    import pyarrow.compute as pc
    import rules_python
    from rich.console import Console
    from rich.table import Table
    from sqlalchemy import text

    import yikatong.models  # noqa: F401 - every mapper, before the first query
    from yikatong.core.clock import system_clock
    from yikatong.core.db import engine, new_session
    from yikatong.core.settings import get_settings, reset_settings
    from yikatong.interception import engine as rule_engine
    from yikatong.interception.models import RuleRun
    from yikatong.interception.rulefile import builtin_rules
    from yikatong.interception.screening import active_specs, record_hits, sync_builtin_rules
    from yikatong.interception.snapshot import city_snapshot
    from yikatong.interception.tables import RULE_TABLES
    from yikatong.sharing.store import current_snapshots

    reset_settings()
    out = Console() if sys.stdout.isatty() else Console(width=120)
    eng = engine()
    backend = "PostgreSQL" if eng.url.get_backend_name() == "postgresql" else "SQLite"
    out.print(f"database: {eng.url.render_as_string(hide_password=True)} ({backend}), "
              f"data dir {get_settings().data_dir}", highlight=False)
    load_before = os.getloadavg()
    steps: list[tuple[str, float, float]] = []  # (step, seconds, peak GB after it)

    def step(name: str, started: float) -> float:
        seconds = time.perf_counter() - started
        steps.append((name, seconds, peak_gb()))
        out.print(f"  {name}: {seconds:.2f} s, peak RSS {peak_gb():.2f} GB", highlight=False)
        return seconds

    specs = builtin_rules()
    session = new_session()

    # a. the snapshot
    t = time.perf_counter()
    shared = current_snapshots(session)
    snap = city_snapshot(eng, shared, threads=args.threads or None)
    if args.memory_limit:
        snap.con.execute(f"SET memory_limit = '{args.memory_limit}'").fetchall()
    export_s = step("a. export snapshot (city_snapshot)", t)
    threads = snap.con.execute("SELECT current_setting('threads')").fetchall()[0][0]
    memory_limit = snap.con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
    counts = dict(snap.counts)
    applications = counts.get("applications", 0)
    shared_rows = {name: counts.get(name, 0) for name, table in RULE_TABLES.items() if table.shared}
    out.print(f"  applications {applications:,}, persons {counts.get('persons', 0):,}, "
              f"cards {counts.get('cards', 0):,}, shared records {sum(shared_rows.values()):,} "
              f"({', '.join(f'{k} {v:,}' for k, v in shared_rows.items())}); DuckDB threads {threads}, "
              f"memory_limit {memory_limit}", highlight=False)

    # b. the rules, set-based
    t = time.perf_counter()
    results = rule_engine.run_rules(snap, specs)
    rules_s = step(f"b. {len(specs)} rules in DuckDB (run_rules)", t)
    errors = [r for r in results if r.error]
    for r in errors:
        out.print(f"[red]{r.error}[/red]", highlight=False)
    hits = rule_engine.combined_hits(results)
    per_rule = {r.code: (r.hits.num_rows, r.seconds) for r in results}

    # c. recording the flags (rolled back unless --keep)
    record_s = 0.0
    new_flags = 0
    first_run = not (args.rerun or args.keep)
    if not args.no_record:
        if first_run:  # not timed; rolled back with the rest
            removed = session.execute(text("DELETE FROM flags")).rowcount
            session.execute(text("DELETE FROM leads"))
            session.flush()
            out.print(f"  (first run: {removed:,} existing flags set aside inside the transaction)", highlight=False)
        t = time.perf_counter()
        now = system_clock.now()
        sync_builtin_rules(session, now)
        versions = {v.rule_code: v for v, _spec in active_specs(session)}
        run = RuleRun(scope="city", started_at=now, applications=applications, hits=hits.num_rows, new_flags=0,
                      snapshots="{}", timings="{}", triggered_by=None)
        session.add(run)
        session.flush()
        recorded = hits.filter(pc.is_in(hits["rule_code"], value_set=pa.array(list(versions))))
        new_flags = record_hits(session, snap, recorded, versions, run, now)
        if args.keep:
            session.commit()
        how = "committed" if args.keep else ("first run, rolled back" if first_run else "rerun, rolled back")
        record_s = step(f"c. record flags (record_hits, {how})", t)
        if not args.keep:
            session.rollback()
    session.close()
    full_s = export_s + rules_s + record_s
    full_peak = peak_gb()
    out.print(f"[bold]full run (a+b{'+c' if not args.no_record else ''}): {full_s:.1f} s, "
              f"peak RSS {full_peak:.2f} GB[/bold]; hits {hits.num_rows:,}, new flags {new_flags:,}", highlight=False)

    # d. the plain-Python way
    mismatches: list[tuple[int, str, str]] = []
    python = {}
    if not args.no_python:
        t = time.perf_counter()
        world = rules_python.load_world(snap.con, specs)
        load_s = step("d1. load tables into Python indexes", t)
        snap.close()
        rng = random.Random(args.seed)
        sample = rng.sample(world.applications, min(args.sample, len(world.applications)))
        t = time.perf_counter()
        checked = [rules_python.check(world, a) for a in sample]
        check_s = step(f"d2. check {len(sample):,} applications one at a time", t)
        sample_ids = {a.application_id for a in sample}
        py_pairs = {(a.application_id, code) for a, codes in zip(sample, checked, strict=True) for code in codes}
        ids = hits["application_id"].to_pylist()
        codes = hits["rule_code"].to_pylist()
        db_pairs = {(i, c) for i, c in zip(ids, codes, strict=True) if i in sample_ids}
        mismatches = sorted([(i, c, "DuckDB only") for i, c in db_pairs - py_pairs]
                            + [(i, c, "Python only") for i, c in py_pairs - db_pairs])
        per_app = check_s / max(len(sample), 1)
        extrapolated = per_app * applications
        python = dict(sample=len(sample), load_s=load_s, check_s=check_s, per_app_us=per_app * 1e6,
                      extrapolated_s=extrapolated, speedup=extrapolated / rules_s if rules_s else float("inf"),
                      speedup_end_to_end=(load_s + extrapolated) / (export_s + rules_s),
                      db_sample=Counter(c for _, c in db_pairs), py_sample=Counter(c for _, c in py_pairs),
                      rows=sum(world.rows.values()))
        del world
    else:
        snap.close()
    load_after = os.getloadavg()

    # the summary
    table = Table(title="Interception benchmark")
    for header in ("step", "seconds", "peak RSS GB"):
        table.add_column(header, justify="left" if header == "step" else "right")
    for name, seconds, peak in steps:
        table.add_row(name, f"{seconds:.2f}", f"{peak:.2f}")
    out.print(table)
    rule_table = Table(title="Rules")
    for header in ("rule", "hits", "DuckDB s", "sample: DuckDB", "sample: Python"):
        rule_table.add_column(header, justify="left" if header == "rule" else "right")
    for spec in specs:
        n, seconds = per_rule[spec.code]
        rule_table.add_row(spec.code, f"{n:,}", f"{seconds:.3f}",
                           f"{python['db_sample'][spec.code]:,}" if python else "-",
                           f"{python['py_sample'][spec.code]:,}" if python else "-")
    out.print(rule_table)

    lines = [
        f"Machine: `nproc` {os.cpu_count()}, CPU \"{cpu_name()}\", {memory_total_gb():.0f} GB RAM; Python "
        f"{platform.python_version()}, DuckDB {duckdb.__version__} ({threads} threads, memory_limit {memory_limit}), "
        f"{backend}. Load average {load_before[0]:.1f} before, {load_after[0]:.1f} after. Measured {date.today()}.",
        "",
        f"City: {applications:,} live applications, {counts.get('persons', 0):,} persons, "
        f"{counts.get('cards', 0):,} cards; {sum(shared_rows.values()):,} shared records ("
        + ", ".join(f"{k} {v:,}" for k, v in shared_rows.items()) + f"). Hits: {hits.num_rows:,}.",
        "",
        "| step | seconds | peak memory |",
        "| --- | ---: | ---: |",
    ]
    lines += [f"| {name} | {seconds:.1f} | {peak:.2f} GB |" for name, seconds, peak in steps]
    lines.append(f"| **full run (a+b{'+c' if not args.no_record else ''})** | **{full_s:.1f}** | "
                 f"**{full_peak:.2f} GB** |")
    if python:
        lines += [
            "",
            f"Plain Python, one application at a time, {python['sample']:,} random applications (seed {args.seed}): "
            f"{python['per_app_us']:.1f} µs per application, {python['extrapolated_s']:.0f} s extrapolated to all "
            f"{applications:,} — **{times(python['speedup'])} times** the DuckDB rules' {rules_s:.1f} s "
            f"(loading {python['rows']:,} rows into Python indexes: {python['load_s']:.1f} s; with loading against "
            f"export + rules: {times(python['speedup_end_to_end'])} times). Agreement on the sample: "
            + ("every (application, rule) pair equal." if not mismatches else f"{len(mismatches)} mismatches."),
        ]
    lines += ["", "| rule | hits | DuckDB seconds |", "| --- | ---: | ---: |"]
    lines += [f"| {s.code} | {per_rule[s.code][0]:,} | {per_rule[s.code][1]:.2f} |" for s in specs]
    out.print("\n[bold]Markdown for docs/benchmarks.md[/bold]\n")
    print("\n".join(lines))

    if python:
        silent = [s.code for s in specs if not python["db_sample"][s.code] and not python["py_sample"][s.code]]
        if silent:
            out.print(f"[yellow]no hits in the sample (agreement not exercised): {', '.join(silent)}[/yellow]",
                      highlight=False)
    if mismatches:
        out.print(f"[red]{len(mismatches)} mismatches between Python and DuckDB on the sample:[/red]")
        for app_id, code, side in mismatches[:50]:
            out.print(f"  application {app_id} {code}: {side}", highlight=False)
        return 1
    if errors:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
