"""The review road over HTTP: decisions, scope, the supervisor's read-only view, the public
publicity page with objections in and out of the window, the trail export and bulk approval.

Every write goes through a committed transaction (the app's requests commit, and so does `commit`
below), so each test uses fresh claimants and never assumes global counts."""

from __future__ import annotations

import csv
import hashlib
import io
import uuid

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select

from yikatong.core import crypto
from yikatong.core.db import new_session, transaction
from yikatong.core.masking import mask_name
from yikatong.core.protect import reveal
from yikatong.registry.models import Document, Region, RegionLevel
from yikatong.security.models import AuditEvent, User
from yikatong.security.roles import Role
from yikatong.security.service import create_user
from yikatong.workflow import publicity, service
from yikatong.workflow.models import Action, Application, Objection, PublicityEntry, ReviewRecord, Status, Step

from .conftest import PASSWORD

# The clerk's village has a few dozen people and each may hold one live claim per item, so the tests
# spread over the items the demo stories leave free there (synth.applications.TEST_ITEMS).
FARMLAND = "ZS001"  # 耕地地力保护补贴: 105 yuan per mu, yearly, publicised
MACHINERY = "ZS002"  # 农机购置补贴: per household, once, publicised
FOREST = "ZS014"  # 森林生态效益补偿: 14.75 yuan per mu, yearly, publicised
SPECIAL = "ZS017"  # 计划生育特别扶助: per person, monthly, NOT publicised (村评 -> 镇审)


@pytest.fixture
def auth(web, clock):
    """auth(username) -> bearer headers; logs in again once the clock has moved (sessions expire)."""
    tokens: dict[tuple[str, object], str] = {}

    def headers(username: str) -> dict[str, str]:
        key = (username, clock.now())
        if key not in tokens:
            r = web.post("/api/v1/auth/login", json={"username": username, "password": PASSWORD})
            assert r.status_code == 200, r.text
            tokens[key] = r.json()["token"]
        return {"Authorization": f"Bearer {tokens[key]}"}

    return headers


def accepted(users, person, clock, item=SPECIAL, period="2026-11", quantity=None) -> int:
    """A committed application of the clerk's village, waiting at 村评."""
    with transaction() as s:
        clerk = s.get(User, users["village_clerk"].id)
        return service.accept(s, clerk, person_id=person.id, item_code=item, period=period, quantity=quantity,
                              now=clock.now()).id


def at_township(users, person, clock, item=SPECIAL, period="2026-11", quantity=None) -> int:
    """A committed application moved through 村评 (and, for a publicised item, a published and
    ended 公示) to 镇审."""
    app_id = accepted(users, person, clock, item, period, quantity)
    with transaction() as s:
        clerk = s.get(User, users["village_clerk"].id)
        app = s.get(Application, app_id)
        service.decide(s, app, clerk, Action.APPROVE, "评议通过", clock.now())
        if app.stage == Step.PUBLICITY:
            publicity.publish(s, clerk, clock.now(), village=app.region_code)
    if app.publicity_id is not None:
        clock.advance(days=8)
    with transaction() as s:
        publicity.close_ended(s, clock.now())
        assert s.get(Application, app_id).stage == Step.TOWNSHIP
    return app_id


def records_of(app_id: int) -> list[tuple[str, str]]:
    with new_session() as s:
        return [tuple(r) for r in s.execute(select(ReviewRecord.step, ReviewRecord.action)
                                            .where(ReviewRecord.application_id == app_id)
                                            .order_by(ReviewRecord.id)).all()]


def other_township_reviewer(users, clock) -> str:
    """A committed township reviewer of another township of the same county."""
    mine = users["township_reviewer"].region_code
    username = f"tr_{uuid.uuid4().hex[:8]}"
    with transaction() as s:
        other = s.scalar(select(Region.code).where(Region.level == RegionLevel.TOWNSHIP.value,
                                                   Region.parent_code == mine[:6].ljust(12, "0"),
                                                   Region.code != mine).order_by(Region.code))
        assert other is not None
        create_user(s, username, PASSWORD, Role.TOWNSHIP_REVIEWER, other, "另一乡镇 审核员", clock.now())
    return username


# ---------------------------------------------------------------- decisions and scope


