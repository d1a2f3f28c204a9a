"""Benchmark: a department list of N applications (补贴申请名单), as CSV and as .xlsx, validated and
entered through `imports.service.import_file` (the code behind `ykt import applications`, the API and
the page), commit included.

    .venv/bin/python benchmarks/department_list.py --rows 100000
    .venv/bin/python benchmarks/department_list.py --rows 100000 --database postgresql+psycopg://postgres@127.0.0.1:5432/postgres

Builds a synthetic city (scale 0.05: about 155,000 residents) in a scratch database (a temporary
SQLite file, or a new database on the given PostgreSQL server, dropped afterwards), picks N distinct
residents and writes one list per format: 80 % 农村低保 (ZS007, per person, monthly) and 20 %
森林生态效益补偿 (ZS014, per mu, yearly, with an area). The CSV list claims 2026-10 / 2026 and the
.xlsx list 2026-09 / 2025, so the second list does not collide with the first. Each list is
imported by the city finance user (city-wide scope); then the CSV list is imported again, which
must enter nothing (every row: 已有在办或已通过的同项目申请).
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

HEADERS = ["身份证号", "姓名", "项目代码", "期次", "数量", "说明"]
NOW = datetime(2026, 11, 30, 9, 0)
FOREST_SHARE = 5  # every 5th row is a ZS014 (亩) claim


def scratch_city(database: str, scale: float, seed: int, tmp: Path) -> tuple[str, Callable[[], None]]:
    """Build a synthetic city into a fresh database; return its URL and a function that drops it (and
    removes `tmp`)."""
    from yikatong.core.db import create_database, drop_database

    url = create_database(database, "ykt_bench") if database else f"sqlite:///{tmp / 'city.db'}"
    os.environ["YKT_DATABASE_URL"] = url
    os.environ["YKT_DATA_DIR"] = str(tmp / "data")
    os.environ.setdefault("YKT_SECRET_KEY", "benchmark-secret-key")
    from yikatong.core.db import engine, reset_engine
    from yikatong.core.migrate import upgrade
    from yikatong.core.settings import reset_settings
    from yikatong.synth.city import build_city

    reset_settings()
    upgrade()
    t = time.perf_counter()
    report = build_city(engine(), scale, seed)
    print(f"city: scale {scale} seed {seed}, {report.persons:,} persons, built in {time.perf_counter() - t:.0f} s "
          f"on {'PostgreSQL' if database else 'SQLite'}")

    def drop() -> None:
        reset_engine()
        if database:
            drop_database(url)
        shutil.rmtree(tmp, ignore_errors=True)

    return url, drop


def pick_claimants(n: int, region: str = "511000000000", free_of: tuple[str, str] | None = None
                   ) -> list[tuple[str, str]]:
    """(clear ID number, name) of n residents of `region`, in id order; with `free_of` (month, year),
    only residents with no live ZS007 claim for the month and no live ZS014 claim for the year (in a
    city that already has claims: the list must not collide, or it is refused whole)."""
    from sqlalchemy import and_, exists, or_, select

    from yikatong.core import crypto
    from yikatong.core.db import new_session
    from yikatong.core.protect import reveal
    from yikatong.registry.models import Person
    from yikatong.security.scope import within
    from yikatong.workflow.models import LIVE_STATUSES, Application

    query = select(Person.id_number_enc, Person.name).where(within(Person.region_code, region))
    if free_of:
        month, year = free_of
        query = query.where(~exists().where(
            Application.person_id == Person.id, Application.status.in_(LIVE_STATUSES),
            or_(and_(Application.item_code == "ZS007", Application.period == month),
                and_(Application.item_code == "ZS014", Application.period == year))))
    with new_session() as s:
        rows = s.execute(query.order_by(Person.id).limit(n)).all()
    if len(rows) < n:
        raise SystemExit(f"the city has only {len(rows):,} residents in {region}; raise --scale")
    return [(reveal(crypto.ID_NUMBER, enc), name) for enc, name in rows]


def list_rows(people: list[tuple[str, str]], month: str, year: str) -> list[list[object]]:
    rows: list[list[object]] = []
    for i, (number, name) in enumerate(people):
        if i % FOREST_SHARE == 0:
            rows.append([number, name, "ZS014", year, f"{1 + i % 40}.{i % 100:02d}", ""])
        else:
            rows.append([number, name, "ZS007", month, "", "部门名单"])
    return rows


def write_csv(rows: list[list[object]], path: Path) -> None:
    with path.open("w", encoding="utf-8-sig", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(HEADERS)
        writer.writerows(rows)


def write_xlsx(rows: list[list[object]], path: Path) -> None:
    """As an office makes it: ID numbers as text, years and areas as number cells."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell

    wb = Workbook(write_only=True)
    ws = wb.create_sheet()
    ws.append(HEADERS)
    for number, name, item, period, quantity, note in rows:
        id_cell = WriteOnlyCell(ws, value=number)
        id_cell.number_format = "@"
        ws.append([id_cell, name, item, int(period) if str(period).isdigit() else period,
                   float(quantity) if quantity else None, note or None])
    wb.save(path)


