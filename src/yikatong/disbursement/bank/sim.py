"""The bank simulator (`ykt bank-sim`): reads one exported batch file, as a bank would, and writes the
bank's return and its statement of the paying account (and, playing the treasury too, the treasury's
payment detail of the same movements), with realistic failures (frozen or cancelled
cards, name mismatches...) at a chosen rate. The same file, rate and seed always give the same files, so
the whole payment loop runs end to end on one machine."""

from __future__ import annotations

import bisect
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, time, timedelta
from itertools import accumulate
from pathlib import Path

from yikatong.core.clock import beijing_at, beijing_date
from yikatong.core.errors import Invalid
from yikatong.disbursement.bank.connector import Connector, registry
from yikatong.disbursement.bank.files import WrittenFile, bulk
from yikatong.disbursement.bank.iso20022 import PAIN001, IsoConnector, is_iso20022
from yikatong.disbursement.bank.reasons import REASONS, SIMULATED
from yikatong.disbursement.bank.records import PaymentRecord, ReturnRecord, ReturnStatus, StatementLine
from yikatong.disbursement.bank.template import BANKS_DIR
from yikatong.disbursement.bank.treasury import write_treasury

_CODES = [code for code, _ in SIMULATED]
_CUMULATIVE = list(accumulate(w for _, w in SIMULATED))


@dataclass(frozen=True)
class SimResult:
    bank_code: str
    return_file: WrittenFile
    statement_file: WrittenFile
    treasury_file: WrittenFile  # the treasury's payment detail of the same movements (国库支付明细)
    paid: int
    failed: int


def answer(records: Sequence[PaymentRecord], failure_rate: float, seed: int, key: str) -> list[ReturnRecord]:
    """The bank's answer to each record: paid, or failed with a reason drawn from the table. `key`
    (batch and file) keeps two files of a batch from failing the same positions."""
    if not 0 <= failure_rate <= 1:
        raise Invalid("失败率应在 0 到 1 之间")
    rng = random.Random(f"{seed}:{key}")
    top = _CUMULATIVE[-1]
    out = []
    paid, failed = ReturnStatus.PAID, ReturnStatus.FAILED
    for r in records:
        if rng.random() < failure_rate:
            code = _CODES[bisect.bisect_right(_CUMULATIVE, rng.randrange(top))]
            out.append(ReturnRecord(r.end_to_end_id, r.amount_fen, failed, code, REASONS[code]))
        else:
            out.append(ReturnRecord(r.end_to_end_id, r.amount_fen, paid, "", ""))
    return out


def statement_lines(answers: Sequence[ReturnRecord], booked_on: date) -> list[StatementLine]:
    """Every record is drawn from the paying account on `booked_on`; a failed one comes back the next day."""
    lines = [StatementLine(a.end_to_end_id, a.amount_fen, booked_on) for a in answers]
    back = booked_on + timedelta(days=1)
    lines += [StatementLine(a.end_to_end_id, -a.amount_fen, back) for a in answers if a.status is ReturnStatus.FAILED]
    return lines


def detect(path: Path, folder: Path = BANKS_DIR) -> tuple[Connector, str]:
    """Which bank's connector reads this batch file, and its kind ("pain.001" or "flat")."""
    connectors = registry(folder)
    message = is_iso20022(path)
    if message is not None:
        if message != PAIN001:
            raise Invalid(f"{path.name} 是 {message}，不是代发文件（{PAIN001}）")
        iso = [c for c in connectors.values() if isinstance(c, IsoConnector)]
        if not iso:
            raise Invalid("没有使用 ISO 20022 的银行模板")
        with path.open("rb") as f:  # the paying bank named in the file's head (DbtrAgt), if it is one we know
            agent = re.search(rb"<DbtrAgt>.*?<Othr><Id>([^<]+)</Id>", f.read(16384), re.S)
        chosen = connectors.get(agent.group(1).decode("utf-8", "replace")) if agent else None
        return (chosen if isinstance(chosen, IsoConnector) else iso[0]), "pain.001"
    for connector in connectors.values():
        if not isinstance(connector, IsoConnector) and connector.header_of(path) is not None:
            return connector, "flat"
    raise Invalid(f"{path.name} 既不是 {PAIN001} 文件，也不是任何银行模板的代发文件（首行表头不符）")


@bulk
def simulate(path: Path, out_folder: Path, failure_rate: float, seed: int, booked_on: date | None = None,
             folder: Path = BANKS_DIR) -> SimResult:
    connector, kind = detect(path, folder)
    header, records = connector.read_batch_file(path)
    day = booked_on or beijing_date(header.created)
    answers = answer(records, failure_rate, seed, f"{header.batch_number}:{header.file_no}")
    processed = beijing_at(day, time(18))  # the bank answers at the end of the booking day
    stem = path.name.split(".")[0]
    iso = kind == "pain.001"
    out_folder.mkdir(parents=True, exist_ok=True)
    ret = connector.write_return(out_folder / (f"{stem}.pain.002.001.12.xml" if iso else f"{stem}.ret{path.suffix}"),
                                 header, processed, list(zip(records, answers, strict=True)))
    stm = connector.write_statement(out_folder / (f"{stem}.camt.053.001.08.xml" if iso else f"{stem}.stm{path.suffix}"),
                                    header, processed, statement_lines(answers, day))
    lines = statement_lines(answers, day)
    treasury = write_treasury(out_folder / f"{stem}.treasury.csv", lines)  # the treasury books the same moves
    failed = sum(1 for a in answers if a.status is ReturnStatus.FAILED)
    return SimResult(connector.bank_code, ret, stm, treasury, len(answers) - failed, failed)
