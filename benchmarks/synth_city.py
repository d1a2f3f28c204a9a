"""Time the synthetic city build: wall time per stage, CPU time, peak memory, database size.

    .venv/bin/python benchmarks/synth_city.py --scale 0.1
    .venv/bin/python benchmarks/synth_city.py --scale 1 --database postgresql+psycopg://postgres@127.0.0.1:5432/postgres

Builds into a fresh scratch database (a temporary SQLite file, or a new database on the given
PostgreSQL server, dropped afterwards). The figures go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: by size)")
    parser.add_argument("--database", default="", help="a PostgreSQL server URL; default: a temporary SQLite file")
    args = parser.parse_args()

    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    from yikatong.core.db import create_database, drop_database

    scratch = Path(tempfile.mkdtemp(prefix="ykt-synth-bench-"))
    if args.database:
        url = create_database(args.database, "ykt_synth_bench")
    else:
        url = f"sqlite:///{scratch / 'city.db'}"
    os.environ["YKT_DATABASE_URL"] = url
    os.environ["YKT_DATA_DIR"] = str(scratch / "data")

    from yikatong.core.db import engine, reset_engine
    from yikatong.core.migrate import upgrade
    from yikatong.core.settings import reset_settings
    from yikatong.synth.city import build_city

    reset_settings()
    upgrade()
    stages: dict[str, float] = {}
    start = time.perf_counter()

    def on_progress(stage: str, done: int, total: int) -> None:
        stages.setdefault(stage, time.perf_counter() - start)

    try:
        report = build_city(engine(), args.scale, args.seed, on_progress, workers=args.workers)
        wall = time.perf_counter() - start
        with engine().connect() as conn:
            if args.database:
                size = conn.execute(text("SELECT pg_database_size(current_database())")).scalar()
            else:
                size = Path(url.split("///", 1)[1]).stat().st_size
        me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        print(f"scale {args.scale} seed {args.seed} on {make_url(url).get_backend_name()}: "
              f"{report.persons:,} persons, {report.households:,} households, {report.cards:,} cards")
        print(f"wall {wall:.1f} s; CPU {me.ru_utime + me.ru_stime:.0f} s here + "
              f"{kids.ru_utime + kids.ru_stime:.0f} s in workers; peak RSS {me.ru_maxrss / 1024:.0f} MB here, "
              f"{kids.ru_maxrss / 1024:.0f} MB largest worker; database {size / 2**20:,.0f} MB")
        ends = [*list(stages.values())[1:], wall]
        for (stage, began), end in zip(stages.items(), ends, strict=True):
            print(f"  {stage}: {end - began:.1f} s")
    finally:
        reset_engine()
        if args.database:
            drop_database(url)


if __name__ == "__main__":
    main()
