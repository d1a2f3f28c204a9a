"""The pre-payment gate over HTTP (the API and the page): it answers with what it found instead of
refusing, the flags it raised are committed with the request even when applications are blocked,
the clean 已通过 applications move to 待支付, and what is not 已通过 (or not the user's) is
reported, not moved. Committed data, as in test_flag_pages."""

from __future__ import annotations

from sqlalchemy import select

from yikatong.core.db import new_session, transaction
from yikatong.interception.models import Flag, FlagStatus, Rule, RuleOrigin, RuleVersion
from yikatong.workflow import service as workflow
from yikatong.workflow.models import Action, Application, ReviewRecord, Status

from .test_flag_pages import MONDAY, auth, clock, flagged, rule_version, web  # noqa: F401 - fixtures

GATE_RULE = "TEST_GATE_HITS"


def _approved() -> int:
    """A committed 已通过 application with no flag."""
    app_id, _ = flagged(())
    with transaction() as s:
        workflow.leave_road(s.get(Application, app_id), Status.APPROVED, MONDAY)
    return app_id


def _active_rule_hitting(app_id: int) -> None:
    """An active rule of our own that hits exactly this application (switched off by _off)."""
    with transaction() as s:
        number = s.get(Application, app_id).number
        sql = (f"SELECT application_id, '测试：发放前发现 ' || number AS evidence FROM applications "
               f"WHERE number = '{number}'")
        rule = s.get(Rule, GATE_RULE)
        if rule is None:
            rule = Rule(code=GATE_RULE, origin=RuleOrigin.SUPERVISOR.value, name="测试规则（门禁）", active=True,
                        latest_version=0, created_at=MONDAY, updated_at=MONDAY)
            s.add(rule)
            s.flush()
        rule.latest_version += 1
        rule.active_version, rule.active = rule.latest_version, True
        s.add(RuleVersion(rule_code=GATE_RULE, version=rule.latest_version, name="测试规则（门禁）", explanation="测试",
                          severity="高", items="all", datasets="", params="{}", sql=sql, sql_sha256="0" * 64,
                          author_name="测试", created_at=MONDAY))


def _off() -> None:
    with transaction() as s:
        s.get(Rule, GATE_RULE).active = False


def _status(app_id: int) -> str:
    with new_session() as s:
        return s.get(Application, app_id).status


def test_the_api_gate_keeps_its_flags_and_moves_the_clean(web, auth, rule_version):  # noqa: F811
    clean, caught = _approved(), _approved()
    waiting, [old_flag] = flagged(("测试：早已存疑",))
    _active_rule_hitting(caught)
    try:
        r = web.post("/api/v1/payment-gate", headers=auth("city_finance"),
                     json={"application_ids": [clean, caught, waiting, 999_999_999]})
    finally:
        _off()
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["passed"] is False and body["allowed"] == [clean] and body["new_flags"] == 1
    blocked = {b["application_id"]: b["flags"] for b in body["blocked"]}
    assert set(blocked) == {caught, waiting} and [f["id"] for f in blocked[waiting]] == [old_flag]
    assert blocked[caught][0]["rule_code"] == GATE_RULE and "发放前发现" in blocked[caught][0]["evidence"]
    assert body["not_payable"] == {"999999999": "不存在或无权处理"}
    # committed with the request: the new flag, the move and its trail record
    with new_session() as s:
        [flag] = s.scalars(select(Flag).where(Flag.application_id == caught)).all()
        assert flag.status == FlagStatus.OPEN and s.get(Application, caught).open_flags == 1
        assert s.scalar(select(ReviewRecord.action).where(ReviewRecord.application_id == clean)
                        .order_by(ReviewRecord.id.desc()).limit(1)) == Action.PAYABLE
    assert (_status(clean), _status(caught), _status(waiting)) == (Status.PAYABLE, Status.APPROVED, Status.OPEN)

    again = web.post("/api/v1/payment-gate", headers=auth("city_finance"), json={"application_ids": [clean]}).json()
    assert again["allowed"] == [] and again["not_payable"] == {str(clean): "待支付"}  # reported, not moved twice


def test_only_city_finance_gates(web, auth):  # noqa: F811
    r = web.post("/api/v1/payment-gate", headers=auth("county_handler"), json={"application_ids": [1]})
    assert r.status_code == 403
    empty = web.post("/api/v1/payment-gate", headers=auth("city_finance"), json={"application_ids": []})
    assert empty.status_code == 422


def test_the_gate_page(web, auth, rule_version):  # noqa: F811
    clean = _approved()
    waiting, _ = flagged(("测试：页面门禁",))
    finance = auth("city_finance")
    page = web.get("/payment-gate", headers=finance)
    assert page.status_code == 200 and 'data-testid="gate-form"' in page.text
    r = web.post("/payment-gate", headers=finance, data={"ids": f"{clean}\n{waiting}"})
    assert r.status_code == 200
    assert "发放前比对未通过" in r.text and "1笔转入待支付" in r.text and "测试：页面门禁" in r.text
    assert _status(clean) == Status.PAYABLE
    bad = web.post("/payment-gate", headers=finance, data={"ids": "12, abc"})
    assert bad.status_code == 422 and "不是申请ID：abc" in bad.text
    assert web.get("/payment-gate", headers=auth("county_handler")).status_code == 403
