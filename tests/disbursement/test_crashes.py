"""Fault injection over the whole payment loop: the `ykt` commands run in real processes that are killed
(SIGKILL: no cleanup, no rollback) at random points — inside transactions, between a commit and the
deletion of a file, halfway through writing a bank file or a message — and then run again, as an operator
would, until they finish. After every round of the loop: nobody is paid twice, no arrival SMS reaches
a person twice, and no application is dropped.

Each round is one batch for a fresh item: build, approve, export, the bank's answers (not crashed),
return, SMS dispatch (the outbox worker's Dispatcher into a FileSink), statement, treasury detail,
reconciliation. Each step is killed at its dangerous boundaries (after its commit; halfway through a
bank file and around its rename; around the deletion of the answered file; halfway through a message
and after handing it to the sink), at CRASHES_PER_STEP random points (the N-th crash point of
tests/disbursement/crash_driver.py, N drawn from a seeded generator over the step's measured length;
some by the test's own SIGKILL after a random delay), then run until it finishes, then run once more
and killed again. YKT_CRASH_SEED and YKT_CRASH_ROUNDS change the draw and the length."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import func, select

from yikatong.core.db import new_session, transaction
from yikatong.core.protect import protect
from yikatong.disbursement import arrival, budget
from yikatong.disbursement.models import (
    BankFile,
    BatchExclusion,
    BatchStatus,
    FileKind,
    MoneyLine,
    OrderStatus,
    PaymentBatch,
    PaymentOrder,
    Reconciliation,
)
from yikatong.notify.models import OutboxMessage, OutboxStatus
from yikatong.notify.notifier import FileSink
from yikatong.registry.models import Person
from yikatong.security.models import User

from .conftest import Paying, approved, colleague, flag, new_item, new_person, set_budget
from .test_loop import BANKS, bank_answers

SEED = int(os.environ.get("YKT_CRASH_SEED", "20261205"))
ROUNDS = int(os.environ.get("YKT_CRASH_ROUNDS", "6"))
CRASHES_PER_STEP = 3  # at random points, besides the aimed ones
AGAIN = 1  # kills of the same command run again after it finished
PARENT_KILLS = 0.2  # share of the crashes done by the test itself after a random delay
PAYEES = 8  # applications paid per round (besides two left out)
DRIVER = Path(__file__).with_name("crash_driver.py")


class Driver:
    """The fork server (crash_driver.py) in its own process."""

    def __init__(self, env: dict[str, str], log: Path):
        self.log = log
        self.process = subprocess.Popen([sys.executable, str(DRIVER)], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True, env=env)
        ready = self.process.stdout.readline()
        assert json.loads(ready or "{}").get("ready"), "the crash driver did not start"

    def run(self, args: list[str], crash_at: int | None = None, kill_after: float | None = None,
            crash_on: str | None = None) -> dict:
        request = {"args": args, "crash_at": crash_at, "crash_on": crash_on, "kill_after": kill_after,
                   "log": str(self.log)}
        with self.log.open("a") as f:
            f.write(f"\n$ ykt {' '.join(args)}  crash_at={crash_at} crash_on={crash_on} kill_after={kill_after}\n")
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=30)


@dataclass
class Crasher:
    driver: Driver
    rng: random.Random
    lengths: dict[str, int] = field(default_factory=dict)  # crash points of a whole run, per step
    durations: dict[str, float] = field(default_factory=dict)
    crashes: Counter = field(default_factory=Counter)
    where: Counter = field(default_factory=Counter)  # the kind of crash point each run died at
    by_parent: int = 0
    aim_first: bool = True
    runs: int = 0

    def step(self, name: str, args: list[str], done, aim: tuple[str, ...] = ()) -> None:
        """Run `args` killed at random points and at the first point of each kind in `aim` and "after a
        commit" (the dangerous boundaries; aimed first in even rounds, after the random kills in odd
        ones, as a step passes its commit only once), then again until it exits by itself with `done()`
        true; then the same command once more, killed up to AGAIN times, then clean (the operator who is
        not sure it worked): it must change nothing (the round's checks)."""
        aimed = [*aim, "after a commit"]
        self._until_done(name, args, done, CRASHES_PER_STEP, aimed if self.aim_first else [], aimed)
        self._until_done(name, args, done, AGAIN)

    def _until_done(self, name: str, args: list[str], done, kills: int, first: list[str] = (),
                    last: list[str] = ()) -> None:
        killed = 0
        first, last = list(first), [] if first else list(last)
        for _ in range(len(first) + len(last) + kills + 5):
            was_done = done()
            key = f"{name} again" if was_done else name  # a rerun after the work was done is shorter
            crash_at = kill_after = crash_on = None
            if first:
                crash_on = first.pop(0)
            elif killed < kills and key in self.durations and self.rng.random() < PARENT_KILLS:
                kill_after = self.rng.uniform(0, self.durations[key])
            elif killed < kills:
                crash_at = self.rng.randint(1, self.lengths.get(key, 10))
            elif last:
                crash_on = last.pop(0)
            result = self.driver.run(args, crash_at, kill_after, crash_on)
            self.runs += 1
            if result["signal"]:
                assert result["signal"] == 9, result
                killed += crash_on is None
                self.crashes[name] += 1
                self.by_parent += kill_after is not None
                self.where[result["died"] or "killed by the test after a delay"] += 1
                if crash_on is not None:  # it got that far: the step is at least this long
                    self.lengths[key] = max(self.lengths.get(key, 0), result["died_at"])
                continue
            assert result["code"] in (0, 1), f"{name}: {result}\n{self.tail()}"
            self.lengths[key] = max(self.lengths.get(key, 0), result["points"] or 0)
            self.durations[key] = max(self.durations.get(key, 0.0), result["seconds"])
            if done():
                return
        raise AssertionError(f"`ykt {' '.join(args)}` never finished its work\n{self.tail()}")

    def tail(self) -> str:
        return self.driver.log.read_text("utf-8", "replace")[-3000:]

    @property
    def total(self) -> int:
        return sum(self.crashes.values())


@pytest.fixture
def driver(city, tmp_path, monkeypatch):
    monkeypatch.setenv("YKT_BANK_DIR", str(tmp_path / "bank"))
    env = dict(os.environ)
    env["YKT_DATA_DIR"] = str(tmp_path / "data")  # the message sink: data/outbox/messages.jsonl
    d = Driver(env, tmp_path / "commands.log")
    yield d
    d.close()


def scalar(query):
    with new_session() as s:
        return s.scalar(query)


def with_phone(person_id: int) -> int:
    """The beneficiary has a mobile number on file (the arrival SMS goes there)."""
    with transaction() as s:
        phone = protect("phone", f"139{person_id:08d}"[-11:])
        p = s.get(Person, person_id)
        p.phone_enc, p.phone_hash, p.phone_masked = phone.enc, phone.hash, phone.masked
    return person_id


@dataclass
class Round:
    paying: Paying
    paid_apps: list[int]  # at the batch's bank, with a card: in the batch
    left_out: list[int]  # no card; an open flag: excluded with a reason
    fail: set[int]  # positions in the batch file the bank fails


def new_round(n: int, rng: random.Random) -> Round:
    paying = Paying(item=new_item(), bank=BANKS[n % len(BANKS)])
    apps = [approved(paying.item, with_phone(new_person(paying.bank)), paying.period) for _ in range(PAYEES)]
    no_card = approved(paying.item, new_person(card=False), paying.period)
    flagged = approved(paying.item, with_phone(new_person(paying.bank)), paying.period)
    flag(flagged, f"测试存疑{n}")
    set_budget(paying.item, 1_000_000)
    return Round(paying, apps, [no_card, flagged], set(rng.sample(range(PAYEES), 2)))


def the_batch(item: str) -> PaymentBatch | None:
    with new_session() as s:
        return s.scalars(select(PaymentBatch).where(PaymentBatch.item_code == item)).first()


def file_count(batch_id: int | None, kind: FileKind, sha: str | None = None) -> int:
    query = select(func.count()).select_from(BankFile).where(BankFile.kind == kind.value)
    query = query.where(BankFile.sha256 == sha) if sha else query.where(BankFile.batch_id == batch_id)
    return scalar(query)


def run_round(crasher: Crasher, r: Round, n: int, answers: Path, checker: str) -> int:
    item = r.paying.item
    crasher.step("build", ["pay", "batch", "build", "--item", item, "--period", r.paying.period,
                           "--bank", r.paying.bank, "--user", "city_finance"], lambda: the_batch(item) is not None)
    batch = the_batch(item)
    number, batch_id = batch.number, batch.id
    crasher.step("approve", ["pay", "batch", "approve", number, "--user", checker],
                 lambda: the_batch(item).status != BatchStatus.DRAFT.value)
    crasher.step("export", ["pay", "export", number, "--user", "city_finance"],
                 lambda: the_batch(item).status == BatchStatus.SENT.value,
                 aim=("halfway through a bank file", "before a rename", "after a rename"))
    from yikatong.disbursement.exchange import bank_dir

    with new_session() as s:
        names = s.scalars(select(BankFile.name).where(BankFile.batch_id == batch_id,
                                                      BankFile.kind == FileKind.BATCH.value)).all()
    [path] = [bank_dir() / number / name for name in names]
    from yikatong.disbursement.bank import sim

    _, records = sim.detect(path)[0].read_batch_file(path)
    assert len({x.end_to_end_id for x in records}) == len(records) == PAYEES  # each order once in the file
    ret, stm, tsy = bank_answers(path, answers / f"r{n}", fail=r.fail)

    crasher.step("return", ["pay", "return", number, str(ret)],
                 lambda: file_count(batch_id, FileKind.RETURN) > 0, aim=("before a deletion", "after a deletion"))
    keys = arrival_keys(batch_id)
    crasher.step("dispatch", ["dispatch"], lambda: scalar(
        select(func.count()).select_from(OutboxMessage).where(
            OutboxMessage.dedupe_key.in_(keys), OutboxMessage.status == OutboxStatus.PENDING.value)) == 0,
                 aim=("halfway through a message", "after handing a message to the sink"))
    crasher.step("statement", ["pay", "statement", number, str(stm)],
                 lambda: file_count(batch_id, FileKind.STATEMENT) > 0)
    from yikatong.disbursement.bank.files import file_sha256

    crasher.step("treasury", ["pay", "treasury", str(tsy)],
                 lambda: file_count(None, FileKind.TREASURY, file_sha256(tsy)) > 0)
    crasher.step("reconcile", ["pay", "reconcile", number],
                 lambda: the_batch(item).status == BatchStatus.RECONCILED.value)
    return batch_id


def arrival_keys(batch_id: int) -> list[str]:
    """The arrival SMS keys every order of the batch would have (paid or not)."""
    with new_session() as s:
        return [arrival.arrival_key(i) for i in s.scalars(select(PaymentOrder.id).where(
            PaymentOrder.batch_id == batch_id))]


def sink_deliveries(data_dir: Path) -> Counter:
    """Messages the sink holds, per dedupe key (a line cut short by a crash is no message)."""
    return Counter(FileSink(data_dir / "outbox" / "messages.jsonl").keys())


def check_round(r: Round, batch_id: int) -> set[str]:
    """Every invariant of one round. Returns the arrival SMS keys it should have sent."""
    item = r.paying.item
    apps = r.paid_apps + r.left_out
    with new_session() as s:
        batches = s.scalars(select(PaymentBatch).where(PaymentBatch.item_code == item)).all()
        assert [b.id for b in batches] == [batch_id]  # one batch, however often `build` ran
        batch = batches[0]
        orders = s.scalars(select(PaymentOrder).where(PaymentOrder.application_id.in_(apps))
                           .order_by(PaymentOrder.id)).all()
        excluded = {e.application_id: e.reason for e in s.scalars(
            select(BatchExclusion).where(BatchExclusion.batch_id == batch_id))}
        per_app = Counter(o.application_id for o in orders)
        # no double payment: one order per application, at most one 成功
        assert all(v == 1 for v in per_app.values()), per_app
        # nothing dropped: each application paid, failed with the bank's reason, or left out with a reason
        for app in apps:
            outcomes = [o.status for o in orders if o.application_id == app] + (["未纳入"] if app in excluded else [])
            assert len(outcomes) == 1, (app, outcomes)
        assert set(excluded) == set(r.left_out) and all(excluded.values())
        paid = [o for o in orders if o.status == OrderStatus.PAID.value]
        failed = [o for o in orders if o.status == OrderStatus.FAILED.value]
        assert (len(paid), len(failed)) == (PAYEES - len(r.fail), len(r.fail))
        assert all(o.fail_reason and o.answered_at for o in failed) and all(o.answered_at for o in paid)
        assert [o.id for o in failed] == [orders[i].id for i in sorted(r.fail)]  # the bank's answers, as given
        # each file taken once; each money line booked once (out for every order, back for each failure)
        kinds = Counter(s.scalars(select(BankFile.kind).where(BankFile.batch_id == batch_id)))
        assert kinds == {FileKind.BATCH.value: 1, FileKind.RETURN.value: 1, FileKind.STATEMENT.value: 1}, kinds
        lines = Counter((m.source, m.order_id, m.amount_fen > 0) for m in s.scalars(
            select(MoneyLine).where(MoneyLine.batch_id == batch_id)))
        assert set(lines.values()) == {1}
        assert sum(lines.values()) == 2 * (PAYEES + len(r.fail))
        # the budget holds exactly what was paid (failures released, nothing waiting)
        assert budget.figures(s, item, 2026)[1] == sum(o.amount_fen for o in paid)
        assert batch.status == BatchStatus.RECONCILED.value
        runs = s.scalars(select(Reconciliation).where(Reconciliation.batch_id == batch_id)
                         .order_by(Reconciliation.id)).all()
        assert runs[-1].balanced and runs[-1].paid_fen == sum(o.amount_fen for o in paid)
        # the clear accounts left the restricted folder once the return was taken (nor any torn copy)
        from yikatong.disbursement.exchange import bank_dir

        left = list((bank_dir() / batch.number).iterdir())
        assert left == [], left
        return {arrival.arrival_key(o.id) for o in paid}


def test_killed_anywhere_and_run_again_pays_once_texts_once_drops_nothing(driver, tmp_path):
    rng = random.Random(SEED)
    crasher = Crasher(driver, rng)
    checker = scalar(select(User.username).where(User.id == colleague()))
    expected_sms: set[str] = set()
    mine: set[str] = set()  # the keys any order of these rounds could have
    for n in range(ROUNDS):
        r = new_round(n, rng)
        crasher.aim_first = n % 2 == 0
        batch_id = run_round(crasher, r, n, tmp_path / "answers", checker)
        expected_sms |= check_round(r, batch_id)
        mine |= set(arrival_keys(batch_id))

    # one arrival SMS per paid order (none for a failed one), sent, and at the sink exactly once
    with new_session() as s:
        queued = dict(s.execute(select(OutboxMessage.dedupe_key, OutboxMessage.status).where(
            OutboxMessage.dedupe_key.in_(mine))).all())
    assert set(queued) == expected_sms
    assert set(queued.values()) == {OutboxStatus.SENT.value}
    delivered = sink_deliveries(tmp_path / "data")
    arrivals = {k: v for k, v in delivered.items() if k in mine}
    assert set(arrivals) == expected_sms and set(arrivals.values()) == {1}, arrivals
    print(f"\n{crasher.total} crashes ({crasher.by_parent} by the test's SIGKILL after a delay) in "
          f"{crasher.runs} runs over {ROUNDS} rounds: {dict(crasher.crashes)}; points per step "
          f"{crasher.lengths}; arrival SMS {len(arrivals)}; died {dict(crasher.where)}")
    # the crashes reached every kind of point: inside transactions, between a commit and what follows,
    # halfway through a bank file and a message, around renames and deletions
    assert {"before an SQL statement", "after a commit", "halfway through a bank file", "before a rename",
            "before a deletion", "halfway through a message"} <= set(crasher.where) or ROUNDS < 6
    assert crasher.total >= 200 or ROUNDS < 6
