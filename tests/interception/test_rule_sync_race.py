"""Every screening brings the rule files into the database first. Two transactions that find the same
rule file missing at the same moment (a fresh database, a new release) must not fail: the second meets
the first's rows, looks again and finds nothing left to do. On SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import threading
import uuid

from sqlalchemy import delete, func, select

from yikatong.core.db import new_session, transaction
from yikatong.interception import rulefile, screening
from yikatong.interception.models import Rule, RuleVersion

from .test_flag_pages import MONDAY


def test_two_screenings_bring_a_new_rule_file_in_once(city, monkeypatch):
    shipped = rulefile.builtin_rules()
    code = f"NEW_{uuid.uuid4().hex[:8].upper()}"
    new_file = dataclasses.replace(shipped[0], code=code, name="新发布的规则")
    monkeypatch.setattr(rulefile, "builtin_rules", lambda: [*shipped, new_file])
    with transaction() as s:  # everything else is in already: only the new file is missing
        screening.sync_builtin_rules(s, MONDAY)
        s.execute(delete(RuleVersion).where(RuleVersion.rule_code == code))
        s.execute(delete(Rule).where(Rule.code == code))

    barrier = threading.Barrier(2)
    errors: list[str] = []

    def sync() -> None:
        with new_session() as s:
            try:
                barrier.wait(timeout=30)
                screening.sync_builtin_rules(s, MONDAY)
                s.commit()
            except Exception as e:  # noqa: BLE001 - any error is what the test reports
                s.rollback()
                errors.append(repr(e))

    threads = [threading.Thread(target=sync) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    try:
        assert errors == []
        with new_session() as s:
            assert s.get(Rule, code).active_version == 1
            assert s.scalar(select(func.count()).select_from(RuleVersion).where(RuleVersion.rule_code == code)) == 1
    finally:
        with transaction() as s:
            s.execute(delete(RuleVersion).where(RuleVersion.rule_code == code))
            s.execute(delete(Rule).where(Rule.code == code))
