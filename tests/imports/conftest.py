"""Helpers for import tests: a fresh little area per test (committed), files built in memory."""

from __future__ import annotations

import csv
import io
import itertools
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pytest
from openpyxl import Workbook

from yikatong.core.idnumber import make_id_number

NOW = datetime(2026, 3, 1, 9, 0, 0, tzinfo=UTC)
PASSWORD = "import-test-pw"
_areas = itertools.count(1)
_hash: list[str] = []
_people = itertools.count(1)
_cards = itertools.count(1)


@dataclass
class Area:
    """province > city > county > township > two villages, a bank and users, all with fresh codes."""

    province: str
    city: str
    county: str
    township: str
    village: str
    village2: str
    bank: str
    department: str
    clerk: str  # username of a village clerk of `village`
    county_user: str  # county handler of `county`
    finance: str  # city finance of `city`

    @property
    def region6(self) -> str:
        return self.county[:6]


def new_id(area: Area, male: bool = True) -> str:
    n = next(_people)
    return make_id_number(area.region6, date(1940, 1, 1) + timedelta(days=n), n % 500, male)


def new_card() -> str:
    return f"T{next(_cards):08d}"


def new_account(area: Area) -> str:
    return f"62170{area.county[:6]}{next(_cards):08d}"


@pytest.fixture
def area(migrated) -> Area:
    from yikatong.catalog.models import Bank, Department
    from yikatong.core.db import transaction
    from yikatong.registry.models import Region
    from yikatong.security.service import create_user

    n = next(_areas)
    prov = f"{80 + n // 99:02d}"
    city = f"{prov}{n % 99 + 1:02d}"
    codes = {
        "province": prov.ljust(12, "0"),
        "city": city.ljust(12, "0"),
        "county": f"{city}01".ljust(12, "0"),
        "township": f"{city}01001".ljust(12, "0"),
        "village": f"{city}01001001",
        "village2": f"{city}01001002",
    }
    tag = f"t{n}"
    if not _hash:
        from yikatong.security.service import hash_password

        _hash.append(hash_password(PASSWORD))
    pw = {"password_hash": _hash[0]}
    with transaction() as s:
        if s.get(Region, codes["province"]) is None:
            s.add(Region(code=codes["province"], name="测试省", full_name="测试省", level="province", parent_code=None))
            s.flush()
        parent = codes["province"]
        for level, name in (("city", "测试市"), ("county", "测试县"), ("township", "测试镇"),
                            ("village", "一村"), ("village2", "二村")):
            s.add(Region(code=codes[level], name=name, full_name=f"测试省{name}",
                         level="village" if level == "village2" else level, parent_code=parent))
            s.flush()
            if level != "village":
                parent = codes[level]
        s.add(Bank(code=f"B{n}", name=f"测试银行{n}", account_prefix="62170"))
        s.add(Department(code=f"D{n}", name=f"测试民政局{n}", region_code=codes["county"], sector="民政"))
        s.flush()
        create_user(s, f"clerk_{tag}", PASSWORD, "village_clerk", codes["village"], "村经办", NOW, **pw)
        create_user(s, f"county_{tag}", PASSWORD, "county_handler", codes["county"], "县经办", NOW,
                    department_code=f"D{n}", **pw)
        create_user(s, f"finance_{tag}", PASSWORD, "city_finance", codes["city"], "市财政", NOW, **pw)
    return Area(**codes, bank=f"B{n}", department=f"D{n}", clerk=f"clerk_{tag}", county_user=f"county_{tag}",
                finance=f"finance_{tag}")


def csv_bytes(headers: list[str], rows: list[list[object]], encoding: str = "utf-8", bom: bool = False) -> bytes:
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(headers)
    writer.writerows(["" if v is None else v for v in row] for row in rows)
    data = buf.getvalue().encode(encoding)
    return (b"\xef\xbb\xbf" + data) if bom else data


def xlsx_bytes(headers: list[str], rows: list[list[object]]) -> bytes:
    wb = Workbook()
    ws = wb.active
    ws.append(headers)
    for row in rows:
        ws.append(row)
    for row in ws.iter_rows(min_row=2):
        for cell in row:
            if isinstance(cell.value, str):
                cell.number_format = "@"
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def user(session, username: str):
    from sqlalchemy import select

    from yikatong.security.models import User

    return session.scalar(select(User).where(User.username == username))
