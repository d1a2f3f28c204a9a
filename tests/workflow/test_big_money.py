"""Money columns hold any amount: a standard, a claim, a flag, a lead and a dry run's total above
2^31 fen (21.47 million yuan) are stored and summed exactly, on SQLite and on PostgreSQL (bigint)."""

from __future__ import annotations

from datetime import date

from sqlalchemy import func, inspect, select

from yikatong.catalog.models import SubsidyItem
from yikatong.catalog.service import add_standard
from yikatong.interception.models import Flag, Lead, RuleVersion
from yikatong.interception.screening import sync_builtin_rules
from yikatong.workflow.models import Application
from yikatong.workflow.service import Claim, Source, enter_claims, prepare_claims

from .conftest import MONDAY

BIG = 2**31 + 12_345  # fen: just over what a 32-bit column holds
MONEY = {"applications": ("standard_fen", "amount_fen"), "subsidy_items": ("standard_fen",),
         "publicity_entries": ("amount_fen",), "flags": ("amount_fen",), "leads": ("amount_fen",),
         "rule_versions": ("dry_run_amount_fen",), "item_standards": ("standard_fen",)}


def test_every_fen_column_is_64_bit(db):
    inspector = inspect(db.get_bind())
    for table, columns in MONEY.items():
        types = {c["name"]: c["type"] for c in inspector.get_columns(table)}
        for column in columns:
            # PostgreSQL: BIGINT; SQLite: INTEGER, which is already 64-bit
            assert str(types[column]) in ("BIGINT", "INTEGER"), (table, column, types[column])
            if db.get_bind().dialect.name == "postgresql":
                assert str(types[column]) == "BIGINT", (table, column)


def test_amounts_above_2_31_fen_are_stored_and_summed(db, users, claimant):
    item = "ZS007"
    add_standard(db, users["city_finance"], item, date(2026, 11, 1), BIG, MONDAY, reason="大额测试")
    assert db.get(SubsidyItem, item).standard_fen == BIG
    people = [claimant(item), claimant(item)]
    prepared = prepare_claims(db, None, [Claim(ref=n, person_id=p.id, item_code=item, period="2026-11")
                                         for n, p in enumerate(people, 1)], Source.LIST, MONDAY)
    ids = enter_claims(db, None, prepared, Source.LIST, MONDAY, screen=False)
    db.expire_all()
    assert [db.get(Application, i).amount_fen for i in ids] == [BIG, BIG]
    assert db.scalar(select(func.sum(Application.amount_fen)).where(Application.id.in_(ids))) == 2 * BIG

    sync_builtin_rules(db, MONDAY)
    version = db.scalars(select(RuleVersion).where(RuleVersion.rule_code == "OVER_STANDARD")).first()
    version.dry_run_amount_fen = 3 * BIG
    flags = [Flag(application_id=i, rule_code="OVER_STANDARD", rule_version_id=version.id, evidence="大额",
                  evidence_key=f"big{i}", fact_key=f"test:big{i}", amount_fen=BIG, item_code=item,
                  region_code="511025000000", severity="中", raised_at=MONDAY) for i in ids]
    db.add_all(flags)
    db.flush()
    db.add_all(Lead(flag_id=f.id, application_id=f.application_id, rule_code=f.rule_code, region_code=f.region_code,
                    amount_fen=BIG, summary="大额", created_at=MONDAY) for f in flags)
    db.flush()
    db.expire_all()
    assert db.scalar(select(func.sum(Flag.amount_fen)).where(Flag.application_id.in_(ids))) == 2 * BIG
    assert db.scalar(select(func.sum(Lead.amount_fen)).where(Lead.application_id.in_(ids))) == 2 * BIG
    assert db.get(RuleVersion, version.id).dry_run_amount_fen == 3 * BIG


def test_the_rule_snapshot_carries_fen_as_int64(db, users, claimant):
    """Rules read money as 64-bit integers: the table contract, the Parquet files of shared data and
    a snapshot holding claims above 2^31 fen."""
    import pyarrow as pa

    from yikatong.interception.snapshot import focus_snapshot
    from yikatong.interception.tables import RULE_TABLES
    from yikatong.sharing.datasets import DATASETS
    from yikatong.sharing.store import arrow_schema, current_snapshots

    fen_columns = [(t.name, c.name, c.type) for t in RULE_TABLES.values() for c in t.columns if c.name.endswith("_fen")]
    assert len(fen_columns) >= 8 and all(type_ == "BIGINT" for *_, type_ in fen_columns), fen_columns
    for dataset in DATASETS:
        for field in arrow_schema(dataset):
            if field.name.endswith("_fen"):
                assert field.type == pa.int64(), (dataset.code, field.name)

    item = "ZS007"
    add_standard(db, users["city_finance"], item, date(2026, 11, 1), BIG, MONDAY, reason="大额测试")
    people = [claimant(item), claimant(item)]
    prepared = prepare_claims(db, None, [Claim(ref=n, person_id=p.id, item_code=item, period="2026-11")
                                         for n, p in enumerate(people, 1)], Source.LIST, MONDAY)
    ids = enter_claims(db, None, prepared, Source.LIST, MONDAY, screen=False)
    snap = focus_snapshot(db, ids, current_snapshots(db))
    try:
        row = snap.con.execute(
            "SELECT sum(amount_fen), sum(period_standard_fen), any_value(typeof(amount_fen)) FROM applications "
            "WHERE application_id IN (SELECT application_id FROM focus)").fetchall()[0]
    finally:
        snap.close()
    assert row == (2 * BIG, 2 * BIG, "BIGINT")
