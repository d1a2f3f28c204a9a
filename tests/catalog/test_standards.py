"""The catalogue shows each item's dated standards; city finance adds a dated standard (page and
API), with who, when and why; other roles cannot."""

from __future__ import annotations

from datetime import date

from yikatong.catalog.models import SubsidyItem
from yikatong.catalog.service import standard_book
from yikatong.core.clock import FixedClock

from .conftest import NOW, login, login_page


def test_city_finance_adds_a_dated_standard_on_the_page(app, client, fresh_item, db):
    app.state.clock = FixedClock(NOW)
    try:
        login_page(client, "city_finance")
        page = client.get(f"/catalog/items/{fresh_item}/standards")
        assert page.status_code == 200 and "现行标准" in page.text and 'data-testid="standard-form"' in page.text
        r = client.post(f"/catalog/items/{fresh_item}/standards", data={
            "valid_from": "2027-01-01", "standard_yuan": "120.50", "county_code": "", "reason": "内财社〔2026〕88号"},
            follow_redirects=False)
        assert r.status_code == 303
        page = client.get(r.headers["location"]).text
        assert "已新增标准" in page and "2027-01-01" in page and "120.50" in page and "内财社〔2026〕88号" in page
        assert "市财政局 王建国" in page
        # a county's own standard, and a refused one (no reason) with its Chinese message
        r = client.post(f"/catalog/items/{fresh_item}/standards", data={
            "valid_from": "2026-12-01", "standard_yuan": "110", "county_code": "511025", "reason": "县级配套"},
            follow_redirects=False)
        assert r.status_code == 303
        r = client.post(f"/catalog/items/{fresh_item}/standards", data={
            "valid_from": "2026-12-01", "standard_yuan": "110", "county_code": "", "reason": " "})
        assert r.status_code == 422 and "请填写调整依据" in r.text
        r = client.post(f"/catalog/items/{fresh_item}/standards", data={
            "valid_from": "12/01/2026", "standard_yuan": "110", "county_code": "", "reason": "x"})
        assert r.status_code == 422 and "生效日期格式错误" in r.text
        # the counter's preview prices with the standard of the period in the clerk's county (资中县 511025)
        clerk = login(client, "village_clerk")
        amounts = [client.get("/applications/preview", headers=clerk,
                              params={"item_code": fresh_item, "period": p}).text for p in ("2026-11", "2026-12")]
        assert "100.00" in amounts[0] and "110.00" in amounts[1]
    finally:
        del app.state.clock
    db.expire_all()
    book = standard_book(db, [fresh_item])
    assert book.standard(fresh_item, "511025001001", date(2026, 12, 1)) == 11000
    assert book.standard(fresh_item, "511011001001", date(2026, 12, 1)) == 10000
    assert book.standard(fresh_item, "511011001001", date(2027, 1, 1)) == 12050
    assert db.get(SubsidyItem, fresh_item).standard_fen == 10000  # 2027's raise is not in force yet


def test_the_api_lists_and_adds_standards_for_city_finance_only(client, fresh_item):
    finance, handler = login(client, "city_finance"), login(client, "county_handler")
    body = {"valid_from": "2026-01-01", "standard_fen": 9000, "county_code": None, "reason": "降标"}
    assert client.post(f"/api/v1/items/{fresh_item}/standards", json=body, headers=handler).status_code == 403
    r = client.post(f"/api/v1/items/{fresh_item}/standards", json=body, headers=finance)
    assert r.status_code == 201, r.text
    assert r.json()["standard_fen"] == 9000 and r.json()["created_by_name"] == "市财政局 王建国"
    bad = client.post(f"/api/v1/items/{fresh_item}/standards", json={**body, "county_code": "ABC"}, headers=finance)
    assert bad.status_code == 422
    assert client.post("/api/v1/items/NOPE/standards", json=body, headers=finance).status_code == 404
    history = client.get(f"/api/v1/items/{fresh_item}/standards", headers=handler).json()
    assert [(h["valid_from"], h["standard_fen"], h["reason"]) for h in history] == [
        ("2026-01-01", 9000, "降标"), ("2020-01-01", 10000, "现行标准")]
    items = {i["code"]: i for i in client.get("/api/v1/items", params={"q": fresh_item}, headers=handler).json()}
    assert items[fresh_item]["standard_fen"] == 9000  # the standard in force today
