"""Rules written by supervisors: the SQL validator, versions, the dry run, switching on, and the
`ykt rules` / `ykt intercept` commands.

Service tests write through the `db` fixture (rolled back). CLI tests commit (the commands own their
transactions): they use rule codes nobody else uses, rules that hit no application, and put back
every rule they switched off."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from yikatong.core.db import engine, transaction
from yikatong.core.errors import Forbidden, Invalid
from yikatong.interception import authoring, service
from yikatong.interception.authoring import validate_sql
from yikatong.interception.engine import run_rule
from yikatong.interception.models import Flag, Rule, RuleOrigin, RuleVersion
from yikatong.interception.rulefile import RULES_DIR, builtin_rules, make_spec
from yikatong.interception.snapshot import city_snapshot
from yikatong.security.models import AuditEvent, User
from yikatong.sharing.store import current_snapshots
from yikatong.workflow.models import LIVE_STATUSES, Application

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
OK_TAIL = "SELECT a.application_id, 'x' AS evidence FROM applications a"
PAYROLL = """
SELECT a.application_id,
       '财政供养人员：' || w.employer || '，' || strftime(w.start_on, '%Y-%m-%d') AS evidence,
       a.amount_fen
FROM applications a
JOIN persons p ON p.person_id = a.person_id
JOIN payroll w ON w.id_hash = p.id_hash
WHERE w.start_on <= a.period_end AND (w.end_on IS NULL OR w.end_on >= a.period_start)
"""
UNION_CTE = """
WITH big AS (
  SELECT application_id, amount_fen FROM applications WHERE amount_fen > $limit_fen
), dead AS (
  SELECT a.application_id FROM applications a JOIN persons p USING (person_id) JOIN deaths d ON d.id_hash = p.id_hash
)
SELECT application_id, '金额超过限额' AS evidence, amount_fen FROM big
UNION ALL
SELECT application_id, '已死亡' AS evidence, NULL AS amount_fen FROM dead
"""


def _code() -> str:
    return "T_" + uuid.uuid4().hex[:10].upper()


# ---------------------------------------------------------------- the validator


@pytest.mark.parametrize(("sql", "message"), [
    ("DELETE FROM applications", "不允许使用 DELETE"),
    ("UPDATE applications SET amount_fen = 0", "不允许使用 UPDATE"),
    ("INSERT INTO applications (application_id) VALUES (1)", "不允许使用 INSERT"),
    ("DROP TABLE applications", "不允许使用 DROP"),
    ("CREATE TABLE t AS SELECT 1", "不允许使用 CREATE"),
    ("ATTACH 'other.db' AS other", "不允许使用 ATTACH"),
    ("COPY applications TO 'out.csv'", "不允许使用 COPY"),
    ("PRAGMA database_list", "不允许使用 PRAGMA"),
    ("SET threads = 1", "不允许使用 SET"),
    ("INSTALL httpfs", "不允许使用 INSTALL"),
    ("LOAD httpfs", "不允许使用 LOAD"),
    ("CALL pragma_version()", "不允许使用 CALL"),
    ("EXPORT DATABASE 'dump'", "不允许使用 EXPORT DATABASE"),
    (f"{OK_TAIL} ; DELETE FROM applications", "只能包含一条SQL语句"),
    (f"{OK_TAIL}; SELECT 1", "只能包含一条SQL语句"),
    ("WITH d AS (DELETE FROM applications RETURNING *) SELECT application_id, 'x' AS evidence FROM d",
     "不允许使用 DELETE"),
    (f"{OK_TAIL.replace('FROM applications a', '')} INTO t FROM applications a", "不允许使用 INTO"),
    ("SELECT * FROM read_csv('/etc/passwd')", "不允许在FROM中使用函数或读取文件：read_csv"),
    ("SELECT * FROM read_parquet('data/x.parquet')", "不允许在FROM中使用函数或读取文件：read_parquet"),
    ("SELECT * FROM glob('/etc/*')", "不允许在FROM中使用函数或读取文件：glob"),
    (f"{OK_TAIL} JOIN query_table('users') u ON TRUE", "不允许在FROM中使用函数或读取文件：query_table"),
    ("SELECT * FROM '/etc/passwd.csv'", "/etc/passwd.csv"),
    ("SELECT application_id, 'x' AS evidence FROM 'applications.csv'", "applications.csv"),
    ("SELECT * FROM users", "不允许访问数据表 users，可用的表：applications、persons"),
    ("SELECT * FROM audit_events", "不允许访问数据表 audit_events"),
    ("SELECT * FROM sqlite_master", "不允许访问数据表 sqlite_master"),
    ("SELECT * FROM information_schema.tables", "不允许访问数据表 information_schema.tables"),
    ("SELECT application_id, 'x' AS evidence FROM main.applications", "不允许访问数据表 main.applications"),
    ("SELECT application_id, 'x' AS evidence FROM focus", "不允许访问数据表 focus"),
    # a CTE that names itself would make DuckDB read a file of that name
    ("WITH x AS (SELECT * FROM x) SELECT application_id, 'x' AS evidence FROM x", "不允许访问数据表 x"),
    ('WITH "a.csv" AS (SELECT 1) SELECT 1', "只能由英文字母、数字和下划线组成"),
    ("WITH RECURSIVE r AS (SELECT 1 AS n UNION ALL SELECT n + 1 FROM r) SELECT n AS application_id, "
     "'x' AS evidence FROM r", "不允许递归查询"),
    ("SELECT a.application_id, a.no_such_column AS evidence FROM applications a", "no_such_column"),
    ("SELECT application_id, salary AS evidence FROM applications", "列 salary 不存在"),
    ("SELECT person_id AS application_id, 'x' AS evidence FROM applications a JOIN persons p "
     "ON p.person_id = a.person_id", "列 person_id 在多张表"),
    ("SELECT a.application_id FROM applications a", "查询结果必须包含列：application_id、evidence"),
    ("SELECT a.number, 'x' AS evidence FROM applications a", "查询结果必须包含列：application_id、evidence"),
    ("SELECT a.application_id, 'x' AS evidence FROM applications a WHERE a.amount_fen > $limit_fen",
     "参数 $limit_fen 未声明"),
    ("SELECT a.application_id, 'x' AS evidence FROM applications a WHERE a.amount_fen > ?", "不能使用 ?"),
    ("SELECT a.application_id, getenv('HOME') AS evidence FROM applications a", "不允许使用函数 getenv"),
    ("SELECT a.application_id, current_setting('threads') AS evidence FROM applications a",
     "不允许使用函数 current_setting"),
    ("SELECT a.application_id, read_text('/etc/passwd') AS evidence FROM applications a",
     "不允许使用函数 read_text"),
    ("SELECT a.application_id, 'x' AS evidence FROM applications a WHERE EXISTS "
     "(SELECT * FROM duckdb_settings())", "duckdb_settings"),
    ("SELECT a.application_id, 'x' AS evidence FROM applications a, range(3)", "generate_series"),
    ("SELEC application_id FROM applications", "SQL语法错误"),
    ("", "请填写规则的SQL语句"),
])
def test_validator_refuses(sql, message):
    with pytest.raises(Invalid) as refused:
        validate_sql(sql)
    assert message in refused.value.message


def test_declared_parameter_must_be_used():
    with pytest.raises(Invalid, match=r"\$limit_fen 已声明但未在SQL中使用"):
        validate_sql(OK_TAIL, {"limit_fen": 1})


def test_validator_accepts_a_payroll_join():
    checked = validate_sql(PAYROLL)
    assert checked.tables == ("applications", "payroll", "persons")
    assert checked.datasets == ("payroll",)
    assert checked.columns == ("application_id", "evidence", "amount_fen")
    assert checked.params == ()
    assert validate_sql(checked.sql).sql == checked.sql  # the stored form is stable


def test_validator_accepts_union_and_cte_with_a_parameter():
    checked = validate_sql(UNION_CTE, {"limit_fen": 500_000})
    assert checked.tables == ("applications", "deaths", "persons")
    assert checked.datasets == ("deaths",)
    assert checked.params == ("limit_fen",)
    assert {"application_id", "evidence"} <= set(checked.columns)
    assert "big" not in checked.tables  # CTE names are not tables


def test_every_builtin_rule_passes_the_validator():
    files = sorted(RULES_DIR.glob("*.sql"))
    assert files
    for path in files:
        checked = authoring.check_rule_text(path.read_text(encoding="utf-8"), path.name)
        assert not checked.warnings, (path.name, checked.warnings)  # its datasets header says what it reads


def test_checked_sql_gives_the_same_hits_as_the_original(city, db):
    """What is stored is sqlglot's rendering of the checked tree: it must mean what the author wrote."""
    extra = [make_spec(code=f"EXTRA_{n}", name="测试", severity="中", items="all", datasets="", explanation="测试",
                       sql=sql, params=params) for n, (sql, params) in enumerate([
        (UNION_CTE, {"limit_fen": 30_000}),
        ("SELECT a.application_id, CASE WHEN a.amount_fen > 50000 THEN '大额 ' ELSE '小额 ' END || a.period || '，'"
         " || strftime(a.period_end, '%Y年%m月') || '，' || left(p.name, 1) || '某，年龄 '"
         " || date_diff('year', p.birth_date, a.period_start) AS evidence, a.amount_fen % 1000 AS amount_fen "
         "FROM applications a JOIN persons p USING (person_id) WHERE a.item_code LIKE 'Z%' OR a.basis = '户'", {}),
        ("SELECT application_id, string_agg(DISTINCT item_code, ',' ORDER BY item_code) AS evidence FROM ("
         "SELECT x.application_id, y.item_code FROM applications x JOIN applications y ON y.person_id = x.person_id"
         " AND y.application_id <> x.application_id) t GROUP BY application_id HAVING count(*) >= 1", {}),
    ])]
    snap = city_snapshot(engine(), current_snapshots(db))
    try:
        compared = 0
        for spec in builtin_rules() + extra:
            checked = validate_sql(spec.sql, spec.params)
            original = run_rule(snap, spec)
            rendered = run_rule(snap, make_spec(
                code=spec.code, name=spec.name, severity=spec.severity, items=str(spec.items),
                datasets=spec.datasets, explanation=spec.explanation, sql=checked.sql, params=spec.params))
            assert original.error is None and rendered.error is None, (spec.code, original.error, rendered.error)
            assert sorted(rendered.hits.to_pylist(), key=str) == sorted(original.hits.to_pylist(), key=str), spec.code
            compared += original.hits.num_rows
    finally:
        snap.close()
    assert compared > 0


