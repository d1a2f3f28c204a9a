"""POST /api/v1/applications: business systems submit claims, all or nothing, with an idempotency key."""

from __future__ import annotations

import threading
import uuid

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from yikatong.core import crypto
from yikatong.core.clock import FixedClock
from yikatong.core.db import new_session
from yikatong.core.errors import Conflict
from yikatong.core.protect import reveal
from yikatong.security.models import AuditEvent
from yikatong.workflow import submissions
from yikatong.workflow.models import ApiSubmission, Application, ReviewRecord, Source, Step
from yikatong.workflow.schemas import SubmissionClaimIn

from .conftest import MONDAY

DEMO_PASSWORD = "ykt-demo-2026"
URL = "/api/v1/applications"


@pytest.fixture(scope="module")
def client(city):
    from yikatong.web.app import create_app

    with TestClient(create_app(clock=FixedClock(MONDAY))) as c:
        yield c


@pytest.fixture(scope="module")
def tokens(client):
    out = {}
    for username in ("county_handler", "city_finance", "village_clerk"):
        r = client.post("/api/v1/auth/login", json={"username": username, "password": DEMO_PASSWORD})
        assert r.status_code == 200, r.text
        out[username] = {"Authorization": f"Bearer {r.json()['token']}"}
    return out


def headers(tokens, username: str = "county_handler", key: str | None = None) -> dict[str, str]:
    return {**tokens[username], "Idempotency-Key": key or uuid.uuid4().hex}


def claim(person, item: str = "ZS007", period: str | int = "2026-11", **extra) -> dict:
    return {"id_number": reveal(crypto.ID_NUMBER, person.id_number_enc), "name": person.name,
            "item_code": item, "period": period, **extra}


def applications_of(person_ids: list[int], item: str = "ZS007") -> list[Application]:
    with new_session() as s:
        return list(s.scalars(select(Application).where(Application.person_id.in_(person_ids),
                                                        Application.item_code == item).order_by(Application.id)))


def test_submission_enters_every_claim_and_a_retry_replays_the_answer(client, tokens, claimant, users):
    people = [claimant() for _ in range(3)]
    body = {"claims": [claim(people[0], external_ref="MZ-2026-0001"), claim(people[1], quantity=1),
                       claim(people[2], quantity=None, note="系统推送")]}
    key = f"mz-{uuid.uuid4().hex}"
    h = headers(tokens, key=key)
    r = client.post(URL, json=body, headers=h)
    assert r.status_code == 201, r.text
    answer = r.json()
    assert answer["replayed"] is False
    assert [a["index"] for a in answer["applications"]] == [0, 1, 2]
    assert answer["applications"][0]["external_ref"] == "MZ-2026-0001"
    assert {a["stage"] for a in answer["applications"]} == {"县定"}

    apps = applications_of([p.id for p in people])
    assert [a.id for a in apps] == [a["id"] for a in answer["applications"]]
    assert [a.number for a in apps] == [a["number"] for a in answer["applications"]]
    assert [a.amount_fen for a in apps] == [a["amount_fen"] for a in answer["applications"]]
    assert all(a.source == Source.API.value and a.stage == Step.COUNTY for a in apps)
    assert apps[2].note == "系统推送" and str(apps[0].due_on) == answer["applications"][0]["due_on"]
    handler = users["county_handler"]
    with new_session() as s:
        submission = s.scalar(select(ApiSubmission).where(ApiSubmission.client_key == f"{handler.id}:{key}"))
        assert submission is not None and len(submission.request_sha256) == 64
        assert apps[0].source_ref == f"api:{submission.id}:MZ-2026-0001"
        assert apps[1].source_ref == f"api:{submission.id}"
        assert s.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "application.api_submit", AuditEvent.object_id == str(submission.id))) == 1
        records = s.scalar(select(func.count()).select_from(ReviewRecord).where(
            ReviewRecord.application_id.in_([a.id for a in apps])))
        assert records == 3

    # The same request again (keys in another order, an explicit null for an omitted field): the same answer.
    retry = {"claims": [dict(reversed(list(c.items()))) | {"note": c.get("note", "")} for c in body["claims"]]}
    r = client.post(URL, json=retry, headers=h)
    assert r.status_code == 200, r.text
    assert r.json() == {**answer, "replayed": True}
    assert len(applications_of([p.id for p in people])) == 3

    # The same key with another body is refused; another user's key space is separate.
    other = {"claims": [claim(people[0], period="2026-12")]}
    r = client.post(URL, json=other, headers=h)
    assert r.status_code == 409 and "Idempotency-Key" in r.json()["detail"] and "不同" in r.json()["detail"]
    r = client.post(URL, json=other, headers=headers(tokens, "city_finance", key=key))
    assert r.status_code == 201 and r.json()["applications"][0]["stage"] == "县定"


