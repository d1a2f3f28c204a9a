"""Same seed, same city; another seed, another city; an occupied database is refused."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from yikatong.core.db import make_engine
from yikatong.core.errors import Conflict
from yikatong.core.migrate import upgrade
from yikatong.registry.models import Card, Household, Person, ProxyDocument, ProxyHolding, Region
from yikatong.synth.city import build_city

TINY = 0.0005  # about 1,500 residents


def _fresh(tmp_path: Path, name: str) -> Engine:
    url = f"sqlite:///{tmp_path / name}"
    upgrade(url)
    return make_engine(url)


def _snapshot(engine: Engine) -> dict[str, list]:
    """Everything that must be identical for the same seed (ciphertexts differ by their nonces)."""
    with engine.connect() as c:
        return {
            "regions": c.execute(select(Region.code, Region.name, Region.full_name).order_by(Region.code)).all(),
            "households": c.execute(select(Household.id, Household.code, Household.address)
                                    .order_by(Household.id)).all(),
            "persons": c.execute(select(
                Person.id, Person.name, Person.gender, Person.birth_date, Person.region_code, Person.household_id,
                Person.relation, Person.id_number_hash, Person.id_number_masked, Person.phone_hash,
                Person.is_beneficiary, Person.has_active_card, Person.no_card_reason).order_by(Person.id)).all(),
            "cards": c.execute(select(Card.id, Card.card_number, Card.person_id, Card.bank_code,
                                      Card.bank_account_hash, Card.status, Card.issued_on).order_by(Card.id)).all(),
            "proxies": c.execute(select(ProxyHolding.person_id, ProxyHolding.holder_name,
                                        ProxyHolding.holder_id_number_hash, ProxyHolding.reason,
                                        ProxyHolding.approved_on).order_by(ProxyHolding.id)).all(),
            "documents": c.execute(select(ProxyDocument.document_sha256, ProxyDocument.title)
                                   .order_by(ProxyDocument.id)).all(),
        }


def _schema(engine: Engine) -> dict[str, tuple]:
    """Indexes and constraints of the bulk-loaded tables (the build drops and rebuilds them)."""
    from sqlalchemy import inspect

    insp = inspect(engine)
    return {t: (sorted((i["name"], tuple(i["column_names"]), bool(i["unique"])) for i in insp.get_indexes(t)),
                sorted((c["name"], tuple(c["column_names"])) for c in insp.get_unique_constraints(t)),
                sorted((f["name"], tuple(f["constrained_columns"]), f["referred_table"])
                       for f in insp.get_foreign_keys(t)))
            for t in ("households", "persons", "cards")}


# These compare the registry; the claims, shared data and anomalies have their own tests (test_shared.py).
REGISTRY_ONLY = dict(claims=False, shared_data=False)


def test_the_build_puts_back_every_index_and_constraint(tmp_path):
    engine = _fresh(tmp_path, "schema.db")
    try:
        before = _schema(engine)
        assert before["persons"][0]  # there are indexes to lose
        build_city(engine, TINY, 3, **REGISTRY_ONLY)
        assert _schema(engine) == before
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def seed_5(tmp_path_factory):
    engine = _fresh(tmp_path_factory.mktemp("seed5"), "a.db")
    report = build_city(engine, TINY, 5, **REGISTRY_ONLY)
    yield engine, report
    engine.dispose()


def test_same_seed_gives_the_same_city_even_with_worker_processes(seed_5, tmp_path):
    engine, report = seed_5
    again = _fresh(tmp_path, "b.db")
    # generated in two worker processes this time: the result must not depend on it
    report_again = build_city(again, TINY, 5, workers=2, **REGISTRY_ONLY)
    try:
        first, second = _snapshot(engine), _snapshot(again)
        assert first["persons"] and first == second
        assert (report.persons, report.cards, report.beneficiaries) == (
            report_again.persons, report_again.cards, report_again.beneficiaries)
    finally:
        again.dispose()


def test_another_seed_gives_another_city(seed_5, tmp_path):
    engine, _ = seed_5
    other = _fresh(tmp_path, "c.db")
    try:
        build_city(other, TINY, 6, **REGISTRY_ONLY)
        first, second = _snapshot(engine), _snapshot(other)
        assert [r.code for r in first["regions"]][:7] == [r.code for r in second["regions"]][:7]  # real codes
        assert first["regions"] != second["regions"]  # generated names
        names = lambda snap: [p.name for p in snap["persons"][:200]]  # noqa: E731
        assert names(first) != names(second)
        assert {p.id_number_hash for p in first["persons"]} != {p.id_number_hash for p in second["persons"]}
        assert [c.card_number for c in first["cards"]] != [c.card_number for c in second["cards"]]
    finally:
        other.dispose()


def test_an_occupied_database_is_refused(city):
    from yikatong.core.db import engine

    with pytest.raises(Conflict, match="^数据库已有数据"):
        build_city(engine(), 0.001, 99)


def test_ykt_demo_builds_then_synth_refuses_an_occupied_database(tmp_path):
    env = dict(os.environ)
    env["YKT_DATA_DIR"] = str(tmp_path / "data")
    precious = tmp_path / "precious.db"  # a real database in YKT_DATABASE_URL: the demo must not touch it
    precious.write_bytes(b"not to be emptied")
    env["YKT_DATABASE_URL"] = f"sqlite:///{precious}"
    ykt = [sys.executable, "-m", "yikatong.cli"]
    demo = subprocess.run([*ykt, "demo", "--scale", str(TINY), "--no-serve"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert demo.returncode == 0, demo.stderr
    assert (tmp_path / "data" / "demo.db").exists()
    assert precious.read_bytes() == b"not to be emptied"
    assert "village_clerk" in demo.stdout and "ykt-demo-2026" in demo.stdout and "持卡率" in demo.stdout
    env["YKT_DATABASE_URL"] = f"sqlite:///{tmp_path / 'data' / 'demo.db'}"
    again = subprocess.run([*ykt, "synth", "--scale", str(TINY)], env=env, capture_output=True, text=True,
                           timeout=120)
    assert again.returncode == 1 and "数据库已有数据" in again.stderr
    replaced = subprocess.run([*ykt, "synth", "--scale", str(TINY), "--seed", "2", "--replace"], env=env,
                              capture_output=True, text=True, timeout=120)
    assert replaced.returncode == 0, replaced.stderr


def test_new_rows_after_the_build_get_fresh_ids(city, db):
    """The build writes explicit ids; PostgreSQL's sequences must have been moved past them."""
    from datetime import UTC, datetime

    from sqlalchemy import func

    village = db.scalar(select(Person.region_code).limit(1))
    now = datetime(2026, 1, 5, tzinfo=UTC)
    household = Household(code="TEST-NEW-HOUSEHOLD", region_code=village, address="", created_at=now, updated_at=now)
    db.add(household)
    db.flush()
    assert household.id > db.scalar(select(func.max(Household.id)).where(Household.id != household.id))
    db.rollback()


@pytest.mark.skipif(not os.environ.get("YKT_DATABASE_URL", "").startswith("postgresql"),
                    reason="the PostgreSQL way of emptying a database")
def test_replace_empties_a_postgresql_database_completely():

    from sqlalchemy import inspect

    from yikatong.core.db import create_database, drop_database
    from yikatong.synth.commands import empty_database

    url = create_database(os.environ["YKT_DATABASE_URL"], "ykt_test_replace")
    try:
        upgrade(url)
        engine = make_engine(url)
        before = _schema(engine)
        build_city(engine, TINY, 1)
        assert _schema(engine) == before  # constraints dropped for COPY are all back
        engine.dispose()
        empty_database(url)
        engine = make_engine(url)
        assert inspect(engine).get_table_names() == []
        engine.dispose()
        upgrade(url)  # the migration's trigger function must be creatable again
        engine = make_engine(url)
        assert build_city(engine, TINY, 1).persons > 0
        engine.dispose()
    finally:
        drop_database(url)
