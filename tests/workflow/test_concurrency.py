"""Two people acting on the same record at the same moment: exactly one decision is recorded, the
other is told "该申请已被他人处理，请刷新" (409). Each thread has its own session and commits, as two
requests of the web server do; a Barrier lines the writes up. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from yikatong.core.db import new_session, transaction
from yikatong.core.errors import RACED, Conflict, DomainError
from yikatong.registry.models import Person
from yikatong.security.models import User
from yikatong.security.roles import Role
from yikatong.security.service import create_user
from yikatong.workflow import publicity, service
from yikatong.workflow.models import (
    LIVE_STATUSES,
    Action,
    Application,
    Objection,
    PublicityEntry,
    ReviewRecord,
    Source,
    Step,
)

from .conftest import PASSWORD, login

MACHINERY = "ZS002"  # per household, once, publicised
SPECIAL = "ZS017"  # per person, monthly, not publicised (村评 -> 镇审)


def race(*work: Callable[[], Any]) -> list[Any]:
    """Run each callable in its own thread, all released at once; returns each result or exception."""
    barrier = threading.Barrier(len(work))
    out: list[Any] = [None] * len(work)

    def run(k: int) -> None:
        barrier.wait()
        try:
            out[k] = work[k]()
        except Exception as e:  # noqa: BLE001 - the test looks at what each thread met
            out[k] = e

    threads = [threading.Thread(target=run, args=(k,)) for k in range(len(work))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return out


def accepted(users, person_id: int, clock, item: str = SPECIAL, period: str = "2026-11") -> int:
    with transaction() as s:
        clerk = s.get(User, users["village_clerk"].id)
        return service.accept(s, clerk, person_id=person_id, item_code=item, period=period, now=clock.now()).id


def second_user(users, like: str, role: Role, clock) -> int:
    """Another committed user of the same role and region as `like` (a colleague at the same desk)."""
    username = f"{like[:8]}_{uuid.uuid4().hex[:6]}"
    with transaction() as s:
        return create_user(s, username, PASSWORD, role, users[like].region_code, "同事", clock.now()).id


def approvals(app_ids: list[int], step: Step) -> dict[int, int]:
    with new_session() as s:
        rows = s.execute(select(ReviewRecord.application_id, func.count()).where(
            ReviewRecord.application_id.in_(app_ids), ReviewRecord.step == step.value,
            ReviewRecord.action == Action.APPROVE.value).group_by(ReviewRecord.application_id)).all()
    return {app_id: dict(rows).get(app_id, 0) for app_id in app_ids}


def decide_in_own_session(user_id: int, app_id: int, clock, barrier: threading.Barrier) -> str:
    """Read the application, wait for the other reviewer to have read it too, then approve and commit."""
    with transaction() as s:
        reviewer, app = s.get(User, user_id), s.get(Application, app_id)
        barrier.wait()
        service.decide(s, app, reviewer, Action.APPROVE, "", clock.now())
    return "ok"


def test_two_reviewers_approving_at_once_record_one_approval(users, claimant, clock):
    colleague = second_user(users, "village_clerk", Role.VILLAGE_CLERK, clock)
    for _ in range(3):
        app_id = accepted(users, claimant(SPECIAL).id, clock)
        barrier = threading.Barrier(2)
        outcomes = race(partial(decide_in_own_session, users["village_clerk"].id, app_id, clock, barrier),
                        partial(decide_in_own_session, colleague, app_id, clock, barrier))
        assert sorted(type(o).__name__ for o in outcomes) == ["Conflict", "str"], outcomes
        assert [o.message for o in outcomes if isinstance(o, Conflict)] == [RACED]
        assert approvals([app_id], Step.VILLAGE) == {app_id: 1}
        with new_session() as s:
            assert s.get(Application, app_id).stage == Step.TOWNSHIP


def test_bulk_decisions_of_overlapping_sets_approve_each_application_once(users, claimant, clock):
    colleague = second_user(users, "village_clerk", Role.VILLAGE_CLERK, clock)
    ids = [accepted(users, claimant(SPECIAL).id, clock) for _ in range(8)]

    def bulk(user_id: int, chosen: list[int]) -> service.BulkResult:
        with transaction() as s:
            return service.bulk_decide(s, s.get(User, user_id), chosen, Action.APPROVE, "", clock.now())

    first, second = race(lambda: bulk(users["village_clerk"].id, ids[:6]), lambda: bulk(colleague, ids[2:]))
    assert approvals(ids, Step.VILLAGE) == {app_id: 1 for app_id in ids}
    assert not set(first.done) & set(second.done)
    assert len(first.done) + len(second.done) == len(ids)
    # what one reviewer found already moved was skipped with a reason, not decided twice
    assert len(first.skipped) + len(second.skipped) == 4
    for _, reason in first.skipped + second.skipped:
        assert reason == RACED or "不由您办理" in reason


def at_publicity(users, claimant, clock, count: int) -> list[int]:
    """Applications of a publicised item that passed 村评 and wait to be published."""
    ids = [accepted(users, claimant(MACHINERY, with_household=True).id, clock, MACHINERY, "2026")
           for _ in range(count)]
    with transaction() as s:
        clerk = s.get(User, users["village_clerk"].id)
        for app_id in ids:
            service.decide(s, s.get(Application, app_id), clerk, Action.APPROVE, "", clock.now())
    return ids


def test_publishing_the_same_applications_from_two_threads_puts_each_on_one_list(users, claimant, clock):
    colleague = second_user(users, "village_clerk", Role.VILLAGE_CLERK, clock)
    ids = at_publicity(users, claimant, clock, 3)
    village = users["village_clerk"].region_code
    barrier = threading.Barrier(2)

    def publish(user_id: int) -> list[int]:
        with transaction() as s:
            clerk = s.get(User, user_id)
            publicity.waiting_to_publish(s, clerk)  # both clerks have read what waits
            barrier.wait()
            return [p.id for p in publicity.publish(s, clerk, clock.now(), village=village)]

    outcomes = race(lambda: publish(users["village_clerk"].id), lambda: publish(colleague))
    published = [o for o in outcomes if isinstance(o, list)]
    refused = [o for o in outcomes if isinstance(o, DomainError)]
    assert len(published) == 1 and len(refused) == 1, outcomes
    assert refused[0].message in (RACED, "没有待公示的申请")
    with new_session() as s:
        entries = s.execute(select(PublicityEntry.application_id, PublicityEntry.publicity_id)
                            .where(PublicityEntry.application_id.in_(ids))).all()
        assert sorted(a for a, _ in entries) == sorted(ids)  # one entry each
        assert {p for _, p in entries} <= set(published[0])
        assert {s.get(Application, a).publicity_id for a in ids} <= set(published[0])


def test_resolving_the_same_objection_twice_at_once_has_one_answer(users, claimant, clock):
    [app_id] = at_publicity(users, claimant, clock, 1)
    with transaction() as s:
        clerk = s.get(User, users["village_clerk"].id)
        [pub] = publicity.publish(s, clerk, clock.now(), village=users["village_clerk"].region_code)
        objection_id = publicity.raise_objection(s, pub.id, app_id, "该户已在外地领取同类补贴", clock.now()).id
    barrier = threading.Barrier(2)

    def resolve(username: str, upheld: bool) -> str:
        with transaction() as s:
            resolver = s.get(User, users[username].id)
            s.get(Objection, objection_id)  # both have read it open
            barrier.wait()
            publicity.resolve_objection(s, objection_id, resolver, upheld, "经核实", clock.now())
        return username

    outcomes = race(lambda: resolve("village_clerk", False), lambda: resolve("township_reviewer", True))
    assert len([o for o in outcomes if isinstance(o, str)]) == 1, outcomes
    refused = [o.message for o in outcomes if isinstance(o, Conflict)]
    assert refused in (["该异议已被他人处理，请刷新"], ["该异议已处理"])
    with new_session() as s:
        assert s.get(Application, app_id).open_objections == 0  # not -1
        assert s.scalar(select(func.count()).select_from(ReviewRecord).where(
            ReviewRecord.application_id == app_id, ReviewRecord.action == Action.OBJECTION_RESOLVED.value)) == 1


# ---------------------------------------------------------------- over HTTP


def test_api_answers_409_to_the_reviewer_who_came_second(web, users, claimant, clock):
    from yikatong.web.app import create_app

    colleague = second_user(users, "village_clerk", Role.VILLAGE_CLERK, clock)
    with new_session() as s:
        colleague_name = s.get(User, colleague).username
    app_id = accepted(users, claimant(SPECIAL).id, clock)
    mine, theirs = login(web, "village_clerk"), login(web, colleague_name)
    seen = web.get(f"/api/v1/applications/{app_id}", headers=mine).json()["version"]
    body = {"decision": "approve", "opinion": "", "version": seen}

    # two clients, two server threads, the same moment
    with TestClient(create_app(clock=clock)) as other:
        answers = race(lambda: web.post(f"/api/v1/applications/{app_id}/decision", headers=mine, json=body),
                       lambda: other.post(f"/api/v1/applications/{app_id}/decision", headers=theirs, json=body))
    assert sorted(r.status_code for r in answers) == [200, 409], [r.text for r in answers]
    assert [r.json()["detail"] for r in answers if r.status_code == 409] == [RACED]
    assert approvals([app_id], Step.VILLAGE) == {app_id: 1}

    # a reviewer who saw the old version later still gets 409, not a decision on what they never saw
    late = web.post(f"/api/v1/applications/{app_id}/decision", headers=login(web, "township_reviewer"), json=body)
    assert late.status_code == 409 and late.json()["detail"] == RACED


def test_the_page_tells_the_second_reviewer_to_refresh(web, users, claimant, clock):
    app_id = accepted(users, claimant(SPECIAL).id, clock)
    mine = login(web, "village_clerk")
    page = web.get(f"/applications/{app_id}", headers=mine)
    assert 'name="version"' in page.text
    with new_session() as s:
        seen = s.get(Application, app_id).stage_seq
    first = web.post(f"/applications/{app_id}/decision", headers=mine, follow_redirects=False,
                     data={"decision": "approve", "opinion": "", "version": str(seen)})
    assert first.status_code == 303
    second = web.post(f"/applications/{app_id}/decision", headers=mine,
                      data={"decision": "approve", "opinion": "", "version": str(seen)})
    assert second.status_code == 409 and RACED in second.text
    assert approvals([app_id], Step.VILLAGE) == {app_id: 1}


# ---------------------------------------------------------------- no city-wide lock across screening


@pytest.mark.skipif(not os.environ.get("YKT_DATABASE_URL", "").startswith("postgresql"),
                    reason="SQLite has one writer at a time: a counter claim waits for the list's commit")
def test_a_counter_claim_does_not_wait_for_a_large_list_being_entered(users, claimant, clock):
    counter_person = claimant(SPECIAL).id
    with new_session() as s:
        busy = select(Application.person_id).where(Application.item_code == SPECIAL,
                                                   Application.status.in_(LIVE_STATUSES))
        others = list(s.scalars(select(Person.id).where(Person.region_code != users["village_clerk"].region_code,
                                                        Person.id.not_in(busy)).order_by(Person.id).limit(1500)))
    entered, release, list_done = threading.Event(), threading.Event(), threading.Event()

    def enter_list() -> None:
        # a department list, entered and screened, then held open (as a long list would be)
        with transaction() as s:
            claims = [service.Claim(ref=k, person_id=pid, item_code=SPECIAL, period="2026-10")
                      for k, pid in enumerate(others, start=1)]
            prepared = service.prepare_claims(s, None, claims, Source.LIST, clock.now())
            service.enter_claims(s, None, prepared, Source.LIST, clock.now())
            entered.set()
            release.wait(60)
        list_done.set()

    holder = threading.Thread(target=enter_list)
    holder.start()
    try:
        assert entered.wait(120)
        started = time.perf_counter()
        app_id = accepted(users, counter_person, clock)  # the village counter, committed
        took = time.perf_counter() - started
        # before, the claim waited for the list's commit on the counter row (here: for 60 s)
        assert not list_done.is_set(), "the counter claim finished only after the list committed"
        assert took < 30, took
    finally:
        release.set()
        holder.join(60)
    with new_session() as s:
        numbers = s.scalars(select(Application.number).where(Application.id == app_id)).all()
        listed = s.scalar(select(func.count()).select_from(Application).where(
            Application.person_id.in_(others), Application.period == "2026-10", Application.item_code == SPECIAL))
    assert len(numbers) == 1 and listed == len(others)


# ---------------------------------------------------------------- a lock not had in time


@pytest.mark.skipif(not os.environ.get("YKT_DATABASE_URL", "").startswith("sqlite"),
                    reason="SQLite's single write lock")
def test_a_write_lock_not_had_in_time_answers_503_in_chinese(migrated, clock):
    import sqlite3

    from sqlalchemy import create_engine, text

    from yikatong.web.app import create_app

    url = os.environ["YKT_DATABASE_URL"]
    app = create_app(clock=clock)
    impatient = create_engine(url, connect_args={"timeout": 0})  # gives up at once instead of after 10 s

    def write() -> None:
        with impatient.begin() as connection:
            connection.execute(text("UPDATE number_counters SET last = last"))

    app.add_api_route("/api/v1/test-locked", write)
    app.add_api_route("/test-locked", write)
    holder = sqlite3.connect(url.split("///", 1)[1], isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another writer holds the lock
    try:
        with TestClient(app) as client:
            api, page = client.get("/api/v1/test-locked"), client.get("/test-locked")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        impatient.dispose()
    assert api.status_code == 503 and api.json() == {"detail": "系统繁忙，请稍后重试"}
    assert page.status_code == 503 and "系统繁忙，请稍后重试" in page.text and "Traceback" not in page.text
