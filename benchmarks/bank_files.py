"""Bank files at the size of a large batch: N synthetic payment records exported through each bank's
connector (fixed width GBK, delimited GBK, ISO 20022 pain.001), played by the bank simulator (reading
the batch files, drawing failures, writing the return and the statement), then the return and the
statement read back and checked against the batch — the code behind the payment core and `ykt bank-sim`.

    python benchmarks/bank_files.py --records 1000000
    python benchmarks/bank_files.py --records 1000000 --banks SCRCU --validate

Prints, per bank and stage, the wall time and the peak resident memory of the stage (VmHWM, reset
before each stage through /proc/self/clear_refs)."""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from yikatong.disbursement.bank.connector import registry
from yikatong.disbursement.bank.iso20022 import PAIN001, schema_errors
from yikatong.disbursement.bank.records import BatchFile, PaymentRecord
from yikatong.disbursement.bank.sim import simulate

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华建国志红玉兰文辉春梅德明金凤"


def records(n: int, seed: int = 1) -> list[PaymentRecord]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        name = rng.choice(SURNAMES) + "".join(rng.choices(GIVEN, k=rng.choice((1, 2))))
        out.append(PaymentRecord(f"YKT00000001-{i:012d}", name, f"6228480{i:011d}{rng.randrange(10)}",
                                 rng.randrange(5_000, 200_000), "2026年11月 农村最低生活保障金"))
    return out


def _peak_reset() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _peak_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def timed(label: str, fn, results: list) -> object:
    _peak_reset()
    start = time.perf_counter()
    value = fn()
    seconds = time.perf_counter() - start
    results.append((label, seconds, _peak_mb()))
    print(f"  {label:<44} {seconds:7.2f} s   peak RSS {_peak_mb():7.0f} MB", flush=True)
    return value


def run_bank(connector, recs: list[PaymentRecord], folder: Path, args: argparse.Namespace) -> None:
    code, t = connector.bank_code, connector.template
    print(f"{code}: {t.format}, {t.encoding}, at most {t.max_records_per_file:,} records per file")
    batch = BatchFile("FF20261205000001", code, datetime(2026, 12, 5, 2, tzinfo=UTC), "内江市财政局国库存款户",
                      "2253511000010401", recs)
    (folder / "out").mkdir(parents=True)
    (folder / "bank").mkdir()
    results: list = []
    files = timed(f"export {len(recs):,} records", lambda: connector.export_files(batch, folder / "out"), results)
    size = sum(f.path.stat().st_size for f in files) / 1e6
    print(f"    {len(files)} files, {size:,.0f} MB, SHA-256 of each recorded")
    if args.validate and t.is_xml:
        timed("validate pain.001 against the XSD",
              lambda: [e for f in files for e in schema_errors(f.path, PAIN001)], results)
    sims = timed("bank-sim (read batch, answer, write both)",
                 lambda: [simulate(f.path, folder / "bank", args.failure_rate, 7) for f in files], results)
    failed = sum(s.failed for s in sims)
    print(f"    {failed:,} records failed by the simulated bank")
    answers = timed(f"read and check the return ({len(recs):,} lines)",
                    lambda: [r for s in sims for r in connector.read_return(s.return_file.path, batch)], results)
    assert len(answers) == len(recs)
    lines = timed("read and check the statement",
                  lambda: [x for s in sims for x in connector.read_statement(s.statement_file.path, batch)], results)
    assert len(lines) == len(recs) + failed
    shutil.rmtree(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--banks", default="ABC,PSBC,SCRCU", help="bank codes, comma separated")
    parser.add_argument("--failure-rate", type=float, default=0.0005)
    parser.add_argument("--validate", action="store_true", help="also validate every pain.001 file against the XSD")
    parser.add_argument("--folder", type=Path, default=None, help="work folder (default: a temporary one, removed)")
    args = parser.parse_args()

    print(f"{platform.node()}: {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    start = time.perf_counter()
    recs = records(args.records)
    print(f"{len(recs):,} synthetic records in {time.perf_counter() - start:.1f} s (not counted below)")
    connectors = registry()
    work = args.folder or Path(tempfile.mkdtemp(prefix="bank_files_"))
    try:
        for code in args.banks.split(","):
            run_bank(connectors[code], recs, work / code, args)
    finally:
        if args.folder is None:
            shutil.rmtree(work, ignore_errors=True)
    print(f"load average after {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")


if __name__ == "__main__":
    main()
