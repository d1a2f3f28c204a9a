"""The passbook (明白折) on SQLite and PostgreSQL: paid orders only, grouped by year with totals to the fen,
a failed attempt paid again shows once, proxy lines say 代管, a household's passbook sums its members,
another region's user is told 404, and the page and the PDF show the lines and totals."""

from __future__ import annotations

import base64
import importlib.util
import re
import uuid
import zlib
from datetime import date

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, or_, select, update

from yikatong.catalog.models import Bank, ItemStandard, SubsidyItem
from yikatong.core import crypto
from yikatong.core.clock import FixedClock
from yikatong.core.db import new_session, transaction
from yikatong.core.errors import Forbidden, NotFound
from yikatong.core.masking import mask_name
from yikatong.core.protect import protect, reveal
from yikatong.disbursement import passbook, service
from yikatong.disbursement.models import OrderStatus, PaymentOrder
from yikatong.registry.models import Card, Household, Person, ProxyHolding, Region
from yikatong.security.models import AuditEvent, User
from yikatong.security.roles import Role
from yikatong.security.service import create_user

from .conftest import NOW, PASSWORD, approved, colleague, mark_paid, new_item, new_person, set_budget

HAS_REPORTLAB = importlib.util.find_spec("reportlab") is not None


def odd_item(standard_fen: int) -> str:
    """A fresh item whose standard is not a round number of yuan (the passbook must add fen exactly)."""
    code = new_item()
    with transaction() as s:
        s.execute(update(SubsidyItem).where(SubsidyItem.code == code).values(standard_fen=standard_fen))
        s.execute(update(ItemStandard).where(ItemStandard.item_code == code).values(standard_fen=standard_fen))
    return code


def pay(item: str, period: str, paid_on: date | None, bank: str) -> list[int]:
    """Build a batch of the item's approved claims for the period, approve it by a colleague, and (with
    `paid_on`) record the bank's 成功 for every order. Returns the batch's order ids."""
    with transaction() as s:
        maker = s.scalar(select(User).where(User.username == "city_finance"))
        result = service.build_batch(s, maker, item_code=item, period=period, bank_code=bank, now=NOW)
        assert result.batch is not None, result.message()
        batch_id = result.batch.id
    checker = colleague()
    with transaction() as s:
        service.approve_batch(s, s.get(User, checker), batch_id, NOW)
    with transaction() as s:
        ids = list(s.scalars(select(PaymentOrder.id).where(PaymentOrder.batch_id == batch_id)))
        if paid_on is not None:
            mark_paid(s, ids, paid_on)
    return ids


def fail(order_ids: list[int]) -> None:
    with transaction() as s:
        s.execute(update(PaymentOrder).where(PaymentOrder.id.in_(order_ids),
                                             PaymentOrder.status == OrderStatus.APPROVED.value)
                  .values(status=OrderStatus.FAILED.value, fail_reason="账户已销户", answered_at=NOW))


def user(username: str) -> User:
    with new_session() as s:
        found = s.scalar(select(User).where(User.username == username))
        s.expunge(found)
        return found


def tail(person_id: int) -> str:
    with new_session() as s:
        masked = s.scalar(select(Card.bank_account_masked).where(Card.person_id == person_id))
        return masked[-4:]


def book_of(person_id: int, who: str = "city_finance", **kw) -> passbook.Passbook:
    with transaction() as s:
        return passbook.person_passbook(s, s.scalar(select(User).where(User.username == who)), person_id, NOW, **kw)


@pytest.fixture
def bank(city) -> str:
    with new_session() as s:
        return s.scalars(select(Bank.code).order_by(Bank.code)).first()


