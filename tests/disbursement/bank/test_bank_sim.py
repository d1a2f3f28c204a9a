"""`ykt bank-sim` run as a real subprocess on exported files; its return and statement are read back
through the bank's connector. Same seed, same files; failures drawn from the reason table."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from datetime import date
from pathlib import Path

import pytest

from yikatong.disbursement.bank.reasons import REASONS, SIMULATED
from yikatong.disbursement.bank.records import ReturnStatus
from yikatong.disbursement.bank.sim import answer, simulate

from .conftest import connector, make_batch, make_records

SRC = Path(__file__).resolve().parents[3] / "src"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    return subprocess.run([sys.executable, "-m", "yikatong.cli", "bank-sim", *args], capture_output=True, text=True,
                          env=env, timeout=120)


@pytest.mark.parametrize(("code", "ret_name", "stm_name"), [
    ("ABC", "FF20261205000001_001of001.ret.txt", "FF20261205000001_001of001.stm.txt"),
    ("PSBC", "FF20261205000001_001of001.ret.csv", "FF20261205000001_001of001.stm.csv"),
    ("SCRCU", "FF20261205000001_001of001.pain.002.001.12.xml", "FF20261205000001_001of001.camt.053.001.08.xml"),
])
def test_bank_sim_answers_an_exported_file(tmp_path: Path, code: str, ret_name: str, stm_name: str) -> None:
    c = connector(code)
    batch = make_batch(code, 400)
    (tmp_path / "out").mkdir()
    [path] = c.export_batch(batch, tmp_path / "out")
    done = _run(str(path), "--out", str(tmp_path / "bank"), "--failure-rate", "0.1", "--seed", "3",
                "--booked-on", "2026-12-07")
    assert done.returncode == 0, done.stderr
    assert f"银行 {code}：成功" in done.stdout
    answers = c.read_return(tmp_path / "bank" / ret_name, batch)
    assert [a.end_to_end_id for a in answers] == [r.end_to_end_id for r in batch.records]
    failures = [a for a in answers if a.status is ReturnStatus.FAILED]
    assert 15 <= len(failures) <= 70  # 10 % of 400, drawn
    assert all(a.reason_code in dict(SIMULATED) and a.reason == REASONS[a.reason_code] for a in failures)
    lines = c.read_statement(tmp_path / "bank" / stm_name, batch)
    assert len(lines) == 400 + len(failures)
    assert sum(x.amount_fen for x in lines) == sum(a.amount_fen for a in answers if a.status is ReturnStatus.PAID)
    assert {x.booked_on for x in lines if x.amount_fen > 0} == {date(2026, 12, 7)}
    assert {x.booked_on for x in lines if x.amount_fen < 0} == {date(2026, 12, 8)}
    assert {x.end_to_end_id for x in lines if x.amount_fen < 0} == {a.end_to_end_id for a in failures}

    again = _run(str(path), "--out", str(tmp_path / "again"), "--failure-rate", "0.1", "--seed", "3",
                 "--booked-on", "2026-12-07")
    assert again.returncode == 0
    for name in (ret_name, stm_name):
        assert (tmp_path / "again" / name).read_bytes() == (tmp_path / "bank" / name).read_bytes()
    other = _run(str(path), "--out", str(tmp_path / "other"), "--failure-rate", "0.1", "--seed", "4",
                 "--booked-on", "2026-12-07")
    assert other.returncode == 0
    assert (tmp_path / "other" / ret_name).read_bytes() != (tmp_path / "bank" / ret_name).read_bytes()


def test_bank_sim_refuses_what_is_not_a_batch_file(tmp_path: Path) -> None:
    junk = tmp_path / "junk.txt"
    junk.write_text("hello\n", encoding="utf-8")
    done = _run(str(junk))
    assert done.returncode == 1 and "不是任何银行模板的代发文件" in done.stderr
    done = _run(str(junk), "--failure-rate", "1.5")
    assert done.returncode != 0 and "failure-rate" in done.stderr


def test_bank_sim_help_explains_every_option() -> None:
    done = _run("--help")
    assert done.returncode == 0
    for option in ("--out", "--failure-rate", "--seed", "--booked-on"):
        assert option in done.stdout
    assert "pain.002.001.12" in done.stdout and "camt.053.001.08" in done.stdout


def test_failures_follow_the_rate_and_the_reason_weights() -> None:
    records = make_records(20_000)
    answers = answer(records, 0.25, 11, "B:1")
    codes = Counter(a.reason_code for a in answers if a.status is ReturnStatus.FAILED)
    assert 4_700 <= sum(codes.values()) <= 5_300
    assert codes["AC06"] > codes["AC04"] > codes["BE01"] > codes["AC01"] > codes["MD07"]
    assert answer(records, 0, 11, "B:1") == answer(records, 0.0, 99, "B:1")  # nothing fails at rate 0
    assert all(a.status is ReturnStatus.FAILED for a in answer(records[:50], 1, 1, "B:1"))
    assert answer(records, 0.25, 11, "B:1") == answers and answer(records, 0.25, 11, "B:2") != answers


def test_every_file_of_a_split_batch_is_answered(tmp_path: Path) -> None:
    c = connector("PSBC", max_records_per_file=3)
    batch = make_batch("PSBC", 7)
    paths = c.export_batch(batch, tmp_path)
    answered = []
    for path in paths:
        result = simulate(path, tmp_path / "bank", 0.3, 5, folder=_templates_with(tmp_path, "PSBC", 3))
        answered += c.read_return(result.return_file.path, batch)
    assert [a.end_to_end_id for a in answered] == [r.end_to_end_id for r in batch.records]


def _templates_with(tmp_path: Path, code: str, max_records: int) -> Path:
    """A folder of templates where `code` splits at `max_records` (the simulator reads templates from it)."""
    from yikatong.disbursement.bank.template import BANKS_DIR

    folder = tmp_path / "templates"
    folder.mkdir(exist_ok=True)
    text = (BANKS_DIR / f"{code}.toml").read_text(encoding="utf-8")
    (folder / f"{code}.toml").write_text(text.replace("max_records_per_file = 50000",
                                                      f"max_records_per_file = {max_records}"), encoding="utf-8")
    return folder
