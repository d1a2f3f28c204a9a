"""A supervisor changes a parameter of a built-in rule (调整规则参数): a new version with who, when
and why; the next screening uses the new value; the rule files' sync keeps it."""

from __future__ import annotations

import dataclasses
import json
from datetime import date

import pytest
from sqlalchemy import select

from yikatong.core.errors import Forbidden, Invalid
from yikatong.interception import authoring
from yikatong.interception.models import Flag, Rule, RuleVersion
from yikatong.interception.rulefile import builtin_rules
from yikatong.interception.screening import active_specs, screen, sync_builtin_rules, with_params_set
from yikatong.security.models import User

from .conftest import NOW

RULE, PARAM = "VEHICLE_MEANS_TESTED", "vehicle_value_limit_fen"


def _user(db, username: str) -> User:
    return db.scalar(select(User).where(User.username == username))


def _vehicle_world(world):
    relief = world.item("A", means_tested=True)
    modest, wealthy = world.person(), world.person()
    apps = {p.id: world.apply(p, relief) for p in (modest, wealthy)}
    world.share("vehicles", [
        dict(id=world.number(modest), plate="川K·B0001", vehicle_type="小型轿车", value_fen=6000000,
             registered_on=date(2024, 3, 1)),
        dict(id=world.number(wealthy), plate="川K·B0002", vehicle_type="小型轿车", value_fen=9000000,
             registered_on=date(2024, 3, 1)),
    ])
    return apps[modest.id], apps[wealthy.id]


def _flagged(db, app_ids) -> set[int]:
    return set(db.scalars(select(Flag.application_id).where(Flag.rule_code == RULE,
                                                            Flag.application_id.in_(app_ids))))


def test_a_changed_parameter_changes_what_the_rule_flags(world, city):
    db = world.db
    modest, wealthy = _vehicle_world(world)
    supervisor = _user(db, "supervisor")
    sync_builtin_rules(db, NOW)
    before = authoring.get_version(db, RULE)
    assert authoring.params_of(before)[PARAM] == 5000000
    # with the shipped limit (50,000 yuan) both cars would be flagged: proven on a focus run
    assert set(world.run(RULE)) == {modest.id, wealthy.id}

    version = authoring.set_param(db, supervisor, RULE, PARAM, 8000000, "依据新的认定办法，车辆限额调为8万元", NOW)
    assert version.version == before.version + 1 and version.sql == before.sql
    rule = db.get(Rule, RULE)
    assert rule.active and rule.active_version == version.version
    screen(db, [modest.id, wealthy.id], NOW)
    assert _flagged(db, [modest.id, wealthy.id]) == {wealthy.id}

    # the history: who, when, why, and the value of each version
    history = db.scalars(select(RuleVersion).where(RuleVersion.rule_code == RULE).order_by(RuleVersion.version)).all()
    latest = history[-1]
    assert (latest.author_name, latest.created_at, latest.reason) == (
        supervisor.display_name, NOW, "依据新的认定办法，车辆限额调为8万元")
    assert [authoring.params_of(v)[PARAM] for v in history[-2:]] == [5000000, 8000000]

    # syncing the rule files again keeps the supervisor's value, also for a new version of the file
    sync_builtin_rules(db, NOW)
    assert db.get(Rule, RULE).latest_version == version.version
    [(_, spec)] = [(v, s) for v, s in active_specs(db) if s.code == RULE]
    assert spec.params[PARAM] == 8000000
    shipped = next(s for s in builtin_rules() if s.code == RULE)
    reworded = dataclasses.replace(shipped, explanation=shipped.explanation + "（修订）")
    assert with_params_set(reworded, rule).params[PARAM] == 8000000
    assert json.loads(rule.params_set) == {PARAM: 8000000}


def test_a_parameter_change_needs_a_declared_name_a_new_value_a_reason_and_a_supervisor(db, city):
    supervisor, handler = _user(db, "supervisor"), _user(db, "county_handler")
    sync_builtin_rules(db, NOW)
    with pytest.raises(Invalid, match="没有参数"):
        authoring.set_param(db, supervisor, RULE, "no_such_limit", 1, "原因", NOW)
    with pytest.raises(Invalid, match="请填写调整原因"):
        authoring.set_param(db, supervisor, RULE, PARAM, 7000000, "  ", NOW)
    with pytest.raises(Invalid, match="未作改动"):
        authoring.set_param(db, supervisor, RULE, PARAM, 5000000, "原因", NOW)
    with pytest.raises(Forbidden):
        authoring.set_param(db, handler, RULE, PARAM, 7000000, "原因", NOW)


