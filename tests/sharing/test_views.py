"""The sharing pages and API through the real app: the list and data set pages, upload (201 with the
snapshot, 422 with the error table, nothing stored), templates, and refusals (a village clerk 403; a
supervisor may read but not import). Requests commit: the tests use their own agency, ID numbers born
in 1890 and the deaths / vehicles data sets, and delete their snapshot rows at the end."""

from __future__ import annotations

import io

from openpyxl import load_workbook
from sqlalchemy import select

from yikatong.core.db import new_session
from yikatong.sharing.models import SharedSnapshot

from .conftest import DEATH_HEADERS, VEHICLE_HEADERS, agency, csv_bytes, death_rows, new_id, remove_snapshots


def post(web, headers, dataset: str, data: bytes, agency_name: str, as_of: str = "2026-10-31", name="f.csv"):
    return web.post(f"/api/v1/sharing/{dataset}/imports", headers=headers,
                    files={"file": (name, data, "text/csv")}, data={"agency": agency_name, "as_of": as_of})


def mine(agency_name: str) -> list[SharedSnapshot]:
    with new_session() as s:
        return list(s.scalars(select(SharedSnapshot).where(SharedSnapshot.agency == agency_name)))


def test_api_upload_201_then_422_then_lists(web, auth):
    headers = auth("city_finance")
    name = agency()
    try:
        r = post(web, headers, "deaths", csv_bytes(DEATH_HEADERS, death_rows(2)), name)
        assert r.status_code == 201, r.text
        body = r.json()
        assert body["ok"] and body["rows"] == 2 and body["snapshot"]["agency"] == name
        assert body["snapshot"]["importer_name"] == "市财政局 王建国" and body["snapshot"]["in_force"]

        owner = new_id()
        bad = [[owner, "川A1", "货车", "-1", "2024-01-01"], [owner, "川A2", "货车", "100", "2024-13-01"]]
        r = post(web, headers, "vehicles", csv_bytes(VEHICLE_HEADERS, bad), name)
        assert r.status_code == 422
        assert [(e["row"], e["column"]) for e in r.json()["errors"]] == [(2, "车辆价值（元）"), (3, "登记日期")]
        assert r.json()["snapshot"] is None
        assert [s.dataset for s in mine(name)] == ["deaths"]

        r = web.get("/api/v1/sharing/datasets", headers=headers)
        assert r.status_code == 200
        deaths = next(d for d in r.json() if d["code"] == "deaths")
        assert any(s["agency"] == name for s in deaths["in_force"]) and deaths["rows_in_force"] >= 2
        assert [c["header"] for c in deaths["columns"]] == DEATH_HEADERS
        r = web.get("/api/v1/sharing/deaths/snapshots", headers=headers)
        assert any(s["agency"] == name and s["rows"] == 2 for s in r.json())

        r = post(web, headers, "deaths", csv_bytes(DEATH_HEADERS, death_rows(1)), name, as_of="2026-13-01")
        assert r.status_code == 422 and "数据截止日期" in r.json()["detail"]
        assert post(web, headers, "nothing", b"x", name).status_code == 404
    finally:
        remove_snapshots(name)


def test_pages_show_the_data_sets_upload_result_and_history(web, auth):
    headers = auth("city_finance")
    name = agency()
    try:
        page = web.get("/sharing", headers=headers)
        assert page.status_code == 200
        for label in ("户籍人口", "死亡人员", "其他系统发放"):
            assert label in page.text
        page = web.get("/sharing/deaths", headers=headers)
        assert page.status_code == 200 and 'data-testid="sharing-form"' in page.text
        assert "/static/js/imports.js" in page.text and "<script>" not in page.text  # CSP: no inline script

        rows = death_rows(2)
        rows[0][0] = rows[0][0][:-1] + ("0" if rows[0][0][-1] != "0" else "1")
        r = web.post("/sharing/deaths", headers={**headers, "HX-Request": "true"},
                     files={"file": ("死亡.csv", csv_bytes(DEATH_HEADERS, rows), "text/csv")},
                     data={"agency": name, "as_of": "2026-10-31"})
        assert r.status_code == 422 and 'data-testid="sharing-errors"' in r.text
        assert "身份证号校验位错误" in r.text and "<html" not in r.text  # the partial only
        assert not mine(name)

        r = web.post("/sharing/deaths", headers=headers,
                     files={"file": ("死亡.csv", csv_bytes(DEATH_HEADERS, death_rows(3)), "text/csv")},
                     data={"agency": name, "as_of": "2026-10-31"})
        assert r.status_code == 200 and 'data-testid="sharing-ok"' in r.text
        snap = mine(name)[0]
        assert f"快照 ID {snap.id}" in r.text and "死亡.csv" in r.text and name in r.text  # in the history too

        r = web.post("/sharing/deaths", headers=headers, files={"file": ("d.csv", b"x", "text/csv")},
                     data={"agency": name, "as_of": "2027-01-01"})
        assert r.status_code == 422 and "不能晚于今天" in r.text
    finally:
        remove_snapshots(name)


def test_templates_download(web, auth):
    headers = auth("supervisor")
    r = web.get("/sharing/vehicles/template.csv", headers=headers)
    assert r.status_code == 200 and r.content.decode("utf-8-sig").strip() == ",".join(VEHICLE_HEADERS)
    r = web.get("/sharing/deaths/template.xlsx", headers=headers)
    assert r.status_code == 200 and "attachment" in r.headers["content-disposition"]
    assert [c.value for c in load_workbook(io.BytesIO(r.content)).worksheets[0][1]] == DEATH_HEADERS
    assert web.get("/sharing/deaths/template.pdf", headers=headers).status_code == 422


def test_refusals(web, auth):
    clerk = auth("village_clerk")
    assert web.get("/sharing", headers=clerk).status_code == 403
    assert web.get("/sharing/deaths", headers=clerk).status_code == 403
    assert web.get("/api/v1/sharing/datasets", headers=clerk).status_code == 403
    name = agency()
    r = post(web, clerk, "deaths", csv_bytes(DEATH_HEADERS, death_rows(1)), name)
    assert r.status_code == 403 and not mine(name)
    supervisor = auth("supervisor")
    assert web.get("/sharing/deaths", headers=supervisor).status_code == 200
    assert 'data-testid="sharing-form"' not in web.get("/sharing/deaths", headers=supervisor).text
    r = post(web, supervisor, "deaths", csv_bytes(DEATH_HEADERS, death_rows(1)), name)
    assert r.status_code == 403 and not mine(name)
    assert web.get("/sharing").status_code in (303, 307) or web.get("/sharing").url.path == "/login"