# ---------------------------------------------------------------- versions


@pytest.fixture
def users(city, db):
    return {u.username: u for u in db.scalars(select(User)).all()}


def _save(db, user, code, sql=OK_TAIL + " WHERE a.application_id < 0", **kw):
    fields = dict(name="测试规则", explanation="测试用的规则说明", severity="中", items="all", params=None)
    fields.update(kw)
    return authoring.save_rule(db, user, code=code, sql=sql, now=NOW, **fields)


def test_versions_are_appended_and_builtin_rules_are_refused(db, users):
    supervisor = users["supervisor"]
    code = _code()
    v1 = _save(db, supervisor, code)
    rule = db.get(Rule, code)
    assert (v1.version, rule.origin, rule.active, rule.active_version, rule.latest_version) == (
        1, RuleOrigin.SUPERVISOR.value, False, None, 1)
    assert v1.author_id == supervisor.id and v1.datasets == ""
    assert _save(db, supervisor, code).id == v1.id  # nothing changed: no new version
    v2 = _save(db, supervisor, code, sql=PAYROLL, name="财政供养人员（第二版）")
    assert (v2.version, v2.datasets, db.get(Rule, code).latest_version) == (2, "payroll", 2)
    db.refresh(v1)
    assert v1.sql != v2.sql and "payroll" not in v1.sql  # the first version is as it was
    actions = db.scalars(select(AuditEvent.action).where(AuditEvent.object_id == code)).all()
    assert actions.count("rule.save") == 2

    shipped = builtin_rules()[-1].code
    if db.get(Rule, shipped) is None:  # a shipped code is refused even before the files are synced
        with pytest.raises(Forbidden, match="内置规则不能修改，请另建规则"):
            _save(db, supervisor, shipped)
    service.sync_builtin_rules(db, NOW)
    with pytest.raises(Forbidden, match="内置规则不能修改，请另建规则"):
        _save(db, supervisor, "DECEASED")
    with pytest.raises(Forbidden):
        _save(db, users["village_clerk"], _code())
    with pytest.raises(Invalid, match="不允许访问数据表 users"):
        _save(db, supervisor, _code(), sql="SELECT id AS application_id, username AS evidence FROM users")
    with pytest.raises(Invalid, match="规则代码"):
        _save(db, supervisor, "bad code")