def test_years_and_totals_to_the_fen_with_paid_orders_only(bank):
    odd, round_ = odd_item(12_345), new_item()  # 123.45 and 500.00 yuan a month
    for year in (2025, 2026):
        set_budget(odd, 10_000, year)
    set_budget(round_, 10_000, 2026)
    me, neighbour = new_person(), new_person()
    approved(odd, me, "2025-12")
    pay(odd, "2025-12", date(2026, 1, 8), bank)  # the December allowance, paid in January: a 2025 line
    approved(odd, me, "2026-01")
    approved(odd, neighbour, "2026-01")
    pay(odd, "2026-01", date(2026, 2, 6), bank)
    approved(round_, me, "2026-11")
    fail(pay(round_, "2026-11", None, bank))  # the bank refused it...
    [repaid] = pay(round_, "2026-11", date(2026, 12, 1), bank)  # ...and the re-payment went through
    approved(round_, me, "2026-10")
    pay(round_, "2026-10", None, bank)  # approved, not yet answered by the bank: not on the passbook

    book = book_of(me)
    assert [y.year for y in book.years] == [2026, 2025] and book.all_years == [2026, 2025]
    y2026, y2025 = book.years
    assert [(line.period_words, line.amount, line.paid_on) for line in y2026.lines] == [
        ("2026年1月", "123.45", date(2026, 2, 6)), ("2026年11月", "500.00", date(2026, 12, 1))]
    assert (y2026.total_fen, y2026.total) == (62_345, "623.45")
    assert [(line.period_words, line.amount) for line in y2025.lines] == [("2025年12月", "123.45")]
    assert (y2025.total_fen, book.total_fen, book.total) == (12_345, 74_690, "746.90")
    assert y2026.lines[1].order_id == repaid  # the failed attempt is not a line; its re-payment is, once
    with new_session() as s:
        names = dict(s.execute(select(SubsidyItem.code, SubsidyItem.name).where(
            SubsidyItem.code.in_([odd, round_]))).all())
        bank_name = s.get(Bank, bank).name
        failed = s.scalar(select(func.count()).select_from(PaymentOrder).where(
            PaymentOrder.person_id == me, PaymentOrder.status == OrderStatus.FAILED.value))
    assert failed == 1
    first = y2026.lines[0]
    assert (first.item_name, first.bank_name, first.card_tail, first.by_proxy) == (names[odd], bank_name, tail(me),
                                                                                  False)
    assert first.card_words == f"尾号{tail(me)}" and len(first.card_tail) == 4

    only_2025 = book_of(me, year=2025)
    assert [y.year for y in only_2025.years] == [2025] and only_2025.total == "123.45"
    assert only_2025.all_years == [2026, 2025]  # the filter still offers every year
    assert book_of(neighbour).total == "123.45"  # the neighbour's order is theirs alone

    with new_session() as s:
        views = s.scalars(select(AuditEvent).where(AuditEvent.action == "passbook.view",
                                                   AuditEvent.object_type == "person",
                                                   AuditEvent.object_id == str(me))).all()
    assert len(views) == 2 and all(v.username == "city_finance" for v in views)
    assert '"total_fen": 74690' in views[0].detail or '"total_fen": 74690' in views[1].detail


def _proxy(person_id: int, holder_id: int) -> None:
    with transaction() as s:
        holder = s.get(Person, holder_id)
        number = protect("id_number", reveal(crypto.ID_NUMBER, holder.id_number_enc))
        s.add(ProxyHolding(person_id=person_id, holder_name=holder.name, holder_id_number_enc=number.enc,
                           holder_id_number_hash=number.hash, holder_id_number_masked=number.masked,
                           holder_relation="子女", reason="本人失能，由子女代管社保卡", approver_name="测试",
                           approved_on=date(2026, 1, 5), valid_from=date(2026, 1, 5), valid_until=None,
                           created_at=NOW))


def test_a_line_paid_to_the_proxy_holders_card_says_so(bank):
    item = new_item()
    set_budget(item, 1_000)
    elder, child = new_person(), new_person()
    _proxy(elder, child)
    approved(item, elder)
    pay(item, "2026-11", date(2026, 12, 1), bank)
    [line] = book_of(elder).years[0].lines
    with new_session() as s:
        child_name = s.get(Person, child).name
    assert line.by_proxy and line.card_tail == tail(child)
    assert line.card_words == f"代管 尾号{tail(child)}（{mask_name(child_name)}）" and "*" in mask_name(child_name)


