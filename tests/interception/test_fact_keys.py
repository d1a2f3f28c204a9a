"""Flags are keyed by facts, not by wording: a rule returns a fact key besides its Chinese evidence,
and a flag is raised once per (application, rule, fact key). Rewording a rule or a new version never
raises a cleared flag again; a changed fact does. Flags raised before fact keys keep blocking."""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import date

import pytest
import sqlalchemy as sa
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from yikatong.core.db import savepoint
from yikatong.interception import screening
from yikatong.interception.models import Flag, FlagStatus, Rule, RuleOrigin
from yikatong.interception.rulefile import builtin_rules, make_spec
from yikatong.interception.snapshot import focus_snapshot
from yikatong.sharing.store import current_snapshots
from yikatong.workflow.models import ReviewRecord

from .conftest import NOW


def _run(db, world, spec, version) -> int:
    """Run one rule version on the world's applications, as screening does: new flags raised."""
    db.flush()
    shared = current_snapshots(db)
    snap = focus_snapshot(db, world.applications, shared)
    try:
        run = screening._run_and_record(db, snap, [(version, spec)], "submit", None, shared, NOW, None)
    finally:
        snap.close()
    assert json_errors(run) == {}
    return run.new_flags


def json_errors(run) -> dict:
    import json

    return json.loads(run.timings)["errors"]


def _deceased(db):
    screening.sync_builtin_rules(db, NOW)
    spec = next(s for s in builtin_rules() if s.code == "DECEASED")
    rule = db.get(Rule, "DECEASED")
    version = next(v for v in rule.versions if v.version == rule.active_version)
    return rule, spec, version


def _reworded(db, rule, spec):
    """A new version of the rule whose evidence says the same fact in other words."""
    assert "'死亡日期 '" in spec.sql
    new = dataclasses.replace(spec, sql=spec.sql.replace("'死亡日期 '", "'经核查已死亡，死亡日期为 '"))
    return new, screening.new_version(db, rule, new, None, NOW)


def _clear(db, flag):
    flag.status, flag.opinion = FlagStatus.CLEARED.value, "经核实排除"
    db.flush()
    screening.refresh_open_flags(db, [flag.application_id])


def _flags(db, app):
    return db.scalars(select(Flag).where(Flag.application_id == app.id).order_by(Flag.id)).all()


def test_rewording_or_a_new_version_never_raises_a_cleared_flag_again(db, world):
    rule, spec, v1 = _deceased(db)
    person = world.person()
    app = world.apply(person, world.item("A"))
    world.share("deaths", [dict(id=world.number(person), name="张三", death_date=date(2026, 10, 3))])
    assert _run(db, world, spec, v1) == 1
    [flag] = _flags(db, app)
    assert flag.fact_key == "2026-10-03" and "死亡日期 2026-10-03" in flag.evidence
    _clear(db, flag)

    reworded, v2 = _reworded(db, rule, spec)
    assert _run(db, world, reworded, v2) == 0  # the same fact, other words: nothing new
    assert _run(db, world, spec, v1) == 0  # and the old version (another engine's wording) neither
    [still] = _flags(db, app)
    db.refresh(app)
    assert still.status == FlagStatus.CLEARED and app.open_flags == 0

    # a changed fact (the death record corrected to another date) is a new flag, raised by v2
    world.share("deaths", [dict(id=world.number(person), name="张三", death_date=date(2026, 9, 1))])
    assert _run(db, world, reworded, v2) == 1
    new = _flags(db, app)[-1]
    assert (new.fact_key, new.rule_version_id, new.status) == ("2026-09-01|2026-10-03", v2.id, FlagStatus.OPEN)
    assert "经核查已死亡" in new.evidence


def test_fact_keys_of_the_other_application(db, world):
    """DUPLICATE_PAYMENT names the earlier application by id: rewording its number away changes nothing."""
    item = world.item("A")
    person = world.person()
    first = world.apply(person, item, "2026Q4", frequency="季", status="已通过")  # overlapping periods
    second = world.apply(person, item, "2026-11")
    screening.sync_builtin_rules(db, NOW)
    spec = next(s for s in builtin_rules() if s.code == "DUPLICATE_PAYMENT")
    rule = db.get(Rule, spec.code)
    version = next(v for v in rule.versions if v.version == rule.active_version)
    assert _run(db, world, spec, version) == 1
    [flag] = _flags(db, second)
    assert flag.fact_key == f"application:{first.id}"


def test_a_rule_without_fact_key_raises_one_flag_per_application(db, world):
    """A supervisor's rule that returns no fact_key: the rule's code is the key, so rewording it or
    a second evidence row for the same application never raises a second flag."""
    person = world.person()
    app = world.apply(person, world.item("A"))
    code = "TW_NO_FACT_KEY"
    db.add(Rule(code=code, origin=RuleOrigin.SUPERVISOR.value, name="测试规则", active=True, latest_version=0,
                created_at=NOW, updated_at=NOW))
    db.flush()

    def spec(sql):
        return make_spec(code=code, name="测试规则", severity="低", items="all", datasets=(), explanation="测试",
                         sql=sql)

    s1 = spec(f"SELECT application_id, '第一种说法' AS evidence FROM applications WHERE application_id = {app.id}")
    v1 = screening.new_version(db, db.get(Rule, code), s1, None, NOW)
    assert _run(db, world, s1, v1) == 1
    [flag] = _flags(db, app)
    assert flag.fact_key == code
    one = f"FROM applications WHERE application_id = {app.id}"
    s2 = spec(f"SELECT application_id, '第二种说法' AS evidence {one} "
              f"UNION ALL SELECT application_id, '另一条' AS evidence {one}")
    v2 = screening.new_version(db, db.get(Rule, code), s2, None, NOW)
    assert _run(db, world, s2, v2) == 0 and len(_flags(db, app)) == 1


