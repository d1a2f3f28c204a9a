"""Benchmark: queue the arrival SMS (到账短信) of a return that pays N orders, in one transaction.

    .venv/bin/python benchmarks/arrival_sms.py --orders 1000000
    .venv/bin/python benchmarks/arrival_sms.py --orders 1000000 --database postgresql+psycopg://postgres@127.0.0.1/postgres

A scratch database (SQLite in a temporary folder, or a database created beside the given PostgreSQL
one and dropped) gets N persons with phones and N paid orders, loaded by INSERT .. SELECT with foreign
keys and triggers off (they are not what is measured). Then, with every constraint on,
`disbursement.arrival.queue_arrivals` runs over all N ids and commits; then again (every message is
already there). Prints the time of each."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime
from pathlib import Path

NOW = datetime(2026, 12, 4, 8, 0, tzinfo=UTC)

# n -> rows 1..n, on either engine
SERIES = {"postgresql": "SELECT g AS n FROM generate_series(1, :n) AS g",
          "sqlite": "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < :n) SELECT n FROM s"}


def load(session, n: int) -> None:
    from sqlalchemy import text

    dialect = session.get_bind().dialect.name
    series = SERIES[dialect]
    blob = "decode('00', 'hex')" if dialect == "postgresql" else "x'00'"
    true = "true" if dialect == "postgresql" else "1"
    tail = "right('000' || (n % 10000), 4)" if dialect == "postgresql" else "substr('000' || (n % 10000), -4, 4)"
    names = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
    stamp = "'2026-12-01 00:00:00'"
    session.execute(text(f"""
        INSERT INTO subsidy_items (code, name, category_code, funding_level, department_code, basis, standard_fen,
                                   frequency, village_publicity, means_tested, description)
        VALUES ('BENCH', '耕地地力保护补贴', 'X', '市', 'X', '人', 12850, '季', {true}, {true}, '')"""))
    session.execute(text(f"""
        INSERT INTO persons (id, id_number_enc, id_number_hash, id_number_masked, name, gender, birth_date,
                             region_code, phone_enc, phone_hash, phone_masked, is_beneficiary, has_active_card,
                             created_at, updated_at)
        SELECT n, {blob}, 'bench' || n, '511002********0000',
               substr('{names}', 1 + n % 20, 1) || '小明', '男', '1950-01-01', '511002001001',
               CASE WHEN n % 50 = 0 THEN NULL ELSE {blob} END, 'p' || n, '138****5678', {true}, {true},
               {stamp}, {stamp}
        FROM ({series}) AS s"""), {"n": n})
    session.execute(text(f"""
        INSERT INTO payment_orders (id, batch_id, application_id, person_id, item_code, period, year, region_code,
                                    amount_fen, status, bank_code, payee_name, by_proxy, account_hash,
                                    account_masked, fail_code, fail_reason, attempt, rework, rework_note,
                                    rework_by_name, paid_on)
        SELECT n, 1, n, n, 'BENCH', '2026Q3', 2026, '511002001001', 12850, '成功', 'ABC', '', n % 7 = 0, '',
               '6228 **** **** ' || {tail}, '', '', 1, '', '', '', '2026-12-04'
        FROM ({series}) AS s"""), {"n": n})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--database", default=None, help="a PostgreSQL URL (default: SQLite in a temp folder)")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="ykt-bench-"))
    if args.database and args.database.startswith("postgresql"):
        from yikatong.core.db import create_database, drop_database

        url = create_database(args.database, "ykt_bench")
        cleanup = lambda: drop_database(url)  # noqa: E731
    else:
        url, cleanup = f"sqlite:///{tmp / f'bench-{uuid.uuid4().hex[:6]}.db'}", lambda: None
    os.environ["YKT_DATABASE_URL"] = url
    os.environ["YKT_DATA_DIR"] = str(tmp / "data")
    os.environ.setdefault("YKT_SECRET_KEY", "benchmark-secret-key")
    from yikatong.core.settings import reset_settings

    reset_settings()
    try:
        from sqlalchemy import func, select, text

        from yikatong.core.db import engine, new_session
        from yikatong.core.migrate import upgrade
        from yikatong.disbursement.arrival import queue_arrivals
        from yikatong.notify.models import OutboxMessage

        upgrade()
        dialect = engine().dialect.name
        start = time.perf_counter()
        with engine().connect() as conn:
            if dialect == "sqlite":
                conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            else:
                conn.exec_driver_sql("SET session_replication_role = replica")  # no FK checks, no triggers
            from sqlalchemy.orm import Session

            with Session(bind=conn) as s:
                load(s, args.orders)
                s.commit()
            if dialect == "sqlite":
                conn.exec_driver_sql("PRAGMA foreign_keys=ON")
            else:
                conn.exec_driver_sql("SET session_replication_role = origin")
                conn.exec_driver_sql("ANALYZE")
            conn.commit()
        print(f"{dialect}: loaded {args.orders:,} persons and paid orders in {time.perf_counter() - start:.1f} s")
        ids = list(range(1, args.orders + 1))
        for label in ("queue", "queue again (all present)"):
            start = time.perf_counter()
            with new_session() as s:
                result = queue_arrivals(s, ids, NOW)
                s.commit()
            took = time.perf_counter() - start
            print(f"{dialect}: {label}: {took:.2f} s  queued {result.queued:,}, no phone {result.no_phone:,}, "
                  f"already {result.already:,}")
        with new_session() as s:
            rows = s.scalar(select(func.count()).select_from(OutboxMessage))
            sample = s.scalar(select(OutboxMessage.body).order_by(OutboxMessage.id).limit(1))
            s.execute(text("SELECT 1"))
        print(f"{dialect}: outbox rows {rows:,}; first: {sample}  (today {date.today()})")
    finally:
        from yikatong.core.db import reset_engine

        reset_engine()
        cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