def test_api_decision_moves_the_application_and_writes_a_record(web, auth, users, claimant, clock):
    app_id = accepted(users, claimant(FARMLAND), clock, item=FARMLAND, period="2026", quantity="3")
    clerk = auth("village_clerk")

    r = web.post(f"/api/v1/applications/{app_id}/decision", headers=clerk, json={"decision": "return", "opinion": ""})
    assert r.status_code == 422  # 村评 is the first station: nothing to return to, and no opinion
    r = web.post(f"/api/v1/applications/{app_id}/decision", headers=clerk, json={"decision": "reject"})
    assert r.status_code == 422 and "意见" in r.json()["detail"]
    assert records_of(app_id) == [("户报", "提交申请")]  # a refused decision writes nothing

    r = web.post(f"/api/v1/applications/{app_id}/decision", headers=clerk,
                 json={"decision": "approve", "opinion": "经民主评议，符合条件"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["status"], body["stage"]) == ("办理中", "公示")
    assert body["record"]["action"] == "通过" and body["record"]["actor_role_label"] == "村级经办员"
    assert records_of(app_id) == [("户报", "提交申请"), ("村评", "通过")]

    detail = web.get(f"/api/v1/applications/{app_id}", headers=clerk).json()
    assert [r["action"] for r in detail["records"]] == ["提交申请", "通过"]
    assert detail["records"][1]["opinion"] == "经民主评议，符合条件"
    assert detail["can_act"] is True  # 公示 is the clerk's station too

    # the page shows it with the trail
    page = web.get(f"/applications/{app_id}", headers=clerk)
    assert page.status_code == 200 and "经民主评议，符合条件" in page.text and "公示中的申请不需要审核" in page.text


def test_reviewers_outside_the_region_get_403_on_detail_and_decision(web, auth, users, claimant, clock):
    app_id = at_township(users, claimant(FOREST), clock, item=FOREST, period="2026", quantity="2")
    stranger = auth(other_township_reviewer(users, clock))
    assert web.get(f"/api/v1/applications/{app_id}", headers=stranger).status_code == 403
    r = web.post(f"/api/v1/applications/{app_id}/decision", headers=stranger, json={"decision": "approve"})
    assert r.status_code == 403
    page = web.get(f"/applications/{app_id}", headers=stranger)
    assert page.status_code == 403 and "无权查看" in page.text
    # the other township's inbox does not hold it
    inbox = web.get("/api/v1/inbox", headers=stranger).json()
    assert app_id not in [row["id"] for row in inbox["rows"]]

    # a clerk of the village is in scope but 镇审 is not her station
    r = web.post(f"/api/v1/applications/{app_id}/decision", headers=auth("village_clerk"), json={"decision": "approve"})
    assert r.status_code == 403 and "不由您办理" in r.json()["detail"]
    # the township's own reviewer can
    r = web.post(f"/api/v1/applications/{app_id}/decision", headers=auth("township_reviewer"),
                 json={"decision": "approve"})
    assert r.status_code == 200 and r.json()["stage"] == "县定"
    assert records_of(app_id)[-1] == ("镇审", "通过")


def test_village_clerk2_cannot_see_the_clerks_application(web, auth, users, claimant, clock):
    person = claimant(SPECIAL)
    app_id = accepted(users, person, clock)
    with new_session() as s:
        number = s.get(Application, app_id).number
    other = auth("village_clerk2")
    assert web.get(f"/api/v1/applications/{app_id}", headers=other).status_code == 403
    r = web.post(f"/api/v1/applications/{app_id}/decision", headers=other, json={"decision": "approve"})
    assert r.status_code == 403
    page = web.get(f"/applications/{app_id}", headers=other)
    assert page.status_code == 403 and person.name not in page.text
    assert web.get(f"/applications/{app_id}/trail.xlsx", headers=other).status_code == 403
    assert app_id not in [row["id"] for row in web.get("/api/v1/inbox", headers=other).json()["rows"]]
    listing = web.get("/applications", params={"view": "all", "number": number}, headers=other)
    link = f'href="/applications/{app_id}"'
    assert listing.status_code == 200 and link not in listing.text and "没有符合条件的申请" in listing.text
    # ...while the clerk of the village finds it
    mine = web.get("/applications", params={"view": "all", "number": number}, headers=auth("village_clerk"))
    assert link in mine.text
    assert records_of(app_id) == [("户报", "提交申请")]


def test_supervisor_reads_but_cannot_decide(web, auth, users, claimant, clock):
    app_id = accepted(users, claimant(SPECIAL), clock)
    with new_session() as s:
        number = s.get(Application, app_id).number
    sup = auth("supervisor")
    detail = web.get(f"/api/v1/applications/{app_id}", headers=sup)
    assert detail.status_code == 200 and detail.json()["can_act"] is False
    assert web.post(f"/api/v1/applications/{app_id}/decision", headers=sup,
                    json={"decision": "approve"}).status_code == 403
    assert web.post("/api/v1/applications/bulk-decision", headers=sup,
                    json={"ids": [app_id], "decision": "approve"}).status_code == 403
    assert web.get("/api/v1/inbox", headers=sup).status_code == 403
    page = web.get(f"/applications/{app_id}", headers=sup)
    assert page.status_code == 200 and 'data-testid="decision-form"' not in page.text
    # /applications is a searchable list for a supervisor, not an inbox
    listing = web.get("/applications", params={"number": number[:-3]}, headers=sup)
    link = f'href="/applications/{app_id}"'
    assert listing.status_code == 200 and link in listing.text and 'data-testid="inbox"' not in listing.text
    exact = web.get("/applications", params={"number": number, "status": "已通过"}, headers=sup)
    assert link not in exact.text  # it is 办理中
    assert records_of(app_id) == [("户报", "提交申请")]


# ---------------------------------------------------------------- publicity and objections


def test_public_page_masks_and_takes_objections_only_in_the_window(web, auth, users, claimant, clock):
    person = claimant(MACHINERY, with_household=True)
    app_id = accepted(users, person, clock, item=MACHINERY, period="2026")
    with transaction() as s:
        clerk = s.get(User, users["village_clerk"].id)
        service.decide(s, s.get(Application, app_id), clerk, Action.APPROVE, "", clock.now())
    r = web.post("/api/v1/publicities", headers=auth("village_clerk"), json={"village": person.region_code})
    assert r.status_code == 201, r.text
    with new_session() as s:
        pub_id = s.get(Application, app_id).publicity_id
        position = s.scalar(select(PublicityEntry.position).where(PublicityEntry.application_id == app_id))
    assert pub_id in r.json()["publicities"]

    page = web.get(f"/public/publicity/{pub_id}")  # no login
    assert page.status_code == 200
    clear_id = reveal(crypto.ID_NUMBER, person.id_number_enc)
    assert person.id_number_masked in page.text and clear_id not in page.text
    assert mask_name(person.name) in page.text and person.name not in page.text
    assert 'data-testid="objection-form"' in page.text
    listing = web.get(f"/api/v1/publicities/{pub_id}").json()
    assert clear_id not in str(listing) and person.name not in str(listing)
    assert listing["open"] is True

    r = web.post(f"/public/publicity/{pub_id}/objections",
                 data={"entry": str(position), "reason": "该户家中有人在县城工作", "name": "", "phone": "13800001234"},
                 follow_redirects=False)
    assert r.status_code == 303, r.text
    short = web.post(f"/public/publicity/{pub_id}/objections", data={"entry": str(position), "reason": "不对"})
    assert short.status_code == 422 and "至少5个字" in short.text
    r = web.post(f"/api/v1/publicities/{pub_id}/objections", json={"entry": position, "reason": "重复申领，请核实情况"})
    assert r.status_code == 201
    with new_session() as s:
        objections = s.scalars(select(Objection).where(Objection.application_id == app_id)).all()
        assert [o.contact_masked for o in objections] == ["138****1234", None]
        assert s.get(Application, app_id).open_objections == 2

    clock.advance(days=7)  # the window (7 days from Monday) has ended
    closed = web.get(f"/public/publicity/{pub_id}")
    assert 'data-testid="objection-form"' not in closed.text and "公示期已于" in closed.text
    late = web.post(f"/public/publicity/{pub_id}/objections", data={"entry": str(position), "reason": "迟到的异议内容"})
    assert late.status_code == 409 and "不在公示期内" in late.text
    assert web.post(f"/api/v1/publicities/{pub_id}/objections",
                    json={"entry": position, "reason": "迟到的异议内容"}).status_code == 409
    with new_session() as s:
        assert s.scalar(select(func.count()).select_from(Objection).where(Objection.application_id == app_id)) == 2

    # the township reviewer answers both on the application page; the last one lets it move on
    tr = auth("township_reviewer")
    ids = [o["id"] for o in web.get(f"/api/v1/applications/{app_id}", headers=tr).json()["objections"]]
    r = web.post(f"/applications/{app_id}/objections/{ids[0]}", headers=tr, data={"result": "dismissed", "opinion": ""})
    assert r.status_code == 422 and "核实意见" in r.text
    for objection_id in ids:
        r = web.post(f"/applications/{app_id}/objections/{objection_id}", headers=tr, follow_redirects=False,
                     data={"result": "dismissed", "opinion": "经入户核实，家庭收入符合低保条件"})
        assert r.status_code == 303
    with new_session() as s:
        app = s.get(Application, app_id)
        assert (app.stage, app.open_objections) == (Step.TOWNSHIP, 0)
    assert [a for _, a in records_of(app_id)][-3:] == ["异议处理", "异议处理", "公示期满"]


def test_print_page_is_for_staff_in_scope(web, auth, users, claimant, clock):
    person = claimant(FOREST)
    app_id = accepted(users, person, clock, item=FOREST, period="2026", quantity="1.5")
    with transaction() as s:
        clerk = s.get(User, users["village_clerk"].id)
        service.decide(s, s.get(Application, app_id), clerk, Action.APPROVE, "", clock.now())
        [pub] = publicity.publish(s, clerk, clock.now(), village=person.region_code)
        pub_id = pub.id
    page = web.get(f"/publicity/{pub_id}/print", headers=auth("village_clerk"))
    assert page.status_code == 200 and person.id_number_masked in page.text and "print-button" in page.text
    assert "/public/publicity/" in page.text  # the objection channel names the public page
    assert web.get(f"/publicity/{pub_id}/print", headers=auth("village_clerk2")).status_code == 403
    manage = web.get("/publicity", headers=auth("village_clerk"))
    assert manage.status_code == 200 and f"/publicity/{pub_id}/print" in manage.text


# ---------------------------------------------------------------- export and bulk


def test_trail_export_opens_in_excel_and_holds_every_record(web, auth, users, claimant, clock):
    app_id = at_township(users, claimant(FARMLAND), clock, item=FARMLAND, period="2026", quantity="5")
    tr, clerk = auth("township_reviewer"), auth("village_clerk")
    r = web.post(f"/applications/{app_id}/decision", headers=tr, follow_redirects=False,
                 data={"decision": "return", "return_to": "村评", "opinion": "面积与确权证书不符"})
    assert r.status_code == 303
    # an empty file input, as a browser sends it when no file is chosen
    r = web.post(f"/applications/{app_id}/correction", headers=clerk, follow_redirects=False,
                 data={"quantity": "4.5", "opinion": "按证书更正"},
                 files=[("files", ("", b"", "application/octet-stream"))])
    assert r.status_code == 303
    page = web.get(f"/applications/{app_id}", headers=clerk)
    assert "数量 5亩→4.5亩" in page.text and "金额 525.00→472.50" in page.text

    r = web.get(f"/applications/{app_id}/trail.xlsx", headers=tr)
    assert r.status_code == 200 and "attachment" in r.headers["content-disposition"]
    sheet = load_workbook(io.BytesIO(r.content)).active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][:5] == ("申请编号", "序号", "时间", "环节", "操作")
    expected = records_of(app_id)
    assert [(row[3], row[4]) for row in rows[1:]] == expected
    assert expected[-2:] == [("镇审", "退回补正"), ("村评", "补正")]
    assert "面积与确权证书不符" in rows[-2] and "数量 5亩→4.5亩；金额 525.00→472.50" in rows[-1]

    r = web.get(f"/applications/{app_id}/trail.csv", headers=tr)
    assert r.content.startswith(b"\xef\xbb\xbf")  # the BOM Excel needs to read UTF-8
    table = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert len(table) == len(expected) + 1 and table[-1][4] == "补正"


