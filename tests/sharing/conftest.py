"""Helpers for the shared-data tests: delivered files built in memory (CSV, .xlsx, Parquet), ID numbers
nobody else uses (born in 1890: no synthetic resident is that old), a fixed clock and a web client."""

from __future__ import annotations

import csv
import io
import itertools
import uuid
from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from openpyxl import Workbook
from sqlalchemy import delete, select

from yikatong.core.clock import FixedClock
from yikatong.core.idnumber import make_id_number

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
AS_OF = date(2026, 10, 31)
DEMO_PASSWORD = "ykt-demo-2026"
_serial = itertools.count(1)

DEATH_HEADERS = ["身份证号码", "姓名", "死亡日期", "信息来源"]
VEHICLE_HEADERS = ["车主身份证号码", "号牌号码", "车辆类型", "车辆价值（元）", "登记日期"]


def new_id(male: bool = True) -> str:
    """A valid ID number of a person born in 1890 (never in the registry)."""
    n = next(_serial)
    return make_id_number("511002", date(1890, 1, 1) + timedelta(days=n % 360), n // 360 % 500, male)


def agency() -> str:
    """An agency name of this test only, so snapshots of other tests (and the synthetic city) never mix."""
    return f"测试单位{uuid.uuid4().hex[:8]}"


def csv_bytes(headers: list[str], rows: list[list[object]], encoding: str = "utf-8", bom: bool = False) -> bytes:
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(headers)
    writer.writerows(["" if v is None else v for v in row] for row in rows)
    data = buf.getvalue().encode(encoding)
    return (b"\xef\xbb\xbf" + data) if bom else data


def xlsx_bytes(headers: list[str], rows: list[list[object]], text: bool = True) -> bytes:
    wb = Workbook()
    ws = wb.active
    ws.append(headers)
    for row in rows:
        ws.append(row)
    if text:
        for row in ws.iter_rows(min_row=2):
            for cell in row:
                if isinstance(cell.value, str):
                    cell.number_format = "@"
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def parquet_bytes(columns: dict[str, pa.Array | list]) -> bytes:
    buf = io.BytesIO()
    pq.write_table(pa.table(columns), buf)
    return buf.getvalue()


def death_rows(n: int) -> list[list[object]]:
    return [[new_id(k % 2 == 0), f"测试{'甲乙丙丁'[k % 4]}", f"2026-0{1 + k % 9}-1{k % 10}", "火化记录"]
            for k in range(n)]


def remove_snapshots(agency_name: str) -> None:
    """Delete the committed snapshot rows of a test's own agency (the Parquet files are left in the
    test run's temporary data folder)."""
    from yikatong.core.db import transaction
    from yikatong.sharing.models import SharedSnapshot

    with transaction() as s:
        s.execute(delete(SharedSnapshot).where(SharedSnapshot.agency == agency_name))


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def web(city, clock):
    from yikatong.web.app import create_app

    with TestClient(create_app(clock=clock)) as client:
        yield client


@pytest.fixture
def auth(web):
    """auth(username) -> bearer headers for that demo user."""

    def headers(username: str) -> dict[str, str]:
        r = web.post("/api/v1/auth/login", json={"username": username, "password": DEMO_PASSWORD})
        assert r.status_code == 200, r.text
        return {"Authorization": f"Bearer {r.json()['token']}"}

    return headers


@pytest.fixture
def users(city, db):
    from yikatong.security.models import User

    return {u.username: u for u in db.scalars(select(User)).all()}