def test_dry_run_matches_a_direct_engine_run_and_writes_no_flag(db, users):
    supervisor = users["supervisor"]
    sql = ("SELECT a.application_id, '金额 ' || a.amount_fen AS evidence, a.amount_fen - $limit_fen AS amount_fen "
           "FROM applications a WHERE a.amount_fen > $limit_fen")
    version = _save(db, supervisor, _code(), sql=sql, params={"limit_fen": 50_000})
    flags_before = db.scalar(select(func.count()).select_from(Flag))
    dry = authoring.dry_run(engine(), db, version, NOW, actor=supervisor)

    snap = city_snapshot(engine(), current_snapshots(db))
    try:
        direct = run_rule(snap, service.spec_of(version))
    finally:
        snap.close()
    assert direct.error is None
    assert dry.hits == direct.hits.num_rows > 0
    assert dry.amount_fen == sum(direct.hits.column("amount_fen").to_pylist())
    # and by hand, on the transactional tables
    live = db.execute(select(func.count(), func.sum(Application.amount_fen - 50_000)).where(
        Application.status.in_(LIVE_STATUSES), Application.amount_fen > 50_000)).one()
    assert (dry.hits, dry.amount_fen) == (live[0], live[1])
    assert len(dry.sample) == min(dry.hits, authoring.SAMPLE_ROWS)
    assert dry.sample[0]["amount_fen"] == max(r["amount_fen"] for r in dry.sample)
    assert dry.sample[0]["number"] and dry.sample[0]["region_name"] and dry.sample[0]["evidence"].startswith("金额 ")
    assert (version.dry_run_at, version.dry_run_hits, version.dry_run_amount_fen) == (NOW, dry.hits, dry.amount_fen)
    assert db.scalar(select(func.count()).select_from(Flag)) == flags_before


