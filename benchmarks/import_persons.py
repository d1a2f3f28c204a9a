"""Benchmark: import N valid person rows from CSV and from .xlsx into a scratch database.

    .venv/bin/python benchmarks/import_persons.py --rows 100000
    .venv/bin/python benchmarks/import_persons.py --rows 100000 --database postgresql+psycopg://postgres@127.0.0.1/postgres

For each format: generate the file, import it into a fresh database (validate + write), then import
the same file again (validate only: every row unchanged). Prints the time of each phase. With
--database pointing at PostgreSQL, a scratch database is created beside the given one and dropped.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path

HEADERS = ["身份证号", "姓名", "区划代码", "户编号", "与户主关系", "手机号", "是否享受补贴", "未持卡原因"]
COUNTY = "511002"
VILLAGES = 200


def villages() -> list[str]:
    return [f"{COUNTY}{1 + i // 20:03d}{1 + i % 20:03d}" for i in range(VILLAGES)]


def make_rows(n: int) -> list[list[str]]:
    from yikatong.core.idnumber import make_id_number

    surnames = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
    given = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂"
    vs = villages()
    rows = []
    for i in range(n):
        birth = date(1930, 1, 1) + timedelta(days=(i * 37) % 30000)
        number = make_id_number(COUNTY, birth, i // 30000 % 500, i % 2 == 0)
        name = surnames[i % 20] + given[i % len(given)] + (given[(i // 24) % len(given)] if i % 3 else "")
        rows.append([number, name, vs[i % VILLAGES], "", "户主" if i % 3 == 0 else "子女", f"13{i % 10}{i:08d}"[:11],
                     "是" if i % 4 == 0 else "否", ""])
    return rows


def write_csv(rows: list[list[str]], path: Path) -> None:
    with path.open("w", encoding="utf-8-sig", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(HEADERS)
        writer.writerows(rows)


def write_xlsx(rows: list[list[str]], path: Path) -> None:
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell

    wb = Workbook(write_only=True)
    ws = wb.create_sheet()
    ws.append(HEADERS)
    for row in rows:
        cells = []
        for value in row:
            cell = WriteOnlyCell(ws, value=value or None)
            cell.number_format = "@"
            cells.append(cell)
        ws.append(cells)
    wb.save(path)


def scratch_database(url: str | None, tmp: Path) -> tuple[str, Callable[[], None]]:
    if not url or url.startswith("sqlite"):
        return f"sqlite:///{tmp / f'bench-{uuid.uuid4().hex[:6]}.db'}", lambda: None
    from yikatong.core.db import create_database, drop_database

    scratch = create_database(url, "ykt_bench")
    return scratch, lambda: drop_database(scratch)


def prepare(url: str, tmp: Path) -> None:
    os.environ["YKT_DATABASE_URL"] = url
    os.environ["YKT_DATA_DIR"] = str(tmp / "data")
    os.environ.setdefault("YKT_SECRET_KEY", "benchmark-secret-key")
    from yikatong.core.settings import reset_settings

    reset_settings()
    from yikatong.core.db import transaction
    from yikatong.core.migrate import upgrade
    from yikatong.registry.models import Region

    upgrade()
    with transaction() as s:
        s.add(Region(code="510000000000", name="四川省", full_name="四川省", level="province", parent_code=None))
        s.add(Region(code="511000000000", name="内江市", full_name="四川省内江市", level="city",
                     parent_code="510000000000"))
        s.add(Region(code=f"{COUNTY}000000", name="市中区", full_name="四川省内江市市中区", level="county",
                     parent_code="511000000000"))
        s.flush()
        for t in range(VILLAGES // 20):
            s.add(Region(code=f"{COUNTY}{t + 1:03d}000", name=f"镇{t + 1}", full_name=f"市中区镇{t + 1}",
                         level="township", parent_code=f"{COUNTY}000000"))
        s.flush()
        for v in villages():
            s.add(Region(code=v, name=f"村{v[-3:]}", full_name=f"村{v}", level="village", parent_code=v[:9] + "000"))


def run_import(path: Path, label: str) -> dict[str, float]:
    from sqlalchemy import func, select

    from yikatong.core.db import transaction
    from yikatong.imports.service import import_file
    from yikatong.registry.models import Person

    marks: dict[str, float] = {}
    start = time.perf_counter()

    def progress(stage: str, done: int, total: int) -> None:
        marks.setdefault(f"{stage} start", time.perf_counter() - start)
        marks[f"{stage} end"] = time.perf_counter() - start

    with transaction() as session:
        report = import_file(session, "persons", path, path.name, actor=None, now=datetime(2026, 3, 1),
                             on_progress=progress)
        assert report.ok, report.errors[:5]
        before_commit = time.perf_counter() - start
    total = time.perf_counter() - start
    with transaction() as session:
        persons = session.scalar(select(func.count()).select_from(Person))
    read = marks.get("校验 start", 0)
    validate = marks.get("写入 start", before_commit) - read
    write = (before_commit - marks["写入 start"]) if "写入 start" in marks else 0.0
    print(f"  {label:<28} total {total:6.1f} s  (read {read:5.1f} s, validate {validate:5.1f} s, "
          f"write {write:5.1f} s, commit {total - before_commit:4.1f} s)  added {report.added:,} "
          f"unchanged {report.unchanged:,}  persons in db {persons:,}")
    return {"total": total}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000, help="person rows to generate (default 100000)")
    parser.add_argument("--database", default=None, help="SQLAlchemy URL (default: scratch SQLite file)")
    parser.add_argument("--formats", default="csv,xlsx", help="comma-separated: csv,xlsx")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

    tmp = Path(tempfile.mkdtemp(prefix="ykt-bench-import-"))
    t = time.perf_counter()
    rows = make_rows(args.rows)
    print(f"generated {len(rows):,} rows in {time.perf_counter() - t:.1f} s")
    for fmt in args.formats.split(","):
        path = tmp / f"persons.{fmt}"
        t = time.perf_counter()
        (write_csv if fmt == "csv" else write_xlsx)(rows, path)
        size = path.stat().st_size / 1024 / 1024
        print(f"{fmt}: wrote {path.name} ({size:.1f} MB) in {time.perf_counter() - t:.1f} s")
        url, drop = scratch_database(args.database, tmp)
        try:
            prepare(url, tmp)
            run_import(path, f"first import ({fmt})")
            run_import(path, f"re-import, all unchanged ({fmt})")
        finally:
            from yikatong.core.db import reset_engine

            reset_engine()
            drop()


if __name__ == "__main__":
    main()
