"""The proxy-holding archive: files served by content hash, in scope, audited, refused when altered."""

from __future__ import annotations

import hashlib

from sqlalchemy import func, select

from yikatong.registry.documents import document_path
from yikatong.registry.models import Person, ProxyDocument, ProxyHolding
from yikatong.security.models import AuditEvent
from yikatong.security.scope import in_subtree


def a_case(db):
    return db.execute(
        select(ProxyHolding.person_id, ProxyDocument.document_sha256, Person.region_code)
        .join(ProxyDocument, ProxyDocument.proxy_id == ProxyHolding.id)
        .join(Person, Person.id == ProxyHolding.person_id).order_by(ProxyHolding.id)
    ).first()


def test_archive_file_is_served_in_scope_and_audited(client, auth, db, people):
    person_id, sha, region = a_case(db)
    before = db.scalar(select(func.max(AuditEvent.id))) or 0
    r = client.get(f"/api/v1/persons/{person_id}/documents/{sha}", headers=auth("supervisor"))
    assert r.status_code == 200 and hashlib.sha256(r.content).hexdigest() == sha
    assert "attachment" in r.headers["content-disposition"]
    events = db.scalars(select(AuditEvent).where(AuditEvent.id > before, AuditEvent.action == "document.read")).all()
    assert [(e.username, e.object_id) for e in events] == [("supervisor", sha)]

    clerk = people["users"]["village_clerk"]
    if not in_subtree(clerk.region_code, region):
        r = client.get(f"/api/v1/persons/{person_id}/documents/{sha}", headers=auth("village_clerk"))
        assert r.status_code == 403


def test_a_file_of_another_case_or_an_unknown_hash_is_not_served(client, auth, db, people):
    person_id, sha, _ = a_case(db)
    other = people["own"].id if people["own"].id != person_id else people["other"].id
    r = client.get(f"/api/v1/persons/{other}/documents/{sha}", headers=auth("supervisor"))
    assert r.status_code == 404 and r.json()["detail"] == "档案文件不存在"
    r = client.get(f"/api/v1/persons/{person_id}/documents/{'0' * 64}", headers=auth("supervisor"))
    assert r.status_code == 404


def test_an_altered_file_is_refused(client, auth, db):
    person_id, sha, _ = a_case(db)
    path = document_path(sha)
    original = path.read_bytes()
    try:
        path.write_bytes(original + b" altered")
        r = client.get(f"/api/v1/persons/{person_id}/documents/{sha}", headers=auth("supervisor"))
        assert r.status_code == 409 and "篡改" in r.json()["detail"]
    finally:
        path.write_bytes(original)