def test_a_broken_rule_fails_its_dry_run(db, users):
    # passes the checks, fails in DuckDB (a text compared with a date)
    version = _save(db, users["supervisor"], _code(),
                    sql="SELECT a.application_id, 'x' AS evidence FROM applications a WHERE a.period_end > 'abc'")
    with pytest.raises(Invalid, match="执行出错"):
        authoring.dry_run(engine(), db, version, NOW)
    assert version.dry_run_at is None


def test_activate_needs_a_dry_run_and_flags_record_the_version(db, users):
    supervisor = users["supervisor"]
    numbers = db.scalars(select(Application.number).where(Application.status.in_(LIVE_STATUSES))
                         .order_by(Application.id).limit(4)).all()
    assert len(numbers) == 4
    fourth, numbers = numbers[3], numbers[:3]
    listed = ", ".join(f"'{n}'" for n in numbers)
    code = _code()
    v1 = _save(db, supervisor, code, sql=f"SELECT a.application_id, '测试命中 ' || a.number AS evidence "
                                         f"FROM applications a WHERE a.number IN ({listed})")
    with pytest.raises(Invalid, match="请先试运行"):
        authoring.activate(db, supervisor, v1, NOW)
    with pytest.raises(Forbidden):
        authoring.activate(db, users["city_finance"], v1, NOW)
    dry = authoring.dry_run(engine(), db, v1, NOW)
    assert dry.hits == 3
    rule = authoring.activate(db, supervisor, v1, NOW)
    assert (rule.active, rule.active_version, v1.activated_by) == (True, 1, supervisor.id)
    assert any(v.id == v1.id for v, _ in service.active_specs(db))

    # the city run raises one flag per hit, pointing at the version that ran
    mine = [(v, s) for v, s in service.active_specs(db) if v.rule_code == code]
    run = service.run_city(engine(), db, NOW, actor=supervisor, specs=mine)
    flags = db.scalars(select(Flag).where(Flag.rule_code == code)).all()
    assert run.new_flags == 3 and len(flags) == 3
    assert {f.rule_version_id for f in flags} == {v1.id}
    assert {f.evidence for f in flags} == {f"测试命中 {n}" for n in numbers}

    # a second version, switched on after its dry run, is what later flags point at; the old ones stay.
    # It rewords the evidence: the three already flagged are not flagged again (no fact key: one flag
    # per application and rule); only the fourth application it now also hits is
    v2 = _save(db, supervisor, code, sql=f"SELECT a.application_id, '第二版命中 ' || a.number AS evidence "
                                         f"FROM applications a WHERE a.number IN ({listed}, '{fourth}')")
    authoring.dry_run(engine(), db, v2, NOW)
    authoring.activate(db, supervisor, v2, NOW)
    mine = [(v, s) for v, s in service.active_specs(db) if v.rule_code == code]
    assert [v.version for v, _ in mine] == [2]
    run = service.run_city(engine(), db, NOW, actor=supervisor, specs=mine)
    by_version = dict(db.execute(select(Flag.rule_version_id, func.count()).where(Flag.rule_code == code)
                                 .group_by(Flag.rule_version_id)).all())
    assert run.new_flags == 1 and by_version == {v1.id: 3, v2.id: 1}

    authoring.deactivate(db, supervisor, db.get(Rule, code), NOW)
    assert not any(v.rule_code == code for v, _ in service.active_specs(db))
    actions = db.scalars(select(AuditEvent.action).where(AuditEvent.object_id == code)).all()
    assert {"rule.save", "rule.dry_run", "rule.activate", "rule.deactivate"} <= set(actions)


