"""Server-rendered pages: what each role sees, masks on the page, refusal outside the region."""

from __future__ import annotations

from yikatong.core import crypto
from yikatong.core.protect import reveal

from .conftest import DEMO_PASSWORD


def login_page(client, username):
    r = client.post("/login", data={"username": username, "password": DEMO_PASSWORD}, follow_redirects=False)
    assert r.status_code == 303


def test_home_shows_the_users_area_and_counts(client, people):
    login_page(client, "county_handler")
    html = client.get("/").text
    assert "县级部门经办员" in html and "资中县" in html
    assert 'id="rate-chart"' in html and "/static/vendor/echarts.min.js" in html


def test_person_page_masks_and_refuses_other_village(client, people):
    login_page(client, "village_clerk")
    own = people["own"]
    html = client.get(f"/persons/{own.id}").text
    assert own.name in html and own.id_number_masked in html
    assert reveal(crypto.ID_NUMBER, own.id_number_enc) not in html
    r = client.get(f"/persons/{people['other'].id}")
    assert r.status_code == 403 and "无权查看本辖区以外的人员" in r.text
    assert people["other"].name not in r.text


def test_search_page_lists_only_own_village(client, people):
    login_page(client, "village_clerk")
    html = client.get("/persons", params={"q": people["other"].name}).text
    assert f'href="/persons/{people["other"].id}"' not in html


def test_admin_pages_follow_duties(client, people):
    login_page(client, "auditadmin")
    assert "审计日志" in client.get("/audit").text
    assert client.get("/persons").status_code == 403
    login_page(client, "sysadmin")
    html = client.get("/users").text
    assert "village_clerk" in html and "村级经办员" in html
    assert client.get("/audit").status_code == 403


def test_catalogue_page_and_api(client, auth, db, city):
    from sqlalchemy import func, select

    from yikatong.catalog.models import SubsidyItem

    # Other tests may have imported items of their own: compare with the table, not a constant.
    items_in_db = db.scalar(select(func.count()).select_from(SubsidyItem))
    categories_in_db = db.scalar(select(func.count(func.distinct(SubsidyItem.category_code))))
    assert items_in_db >= 119
    login_page(client, "city_finance")
    html = client.get("/catalog").text
    assert f"{categories_in_db} 类 {items_in_db} 项" in html
    items = client.get("/api/v1/items", headers=auth("city_finance")).json()
    assert len(items) == items_in_db
    assert all(isinstance(i["standard_fen"], int) and i["standard_fen"] >= 0 for i in items)
    farmland = [i for i in items if i["name"] == "耕地地力保护补贴"]
    assert farmland and farmland[0]["basis"] == "亩" and farmland[0]["funding_level"] == "中央"


def test_static_assets_are_served_locally(client):
    for path in ("/static/vendor/htmx.min.js", "/static/vendor/echarts.min.js", "/static/css/site.css"):
        r = client.get(path)
        assert r.status_code == 200 and len(r.content) > 1000
