"""Payment fixtures: a fresh item per test (so its budget is its own), 已通过 applications entered through
the counter's code path (prepare + enter, then the road's end), a second finance user (the checker).

Data is committed (approval races run in threads with their own sessions). People are born in
1880-1884: no one else in the test run is (the city 1925-2025, the workflow pool 1900-1901, the
interception worlds 1885-1899)."""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select

from yikatong.catalog.models import Bank, ItemStandard, SubsidyItem
from yikatong.core.db import transaction
from yikatong.core.idnumber import make_id_number
from yikatong.core.protect import protect
from yikatong.registry.models import Card, CardStatus, Person
from yikatong.security.models import User
from yikatong.security.roles import Role
from yikatong.security.service import create_user
from yikatong.workflow import service as workflow
from yikatong.workflow.models import Application, Source, Status

NOW = datetime(2026, 12, 2, 2, 0, tzinfo=UTC)  # 10:00 in Beijing, 2026-12-02
PASSWORD = "ykt-demo-2026"
STANDARD_FEN = 50_000  # 500 yuan per claim
_serial = itertools.count(1)


@dataclass
class Paying:
    item: str
    bank: str
    period: str = "2026-11"


def new_item(level: str = "市") -> str:
    """A monthly per-person item of the low-income allowance's department, standard 500 yuan, funded at
    `level` (市: paid by city finance; 县: by the county's finance bureau)."""
    n = next(_serial)
    code = f"PY{uuid.uuid4().hex[:6].upper()}{n}"
    with transaction() as s:
        like = s.get(SubsidyItem, "ZS007")
        s.add(SubsidyItem(code=code, name=f"测试发放项目{n}", category_code=like.category_code, funding_level=level,
                          department_code=like.department_code, basis="人", standard_fen=STANDARD_FEN, frequency="月",
                          village_publicity=False, means_tested=False, description=""))
        s.flush()
        s.add(ItemStandard(item_code=code, valid_from=date(2000, 1, 1), county_code=None, standard_fen=STANDARD_FEN,
                           reason="测试", created_by_name="测试", created_at=NOW))
    return code


def first_bank() -> str:
    with transaction() as s:
        return s.scalars(select(Bank.code).order_by(Bank.code)).first()


def new_person(bank: str | None = None, card: bool = True) -> int:
    """A committed beneficiary of the clerk's village with (by default) an active card at `bank`."""
    with transaction() as s:
        village = s.scalar(select(User.region_code).where(User.username == "village_clerk"))
        bank_row = s.get(Bank, bank or first_bank())
        n = next(_serial)
        birth = date(1880 + n // 336 % 5, 1 + n // 28 % 12, 1 + n % 28)
        number = protect("id_number", make_id_number(village[:6], birth, n % 500, n % 2 == 0))
        person = Person(id_number_enc=number.enc, id_number_hash=number.hash, id_number_masked=number.masked,
                        name=f"发放{'甲乙丙丁戊己庚辛壬癸'[n % 10]}{'子丑寅卯辰巳午未申酉'[n // 10 % 10]}",
                        gender="男" if n % 2 == 0 else "女", birth_date=birth, region_code=village,
                        is_beneficiary=True, has_active_card=card, created_at=NOW, updated_at=NOW)
        s.add(person)
        s.flush()
        if card:
            account = protect("bank_account", f"{bank_row.account_prefix}{970000000 + n:011d}")
            s.add(Card(card_number=f"PY{n:010d}", person_id=person.id, bank_code=bank_row.code,
                       bank_account_enc=account.enc, bank_account_hash=account.hash,
                       bank_account_masked=account.masked, status=CardStatus.ACTIVE.value,
                       issued_on=date(2020, 1, 1), created_at=NOW, updated_at=NOW))
        return person.id


def approved(item: str, person_id: int | None = None, period: str = "2026-11") -> int:
    """A committed 已通过 application (the counter's code path, then the end of the road)."""
    person_id = person_id or new_person()
    with transaction() as s:
        clerk = s.scalar(select(User).where(User.username == "village_clerk"))
        prepared = workflow.prepare_claims(s, clerk, [workflow.Claim(ref=1, person_id=person_id, item_code=item,
                                                                     period=period)], Source.COUNTER, NOW)
        assert not prepared.errors, prepared.errors
        [app_id] = workflow.enter_claims(s, clerk, prepared, Source.COUNTER, NOW, screen=False)
        workflow.leave_road(s.get(Application, app_id), Status.APPROVED, NOW)
    return app_id


def flag(app_id: int, evidence: str) -> None:
    """An open flag on the application, of an inactive rule of its own (screening never runs it)."""
    import hashlib

    from yikatong.interception import tallies
    from yikatong.interception.models import Flag, FlagStatus, Rule, RuleOrigin, RuleVersion
    from yikatong.interception.screening import refresh_open_flags

    code = f"PAYTEST_{uuid.uuid4().hex[:8]}"
    with transaction() as s:
        s.add(Rule(code=code, origin=RuleOrigin.SUPERVISOR.value, name="测试规则（发放）", active=False,
                   active_version=1, latest_version=1, created_at=NOW, updated_at=NOW))
        s.flush()
        version = RuleVersion(rule_code=code, version=1, name="测试规则（发放）", explanation="测试用规则",
                              severity="高", items="all", datasets="", params="{}", sql="SELECT 1",
                              sql_sha256="0" * 64, author_name="测试", created_at=NOW)
        s.add(version)
        s.flush()
        app = s.get(Application, app_id)
        raised = Flag(application_id=app.id, rule_code=code, rule_version_id=version.id, evidence=evidence,
                      evidence_key=hashlib.sha256(evidence.encode()).hexdigest()[:32], fact_key=evidence,
                      amount_fen=app.amount_fen, item_code=app.item_code, region_code=app.region_code, severity="高",
                      status=FlagStatus.OPEN.value, raised_at=NOW)
        s.add(raised)
        s.flush()
        refresh_open_flags(s, [app.id])
        tallies.flags_raised(s, flag_ids=[raised.id])  # as screening counts the flags it raises


def set_budget(item: str, yuan: int, year: int = 2026, level: str = "市") -> None:
    from yikatong.disbursement import budget

    with transaction() as s:
        budget.set_allocations(s, None, [budget.AllocationInput(item, year, level, yuan * 100, "测试指标")], NOW)


def colleague(role: Role = Role.CITY_FINANCE, like: str = "city_finance") -> int:
    """Another committed user of the same role and region (the checker of a maker/checker pair)."""
    with transaction() as s:
        region = s.scalar(select(User.region_code).where(User.username == like))
        return create_user(s, f"fin_{uuid.uuid4().hex[:8]}", PASSWORD, role, region, "市财政局 复核员", NOW).id


def mark_paid(session, order_ids, paid_on) -> None:
    """The bank's answer 成功 for approved orders, as a return file would record it (a conditional UPDATE:
    only orders still 待发送 move)."""
    from sqlalchemy import update

    from yikatong.disbursement.models import OrderStatus, PaymentOrder

    session.execute(update(PaymentOrder).where(PaymentOrder.id.in_(list(order_ids)),
                                               PaymentOrder.status == OrderStatus.APPROVED.value)
                    .values(status=OrderStatus.PAID.value, paid_on=paid_on, answered_at=NOW)
                    .execution_options(synchronize_session=False))


def user_id(username: str) -> int:
    with transaction() as s:
        return s.scalar(select(User.id).where(User.username == username))


@pytest.fixture
def paying(city) -> Paying:
    return Paying(item=new_item(), bank=first_bank())
