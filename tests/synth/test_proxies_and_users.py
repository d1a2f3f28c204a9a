"""Proxy-holding cases with their documents, and the demo users."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select

from yikatong.catalog.models import Department
from yikatong.core import crypto
from yikatong.core.idnumber import parse_id_number
from yikatong.core.protect import reveal
from yikatong.registry.documents import document_path, read_document, store_document
from yikatong.registry.models import Document, Person, ProxyDocument, ProxyHolding, Region
from yikatong.security.models import User
from yikatong.security.scope import within
from yikatong.security.service import login
from yikatong.synth.city import DEMO_PASSWORD, proxy_quotas
from yikatong.synth.regions import plan_city


def test_proxy_cases_with_documents_on_disk(city, db):
    cases = db.scalars(select(ProxyHolding).join(Person, Person.id == ProxyHolding.person_id)
                       .where(within(Person.region_code, "511000000000"),
                              Person.birth_date >= date(1925, 1, 1))).all()  # the city's people, not other tests'

    assert len(cases) == city.proxy_cases >= 3
    for case in cases:
        person = db.get(Person, case.person_id)
        assert person.is_beneficiary and person.has_active_card
        holder_id = reveal(crypto.ID_NUMBER, case.holder_id_number_enc)
        parse_id_number(holder_id)
        assert case.holder_name and case.holder_relation and case.reason and case.approver_name
        assert case.valid_from == case.approved_on and (case.valid_until is None or case.valid_until > case.valid_from)
        # a holder from the household is that household member (joinable through the keyed hash)
        relative = db.scalar(select(Person).where(Person.id_number_hash == case.holder_id_number_hash))
        if relative is not None:
            assert relative.household_id == person.household_id and relative.name == case.holder_name
        documents = db.scalars(select(ProxyDocument).where(ProxyDocument.proxy_id == case.id)).all()
        assert 1 <= len(documents) <= 2
        for d in documents:
            data = document_path(d.document_sha256).read_bytes()
            assert hashlib.sha256(data).hexdigest() == d.document_sha256
            row = db.get(Document, d.document_sha256)
            assert row.size == len(data) and row.content_type.startswith("text/plain")
            assert person.name in data.decode("utf-8")


def test_proxy_quota_is_about_500_at_scale_one_and_at_least_3():
    assert sum(proxy_quotas(plan_city(1.0, 1)).values()) == 500
    assert sum(proxy_quotas(plan_city(0.0005, 1)).values()) == 3


def test_store_document_keeps_one_copy_and_checks_the_hash(db):
    now = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
    data = "测试文档：同样的内容只存一份".encode()
    first = store_document(db, data, "a.txt", "text/plain", now)
    second = store_document(db, data, "b.txt", "text/plain", now)
    assert first is second and first.filename == "a.txt"
    assert read_document(first.sha256) == data
    path = document_path(first.sha256)
    path.write_bytes(b"changed")
    with pytest.raises(ValueError, match="哈希不一致"):
        read_document(first.sha256)
    path.write_bytes(data)
    db.rollback()


EXPECTED_ROLES = {
    "city_finance": "city_finance", "city_finance2": "city_finance", "supervisor": "supervisor",
    "county_finance": "county_finance", "county_finance2": "county_finance", "county_handler": "county_handler",
    "county_leader": "county_handler", "township_reviewer": "township_reviewer", "village_clerk": "village_clerk",
    "village_clerk2": "village_clerk",
    "bank": "bank", "sysadmin": "system_admin", "secadmin": "security_admin", "auditadmin": "audit_admin",
}


def test_demo_users_have_their_roles_and_regions(city, db):
    users = {u.username: u for u in db.scalars(select(User).where(User.username.in_(EXPECTED_ROLES)))}
    assert {u: users[u].role for u in EXPECTED_ROLES} == EXPECTED_ROLES
    for name in ("city_finance", "city_finance2", "supervisor", "bank", "sysadmin", "secadmin", "auditadmin"):
        assert users[name].region_code == "511000000000"
    for name in ("county_handler", "county_finance", "county_finance2"):
        assert users[name].region_code == "511025000000"
    department = db.get(Department, users["county_handler"].department_code)
    assert department.sector == "民政" and department.region_code == "511025000000"
    township = db.get(Region, users["township_reviewer"].region_code)
    first_township = db.scalar(select(Region.code).where(Region.parent_code == "511025000000").order_by(Region.code))
    assert township.code == first_township and township.level == "township"
    villages = db.scalars(select(Region.code).where(Region.parent_code == township.code).order_by(Region.code)).all()
    assert [users["village_clerk"].region_code, users["village_clerk2"].region_code] == villages[:2]
    assert users["bank"].bank_code == "ABC"
    assert all(u.display_name and u.active for u in users.values())
    assert [d.username for d in city.demo_logins] == list(EXPECTED_ROLES)
    assert all(d.password == DEMO_PASSWORD and d.role_label and d.region_name for d in city.demo_logins)


@pytest.mark.parametrize("username", ["village_clerk", "auditadmin"])
def test_demo_users_can_log_in(city, db, username):
    user, token = login(db, username, DEMO_PASSWORD, datetime(2026, 1, 5, 9, 0, tzinfo=UTC))
    assert user.username == username and token
    db.rollback()
