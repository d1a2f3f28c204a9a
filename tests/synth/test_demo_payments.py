"""The demo city's payment loop: a newcomer finds batches per bank, failures, a re-payment, reconciliations
and arrival SMS — built through the real services on a city of its own (claims at the end of the road)."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker

from yikatong.core.db import create_database, drop_database, make_engine
from yikatong.core.migrate import upgrade
from yikatong.core.settings import reset_settings
from yikatong.disbursement.models import BatchStatus, OrderStatus, PaymentBatch, PaymentOrder, Reconciliation
from yikatong.notify.models import OutboxMessage
from yikatong.synth.city import build_city
from yikatong.synth.payments import run_demo_payments

NOW = datetime(2026, 12, 4, 2, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def paid_city(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("demo_pay")
    server = os.environ.get("YKT_TEST_DATABASE_URL", "")
    url = create_database(server, "ykt_test_demo_pay") if server.startswith("postgresql") else \
        f"sqlite:///{tmp / 'demo.db'}"
    saved = {k: os.environ.get(k) for k in ("YKT_DATA_DIR", "YKT_BANK_DIR")}
    os.environ["YKT_DATA_DIR"] = str(tmp / "data")
    os.environ.pop("YKT_BANK_DIR", None)
    reset_settings()
    engine = None
    try:
        upgrade(url)
        engine = make_engine(url)
        build_city(engine, 0.002, 5, claims=True, shared_data=False)
        sessions = sessionmaker(bind=engine)
        yield sessions, run_demo_payments(sessions, NOW, seed=3)
    finally:
        if engine is not None:
            engine.dispose()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        reset_settings()
        if server.startswith("postgresql"):
            drop_database(url)


def test_the_demo_pays_two_periods_per_bank_with_failures_and_a_repayment(paid_city):
    sessions, report = paid_city
    assert not report.skipped
    assert report.paid > 0 and report.failed > 0 and report.repaid == 1
    with sessions() as s:
        batches = s.scalars(select(PaymentBatch)).all()
        assert len(batches) == len(report.batches) >= 3
        assert {b.status for b in batches} == {BatchStatus.RECONCILED.value}
        assert len({b.bank_code for b in batches}) >= 2 and len({b.period for b in batches}) == 2
        # nothing paid twice; every failure but the one paid again waits for its department
        twice = s.execute(select(PaymentOrder.application_id).where(PaymentOrder.status == OrderStatus.PAID.value)
                          .group_by(PaymentOrder.application_id).having(func.count() > 1)).all()
        assert twice == []
        assert s.scalar(select(func.count()).select_from(PaymentOrder).where(
            PaymentOrder.status == OrderStatus.PAID.value)) == report.paid
        runs = s.scalars(select(Reconciliation)).all()
        assert all(r.balanced for r in runs) and any(r.day is not None for r in runs)
        # the arrival SMS of the paid orders wait in the outbox, one per order
        sms = s.scalars(select(OutboxMessage).where(OutboxMessage.kind == "arrival")).all()
        assert len(sms) == report.sms > 0
        assert len({m.dedupe_key for m in sms}) == len(sms) and all("社会保障卡" in m.body for m in sms)