# ---------------------------------------------------------------- the commands


RULE_FILE = """-- code: {code}
-- name: 命令行测试规则
-- severity: 低
-- items: all
-- datasets: {datasets}
-- explanation: 命令行测试用的规则，
--   不会命中任何申请。
-- param: floor_fen = 0  下限
SELECT a.application_id, '测试' AS evidence
FROM applications a
WHERE a.application_id < $floor_fen
"""


@pytest.fixture
def cli(city):
    from yikatong.cli import app

    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, list(args), catch_exceptions=False, env={"COLUMNS": "200"})

    return invoke


@pytest.fixture
def only_my_rules(city):
    """Switch every active rule off for the test and back on after it, so a committed city run
    raises no flag on the shared test city."""
    with transaction() as s:
        service.sync_builtin_rules(s, NOW)
        was_on = [r.code for r in s.scalars(select(Rule).where(Rule.active))]
        for r in s.scalars(select(Rule).where(Rule.code.in_(was_on))):
            r.active = False
    yield
    with transaction() as s:
        for r in s.scalars(select(Rule).where(Rule.code.in_(was_on))):
            r.active = True


def test_cli_check_add_dry_run_enable_disable(cli, tmp_path, only_my_rules):
    code = _code()
    good = tmp_path / "rule.sql"
    good.write_text(RULE_FILE.format(code=code, datasets="none"), encoding="utf-8")
    result = cli("rules", "check", str(good))
    assert result.exit_code == 0, result.output
    assert "校验通过" in result.output and "applications" in result.output

    bad = tmp_path / "bad.sql"
    bad.write_text(RULE_FILE.format(code=code, datasets="none").replace("FROM applications a", "FROM users a"),
                   encoding="utf-8")
    result = cli("rules", "check", str(bad))
    assert result.exit_code == 1 and "不允许访问数据表 users" in result.output

    result = cli("rules", "add", str(good))
    assert result.exit_code != 0  # --user is required
    result = cli("rules", "add", str(good), "--user", "village_clerk")
    assert result.exit_code == 1 and "当前角色无此权限" in result.output
    result = cli("rules", "add", str(good), "--user", "supervisor")
    assert result.exit_code == 0, result.output
    assert f"已保存规则 {code} 第1版" in result.output

    result = cli("rules", "enable", code, "--user", "supervisor")
    assert result.exit_code == 1 and "请先试运行" in result.output
    result = cli("rules", "dry-run", code, "--user", "supervisor")
    assert result.exit_code == 0, result.output
    assert "命中 0 笔" in result.output
    result = cli("rules", "enable", code, "--user", "supervisor")
    assert result.exit_code == 0 and f"已启用规则 {code} 第1版" in result.output
    try:
        result = cli("rules", "list")
        assert result.exit_code == 0 and code in result.output
        result = cli("rules", "show", code)
        assert result.exit_code == 0, result.output
        assert "命令行测试用的规则" in result.output and "$floor_fen = 0" in result.output
        assert "正在运行" in result.output

        result = cli("intercept", "run", "--user", "supervisor")
        assert result.exit_code == 0, result.output
        assert "比对完成" in result.output and code in result.output
    finally:
        result = cli("rules", "disable", code, "--user", "supervisor")
    assert result.exit_code == 0 and f"已停用规则 {code}" in result.output
    with transaction() as s:
        assert s.get(Rule, code).active is False
        assert s.scalar(select(func.count()).select_from(RuleVersion).where(RuleVersion.rule_code == code)) == 1

    result = cli("rules", "show", "NO_SUCH_RULE")
    assert result.exit_code == 2 and "不存在" in result.output