def test_a_flag_raised_before_fact_keys_keeps_blocking_and_takes_its_fact_key(db, world):
    rule, spec, v1 = _deceased(db)
    person = world.person()
    app = world.apply(person, world.item("A"))
    world.share("deaths", [dict(id=world.number(person), name="张三", death_date=date(2026, 10, 3))])
    evidence = "死亡日期 2026-10-03，所属期 2026-11"  # what the rule said before fact keys
    key = hashlib.sha256(evidence.encode()).hexdigest()[:32]
    # as the migration leaves it: fact key "evidence:<evidence hash>", cleared before the upgrade
    db.add(Flag(application_id=app.id, rule_code=rule.code, rule_version_id=v1.id, evidence=evidence,
                evidence_key=key, fact_key=f"evidence:{key}", amount_fen=app.amount_fen, item_code=app.item_code,
                region_code=app.region_code, severity="高", status=FlagStatus.CLEARED.value, raised_at=NOW,
                opinion="升级前已排除"))
    db.flush()
    assert _run(db, world, spec, v1) == 0
    [flag] = _flags(db, app)
    db.refresh(flag)
    assert (flag.fact_key, flag.status) == ("2026-10-03", FlagStatus.CLEARED)
    reworded, v2 = _reworded(db, rule, spec)
    assert _run(db, world, reworded, v2) == 0 and len(_flags(db, app)) == 1


def test_the_database_holds_one_flag_per_fact(db, world):
    rule, spec, v1 = _deceased(db)
    app = world.apply(world.person(), world.item("A"))
    fields = dict(application_id=app.id, rule_code=rule.code, rule_version_id=v1.id, amount_fen=1, item_code="TWA",
                  region_code=app.region_code, severity="高", raised_at=NOW, fact_key="2026-10-03")
    db.add(Flag(evidence="一种说法", evidence_key="a" * 32, **fields))
    db.flush()
    with pytest.raises(IntegrityError), savepoint(db):
        db.add(Flag(evidence="另一种说法", evidence_key="b" * 32, **fields))
        db.flush()


def test_the_trail_records_a_raised_flag_through_workflow(db, world):
    rule, spec, v1 = _deceased(db)
    person = world.person()
    app = world.apply(person, world.item("A"))
    world.share("deaths", [dict(id=world.number(person), name="张三", death_date=date(2026, 10, 3))])
    assert _run(db, world, spec, v1) == 1
    record = db.scalars(select(ReviewRecord).where(ReviewRecord.application_id == app.id)).one()
    assert record.action == "存疑拦截" and "死亡日期 2026-10-03" in record.opinion and app.open_flags == 1


def test_the_migration_gives_old_flags_a_fact_key(tmp_path):
    """0007 on a database just before it (at 0006) that has flags: each gets "evidence:<evidence_key>"."""
    import os

    from yikatong.core.db import create_database, drop_database, make_engine
    from yikatong.core.migrate import upgrade

    server = os.environ.get("YKT_TEST_DATABASE_URL", "")
    url = create_database(server, "ykt_mig") if server.startswith("postgresql") else f"sqlite:///{tmp_path}/m.db"
    try:
        upgrade(url, "0006")
        engine = make_engine(url)
        with engine.begin() as con:
            if con.dialect.name == "postgresql":
                con.exec_driver_sql("SET session_replication_role = replica")  # no parent rows needed
            else:
                con.exec_driver_sql("PRAGMA foreign_keys=OFF")
            con.execute(sa.text(
                "INSERT INTO flags (application_id, rule_code, rule_version_id, evidence, evidence_key, amount_fen, "
                "item_code, region_code, severity, status, raised_at, opinion) VALUES (1, 'DECEASED', 1, '死亡', "
                ":key, 100, 'X', '1', '高', '核实排除', '2026-11-01', '')"), {"key": "k" * 32})
        engine.dispose()
        upgrade(url, "0007")
        engine = make_engine(url)
        with engine.connect() as con:
            assert con.execute(sa.text("SELECT fact_key FROM flags")).scalar() == "evidence:" + "k" * 32
            indexes = {i["name"] for i in sa.inspect(con).get_indexes("flags")}
            assert "uq_flags_fact" in indexes
        engine.dispose()
    finally:
        if server.startswith("postgresql"):
            drop_database(url)


def test_every_builtin_rule_returns_a_documented_fact_key():
    from pathlib import Path

    from yikatong.interception.authoring import validate_sql

    docs = (Path(__file__).resolve().parents[2] / "docs" / "rules.md").read_text(encoding="utf-8")
    table = docs[docs.index("Fact keys of the built-in rules"):docs.index("## Built-in rules")]
    for spec in builtin_rules():
        assert "fact_key" in validate_sql(spec.sql, spec.params).columns, spec.code
        assert f"`{spec.code}`" in table, spec.code
