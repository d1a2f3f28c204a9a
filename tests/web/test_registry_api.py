"""Region scope and masking through the API: the heart of 'every user sees only their own region'."""

from __future__ import annotations

import re

from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from yikatong.core import crypto
from yikatong.core.protect import reveal
from yikatong.registry.models import Person
from yikatong.security.models import AuditEvent
from yikatong.security.scope import within

MASKED_ID = re.compile(r"^\d{6}\*{8}[\dX]{4}$")


def test_clerk_sees_own_village_only(client, auth, db, people):
    h = auth("village_clerk")
    r = client.get("/api/v1/persons", params={"size": 100}, headers=h).json()
    expected = db.scalar(select(func.count()).where(Person.region_code == people["own_village"]))
    assert r["total"] == expected > 0
    assert {p["region_code"] for p in r["items"]} == {people["own_village"]}
    assert all(MASKED_ID.match(p["id_number_masked"]) for p in r["items"])


def test_other_village_person_is_403_through_the_api(client, auth, people):
    h = auth("village_clerk")
    own = client.get(f"/api/v1/persons/{people['own'].id}", headers=h)
    assert own.status_code == 200 and own.json()["name"] == people["own"].name
    other = client.get(f"/api/v1/persons/{people['other'].id}", headers=h)
    assert other.status_code == 403 and other.json()["detail"] == "无权查看本辖区以外的人员"
    assert client.post(f"/api/v1/persons/{people['other'].id}/reveal", params={"field": "id_number"},
                       headers=h).status_code == 403


def test_township_reviewer_sees_both_villages(client, auth, people):
    h = auth("township_reviewer")
    for key in ("own", "other"):
        assert client.get(f"/api/v1/persons/{people[key].id}", headers=h).status_code == 200


def test_search_by_id_number_is_exact_and_scoped(client, auth, people):
    other_id = reveal(crypto.ID_NUMBER, people["other"].id_number_enc)
    own_id = reveal(crypto.ID_NUMBER, people["own"].id_number_enc)
    h = auth("village_clerk")
    found = client.post("/api/v1/persons/search", json={"q": own_id}, headers=h).json()
    assert [p["id"] for p in found["items"]] == [people["own"].id]
    assert client.post("/api/v1/persons/search", json={"q": other_id}, headers=h).json()["total"] == 0
    found = client.post("/api/v1/persons/search", json={"q": other_id}, headers=auth("township_reviewer")).json()
    assert [p["id"] for p in found["items"]] == [people["other"].id]


def test_person_answer_never_carries_clear_personal_data(client, auth, people):
    person = people["own"]
    body = client.get(f"/api/v1/persons/{person.id}", headers=auth("county_handler")).text
    assert reveal(crypto.ID_NUMBER, person.id_number_enc) not in body
    if person.phone_enc:
        assert reveal(crypto.PHONE, person.phone_enc) not in body


def test_reveal_returns_clear_value_and_is_audited(client, auth, db, people):
    person = people["own"]
    before = db.scalar(select(func.max(AuditEvent.id))) or 0
    r = client.post(f"/api/v1/persons/{person.id}/reveal", params={"field": "id_number"},
                    headers=auth("village_clerk"))
    assert r.status_code == 200
    assert r.json()["value"] == reveal(crypto.ID_NUMBER, person.id_number_enc)
    events = db.scalars(select(AuditEvent).where(AuditEvent.id > before, AuditEvent.action == "person.reveal")).all()
    assert [(e.username, e.object_id, e.detail) for e in events] == [
        ("village_clerk", str(person.id), '{"field": "id_number"}')]


def test_roles_without_the_duty_cannot_reveal_or_read(client, auth, people):
    pid = people["own"].id
    r = client.post(f"/api/v1/persons/{pid}/reveal", params={"field": "id_number"}, headers=auth("township_reviewer"))
    assert r.status_code == 403
    for admin in ("sysadmin", "secadmin", "auditadmin", "bank"):  # 三员 and the bank read no personal data
        assert client.get(f"/api/v1/persons/{pid}", headers=auth(admin)).status_code == 403
        assert client.get("/api/v1/persons", headers=auth(admin)).status_code == 403


def test_region_summary_matches_the_database_and_is_scoped(client, auth, db, people):
    county = people["users"]["county_handler"].region_code
    s = client.get(f"/api/v1/regions/{county}/summary", headers=auth("county_handler")).json()
    in_county = within(Person.region_code, county)
    assert s["persons"] == db.scalar(select(func.count()).where(in_county))
    assert s["beneficiaries"] == db.scalar(select(func.count()).where(in_county, Person.is_beneficiary))
    assert s["beneficiaries_with_card"] == db.scalar(
        select(func.count()).where(in_county, Person.is_beneficiary, Person.has_active_card))
    assert sum(c["persons"] for c in s["children"]) == s["persons"]
    assert all(c["level"] == "township" for c in s["children"])
    r = client.get(f"/api/v1/regions/{county}/summary", headers=auth("village_clerk"))
    assert r.status_code == 403


def test_audit_trail_is_append_only(db, people):
    from datetime import UTC, datetime

    from yikatong.core.db import engine, transaction
    from yikatong.security import audit

    with transaction() as s:  # at least one row, so a row trigger has something to refuse
        audit.record(s, None, "test.append_only", "test", 1, datetime(2026, 1, 1, tzinfo=UTC))
    with engine().connect() as conn:
        for sql in ("UPDATE audit_events SET action = 'x'", "DELETE FROM audit_events"):
            try:
                conn.execute(text(sql))
                raise AssertionError(f"{sql} was allowed")
            except DBAPIError as exc:
                assert "append-only" in str(exc)
            conn.rollback()


def test_audit_admin_reads_the_trail_others_cannot(client, auth):
    r = client.get("/api/v1/audit", params={"action": "auth.login"}, headers=auth("auditadmin"))
    assert r.status_code == 200 and r.json()["total"] > 0
    assert {e["action"] for e in r.json()["items"]} == {"auth.login"}
    assert client.get("/api/v1/audit", headers=auth("supervisor")).status_code == 403


def test_name_search_is_a_prefix_and_wildcards_match_nothing_extra(client, auth, people):
    h = auth("township_reviewer")
    surname = people["own"].name[:1]
    found = client.get("/api/v1/persons", params={"q": surname, "size": 100}, headers=h).json()
    assert found["total"] >= 1 and all(p["name"].startswith(surname) for p in found["items"])
    r = client.get("/api/v1/persons", params={"q": "%"}, headers=h)
    assert r.status_code == 422 and r.json()["detail"] == "请输入身份证号或姓名"
    wild = client.get("/api/v1/persons", params={"q": f"{surname}%"}, headers=h).json()
    assert wild["total"] == found["total"]  # '%' is not a wildcard for the user


def test_the_city_build_is_on_the_audit_trail(client, auth):
    events = client.get("/api/v1/audit", params={"action": "synth.build"}, headers=auth("auditadmin")).json()
    assert events["total"] >= 1
    detail = events["items"][-1]["detail"]
    assert '"seed": 7' in detail and '"persons":' in detail