def test_one_bad_claim_refuses_all_and_names_index_field_and_reason(client, tokens, claimant):
    good, mismatch, dup = claimant(), claimant(), claimant()
    bad_id = claim(good)
    bad_id["id_number"] = bad_id["id_number"][:17] + ("0" if bad_id["id_number"][17] != "0" else "1")
    body = {"claims": [
        claim(good),
        bad_id,
        claim(good, item="ZS999"),
        claim(mismatch) | {"name": mismatch.name + "某"},
        claim(dup), claim(dup),
        claim(good, item="ZS001", period=2026, quantity="3"),  # 农业农村: not the handler's department
    ]}
    key = uuid.uuid4().hex
    r = client.post(URL, json=body, headers=headers(tokens, key=key))
    assert r.status_code == 422, r.text
    out = r.json()
    assert out["detail"] == "5条申请不符合要求，未写入任何申请"
    assert [(e["index"], e["field"], e["reason"]) for e in out["errors"]] == [
        (1, "id_number", "身份证号校验位错误"),
        (2, "item_code", "补贴项目代码不存在"),
        (3, "name", "姓名与人员库中该身份证号的姓名不一致"),
        (5, "period", "与 index 4 的申请是同一人同一项目同一期次"),
        (6, "item_code", "该项目不属于本部门（民政）主管"),
    ]
    assert out["error_count"] == 5
    assert applications_of([good.id, mismatch.id, dup.id]) == []

    # A refused request does not use up its key: corrected, the same key goes through.
    r = client.post(URL, json={"claims": [claim(good), claim(dup)]}, headers=headers(tokens, key=key))
    assert r.status_code == 201, r.text
    assert len(applications_of([good.id, dup.id])) == 2


def test_malformed_claims_get_the_same_error_shape(client, tokens, claimant):
    person = claimant()
    body = {"claims": [claim(person), {"id_number": "x", "item_code": "ZS007", "period": "2026-11"},
                       claim(person) | {"quantiy": "2"}, claim(person) | {"note": "长" * 501}]}
    r = client.post(URL, json=body, headers=headers(tokens))
    assert r.status_code == 422
    out = r.json()
    assert out["detail"] == "3条申请格式有误，未写入任何申请"
    found = {(e["index"], e["field"]): e["reason"] for e in out["errors"]}
    assert found[(1, "name")] == "必填项为空"
    assert found[(2, "quantiy")].startswith("未知字段")
    assert found[(3, "note")] == "长度不能超过500个字符"
    assert applications_of([person.id]) == []


def test_key_header_and_size_limits(client, tokens, claimant):
    person = claimant()
    body = {"claims": [claim(person)]}
    r = client.post(URL, json=body, headers=tokens["county_handler"])
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "Idempotency-Key"
    r = client.post(URL, json=body, headers=headers(tokens, key="k" * 101))
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "Idempotency-Key"
    r = client.post(URL, json={"claims": []}, headers=headers(tokens))
    assert r.status_code == 422
    assert r.json()["errors"] == [{"index": None, "field": "claims", "reason": "至少提交1条申请"}]
    r = client.post(URL, json={"claims": [claim(person)] * 10_001}, headers=headers(tokens))
    assert r.status_code == 422 and "一次最多提交10000条申请" in r.json()["errors"][0]["reason"]
    r = client.post(URL, content=b"{not json", headers={**headers(tokens), "Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["errors"][0]["reason"] == "请求体不是有效的JSON"
    assert applications_of([person.id]) == []


def test_only_list_submitters_may_post(client, tokens, claimant):
    body = {"claims": [claim(claimant())]}
    assert client.post(URL, json=body, headers=headers(tokens, "village_clerk")).status_code == 403
    assert client.post(URL, json=body, headers={"Idempotency-Key": "x"}).status_code == 401


def test_openapi_documents_the_submission(client):
    spec = client.get("/api/v1/openapi.json").json()
    post = spec["paths"]["/api/v1/applications"]["post"]
    assert {"201", "200", "409", "422"} <= set(post["responses"])
    assert any(p["name"] == "Idempotency-Key" and p["in"] == "header" and p["required"] for p in post["parameters"])
    assert "SubmissionRefused" in str(post["responses"]["422"]) and "SubmissionIn" in str(post["requestBody"])


def test_two_requests_with_one_key_at_once_enter_the_claims_once(city, users, claimant):
    """The second request waits on the key's unique constraint, then replays the first answer."""
    person = claimant()
    handler = users["county_handler"]
    items = [SubmissionClaimIn(**claim(person, period="2027-01"))]
    key = uuid.uuid4().hex
    first = new_session()
    second_result: dict[str, object] = {}
    try:
        mine = submissions.submit(first, first.get(type(handler), handler.id), key, items, MONDAY)
        assert not mine.replayed

        def second() -> None:
            with new_session() as s:
                try:
                    second_result["answer"] = submissions.submit(s, s.get(type(handler), handler.id), key, items,
                                                                 MONDAY)
                    s.commit()
                except Conflict as e:
                    second_result["conflict"] = e.message

        thread = threading.Thread(target=second)
        thread.start()
        thread.join(timeout=1.0)
        assert thread.is_alive(), "the second request should wait for the first one's key"
        first.commit()
        thread.join(timeout=15)
        assert not thread.is_alive()
    finally:
        first.close()
    answer = second_result.get("answer")
    assert answer is not None, second_result
    assert answer.replayed and [a.id for a in answer.applications] == [a.id for a in mine.applications]
    with new_session() as s:
        assert s.scalar(select(func.count()).select_from(Application).where(
            Application.person_id == person.id, Application.period == "2027-01")) == 1