def new_household(*members: tuple[int, str]) -> int:
    with transaction() as s:
        region = s.get(Person, members[0][0]).region_code
        household = Household(code=f"HH{uuid.uuid4().hex[:12]}", region_code=region, address="测试村1组8号",
                              created_at=NOW, updated_at=NOW)
        s.add(household)
        s.flush()
        for person_id, relation in members:
            s.execute(update(Person).where(Person.id == person_id).values(household_id=household.id,
                                                                           relation=relation))
        return household.id


def test_the_household_passbook_sums_its_members(bank):
    odd, round_ = odd_item(12_345), new_item()
    set_budget(odd, 1_000)
    set_budget(round_, 1_000)
    head, spouse, outsider = new_person(), new_person(), new_person()
    household = new_household((head, "户主"), (spouse, "配偶"))
    approved(odd, head)
    approved(round_, spouse)
    approved(round_, outsider)
    pay(odd, "2026-11", date(2026, 12, 1), bank)
    pay(round_, "2026-11", date(2026, 12, 2), bank)
    with transaction() as s:
        finance = s.scalar(select(User).where(User.username == "city_finance"))
        book = passbook.household_passbook(s, finance, household, NOW)
        heads = dict(s.execute(select(Person.id, Person.name).where(Person.id.in_([head, spouse]))).all())
    [year] = book.years
    assert (year.year, year.total_fen, year.total) == (2026, 62_345, "623.45")
    assert year.member_totals == {head: 12_345, spouse: 50_000}
    assert [(line.person_id, line.amount) for line in year.lines] == [(head, "123.45"), (spouse, "500.00")]
    assert [line.member for line in year.lines] == [mask_name(heads[head]), mask_name(heads[spouse])]
    assert book.name == heads[head] and [m.relation for m in book.members] == ["户主", "配偶"]
    assert book_of(head).total == "123.45"  # the person's own passbook: their lines only


def other_township_user(role: Role = Role.TOWNSHIP_REVIEWER) -> str:
    """A user of a township other than the clerk's village's."""
    username = f"pb_{uuid.uuid4().hex[:8]}"
    with transaction() as s:
        village = s.scalar(select(User.region_code).where(User.username == "village_clerk"))
        township = s.scalar(select(Region.code).where(Region.level == "township",
                                                      Region.code != village[:9] + "000").order_by(Region.code))
        create_user(s, username, PASSWORD, role, township, "其他乡镇 审核员", NOW)
    return username


def test_another_regions_user_is_told_404_and_a_role_without_person_read_403(bank):
    item = new_item()
    set_budget(item, 1_000)
    me = new_person()
    household = new_household((me, "户主"))
    approved(item, me)
    pay(item, "2026-11", date(2026, 12, 1), bank)
    stranger = other_township_user()
    with transaction() as s:
        other = s.scalar(select(User).where(User.username == stranger))
        with pytest.raises(NotFound):
            passbook.person_passbook(s, other, me, NOW)
        with pytest.raises(NotFound):
            passbook.household_passbook(s, other, household, NOW)
        with pytest.raises(NotFound):
            passbook.person_passbook(s, s.scalar(select(User).where(User.username == "city_finance")), 10**9, NOW)
    banker = other_township_user(Role.SYSTEM_ADMIN)  # no person.read
    with transaction() as s, pytest.raises(Forbidden):
        passbook.person_passbook(s, s.scalar(select(User).where(User.username == banker)), me, NOW)
    with transaction() as s:  # the citizen's own request (a future portal): the caller checked who asks
        book = passbook.person_passbook(s, None, me, NOW, fmt="portal")
        assert book.total == "500.00"
    with new_session() as s:
        event = s.scalars(select(AuditEvent).where(AuditEvent.action == "passbook.view",
                                                   AuditEvent.object_type == "person",
                                                   AuditEvent.object_id == str(me))).one()
        assert event.username == "system" and '"citizen": true' in event.detail


