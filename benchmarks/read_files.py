"""Benchmark: the reader stack (core.readers) on a 100,000-row .xlsx and a household-register CSV.

    .venv/bin/python benchmarks/read_files.py --xlsx-rows 100000 --hukou-rows 300000

The .xlsx has 6 columns (ID number and region code as text, a name, an amount, a date, a remark that
is sometimes empty), written by openpyxl; it is read into rows by `read_xlsx`. The CSV is a valid
household register (户籍人口), read and checked by the shared-data importer without writing it. Both
print the best of a few runs in CPU seconds (steady on a shared machine) and in wall seconds.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import date
from pathlib import Path


def best(runs: int, work) -> tuple[float, float]:
    cpu = wall = float("inf")
    for _ in range(runs):
        c, w = time.process_time(), time.perf_counter()
        work()
        cpu, wall = min(cpu, time.process_time() - c), min(wall, time.perf_counter() - w)
    return cpu, wall


def xlsx_file(rows: int, folder: Path) -> bytes:
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet()
    sheet.append(["身份证号码", "姓名", "区划代码", "金额", "日期", "备注"])
    for i in range(rows):
        sheet.append([f"5110251990{i % 10000:04d}1234", f"张三{i}", "511025100001", 123.45 + i % 100,
                      date(2024, 3, 15), "备注" if i % 7 else None])
    path = folder / "list.xlsx"
    workbook.save(path)
    return path.read_bytes()


def hukou_csv(rows: int) -> bytes:
    from yikatong.core.idnumber import make_id_number

    lines = ["身份证号码,姓名,户籍地区划代码,户号,户籍状态,迁入日期,迁出日期"]
    for i in range(rows):
        born = date(1950 + i % 50, 1 + i % 12, 1 + i % 28)
        number = make_id_number(f"5110{i % 90 + 10:02d}", born, i % 500, i % 2 == 0)
        lines.append(f"{number},张{i},511025100{i % 20 + 1:03d},H{i},正常,2001-05-0{1 + i % 9},")
    return ("\n".join(lines) + "\n").encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--xlsx-rows", type=int, default=100_000)
    parser.add_argument("--hukou-rows", type=int, default=300_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    from yikatong.core.readers import open_reader, read_xlsx
    from yikatong.sharing import importer
    from yikatong.sharing.datasets import BY_CODE

    with tempfile.TemporaryDirectory() as folder:
        data = xlsx_file(args.xlsx_rows, Path(folder))
    cpu, wall = best(args.runs, lambda: read_xlsx(data))
    print(f".xlsx, {args.xlsx_rows:,} rows ({len(data) / 1e6:.1f} MB): read {cpu:.2f} s CPU, {wall:.2f} s wall")

    data = hukou_csv(args.hukou_rows)
    dataset = BY_CODE["hukou"]

    def check() -> None:
        reader = open_reader(data, max_rows=importer.MAX_ROWS)
        columns, errors = importer._match_headers(dataset, reader)
        checker = importer._Checker(dataset, columns, reader.headers)
        for chunk in reader.chunks(columns):
            checker.chunk(chunk)
        assert not errors and checker.errors.count == 0 and checker.table().num_rows == args.hukou_rows

    cpu, wall = best(args.runs, check)
    print(f"household register CSV, {args.hukou_rows:,} rows ({len(data) / 1e6:.0f} MB): "
          f"read and check {cpu:.2f} s CPU, {wall:.2f} s wall")


if __name__ == "__main__":
    main()