def test_bulk_approve_over_http_writes_one_record_per_application(web, auth, users, claimant, clock):
    ids = [accepted(users, claimant(SPECIAL), clock) for _ in range(3)]
    moved_on = accepted(users, claimant(FOREST), clock, item=FOREST, period="2026", quantity="1")
    with transaction() as s:  # already past 村评: a bulk approval at 村评 must skip it
        service.decide(s, s.get(Application, moved_on), s.get(User, users["village_clerk"].id), Action.APPROVE, "",
                       clock.now())
    clerk = auth("village_clerk")
    r = web.post("/api/v1/applications/bulk-decision", headers=clerk,
                 json={"ids": ids[:2] + [moved_on], "decision": "approve", "opinion": "集体评议通过"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["done"]) == 2
    [(number, reason)] = [(x["number"], x["reason"]) for x in body["skipped"]]
    assert "公示" in reason  # 公示 is the clerk's station too, but it ends by the window, not by a decision
    for app_id in ids[:2]:
        assert records_of(app_id) == [("户报", "提交申请"), ("村评", "通过")]
    assert records_of(moved_on) == [("户报", "提交申请"), ("村评", "通过")]

    # the page form: the checked rows, and the result page lists what was done
    r = web.post("/applications/bulk", headers=clerk, data={"mode": "ids", "ids": [str(ids[2])], "opinion": ""})
    assert r.status_code == 200 and "已通过 1 件" in r.text
    assert records_of(ids[2]) == [("户报", "提交申请"), ("村评", "通过")]
    with new_session() as s:
        events = s.scalars(select(AuditEvent).where(AuditEvent.action == "application.bulk_approve",
                                                    AuditEvent.username == "village_clerk")).all()
        assert len(events) >= 2


def test_bulk_skips_are_reported_with_their_reason(web, auth, users, claimant, clock):
    app_id = at_township(users, claimant(SPECIAL), clock)
    with new_session() as s:
        number = s.get(Application, app_id).number
    r = web.post("/api/v1/applications/bulk-decision", headers=auth("village_clerk"),
                 json={"ids": [app_id], "decision": "approve"})
    reason = f"申请{number}当前在“镇审”环节，不由您办理"
    assert r.json() == {"done": [], "skipped": [{"number": number, "reason": reason}]}
    assert records_of(app_id)[-1] == ("村评", "通过")


def test_bulk_approve_by_filter_confirms_the_count_first(web, auth, users, claimant, clock):
    ids = [at_township(users, claimant(FOREST), clock, item=FOREST, period="2026", quantity="3") for _ in range(2)]
    tr = auth("township_reviewer")
    box = web.get("/api/v1/inbox", headers=tr, params={"item_code": FOREST, "size": 100}).json()
    assert set(ids) <= {row["id"] for row in box["rows"]}
    assert all(row["item_code"] == FOREST for row in box["rows"])
    confirm = web.get("/applications/bulk", headers=tr, params={"item": FOREST})
    assert f'data-testid="bulk-count">{box["total"]}<' in confirm.text
    r = web.post("/applications/bulk", headers=tr, data={"mode": "filter", "item": FOREST, "opinion": "同意"})
    assert r.status_code == 200 and f"已通过 {box['total']} 件" in r.text
    for app_id in ids:
        assert records_of(app_id)[-1] == ("镇审", "通过")
    assert web.get("/api/v1/inbox", headers=tr, params={"item_code": FOREST}).json()["total"] == 0


# ---------------------------------------------------------------- the acceptance module and pages


def test_acceptance_form_stores_evidence_and_the_download_is_audited(web, auth, users, claimant, clock):
    person = claimant(FOREST)
    clerk = auth("village_clerk")
    form = web.get("/applications/new", params={"person_id": person.id}, headers=clerk)
    assert form.status_code == 200 and person.id_number_masked in form.text
    preview = web.get("/applications/preview", headers=clerk,
                      params={"item_code": "ZS014", "period": "2026", "quantity": "12.35"})
    assert "182.16" in preview.text  # 14.75 yuan x 12.35 mu, computed by the server

    def claims() -> int:
        with new_session() as s:
            return s.scalar(select(func.count()).select_from(Application).where(Application.person_id == person.id))

    before = claims()
    evidence = f"林权证 {uuid.uuid4()}".encode()
    sha = hashlib.sha256(evidence).hexdigest()
    bad = web.post("/applications/new", headers=clerk, files=[("files", ("林权证.pdf", evidence, "application/pdf"))],
                   data={"person_id": str(person.id), "item_code": "ZS014", "period": "2026", "quantity": "-1"})
    assert bad.status_code == 422 and "面积应为" in bad.text and 'data-testid="form-error"' in bad.text
    with new_session() as s:  # nothing half-written: neither the application nor the file's row
        assert s.get(Document, sha) is None
    assert claims() == before

    r = web.post("/applications/new", headers=clerk, follow_redirects=False,
                 files=[("files", ("林权证.pdf", evidence, "application/pdf")),
                        ("files", ("照片.jpg", b"\xff\xd8 photo " + evidence, "image/jpeg"))],
                 data={"person_id": str(person.id), "item_code": "ZS014", "period": "2026", "quantity": "12.35",
                       "note": "公益林12.35亩"})
    assert r.status_code == 303
    app_id = int(r.headers["location"].split("/")[2].split("?")[0])
    detail = web.get(f"/api/v1/applications/{app_id}", headers=clerk).json()
    assert (detail["amount_fen"], detail["quantity_text"], detail["stage"]) == (18216, "12.35亩", "村评")
    assert [d["title"] for d in detail["documents"]] == ["林权证.pdf", "照片.jpg"]

    got = web.get(f"/applications/{app_id}/documents/{sha}", headers=auth("township_reviewer"))
    assert got.status_code == 200 and got.content == evidence
    with new_session() as s:
        event = s.scalars(select(AuditEvent).where(AuditEvent.action == "document.read", AuditEvent.object_id == sha)
                          .order_by(AuditEvent.id.desc())).first()
        assert event.username == "township_reviewer" and detail["number"] in event.detail
    assert web.get(f"/applications/{app_id}/documents/{sha}", headers=auth("village_clerk2")).status_code == 403
    assert web.get(f"/applications/{app_id}/documents/{'0' * 64}", headers=clerk).status_code == 404


def test_inbox_page_and_home_box(web, auth, users, claimant, clock):
    app_id = accepted(users, claimant(SPECIAL), clock)
    with transaction() as s:  # ZS017 is not publicised: 村评 -> 镇审
        service.decide(s, s.get(Application, app_id), s.get(User, users["village_clerk"].id), Action.APPROVE, "",
                       clock.now())
    tr = auth("township_reviewer")
    page = web.get("/applications", headers=tr, params={"item": "ZS017"})
    assert page.status_code == 200 and f'href="/applications/{app_id}"' in page.text
    box = web.get("/api/v1/inbox", headers=tr, params={"item_code": "ZS017", "size": 100}).json()
    assert app_id in [row["id"] for row in box["rows"]] and any(c["code"] == "ZS017" for c in box["by_item"])
    due = box["rows"][0]["due_on"]
    clock.advance(days=14)
    tr = auth("township_reviewer")
    late = web.get("/api/v1/inbox", headers=tr, params={"item_code": "ZS017", "overdue": True, "size": 100}).json()
    assert app_id in [row["id"] for row in late["rows"]] and late["overdue"] == late["total"]
    assert all(row["overdue_days"] > 0 for row in late["rows"])
    before = web.get("/api/v1/inbox", headers=tr, params={"item_code": "ZS017", "due_before": due}).json()
    assert before["total"] >= 1
    home = web.get("/applications/home-box", headers=tr)
    assert home.status_code == 200 and 'data-testid="home-inbox-total"' in home.text
    assert web.get("/", headers=tr).text.count("/applications/home-box") == 1
    xlsx = web.get("/applications/export.xlsx", headers=tr, params={"item": "ZS017"})
    numbers = [row[0] for row in load_workbook(io.BytesIO(xlsx.content)).active.iter_rows(values_only=True)]
    with new_session() as s:
        assert s.get(Application, app_id).number in numbers
    assert web.get("/applications", headers=tr, params={"village": "123"}).status_code == 422
    assert web.get("/applications", headers=tr, params={"village": users["city_finance"].region_code}
                   ).status_code == 403


def test_withdraw_from_the_application_page(web, auth, users, claimant, clock):
    app_id = accepted(users, claimant(SPECIAL), clock)
    clerk = auth("village_clerk")
    r = web.post(f"/applications/{app_id}/withdraw", headers=clerk, data={"reason": " "})
    assert r.status_code == 422 and "撤回须填写原因" in r.text
    r = web.post(f"/applications/{app_id}/withdraw", headers=clerk, data={"reason": "申请人外出务工，自愿撤回"},
                 follow_redirects=False)
    assert r.status_code == 303
    with new_session() as s:
        assert s.get(Application, app_id).status == Status.WITHDRAWN
    assert records_of(app_id)[-1] == ("村评", "撤回")