@pytest.fixture
def web(city):
    from yikatong.web.app import create_app

    with TestClient(create_app(clock=FixedClock(NOW))) as client:
        yield client


def login(web, username: str) -> dict[str, str]:
    r = web.post("/api/v1/auth/login", json={"username": username, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


@pytest.fixture
def paid_household(bank):
    """A household of two, both paid in 2026 (123.45 to the head's own card, 500.00 to the spouse's
    through a proxy holder) and the head once in 2025."""
    odd, round_ = odd_item(12_345), new_item()
    for year in (2025, 2026):
        set_budget(odd, 1_000, year)
    set_budget(round_, 1_000)
    head, spouse, holder = new_person(), new_person(), new_person()
    household = new_household((head, "户主"), (spouse, "配偶"))
    _proxy(spouse, holder)
    approved(odd, head, "2025-12")
    pay(odd, "2025-12", date(2026, 1, 8), bank)
    approved(odd, head)
    approved(round_, spouse)
    pay(odd, "2026-11", date(2026, 12, 1), bank)
    pay(round_, "2026-11", date(2026, 12, 2), bank)
    with new_session() as s:
        person = s.get(Person, head)
        names = dict(s.execute(select(SubsidyItem.code, SubsidyItem.name).where(
            SubsidyItem.code.in_([odd, round_]))).all())
        return {"head": head, "spouse": spouse, "household": household, "name": person.name,
                "id_masked": person.id_number_masked, "odd": names[odd], "round": names[round_]}


def test_the_pages_show_the_lines_the_totals_and_the_print_header(web, paid_household):
    h = paid_household
    clerk = login(web, "village_clerk")  # the counter clerk serving the citizen: person.read, no payment.read
    person_page = web.get(f"/persons/{h['head']}", headers=clerk)
    assert f'href="/persons/{h["head"]}/passbook"' in person_page.text
    assert f'href="/households/{h["household"]}/passbook"' in person_page.text

    r = web.get(f"/persons/{h['head']}/passbook", headers=clerk)
    assert r.status_code == 200
    page = text(r.text)
    assert "内江市惠民惠农财政补贴资金明白折" in page and h["name"] in page and h["id_masked"] in page
    assert "打印日期 2026-12-02" in page
    assert re.search(r'data-testid="year-total-2026">123\.45<', r.text)
    assert re.search(r'data-testid="year-total-2025">123\.45<', r.text)
    assert f"2026-12-01 {h['odd']} 2026年11月 123.45" in page and "以上各年度合计 246.90 元" in page
    assert h["round"] not in page  # the spouse's line is on the household's passbook, not the head's
    assert 'href="/persons/{}/passbook.pdf"'.format(h["head"]) in r.text

    filtered = web.get(f"/persons/{h['head']}/passbook?year=2025", headers=clerk)
    assert 'data-testid="year-2025"' in filtered.text and 'data-testid="year-2026"' not in filtered.text
    assert f'href="/persons/{h["head"]}/passbook?year=2026"' in filtered.text

    r = web.get(f"/households/{h['household']}/passbook?year=2026", headers=clerk)
    page = text(r.text)
    assert r.status_code == 200 and "明白折（家庭）" in page
    assert re.search(r'data-testid="year-total-2026">623\.45<', r.text)
    assert f"{h['round']} 2026年11月 500.00" in page and "代管 尾号" in page
    assert "户主" in page and "配偶" in page

    stranger = login(web, other_township_user())
    assert web.get(f"/persons/{h['head']}/passbook", headers=stranger).status_code == 404
    assert web.get(f"/households/{h['household']}/passbook", headers=stranger).status_code == 404
    assert web.get(f"/persons/{h['head']}/passbook.pdf", headers=stranger).status_code == 404


def pdf_text(data: bytes) -> str:
    """The text drawn in a reportlab PDF with the CID font (UCS-2 strings), streams inflated."""
    chunks = []
    for raw in re.findall(rb"stream\r?\n(.*?)endstream", data, re.S):
        raw = raw.strip()
        if raw.endswith(b"~>"):  # reportlab's /ASCII85Decode /FlateDecode
            raw = base64.a85decode(raw[:-2].replace(b"\n", b"").replace(b"\r", b""))
        try:
            chunks.append(zlib.decompress(raw))
        except zlib.error:
            chunks.append(raw)
    out = []
    for chunk in chunks:
        for literal in re.findall(rb"\(((?:\\.|[^\\)])*)\)\s*Tj", chunk, re.S):
            clear = re.sub(rb"\\([0-7]{1,3}|.)", lambda m: bytes([int(m[1], 8)]) if m[1][:1].isdigit() else
                           {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"b": b"\b", b"f": b"\f"}.get(m[1], m[1]),
                           literal, flags=re.S)
            out.append(clear.decode("utf-16-be", errors="ignore"))
    return " ".join(out)


@pytest.mark.skipif(not HAS_REPORTLAB, reason="reportlab is not installed (pip install reportlab)")
def test_the_pdf_has_the_years_and_their_totals(web, paid_household):
    h = paid_household
    clerk = login(web, "village_clerk")
    r = web.get(f"/households/{h['household']}/passbook.pdf", headers=clerk)
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    assert r.content.startswith(b"%PDF") and b"/Type /Page" in r.content and b"STSong-Light" in r.content
    drawn = pdf_text(r.content)
    assert "2026年度" in drawn and "623.45" in drawn and "2025年度" in drawn and "123.45" in drawn
    assert "内江市惠民惠农财政补贴资金明白折" in drawn and "代管" in drawn
    one = web.get(f"/persons/{h['head']}/passbook.pdf?year=2025", headers=clerk)
    assert one.status_code == 200 and "2026年度" not in pdf_text(one.content)
    with new_session() as s:
        formats = s.scalars(select(AuditEvent.detail).where(AuditEvent.action == "passbook.view", or_(
            (AuditEvent.object_type == "household") & (AuditEvent.object_id == str(h["household"])),
            (AuditEvent.object_type == "person") & (AuditEvent.object_id == str(h["head"]))))).all()
    assert sum('"format": "pdf"' in d for d in formats) == 2


@pytest.mark.skipif(HAS_REPORTLAB, reason="reportlab is installed: the PDF test above runs")
def test_without_reportlab_the_pdf_route_says_so(web, paid_household):
    r = web.get(f"/persons/{paid_household['head']}/passbook.pdf", headers=login(web, "village_clerk"))
    assert r.status_code == 503 and "reportlab" in r.text and "打印页面" in r.text


@pytest.mark.browser
def test_the_print_sheet_has_no_navigation_and_is_black_on_white(browser, serve, paid_household):
    from yikatong.web.app import create_app

    server = serve(create_app(clock=FixedClock(NOW)))
    page = browser.new_page()
    page.goto(f"{server}/login")
    page.fill("#username", "village_clerk")
    page.fill("#password", PASSWORD)
    with page.expect_navigation(url=f"{server}/"):
        page.click("button[type=submit]")
    page.goto(f"{server}/households/{paid_household['household']}/passbook")
    assert page.is_visible(".topbar nav") and page.is_visible("[data-testid=print]")
    page.emulate_media(media="print")
    assert not page.is_visible(".topbar") and not page.is_visible("[data-testid=passbook-toolbar]")
    assert not page.is_visible("footer")
    assert page.is_visible("[data-testid=year-total-2026]")
    assert page.inner_text("[data-testid=printed-on]") == "2026-12-02"
    look = page.evaluate("""() => {
        const th = getComputedStyle(document.querySelector('.passbook table.sheet th'));
        const muted = getComputedStyle(document.querySelector('.passbook-note'));
        return [th.color, th.backgroundColor, th.borderTopColor, muted.color]; }""")
    assert look == ["rgb(0, 0, 0)", "rgb(255, 255, 255)", "rgb(0, 0, 0)", "rgb(0, 0, 0)"]
    page.close()
