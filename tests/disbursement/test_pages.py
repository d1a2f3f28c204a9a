"""The payment pages as city finance and supervisors see them: figures on the budget page, the build
result with the applications left out and why, the batch page with masked accounts and the approve
button only for another user, read-only supervisors, region scope."""

from __future__ import annotations

import re
import uuid

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from yikatong.core import crypto
from yikatong.core.clock import FixedClock
from yikatong.core.db import new_session, transaction
from yikatong.core.protect import reveal
from yikatong.disbursement.models import PaymentBatch, PaymentOrder
from yikatong.registry.models import Card
from yikatong.security.models import User
from yikatong.security.roles import Role
from yikatong.security.service import create_user

from .conftest import NOW, PASSWORD, approved, flag, new_person, set_budget


@pytest.fixture
def web(city):
    from yikatong.web.app import create_app

    with TestClient(create_app(clock=FixedClock(NOW))) as client:
        yield client


def login(web, username: str) -> dict[str, str]:
    r = web.post("/api/v1/auth/login", json={"username": username, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def new_user(role: Role, region: str | None = None) -> str:
    username = f"pg_{uuid.uuid4().hex[:8]}"
    with transaction() as s:
        region = region or s.scalar(select(User.region_code).where(User.username == "city_finance"))
        create_user(s, username, PASSWORD, role, region, "市财政局 复核员", NOW)
    return username


def text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_budget_page_shows_the_figures_and_takes_an_allocation(web, paying):
    set_budget(paying.item, 1_000)
    finance = login(web, "city_finance")
    r = web.post("/budget", headers=finance, data={"item_code": paying.item, "year": "2026", "funding_level": "中央",
                                                    "amount": "2500.50", "note": "财社〔2026〕1号"},
                 follow_redirects=True)
    assert r.status_code == 200
    row = text(re.search(rf'<tr data-testid="budget-{paying.item}">.*?</tr>', r.text, re.S).group(0))
    assert "3,500.50" in row and "市 1,000.00" in row and "中央 2,500.50" in row
    assert "已保存" in r.text and 'data-testid="budget-form"' in r.text
    bad = web.post("/budget", headers=finance, data={"item_code": paying.item, "year": "2026", "funding_level": "乡",
                                                      "amount": "1"})
    assert bad.status_code == 422 and "资金级次应为以下之一" in bad.text
    supervisor = login(web, "supervisor")
    r = web.get("/budget?year=2026", headers=supervisor)
    assert r.status_code == 200 and paying.item in r.text and "录入指标" not in r.text and "预算指标" in r.text
    assert web.post("/budget", headers=supervisor, data={"item_code": paying.item, "year": "2026",
                                                         "funding_level": "市", "amount": "1"}).status_code == 403


def test_build_then_approve_by_another_user_on_the_pages(web, paying):
    clean = approved(paying.item, new_person())
    flagged = approved(paying.item)
    flag(flagged, "测试：死亡人员仍在领取")
    set_budget(paying.item, 1_000)
    finance = login(web, "city_finance")
    r = web.post("/batches", headers=finance, data={"item_code": paying.item, "period": "2026年11月",
                                                     "bank_code": paying.bank, "treasury_code": ""})
    assert r.status_code == 200, r.text
    assert "已生成发放批次FF20261202" in r.text and "1笔，合计500.00元" in r.text
    excluded = text(re.search(r'data-testid="build-excluded".*?</table>', r.text, re.S).group(0))
    assert f"{flagged} 存疑信息未核实：测试：死亡人员仍在领取" in excluded and str(clean) not in excluded
    with new_session() as s:
        batch = s.scalar(select(PaymentBatch).where(PaymentBatch.item_code == paying.item))
        card = s.scalar(select(Card).join(PaymentOrder, PaymentOrder.person_id == Card.person_id)
                        .where(PaymentOrder.batch_id == batch.id))
        clear, masked = reveal(crypto.BANK_ACCOUNT, card.bank_account_enc), card.bank_account_masked
    page = web.get(f"/batches/{batch.id}", headers=finance)
    assert "须由另一位用户审批" in page.text and 'data-testid="approve-form"' not in page.text
    assert "审批时确定" in page.text
    refused = web.post(f"/batches/{batch.id}/approve", headers=finance, data={"version": str(batch.version)})
    assert refused.status_code == 403 and "制单人不能审批自己生成的批次" in refused.text

    checker = login(web, new_user(Role.CITY_FINANCE))
    page = web.get(f"/batches/{batch.id}", headers=checker)
    assert 'data-testid="approve-form"' in page.text
    stale = web.post(f"/batches/{batch.id}/approve", headers=checker, data={"version": str(batch.version + 5)})
    assert stale.status_code == 409 and "该批次已被他人处理，请刷新" in stale.text
    r = web.post(f"/batches/{batch.id}/approve", headers=checker, data={"version": str(batch.version)},
                 follow_redirects=True)
    assert r.status_code == 200 and "批次已审批" in r.text
    assert 'data-testid="batch-status">已审批' in r.text and 'data-testid="approve-form"' not in r.text
    assert masked in r.text and clear not in r.text  # masked on the page, never clear
    again = web.post(f"/batches/{batch.id}/approve", headers=checker, data={"version": str(batch.version)})
    assert again.status_code == 409 and "该批次已被他人处理，请刷新" in again.text

    supervisor = login(web, "supervisor")
    listing = web.get("/batches", headers=supervisor)
    assert batch.number in listing.text and 'data-testid="batch-form"' not in listing.text
    assert web.get(f"/batches/{batch.id}", headers=supervisor).status_code == 200
    assert web.post("/batches", headers=supervisor, data={"item_code": paying.item, "period": "2026-11",
                                                          "bank_code": paying.bank}).status_code == 403
    # another county's finance user does not see the city's batch
    with new_session() as s:
        clerk_county = s.scalar(select(User.region_code).where(User.username == "village_clerk"))[:6]
        other = s.scalar(select(User.region_code).where(User.role == Role.COUNTY_HANDLER.value,
                                                        ~User.region_code.startswith(clerk_county)))
    if other is None:
        other = "511011000000" if clerk_county != "511011" else "511025000000"
    outsider = login(web, new_user(Role.CITY_FINANCE, other))
    assert web.get(f"/batches/{batch.id}", headers=outsider).status_code == 404
    assert batch.number not in web.get("/batches", headers=outsider).text


def test_a_refused_build_shows_the_figures(web, paying):
    approved(paying.item)
    approved(paying.item)
    set_budget(paying.item, 600)
    r = web.post("/batches", headers=login(web, "city_finance"),
                 data={"item_code": paying.item, "period": "2026-11", "bank_code": paying.bank})
    assert r.status_code == 409
    message = text(re.search(r'data-testid="build-message">.*?</div>', r.text, re.S).group(0))
    assert "指标600.00元，已审批批次占用0.00元，本批次1,000.00元，剩余可用600.00元。批次未生成" in message


def test_the_budget_page_upload_goes_through_the_imports(web, paying):
    finance = login(web, "city_finance")
    page = web.get("/budget?year=2026", headers=finance)
    assert 'name="kind" value="budget"' in page.text
    data = f"项目代码,年度,资金级次,指标金额（元）,文件依据\n{paying.item},2026,省,321.00,川财〔2026〕8号\n".encode()
    r = web.post("/imports", headers=finance, data={"kind": "budget"}, files={"file": ("budget.csv", data, "text/csv")})
    assert r.status_code == 200, r.text
    row = text(re.search(rf'<tr data-testid="budget-{paying.item}">.*?</tr>',
                         web.get("/budget?year=2026", headers=finance).text, re.S).group(0))
    assert "省 321.00" in row
    bad = f"项目代码,年度,资金级次,指标金额（元）\n{paying.item},2026,省,12.345\n".encode()
    r = web.post("/imports", headers=finance, data={"kind": "budget"}, files={"file": ("bad.csv", bad, "text/csv")})
    assert r.status_code == 422 and "金额格式错误" in r.text
