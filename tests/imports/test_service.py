"""The import service: good files land exactly once, any bad row keeps the whole file out."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from yikatong.core import crypto
from yikatong.core.errors import Forbidden, NotFound
from yikatong.core.idnumber import parse_id_number
from yikatong.core.protect import reveal, search_hash
from yikatong.imports.service import import_file
from yikatong.registry.models import Card, Household, Person, Region
from yikatong.security.models import AuditEvent

from .conftest import NOW, csv_bytes, new_account, new_card, new_id, user, xlsx_bytes

PERSON_HEADERS = ["身份证号", "姓名", "区划代码", "户编号", "与户主关系", "手机号", "是否享受补贴", "未持卡原因"]
CARD_HEADERS = ["社会保障卡号", "身份证号", "银行代码", "银行账号", "卡状态", "发卡日期"]


def count(session, model, *where) -> int:
    return session.scalar(select(func.count()).select_from(model).where(*where))


def person_by_id(session, number: str) -> Person | None:
    return session.scalar(select(Person).where(Person.id_number_hash == search_hash(crypto.ID_NUMBER, number)))


def households(db, area, n: int = 1) -> list[str]:
    codes = [f"{area.village}-{i:04d}" for i in range(1, n + 1)]
    report = import_file(db, "households", csv_bytes(["户编号", "区划代码", "地址"],
                                                     [[c, area.village, f"一村{i}组"] for i, c in enumerate(codes)]),
                         "hh.csv", actor=None, now=NOW)
    assert report.ok, report.errors
    return codes


def person_rows(area, n: int, household: str | None = None) -> list[list[object]]:
    return [[new_id(area, male=i % 2 == 0), f"张{'三四五六七八九十'[i % 8]}{'甲乙'[i % 2]}", area.village,
             household, "户主" if i == 0 else "子", f"138{i:08d}", "是" if i % 2 else "否", None]
            for i in range(n)]


def errors_of(report) -> list[tuple[int | None, str]]:
    return [(e.row, e.column) for e in report.errors]


# ---------------------------------------------------------------- good files


def test_good_csv_imports_persons_with_protected_fields(db, area):
    [hh] = households(db, area)
    rows = person_rows(area, 3, hh)
    rows[1][5] = "138-0000-0001"  # separators are removed
    audits = count(db, AuditEvent, AuditEvent.action == "import.persons")
    report = import_file(db, "persons", csv_bytes(PERSON_HEADERS, rows, bom=True), "p.csv", actor=None, now=NOW)
    assert report.ok, report.errors
    assert (report.total_rows, report.added, report.updated, report.unchanged) == (3, 3, 0, 0)
    for row in rows:
        person = person_by_id(db, row[0])
        facts = parse_id_number(row[0])
        assert person is not None and person.name == row[1]
        assert reveal(crypto.ID_NUMBER, person.id_number_enc) == row[0]
        assert person.id_number_masked == row[0][:6] + "********" + row[0][-4:]
        assert person.gender == facts.gender and person.birth_date == facts.birth_date
        assert reveal(crypto.PHONE, person.phone_enc) == row[5].replace("-", "")
        assert person.phone_masked == "138****" + row[5].replace("-", "")[-4:]
        assert person.household.code == hh and person.region_code == area.village
        assert person.is_beneficiary is (row[6] == "是") and person.has_active_card is False
        assert person.created_at == NOW == person.updated_at
    assert {p.gender for p in (person_by_id(db, r[0]) for r in rows)} == {"男", "女"}
    assert count(db, AuditEvent, AuditEvent.action == "import.persons") == audits + 1
    event = db.scalar(select(AuditEvent).where(AuditEvent.action == "import.persons").order_by(AuditEvent.id.desc()))
    assert report.sha256 in event.detail and '"added": 3' in event.detail and "p.csv" in event.detail


def test_good_xlsx_imports_with_number_cells_where_harmless(db, area):
    rows = person_rows(area, 2)
    rows[0][5] = 13812345678  # a phone stored as a number keeps all its digits
    rows[0][2] = int(area.village)  # so does a 12-digit region code
    report = import_file(db, "persons", xlsx_bytes(PERSON_HEADERS, rows), "p.xlsx", actor=None, now=NOW)
    assert report.ok, report.errors
    assert report.added == 2
    person = person_by_id(db, rows[0][0])
    assert reveal(crypto.PHONE, person.phone_enc) == "13812345678" and person.region_code == area.village


def test_english_aliases_gb18030_and_ignored_columns(db, area):
    rows = [["1", new_id(area), "欧阳·娜娜", area.village, "备注内容"]]
    data = csv_bytes(["序号", "id_number", "name", "REGION_CODE", "备注"], rows, encoding="gb18030")
    report = import_file(db, "persons", data, "p.csv", actor=None, now=NOW, encoding="gb18030")
    assert report.ok, report.errors
    assert person_by_id(db, rows[0][1]).name == "欧阳·娜娜"


def test_reimport_changes_nothing_and_a_changed_row_updates_only_that_row(db, area):
    rows = person_rows(area, 4)
    data = csv_bytes(PERSON_HEADERS, rows)
    assert import_file(db, "persons", data, "p.csv", actor=None, now=NOW).added == 4
    db.flush()
    later = NOW + timedelta(days=3)
    again = import_file(db, "persons", data, "p.csv", actor=None, now=later)
    assert again.ok and (again.added, again.updated, again.unchanged) == (0, 0, 4)
    db.expire_all()
    assert all(person_by_id(db, r[0]).updated_at == NOW for r in rows)

    rows[2][1] = "李改名"
    changed = import_file(db, "persons", csv_bytes(PERSON_HEADERS, rows), "p2.csv", actor=None, now=later)
    assert (changed.added, changed.updated, changed.unchanged) == (0, 1, 3)
    db.expire_all()
    assert person_by_id(db, rows[2][0]).name == "李改名" and person_by_id(db, rows[2][0]).updated_at == later
    assert [person_by_id(db, r[0]).updated_at for i, r in enumerate(rows) if i != 2] == [NOW] * 3


def test_absent_optional_column_leaves_field_alone(db, area):
    rows = person_rows(area, 1)
    import_file(db, "persons", csv_bytes(PERSON_HEADERS, rows), "p.csv", actor=None, now=NOW)
    short = [[rows[0][0], rows[0][1], area.village]]
    data = csv_bytes(["身份证号", "姓名", "区划代码"], short)
    report = import_file(db, "persons", data, "s.csv", actor=None, now=NOW)
    assert (report.updated, report.unchanged) == (0, 1)
    db.expire_all()
    assert person_by_id(db, rows[0][0]).phone_hash is not None


def test_dry_run_writes_nothing(db, area):
    rows = person_rows(area, 2)
    before = count(db, Person)
    audits = count(db, AuditEvent)
    report = import_file(db, "persons", csv_bytes(PERSON_HEADERS, rows), "p.csv", actor=None, now=NOW, dry_run=True)
    assert report.ok and report.dry_run and report.added == 2
    assert count(db, Person) == before and count(db, AuditEvent) == audits


# ---------------------------------------------------------------- bad files import nothing


def _bad_person_file(area, case: str) -> tuple[bytes, str, list[tuple[int | None, str]], str]:
    rows = person_rows(area, 3)
    encoding = "utf-8"
    headers = list(PERSON_HEADERS)
    if case == "checksum":
        good = rows[1][0]
        rows[1][0] = good[:17] + ("0" if good[17] != "0" else "1")
        expect, reason = [(3, "身份证号")], "校验位"
    elif case == "unknown_region":
        rows[2][2] = area.village[:9] + "999"
        expect, reason = [(4, "区划代码")], "不存在"
    elif case == "township_region":
        rows[0][2] = area.township
        expect, reason = [(2, "区划代码")], "村（社区）级"
    elif case == "duplicate_id":
        rows[2][0] = rows[0][0]
        expect, reason = [(4, "身份证号")], "与第2行重复"
    elif case == "bad_phone":
        rows[1][5] = "1234"
        expect, reason = [(3, "手机号")], "11位"
    elif case == "bad_boolean":
        rows[1][6] = "可能"
        expect, reason = [(3, "是否享受补贴")], "是"
    elif case == "empty_required":
        rows[1][1] = ""
        expect, reason = [(3, "姓名")], "必填项为空"
    elif case == "missing_column":
        headers = [h for h in headers if h != "姓名"]
        rows = [r[:1] + r[2:] for r in rows]
        expect, reason = [(1, "姓名")], "缺少必填列"
    elif case == "unknown_column":
        headers[6] = "是否享受"
        expect, reason = [(1, "是否享受")], "未知的列名"
    elif case == "unknown_household":
        rows[1][3] = "NOPE-1"
        expect, reason = [(3, "户编号")], "户编号不存在"
    elif case == "wrong_encoding":
        encoding = "gbk"
        expect, reason = [(1, "")], "不是有效的UTF-8编码"
    else:
        raise AssertionError(case)
    return csv_bytes(headers, rows, encoding=encoding), case, expect, reason


@pytest.mark.parametrize("case", ["checksum", "unknown_region", "township_region", "duplicate_id", "bad_phone",
                                  "bad_boolean", "empty_required", "missing_column", "unknown_column",
                                  "unknown_household", "wrong_encoding"])
def test_bad_person_file_imports_nothing(db, area, case):
    data, case, expect, reason = _bad_person_file(area, case)
    before = count(db, Person)
    audits = count(db, AuditEvent)
    report = import_file(db, "persons", data, "bad.csv", actor=None, now=NOW)
    assert not report.ok
    assert report.added == report.updated == 0
    assert errors_of(report) == expect, report.errors
    assert reason in report.errors[0].reason
    assert report.error_count == len(expect)
    assert count(db, Person) == before and count(db, AuditEvent) == audits


def test_error_values_are_masked(db, area):
    rows = person_rows(area, 1)
    rows[0][0] = rows[0][0][:17] + ("0" if rows[0][0][17] != "0" else "1")
    rows[0][5] = "13912345"
    report = import_file(db, "persons", csv_bytes(PERSON_HEADERS, rows), "bad.csv", actor=None, now=NOW)
    values = {e.column: e.value for e in report.errors}
    assert values["身份证号"] == rows[0][0][:6] + "********" + rows[0][0][-4:]
    assert values["手机号"] == "139*2345"
    assert rows[0][0] not in report.model_dump_json()


def test_every_error_is_reported_not_just_the_first(db, area):
    rows = person_rows(area, 5)
    for row in rows:
        row[5] = "bad"
    rows[4][2] = "12"
    report = import_file(db, "persons", csv_bytes(PERSON_HEADERS, rows), "bad.csv", actor=None, now=NOW)
    assert report.error_count == 6
    assert errors_of(report) == [(2, "手机号"), (3, "手机号"), (4, "手机号"), (5, "手机号"),
                                 (6, "区划代码"), (6, "手机号")]


def test_numeric_id_cell_in_xlsx_is_refused(db, area):
    rows = person_rows(area, 2)
    rows[1][0] = int(rows[1][0][:17] + "1") if rows[1][0][17] == "X" else int(rows[1][0])
    before = count(db, Person)
    report = import_file(db, "persons", xlsx_bytes(PERSON_HEADERS, rows), "p.xlsx", actor=None, now=NOW)
    assert errors_of(report) == [(3, "身份证号")]
    assert "身份证号被Excel存为数字，请将该列设置为文本格式" in report.errors[0].reason
    assert count(db, Person) == before


def test_xlsx_row_numbers_skip_blank_rows(db, area):
    rows = person_rows(area, 3)
    rows.insert(1, [None] * len(PERSON_HEADERS))
    rows[3][2] = "abc"
    report = import_file(db, "persons", xlsx_bytes(PERSON_HEADERS, rows), "p.xlsx", actor=None, now=NOW)
    assert report.total_rows == 3
    assert errors_of(report) == [(5, "区划代码")]


def test_file_level_problems(db, area):
    def first(data, **kw):
        report = import_file(db, "persons", data, "f", actor=None, now=NOW, **kw)
        assert not report.ok
        return report.errors[0].reason

    assert "空" in first(b"")
    assert "没有数据行" in first(csv_bytes(PERSON_HEADERS, []))
    assert ".xls" in first(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 100)
    assert ".xlsx" in first(b"PK\x03\x04broken")
    assert "不支持的编码" in first(csv_bytes(PERSON_HEADERS, [["x"]]), encoding="latin-1")
    bad_line = csv_bytes(PERSON_HEADERS, person_rows(area, 3))
    lines = bad_line.split(b"\r\n")
    lines[3] = lines[3].replace("张".encode(), "张".encode("gbk"))
    assert "第4行不是有效的UTF-8编码" in first(b"\r\n".join(lines))


def test_unknown_kind(db):
    with pytest.raises(NotFound):
        import_file(db, "aliens", b"x", "f", actor=None, now=NOW)


# ---------------------------------------------------------------- scope and duty


def test_clerk_cannot_import_a_person_of_another_village(db, area):
    rows = person_rows(area, 2)
    rows[1][2] = area.village2
    clerk = user(db, area.clerk)
    before = count(db, Person)
    report = import_file(db, "persons", csv_bytes(PERSON_HEADERS, rows), "p.csv", actor=clerk, now=NOW)
    assert errors_of(report) == [(3, "区划代码")]
    assert "超出本辖区" in report.errors[0].reason
    assert count(db, Person) == before
    rows.pop()
    assert import_file(db, "persons", csv_bytes(PERSON_HEADERS, rows), "p.csv", actor=clerk, now=NOW).ok


def test_clerk_cannot_move_a_person_out_of_another_village(db, area):
    rows = person_rows(area, 1)
    rows[0][2] = area.village2
    assert import_file(db, "persons", csv_bytes(PERSON_HEADERS, rows), "p.csv", actor=None, now=NOW).ok
    rows[0][2] = area.village
    report = import_file(db, "persons", csv_bytes(PERSON_HEADERS, rows), "p.csv", actor=user(db, area.clerk), now=NOW)
    assert errors_of(report) == [(2, "身份证号")] and "超出本辖区" in report.errors[0].reason


def test_clerk_may_not_import_the_catalogue_or_regions(db, area):
    clerk = user(db, area.clerk)
    for kind in ("catalogue", "regions", "banks", "departments"):
        with pytest.raises(Forbidden):
            import_file(db, kind, b"x", "c.csv", actor=clerk, now=NOW)


# ---------------------------------------------------------------- cards


def _people_with_ids(db, area, n: int) -> list[str]:
    rows = person_rows(area, n)
    assert import_file(db, "persons", csv_bytes(PERSON_HEADERS, rows), "p.csv", actor=None, now=NOW).ok
    return [r[0] for r in rows]


def test_cards_import_sets_card_flags_and_protects_accounts(db, area):
    ids = _people_with_ids(db, area, 2)
    rows = [[new_card(), ids[0], area.bank, new_account(area), "正常", "2021-06-30"],
            [new_card(), ids[1], area.bank, new_account(area), "挂失", "2021/06/30"]]
    report = import_file(db, "cards", csv_bytes(CARD_HEADERS, rows), "c.csv", actor=user(db, area.county_user), now=NOW)
    assert report.ok, report.errors
    assert report.added == 2
    db.expire_all()
    active, lost = person_by_id(db, ids[0]), person_by_id(db, ids[1])
    assert active.has_active_card is True and lost.has_active_card is False
    card = db.scalar(select(Card).where(Card.card_number == rows[0][0]))
    assert reveal(crypto.BANK_ACCOUNT, card.bank_account_enc) == rows[0][3]
    assert card.bank_account_masked == f"{rows[0][3][:4]} **** **** {rows[0][3][-4:]}"
    assert card.issued_on == date(2021, 6, 30)
    # Re-import: nothing changes. Then the lost card is reported active again: one update.
    again = import_file(db, "cards", csv_bytes(CARD_HEADERS, rows), "c.csv", actor=None, now=NOW)
    assert (again.added, again.updated, again.unchanged) == (0, 0, 2)
    rows[1][4] = "正常"
    found = import_file(db, "cards", csv_bytes(CARD_HEADERS, rows), "c.csv", actor=None, now=NOW)
    assert (found.added, found.updated, found.unchanged) == (0, 1, 1)
    db.expire_all()
    assert person_by_id(db, ids[1]).has_active_card is True
    assert db.scalar(select(Card).where(Card.card_number == rows[1][0])).status_changed_on == NOW.date()


def test_duplicate_card_in_file_and_card_of_another_person(db, area):
    ids = _people_with_ids(db, area, 3)
    first = [[new_card(), ids[0], area.bank, new_account(area), "正常", "2021-06-30"]]
    assert import_file(db, "cards", csv_bytes(CARD_HEADERS, first), "c.csv", actor=None, now=NOW).ok
    before = count(db, Card)
    dup = new_card()
    rows = [[dup, ids[1], area.bank, new_account(area), "正常", "2021-06-30"],
            [dup, ids[2], area.bank, new_account(area), "正常", "2021-06-30"],
            [first[0][0], ids[2], area.bank, new_account(area), "注销", "2021-06-30"],
            [new_card(), ids[2], area.bank, first[0][3], "注销", "2021-06-30"]]
    report = import_file(db, "cards", csv_bytes(CARD_HEADERS, rows), "c.csv", actor=None, now=NOW)
    assert errors_of(report) == [(3, "社会保障卡号"), (4, "社会保障卡号"), (5, "银行账号")]
    assert "与第2行重复" in report.errors[0].reason
    assert "其他人员名下" in report.errors[1].reason and ids[0][:6] + "********" in report.errors[1].reason
    assert "其他人员名下" in report.errors[2].reason
    assert count(db, Card) == before


def test_cards_person_bank_dates_and_one_active_card(db, area):
    ids = _people_with_ids(db, area, 2)
    stranger = new_id(area)
    future = (NOW + timedelta(days=2)).date().isoformat()
    rows = [[new_card(), stranger, area.bank, new_account(area), "正常", "2021-01-01"],
            [new_card(), ids[0], "NOBANK", new_account(area), "正常", "2021-01-01"],
            [new_card(), ids[1], area.bank, "12345", "作废", future],
            [new_card(), ids[0], area.bank, new_account(area), "正常", "2021-01-01"]]
    report = import_file(db, "cards", csv_bytes(CARD_HEADERS, rows), "c.csv", actor=None, now=NOW)
    assert errors_of(report) == [(2, "身份证号"), (3, "银行代码"), (4, "银行账号"), (4, "卡状态"), (4, "发卡日期")]
    rows[1][2] = area.bank
    rows = rows[1:2] + rows[3:]
    report = import_file(db, "cards", csv_bytes(CARD_HEADERS, rows), "c.csv", actor=None, now=NOW)
    assert errors_of(report) == [(2, "社会保障卡号"), (3, "社会保障卡号")]
    assert "一人只能有一张正常卡" in report.errors[0].reason


def test_card_name_cross_check_and_scope(db, area):
    rows = person_rows(area, 1)
    rows[0][2] = area.village2
    assert import_file(db, "persons", csv_bytes(PERSON_HEADERS, rows), "p.csv", actor=None, now=NOW).ok
    cards = [[new_card(), rows[0][0], "王五", area.bank, new_account(area), "2021-01-01"]]
    headers = ["社会保障卡号", "身份证号", "姓名", "银行代码", "银行账号", "发卡日期"]
    report = import_file(db, "cards", csv_bytes(headers, cards), "c.csv", actor=user(db, area.clerk), now=NOW)
    assert errors_of(report) == [(2, "身份证号"), (2, "姓名")]
    assert "超出本辖区" in report.errors[0].reason and "不一致" in report.errors[1].reason


# ---------------------------------------------------------------- regions, departments, banks, catalogue


def test_regions_any_order_parents_and_full_names(db, area):
    new_town = area.township[:6] + "002000"
    rows = [[new_town[:9] + "001", "新村", "", ""],
            [new_town, "新镇", "", ""],
            [area.village[:9] + "003", "三村", "测试省测试市测试县测试镇三村", area.township]]
    headers = ["区划代码", "名称", "全称", "上级代码"]
    report = import_file(db, "regions", csv_bytes(headers, rows), "r.csv", actor=user(db, area.finance), now=NOW)
    assert report.ok, report.errors
    assert report.added == 3
    village = db.get(Region, new_town[:9] + "001")
    assert village.parent_code == new_town and village.level == "village"
    assert db.get(Region, new_town).parent_code == area.county
    assert village.full_name == "测试省测试县新镇新村"  # the county row's full name is 测试省测试县 in this fixture
    again = import_file(db, "regions", csv_bytes(headers, rows), "r.csv", actor=None, now=NOW)
    assert (again.added, again.updated, again.unchanged) == (0, 0, 3)


def test_region_errors(db, area):
    rows = [[area.village[:9] + "004", "四村", area.village2], ["9", "坏", ""], [area.province, "外省", ""]]
    report = import_file(db, "regions", csv_bytes(["区划代码", "名称", "上级代码"], rows), "r.csv",
                         actor=user(db, area.finance), now=NOW)
    assert errors_of(report) == [(2, "上级代码"), (3, "区划代码"), (4, "区划代码")]
    assert "超出本辖区" in report.errors[2].reason


def test_departments_and_banks(db, area):
    rows = [[f"{area.department}-X", "测试农业农村局", area.county, "农业农村"]]
    report = import_file(db, "departments", csv_bytes(["部门代码", "部门名称", "区划代码", "行业"], rows), "d.csv",
                         actor=None, now=NOW)
    assert report.ok and report.added == 1
    banks = [[area.bank, "改名银行", "621700"], [f"{area.bank}X", "新银行", ""]]
    data = csv_bytes(["银行代码", "银行名称", "账号前缀"], banks)
    report = import_file(db, "banks", data, "b.csv", actor=None, now=NOW)
    assert report.ok and (report.added, report.updated) == (1, 1)


CATALOGUE_HEADERS = ["项目代码", "项目名称", "类别代码", "类别名称", "资金级次", "主管部门代码", "补贴对象",
                     "补贴标准（元）", "发放频次", "是否村级公示", "是否家庭经济状况核查", "说明"]


def _catalogue_rows(area) -> list[list[object]]:
    c = area.department
    return [[f"{c}-I1", "低保金", f"{c}-C1", "最低生活保障", "中央", c, "人", "650.00", "月", "是", "是", "按月"],
            [f"{c}-I2", "特困供养", f"{c}-C1", "最低生活保障", "省", c, "人", "1,020.5", "月", "", "", ""],
            [f"{c}-I3", "耕地地力补贴", f"{c}-C2", "耕地保护", "中央", c, "亩", "¥95.8", "年", "否", "否", ""]]


def test_catalogue_import_amounts_in_fen(db, area):
    from yikatong.catalog.models import SubsidyCategory, SubsidyItem

    rows = _catalogue_rows(area)
    report = import_file(db, "catalogue", csv_bytes(CATALOGUE_HEADERS, rows), "c.csv", actor=user(db, area.finance),
                         now=NOW)
    assert report.ok, report.errors
    assert report.added == 3 and report.extra == {"categories_added": 2, "categories_updated": 0}
    items = {i.code: i for i in db.scalars(select(SubsidyItem).where(SubsidyItem.department_code == area.department))}
    assert [items[r[0]].standard_fen for r in rows] == [65000, 102050, 9580]
    assert items[rows[1][0]].village_publicity is True and items[rows[1][0]].means_tested is False
    assert db.get(SubsidyCategory, rows[2][2]).name == "耕地保护"
    again = import_file(db, "catalogue", xlsx_bytes(CATALOGUE_HEADERS, rows), "c.xlsx", actor=None, now=NOW)
    assert (again.added, again.updated, again.unchanged) == (0, 0, 3), again.errors


def test_a_changed_standard_is_added_as_a_dated_standard(db, area):
    from datetime import date

    from yikatong.catalog.models import SubsidyItem
    from yikatong.catalog.service import standard_book, standard_history

    rows = _catalogue_rows(area)
    assert import_file(db, "catalogue", csv_bytes(CATALOGUE_HEADERS, rows), "c.csv", actor=None, now=NOW).ok
    low, special = rows[0][0], rows[1][0]
    # 低保金 raised from 2026-07-01 (a date in the file); 特困供养 cut without a date: from this month
    headers = CATALOGUE_HEADERS + ["标准生效日期"]
    changed = [r + [""] for r in rows]
    changed[0][7], changed[0][-1] = "700", "2026-07-01"
    changed[1][7] = "1000"
    report = import_file(db, "catalogue", csv_bytes(headers, changed), "c2.csv", actor=user(db, area.finance),
                         now=NOW)
    assert report.ok, report.errors
    assert (report.added, report.updated, report.unchanged) == (0, 2, 1)
    assert report.extra["standards_added"] == 2
    book = standard_book(db, [low, special])
    assert [book.standard(low, area.county, d) for d in (date(2026, 6, 1), date(2026, 7, 1))] == [65000, 70000]
    # NOW is 2026-03-01 09:00 in UTC, so the Beijing month is March
    assert [book.standard(special, area.county, d) for d in (date(2026, 2, 1), date(2026, 3, 1))] == [102050, 100000]
    assert [h.standard_fen for h in standard_history(db, low)] == [70000, 65000]  # newest first, nothing lost
    # the item shows the standard in force today: 低保金's raise is not in force yet
    assert [db.get(SubsidyItem, c).standard_fen for c in (low, special)] == [65000, 100000]
    again = import_file(db, "catalogue", csv_bytes(headers, changed), "c2.csv", actor=None, now=NOW)
    assert (again.updated, again.unchanged, again.extra.get("standards_added", 0)) == (0, 3, 0)


@pytest.mark.parametrize("amount", ["12.345", "abc", "-5", "1e3", ""])
def test_malformed_amount_imports_nothing(db, area, amount):
    from yikatong.catalog.models import SubsidyItem

    rows = _catalogue_rows(area)
    rows[1][7] = amount
    before = count(db, SubsidyItem)
    report = import_file(db, "catalogue", csv_bytes(CATALOGUE_HEADERS, rows), "c.csv", actor=None, now=NOW)
    assert errors_of(report) == [(3, "补贴标准（元）")]
    assert ("金额" in report.errors[0].reason) or ("必填" in report.errors[0].reason)
    assert count(db, SubsidyItem) == before


def test_catalogue_checks_enums_departments_and_category_names(db, area):
    rows = _catalogue_rows(area)
    rows[0][4] = "乡"
    rows[1][3] = "别的名字"
    rows[2][5] = "NODEPT"
    rows[2][8] = "每周"
    report = import_file(db, "catalogue", csv_bytes(CATALOGUE_HEADERS, rows), "c.csv", actor=None, now=NOW)
    assert errors_of(report) == [(2, "资金级次"), (3, "类别名称"), (4, "主管部门代码"), (4, "发放频次")]
    assert "中央、省、市、县" in report.errors[0].reason


def test_xlsx_amount_number_cells(db, area):
    from yikatong.catalog.models import SubsidyItem

    rows = _catalogue_rows(area)
    rows[0][7], rows[1][7], rows[2][7] = 650, 12.35, 0.1
    report = import_file(db, "catalogue", xlsx_bytes(CATALOGUE_HEADERS, rows), "c.xlsx", actor=None, now=NOW)
    assert report.ok, report.errors
    fen = [db.get(SubsidyItem, r[0]).standard_fen for r in rows]
    assert fen == [65000, 1235, 10]
    rows[1][7] = 12.345
    report = import_file(db, "catalogue", xlsx_bytes(CATALOGUE_HEADERS, rows), "c.xlsx", actor=None, now=NOW)
    assert errors_of(report) == [(3, "补贴标准（元）")]


def test_households_import_and_scope(db, area):
    rows = [[f"{area.village}-H1", area.village, "地址1"], [f"{area.village}-H2", area.village2, "地址2"]]
    report = import_file(db, "households", csv_bytes(["户编号", "区划代码", "地址"], rows), "h.csv",
                         actor=user(db, area.clerk), now=NOW)
    assert errors_of(report) == [(3, "区划代码")]
    assert count(db, Household, Household.code.in_([r[0] for r in rows])) == 0


def test_error_list_is_capped_but_counted(db, area):
    rows = person_rows(area, 1200)
    for row in rows:
        row[5] = "bad"
    report = import_file(db, "persons", csv_bytes(PERSON_HEADERS, rows), "many.csv", actor=None, now=NOW)
    assert report.error_count == 1200 and len(report.errors) == 1000
    assert report.errors[0].row == 2 and report.errors[-1].row == 1001


def test_data_under_a_column_without_header(db, area):
    rows = [r + ["stray"] for r in person_rows(area, 1)]
    headers = [*PERSON_HEADERS, ""]
    report = import_file(db, "persons", csv_bytes(headers, rows), "p.csv", actor=None, now=NOW)
    assert errors_of(report) == [(2, "第I列")]
    assert report.errors[0].reason == "第I列没有列名，但本行有数据"


def test_a_thousand_rows_in_one_go(db, area):
    # Large enough to refresh PostgreSQL's statistics after the write (upserts.ANALYZE_AFTER).
    rows = [[f"{area.village}-K{i:04d}", area.village, ""] for i in range(1000)]
    data = csv_bytes(["户编号", "区划代码", "地址"], rows)
    assert import_file(db, "households", data, "h.csv", actor=None, now=NOW).added == 1000
    again = import_file(db, "households", data, "h.csv", actor=None, now=NOW)
    assert (again.added, again.updated, again.unchanged) == (0, 0, 1000)
