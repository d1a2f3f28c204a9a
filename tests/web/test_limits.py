"""Out-of-range numbers and malformed codes answer 422 in Chinese, never 500, on pages and API alike; the
OpenAPI schema states the limits."""

from __future__ import annotations

import pytest

from .conftest import DEMO_PASSWORD

HUGE = str(10**30)
BEYOND_INT64 = str(2**63)
BEYOND_KEYS = str(2**31)  # the key columns are INTEGER (32-bit on PostgreSQL)


@pytest.mark.parametrize("url", [
    f"/api/v1/persons?page={HUGE}", "/api/v1/persons?page=0", "/api/v1/persons?size=100000",
    f"/api/v1/audit?page={BEYOND_INT64}", f"/api/v1/inbox?page={HUGE}", "/api/v1/inbox?village=ABC",
    f"/api/v1/persons/{BEYOND_INT64}", f"/api/v1/persons/{BEYOND_KEYS}",
    f"/api/v1/applications/{HUGE}", f"/api/v1/flags/{BEYOND_INT64}",
    f"/api/v1/flags?page={HUGE}", "/api/v1/flags?region=ABC", "/api/v1/interception/stats?region=ABC",
    "/api/v1/regions/ABC/summary", "/api/v1/regions/0/summary", f"/api/v1/publicities/{BEYOND_INT64}",
    "/api/v1/departments?region_prefix=5x", "/api/v1/persons?page=" + "9" * 5000,
    "/api/v1/applications/" + "1" * 5000])
def test_api_answers_422_in_chinese(client, auth, url):
    r = client.get(url, headers=auth("city_finance"))
    assert r.status_code == 422, (url, r.status_code, r.text[:200])
    assert any("\u4e00" <= ch <= "\u9fff" for ch in r.json()["detail"])


@pytest.mark.parametrize("url", [
    f"/persons?page={HUGE}", f"/persons/{BEYOND_INT64}", f"/applications/{HUGE}", f"/applications?page={HUGE}",
    "/applications?village=ABC", f"/interception/flags?page={HUGE}", "/interception/stats?region=ABC",
    f"/interception/flags/{BEYOND_INT64}", f"/publicity/{HUGE}/print", f"/public/publicity/{BEYOND_INT64}",
    f"/audit?page={HUGE}", f"/applications/{BEYOND_KEYS}/trail.csv"])
def test_pages_answer_422_in_chinese(client, url):
    for name in ("city_finance", "village_clerk", "auditadmin"):
        client.post("/login", data={"username": name, "password": DEMO_PASSWORD})
        r = client.get(url)
        if r.status_code != 403:  # (the counter is the clerk's, the audit page the audit administrator's)
            break
    assert r.status_code == 422, (url, r.status_code)
    assert "请求参数有误" in r.text or "数值超出允许范围" in r.text or "区划代码格式错误" in r.text


def test_keys_no_column_holds_never_answer_500(client):
    """Parameters without a stated bound still meet the last net: a number the key column cannot hold is a 422
    (PostgreSQL's INTEGER keys), or simply not found (SQLite's keys are 64-bit)."""
    from yikatong.core.settings import get_settings

    client.post("/login", data={"username": "village_clerk", "password": DEMO_PASSWORD})
    r = client.get(f"/applications/new?person_id={BEYOND_KEYS}")
    assert r.status_code == (404 if get_settings().is_sqlite else 422), r.status_code
    assert "数值超出允许范围" in r.text or "人员不存在" in r.text
    for url in (f"/applications/new?person_id={BEYOND_INT64}", f"/public/publicity/1?registered={BEYOND_KEYS}"):
        r = client.get(url)
        assert r.status_code in (200, 404, 422), (url, r.status_code)


def test_bulk_decision_with_an_id_beyond_int64_is_422(client, auth):
    r = client.post("/api/v1/applications/bulk-decision", headers=auth("city_finance"),
                    json={"ids": [2**31], "decision": "approve"})
    assert r.status_code == 422 and "不能大于" in r.json()["detail"]


def test_the_openapi_schema_states_the_limits(client):
    spec = client.get("/api/v1/openapi.json").json()

    def param(path: str, name: str) -> dict:
        [p] = [p for p in spec["paths"][path]["get"]["parameters"] if p["name"] == name]
        return p["schema"]

    assert param("/api/v1/persons", "page") == {"type": "integer", "maximum": 100000, "minimum": 1,
                                                "description": "页码，从1开始", "default": 1, "title": "Page"}
    assert param("/api/v1/persons/{person_id}", "person_id")["maximum"] == 2**31 - 1
    assert param("/api/v1/applications/{application_id}", "application_id")["minimum"] == 1
    assert param("/api/v1/regions/{code}/summary", "code")["pattern"] == "^[0-9]{2,12}$"
    assert param("/api/v1/inbox", "village")["pattern"] == "^([0-9]{2,12})?$"
    assert param("/api/v1/audit", "size")["maximum"] == 200
