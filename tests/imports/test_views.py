"""The import API and page, through the real app: login, upload, report, nothing written on errors."""

from __future__ import annotations

import io

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from sqlalchemy import func, select

from yikatong.core import crypto
from yikatong.core.clock import FixedClock
from yikatong.core.db import new_session
from yikatong.core.protect import search_hash
from yikatong.registry.models import Person
from yikatong.security.models import AuditEvent

from .conftest import NOW, PASSWORD, csv_bytes
from .test_service import PERSON_HEADERS, person_rows


@pytest.fixture(scope="module")
def client(migrated):
    from yikatong.web.app import create_app

    with TestClient(create_app(clock=FixedClock(NOW))) as c:
        yield c


def login(client: TestClient, username: str) -> dict[str, str]:
    r = client.post("/api/v1/auth/login", json={"username": username, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def persons_count(*where) -> int:
    with new_session() as s:
        return s.scalar(select(func.count()).select_from(Person).where(*where))


def stored(number: str) -> Person | None:
    with new_session() as s:
        return s.scalar(select(Person).where(Person.id_number_hash == search_hash(crypto.ID_NUMBER, number)))


def upload(client, headers, kind: str, data: bytes, name: str = "p.csv", **params):
    return client.post(f"/api/v1/imports/{kind}", headers=headers, params=params,
                       files={"file": (name, data, "text/csv")}, data={"encoding": params.pop("encoding", "utf-8")})


def test_api_good_file_200_then_reimport_unchanged(client, area):
    headers = login(client, area.county_user)
    rows = person_rows(area, 3)
    data = csv_bytes(PERSON_HEADERS, rows)
    r = upload(client, headers, "persons", data)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ok"] is True and (body["added"], body["updated"], body["unchanged"]) == (3, 0, 0)
    assert stored(rows[0][0]).name == rows[0][1]
    again = upload(client, headers, "persons", data).json()
    assert (again["added"], again["updated"], again["unchanged"]) == (0, 0, 3)
    with new_session() as s:
        events = s.scalars(select(AuditEvent).where(AuditEvent.action == "import.persons",
                                                    AuditEvent.username == area.county_user)).all()
    assert len(events) == 2 and events[0].ip == "testclient" and body["sha256"] in events[0].detail


def test_api_bad_file_422_with_report_and_nothing_written(client, area):
    headers = login(client, area.county_user)
    rows = person_rows(area, 3)
    rows[2][0] = rows[2][0][:17] + ("0" if rows[2][0][17] != "0" else "1")
    before = persons_count()
    r = upload(client, headers, "persons", csv_bytes(PERSON_HEADERS, rows))
    assert r.status_code == 422
    body = r.json()
    assert body["ok"] is False and body["error_count"] == 1
    assert body["errors"][0] == {"row": 4, "column": "身份证号", "value": rows[2][0][:6] + "********" + rows[2][0][-4:],
                                 "reason": "身份证号校验位错误"}
    assert persons_count() == before and stored(rows[0][0]) is None


def test_api_wrong_encoding_and_gb18030(client, area):
    headers = login(client, area.county_user)
    rows = person_rows(area, 1)
    data = csv_bytes(PERSON_HEADERS, rows, encoding="gbk")
    r = upload(client, headers, "persons", data)
    assert r.status_code == 422 and "不是有效的UTF-8编码" in r.json()["errors"][0]["reason"]
    r = upload(client, headers, "persons", data, encoding="gb18030")
    assert r.status_code == 200, r.text
    assert stored(rows[0][0]).name == rows[0][1]


def test_api_dry_run_writes_nothing(client, area):
    headers = login(client, area.county_user)
    rows = person_rows(area, 2)
    r = upload(client, headers, "persons", csv_bytes(PERSON_HEADERS, rows), dry_run="true")
    assert r.status_code == 200 and r.json()["dry_run"] is True and r.json()["added"] == 2
    assert stored(rows[0][0]) is None


def test_api_duty_scope_and_login(client, area):
    clerk = login(client, area.clerk)
    r = upload(client, clerk, "catalogue", b"x")
    assert r.status_code == 403 and "无权导入" in r.json()["detail"]
    rows = person_rows(area, 1)
    rows[0][2] = area.village2
    r = upload(client, clerk, "persons", csv_bytes(PERSON_HEADERS, rows))
    assert r.status_code == 422 and "超出本辖区" in r.json()["errors"][0]["reason"]
    assert upload(client, {}, "persons", b"x").status_code == 401
    assert upload(client, clerk, "aliens", b"x").status_code == 404


def test_api_template_downloads(client, area):
    headers = login(client, area.clerk)
    r = client.get("/api/v1/imports/persons/template", headers=headers)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert r.content.decode("utf-8-sig").strip() == ",".join(PERSON_HEADERS)
    r = client.get("/api/v1/imports/cards/template", params={"format": "xlsx"}, headers=headers)
    assert r.status_code == 200
    wb = load_workbook(io.BytesIO(r.content))
    expected = ["社会保障卡号", "身份证号", "姓名", "银行代码", "银行账号", "卡状态", "发卡日期", "状态变更日期"]
    assert [c.value for c in wb.worksheets[0][1]] == expected
    assert wb.worksheets[0]["B2"].number_format == "@" and wb.worksheets[1].title == "填写说明"
    # The empty template imports as "no data rows", not as a crash.
    r = upload(client, headers, "cards", r.content, name="cards.xlsx")
    assert r.status_code == 422 and r.json()["errors"][0]["reason"] == "文件中没有数据行"
    assert client.get("/api/v1/imports/persons/template", params={"format": "pdf"}, headers=headers).status_code == 422


def test_upload_page_form_and_report(client, area):
    headers = login(client, area.clerk)
    page = client.get("/imports", headers=headers)
    assert page.status_code == 200
    html = page.text
    assert 'hx-post="/imports"' in html and 'hx-encoding="multipart/form-data"' in html
    assert "<progress" in html and "/static/js/imports.js" in html
    assert 'value="persons"' in html and 'value="catalogue"' not in html  # a clerk may not load the catalogue
    assert client.get("/static/js/imports.js").status_code == 200

    rows = person_rows(area, 2)
    rows[1][5] = "12"
    form = {"kind": "persons", "encoding": "utf-8"}
    files = {"file": ("p.csv", csv_bytes(PERSON_HEADERS, rows), "text/csv")}
    r = client.post("/imports", headers={**headers, "HX-Request": "true"}, data=form, files=files)
    assert r.status_code == 422
    assert 'data-testid="import-errors"' in r.text and "手机号应为11位" in r.text and "<html" not in r.text
    assert stored(rows[0][0]) is None

    rows[1][5] = ""
    files = {"file": ("p.csv", csv_bytes(PERSON_HEADERS, rows), "text/csv")}
    r = client.post("/imports", headers=headers, data=form, files=files)
    assert r.status_code == 200 and 'data-testid="import-ok"' in r.text and "<html" in r.text
    assert 'data-testid="import-added">2<' in r.text
    assert stored(rows[1][0]) is not None

    files = {"file": ("c.csv", b"x", "text/csv")}
    r = client.post("/imports", headers={**headers, "HX-Request": "true"}, data={"kind": "catalogue"}, files=files)
    assert r.status_code == 403 and "无权导入" in r.text


def test_upload_page_refused_without_import_duty(client, area):
    from yikatong.core.db import transaction
    from yikatong.security.service import create_user

    with transaction() as s:
        create_user(s, f"bank_{area.bank}", PASSWORD, "bank", area.city, "银行", NOW, bank_code=area.bank)
    r = client.get("/imports", headers=login(client, f"bank_{area.bank}"))
    assert r.status_code == 403


def test_finance_imports_catalogue_through_api(client, area):
    from .test_service import CATALOGUE_HEADERS, _catalogue_rows

    headers = login(client, area.finance)
    r = upload(client, headers, "catalogue", csv_bytes(CATALOGUE_HEADERS, _catalogue_rows(area)))
    assert r.status_code == 200, r.text
    assert r.json()["extra"] == {"categories_added": 2, "categories_updated": 0}