def test_cli_gate(cli, tmp_path, city, only_my_rules):
    from yikatong.security.models import User

    with transaction() as s:
        # not one of the demo villages' stories: other tests read those as the demo walked them
        demo_villages = select(User.region_code).where(User.role == "village_clerk")
        app_id = s.scalar(select(Application.id).where(Application.status == "已通过", Application.open_flags == 0,
                                                       Application.region_code.not_in(demo_villages))
                          .order_by(Application.id))
    ids = tmp_path / "ids.txt"
    ids.write_text(f"# 本批\n{app_id}\n", encoding="utf-8")
    result = cli("intercept", "gate", "--application-ids-file", str(ids))
    assert result.exit_code == 0, result.output
    assert "发放前比对通过" in result.output and "1笔转入待支付" in result.output
    with transaction() as s:
        assert s.get(Application, app_id).status == "待支付"

    # once 待支付 it is reported, not moved again
    result = cli("intercept", "gate", "--application-ids-file", str(ids))
    assert result.exit_code == 1 and f"{app_id}（待支付）" in result.output

    # an open flag on it stops it (the flag is put there by hand and removed after)
    with transaction() as s:
        rule = s.scalars(select(Rule).where(Rule.origin == RuleOrigin.BUILTIN.value)).first()
        version = s.scalar(select(RuleVersion).where(RuleVersion.rule_code == rule.code))
        app = s.get(Application, app_id)
        flag = Flag(application_id=app_id, rule_code=rule.code, rule_version_id=version.id, evidence="测试",
                    evidence_key=uuid.uuid4().hex, fact_key=uuid.uuid4().hex, amount_fen=app.amount_fen,
                    item_code=app.item_code, region_code=app.region_code, severity="高", raised_at=NOW)
        s.add(flag)
        s.flush()
        flag_id = flag.id
    try:
        result = cli("intercept", "gate", "--application-ids-file", str(ids))
        assert result.exit_code == 1
        assert "发放前比对未通过" in result.output and "有存疑信息的申请ID：" + str(app_id) in result.output
    finally:
        with transaction() as s:
            s.delete(s.get(Flag, flag_id))
            s.flush()
            service.refresh_open_flags(s, [app_id])

    ids.write_text("abc\n", encoding="utf-8")
    result = cli("intercept", "gate", "--application-ids-file", str(ids))
    assert result.exit_code == 2 and "不是申请ID" in result.output