# ---------------------------------------------------------------- the CLI, the page and the API (they commit)


@pytest.fixture
def restore():
    """Put committed parameter changes of built-in rules back to the shipped values afterwards."""
    from yikatong.core.db import transaction

    touched: list[tuple[str, str]] = []
    yield touched.append
    with transaction() as s:
        supervisor = _user(s, "supervisor")
        for code, name in touched:
            shipped = next(spec for spec in builtin_rules() if spec.code == code).params[name]
            if authoring.params_of(authoring.get_version(s, code))[name] != shipped:
                authoring.set_param(s, supervisor, code, name, shipped, "测试结束，恢复默认值", NOW)


def test_set_param_on_the_command_line(city, restore):
    from typer.testing import CliRunner

    from yikatong.cli import app
    from yikatong.core.db import new_session

    restore(("PROPERTIES_MEANS_TESTED", "max_properties"))
    args = ["rules", "set-param", "PROPERTIES_MEANS_TESTED", "max_properties", "2", "--reason", "允许两套住房",
            "--user", "supervisor"]
    result = CliRunner().invoke(app, args, catch_exceptions=False, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "已调整规则 PROPERTIES_MEANS_TESTED 的参数 max_properties = 2" in result.output
    assert "此后的比对按新值运行" in result.output
    with new_session() as s:
        rule = s.get(Rule, "PROPERTIES_MEANS_TESTED")
        running = authoring.get_version(s, rule.code, rule.active_version)
        assert authoring.params_of(running)["max_properties"] == 2 and running.reason == "允许两套住房"
    shown = CliRunner().invoke(app, ["rules", "show", "PROPERTIES_MEANS_TESTED"], env={"COLUMNS": "200"})
    assert "调整原因：允许两套住房" in shown.output and "$max_properties = 2" in shown.output
    refused = CliRunner().invoke(app, args[:5] + ["--reason", "x", "--user", "county_handler"])
    assert refused.exit_code == 1 and "无此权限" in refused.output


def test_set_param_on_the_page_and_through_the_api(city, restore):
    from fastapi.testclient import TestClient

    from yikatong.core.clock import FixedClock
    from yikatong.web.app import create_app

    code, name = "RETIREE_PENSION_MEANS_TESTED", "pension_limit_fen"
    restore((code, name))
    with TestClient(create_app(clock=FixedClock(NOW))) as web:
        r = web.post("/login", data={"username": "supervisor", "password": "ykt-demo-2026"}, follow_redirects=False)
        assert r.status_code == 303
        page = web.get(f"/rules/{code}").text
        assert 'data-testid="param-form"' in page and "pension_limit_fen（现为 200000）" in page
        r = web.post(f"/rules/{code}/params", data={"name": name, "value": "300000", "reason": "养老金普遍上调"},
                     follow_redirects=False)
        assert r.status_code == 303
        page = web.get(r.headers["location"]).text
        assert "此后的比对按新值运行" in page and "养老金普遍上调" in page
        assert "pension_limit_fen</code> = 300000" in page
        r = web.post(f"/rules/{code}/params", data={"name": name, "value": "abc", "reason": "x"})
        assert r.status_code == 422 and "参数值应为整数" in r.text

        token = web.post("/api/v1/auth/login", json={"username": "supervisor", "password": "ykt-demo-2026"}).json()
        headers = {"Authorization": f"Bearer {token['token']}"}
        r = web.post(f"/api/v1/rules/{code}/params", json={"name": name, "value": 250000, "reason": "回调"},
                     headers=headers)
        assert r.status_code == 201, r.text
        body = r.json()
        assert (body["params"][name], body["reason"], body["running"], body["author_name"]) == (
            250000, "回调", True, "市纪委监委 李秀英")
        r = web.post(f"/api/v1/rules/{code}/params", json={"name": name, "value": 250000}, headers=headers)
        assert r.status_code == 422  # a reason is required