def run_import(path: Path, label: str, expect_ok: bool = True) -> float:
    from sqlalchemy import func, select

    from yikatong.core.db import new_session, transaction
    from yikatong.imports.service import import_file
    from yikatong.security.models import User
    from yikatong.workflow.models import Application

    marks: dict[str, float] = {}
    with new_session() as s:
        actor_id = s.scalar(select(User.id).where(User.username == "city_finance"))
    start = time.perf_counter()

    def progress(stage: str, done: int, total: int) -> None:
        marks.setdefault(f"{stage} start", time.perf_counter() - start)
        marks[f"{stage} end"] = time.perf_counter() - start

    with transaction() as session:
        actor = session.get(User, actor_id)
        report = import_file(session, "applications", path, path.name, actor=actor, now=NOW, on_progress=progress)
        before_commit = time.perf_counter() - start
    total = time.perf_counter() - start
    assert report.ok == expect_ok, report.errors[:5]
    if not expect_ok:
        assert report.error_count == report.total_rows and "已有在办或已通过" in report.errors[0].reason
    with new_session() as s:
        in_db = s.scalar(select(func.count()).select_from(Application))
    read = marks.get("校验 start", 0.0)
    write_start = marks.get("写入 start", before_commit)
    validate = write_start - read
    write = before_commit - write_start
    outcome = f"added {report.added:,}" if report.ok else f"refused, {report.error_count:,} row errors"
    print(f"  {label:<34} total {total:5.1f} s  (read {read:4.1f} s, validate {validate:4.1f} s, "
          f"write {write:4.1f} s, commit {total - before_commit:3.1f} s)  {outcome}; applications in db {in_db:,}")
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--scale", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--database", default="", help="a PostgreSQL server URL; default: a temporary SQLite file")
    parser.add_argument("--existing", action="store_true",
                        help="import one CSV list into the city of YKT_DATABASE_URL / YKT_DATA_DIR (built by "
                             "`ykt synth`, e.g. at scale 1) instead of building a scratch city; the list's "
                             "claims are LEFT in that database")
    parser.add_argument("--month", default="2026-10", help="with --existing: the month of the ZS007 claims")
    parser.add_argument("--year", default="2026", help="with --existing: the year of the ZS014 claims")
    args = parser.parse_args()

    if args.existing:
        import yikatong.models  # noqa: F401 - every mapper, before the first query
        from yikatong.core.db import engine

        tmp = Path(tempfile.mkdtemp(prefix="ykt-bench-list-"))
        print(f"city: {engine().url.render_as_string(hide_password=True)}")
        t = time.perf_counter()
        people = pick_claimants(args.rows, free_of=(args.month, args.year))
        print(f"picked {len(people):,} residents with no such claim in {time.perf_counter() - t:.1f} s")
        path = tmp / "list.csv"
        write_csv(list_rows(people, args.month, args.year), path)
        load = os.getloadavg()[0]
        run_import(path, f"csv: {args.rows:,} applications")
        print(f"load average (1 min) {load:.2f} -> {os.getloadavg()[0]:.2f}")
        shutil.rmtree(tmp, ignore_errors=True)
        return

    tmp = Path(tempfile.mkdtemp(prefix="ykt-bench-list-"))
    _, drop = scratch_city(args.database, args.scale, args.seed, tmp)
    try:
        people = pick_claimants(args.rows)
        lists = {"csv": ("2026-10", "2026", write_csv), "xlsx": ("2026-09", "2025", write_xlsx)}
        paths = {}
        for fmt, (month, year, write) in lists.items():
            path = tmp / f"list.{fmt}"
            t = time.perf_counter()
            write(list_rows(people, month, year), path)
            paths[fmt] = path
            print(f"{fmt}: wrote {args.rows:,} rows ({path.stat().st_size / 2**20:.1f} MB) "
                  f"in {time.perf_counter() - t:.1f} s")
        for fmt, path in paths.items():
            run_import(path, f"{fmt}: {args.rows:,} applications")
        run_import(paths["csv"], "csv again: all already claimed", expect_ok=False)
    finally:
        drop()


if __name__ == "__main__":
    main()
