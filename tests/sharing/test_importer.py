"""Importing shared data sets: the three formats, what is stored (hashes that join the registry,
masks, fen, no clear ID number anywhere), every kind of refusal with row, column and Chinese reason and
nothing stored, provenance, and which snapshots are in force. Through the rolled-back `db` session."""

from __future__ import annotations

import hashlib
import io
from datetime import date, datetime
from decimal import Decimal

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select

from yikatong.core import crypto
from yikatong.core.errors import Forbidden, Invalid, NotFound
from yikatong.core.masking import mask_id_number
from yikatong.core.protect import reveal, search_hash
from yikatong.registry.models import Person
from yikatong.security.models import AuditEvent
from yikatong.sharing import store
from yikatong.sharing.importer import import_dataset
from yikatong.sharing.models import SharedSnapshot

from .conftest import (
    AS_OF,
    DEATH_HEADERS,
    NOW,
    VEHICLE_HEADERS,
    agency,
    csv_bytes,
    death_rows,
    new_id,
    parquet_bytes,
    xlsx_bytes,
)


def run(db, dataset: str, data: bytes, agency_name: str | None = None, **kw):
    kw.setdefault("as_of", AS_OF)
    return import_dataset(db, dataset, data, filename=kw.pop("filename", f"{dataset}.csv"),
                          agency=agency_name or agency(), actor=kw.pop("actor", None), now=kw.pop("now", NOW), **kw)


def stored_table(db, outcome) -> pa.Table:
    return store.read_snapshot(db.get(SharedSnapshot, outcome.snapshot.id))


def snapshots(db) -> int:
    return db.scalar(select(func.count()).select_from(SharedSnapshot))


def errors_of(outcome) -> list[tuple[int | None, str, str]]:
    return [(e.row, e.column, e.reason) for e in outcome.errors]


# ---------------------------------------------------------------- formats and what is stored


def test_csv_with_bom_stores_hashes_that_join_the_registry_and_no_clear_number(city, db):
    person = db.scalars(select(Person).order_by(Person.id)).first()
    number = reveal(crypto.ID_NUMBER, person.id_number_enc)
    rows = [[number, person.name, "2026-03-15", "火化记录"], *death_rows(2)]
    outcome = run(db, "deaths", csv_bytes(DEATH_HEADERS, rows, bom=True))
    assert outcome.ok, outcome.errors
    assert (outcome.file_format, outcome.total_rows, outcome.rows) == ("csv", 3, 3)
    table = stored_table(db, outcome)
    assert table.schema == store.arrow_schema(store.BY_CODE["deaths"])
    by_hash = {r["id_hash"]: r for r in table.to_pylist()}
    row = by_hash[person.id_number_hash]  # the same keyed hash as the registry: rules join on it
    assert row["id_masked"] == mask_id_number(number) == person.id_number_masked
    assert row["death_date"] == date(2026, 3, 15) and row["name"] == person.name
    for other in rows[1:]:
        assert search_hash(crypto.ID_NUMBER, other[0]) in by_hash
    # No clear number anywhere: not in any stored value, not in the file's bytes.
    path = store.snapshot_path(db.get(SharedSnapshot, outcome.snapshot.id))
    raw = path.read_bytes()
    for r in rows:
        assert r[0].encode() not in raw
        assert all(r[0] not in str(v) for record in table.to_pylist() for v in record.values())
    assert table.column("id_hash").to_pylist() == sorted(table.column("id_hash").to_pylist())  # sorted for look-ups


def test_gb18030_csv_and_english_aliases(db):
    rows = death_rows(2)
    data = csv_bytes(["id_number", "name", "death_date", "source"], rows, encoding="gb18030")
    wrong = run(db, "deaths", data)  # read as UTF-8 it is not valid
    assert not wrong.ok and "UTF-8" in wrong.errors[0].reason
    outcome = run(db, "deaths", data, encoding="gb18030")
    assert outcome.ok, outcome.errors
    assert sorted(stored_table(db, outcome).column("name").to_pylist()) == sorted(r[1] for r in rows)


def test_xlsx_with_dates_and_number_amounts(db):
    owner = new_id()
    rows = [[owner, "川K12345", "小型轿车", 158000.5, datetime(2023, 5, 6)],
            [owner, "川K54321", "摩托车", "6800", "2024/01/02"]]
    outcome = run(db, "vehicles", xlsx_bytes(VEHICLE_HEADERS, rows), filename="v.xlsx")
    assert outcome.ok, outcome.errors
    assert outcome.file_format == "xlsx"
    got = sorted(stored_table(db, outcome).to_pylist(), key=lambda r: r["plate"])
    assert [(r["plate"], r["value_fen"], r["registered_on"]) for r in got] == [
        ("川K12345", 15800050, date(2023, 5, 6)), ("川K54321", 680000, date(2024, 1, 2))]
    assert {r["id_hash"] for r in got} == {search_hash(crypto.ID_NUMBER, owner)}


def test_parquet_with_typed_columns(db):
    a, b = new_id(), new_id(male=False)
    data = parquet_bytes({
        "身份证号码": pa.array([a, b]),
        "姓名": pa.array(["测试甲", "测试乙"]),
        "补贴项目代码": pa.array(["ZS007", "ZS007"]).dictionary_encode(),
        "所属期起": pa.array([date(2026, 1, 1), date(2026, 2, 1)], pa.date32()),
        "period_end": pa.array(["2026-01-31", "2026-02-28"]),
        "发放金额（元）": pa.array([Decimal("650.50"), Decimal("650")], pa.decimal128(10, 2)),
        "paid_on": pa.array([datetime(2026, 2, 10), datetime(2026, 3, 10)], pa.timestamp("ms")),
        "发放系统": pa.array(["省级平台", "省级平台"]),
    })
    outcome = run(db, "other_payments", data, filename="pay.parquet")
    assert outcome.ok, outcome.errors
    assert outcome.file_format == "parquet"
    got = {r["id_hash"]: r for r in stored_table(db, outcome).to_pylist()}
    first = got[search_hash(crypto.ID_NUMBER, a)]
    assert (first["period_start"], first["period_end"], first["amount_fen"], first["paid_on"]) == (
        date(2026, 1, 1), date(2026, 1, 31), 65050, date(2026, 2, 10))
    assert got[search_hash(crypto.ID_NUMBER, b)]["amount_fen"] == 65000

    floats = parquet_bytes({"权利人身份证号码": [a], "不动产权证号": ["川(2024)1号"], "建筑面积（平方米）": [89.5],
                            "登记日期": pa.array([date(2024, 1, 1)], pa.date32())})
    outcome = run(db, "real_estate", floats, filename="re.parquet")
    assert outcome.ok, outcome.errors
    assert stored_table(db, outcome).column("area_centi").to_pylist() == [8950]


def test_parquet_id_number_as_int64_is_refused_as_a_column(db):
    before = snapshots(db)
    data = parquet_bytes({"身份证号码": pa.array([511002189001010011], pa.int64()), "姓名": ["测试"],
                          "死亡日期": pa.array([date(2026, 1, 1)], pa.date32())})
    outcome = run(db, "deaths", data, filename="d.parquet")
    assert not outcome.ok and outcome.error_count == 1
    error = outcome.errors[0]
    assert (error.row, error.column) == (1, "身份证号码")
    assert "数值类型" in error.reason and "字符串" in error.reason
    bad_type = parquet_bytes({"身份证号码": [new_id()], "姓名": ["测试"], "死亡日期": [True]})
    outcome = run(db, "deaths", bad_type, filename="d.parquet")
    assert not outcome.ok and "bool" in outcome.errors[0].reason
    assert snapshots(db) == before


def test_quoted_csv_with_blank_lines_keeps_row_numbers(db):
    """Quotes and blank lines take the exact (Python) reader; row numbers are the lines users see,
    a quoted cell may span lines (and is refused: text columns hold one line)."""
    good, bad = new_id(), new_id()
    wrong = bad[:-1] + ("0" if bad[-1] != "0" else "1")
    text = ("身份证号码,姓名,死亡日期,信息来源\r\n"
            f"{good},测试甲,2026-01-01,\"户籍注销,补录\"\r\n"  # 2
            "\r\n"  # 3: blank
            f"{wrong},测试乙,2026-01-02,\r\n"  # 4
            ",,,\r\n"  # 5: blank (only commas)
            f"{new_id()},测试丙,2026-01-03,\"两\r\n行\"\r\n"  # 6-7
            f"{new_id()},测试丁,2026-01-32,\r\n")  # 8
    outcome = run(db, "deaths", text.encode())
    assert errors_of(outcome) == [(4, "身份证号码", "身份证号校验位错误"), (6, "信息来源", "含有换行或控制字符"),
                                  (8, "死亡日期", "日期格式错误，应为 YYYY-MM-DD，如 2024-03-15")]
    assert outcome.errors[0].value == mask_id_number(wrong) and outcome.total_rows == 4
    # Without quotes and blank lines the fast reader takes it: the same reasons, on the same lines.
    plain = (f"身份证号码,姓名,死亡日期,信息来源\n{good},测试甲,2026-01-01,户籍注销\n{wrong},测试乙,2026-01-02,\n"
             f",,,\n{new_id()},测试丁,2026-01-32,\n")
    outcome = run(db, "deaths", plain.encode())
    assert errors_of(outcome) == [(3, "身份证号码", "身份证号校验位错误"),
                                  (5, "死亡日期", "日期格式错误，应为 YYYY-MM-DD，如 2024-03-15")]
    assert outcome.total_rows == 3


def test_ragged_rows_and_cells_without_a_header(db):
    text = (f"身份证号码,姓名,死亡日期,信息来源,\n{new_id()},测试甲,2026-01-01,,多余\n"
            f"{new_id()},测试乙,2026-01-02\n{new_id()},测试丙,2026-01-03,,,还有\n")
    outcome = run(db, "deaths", text.encode())
    assert errors_of(outcome) == [(2, "第E列", "第E列没有列名，但本行有数据"),
                                  (4, "第F列", "第F列没有列名，但本行有数据")]


def test_identical_rows_merged_unless_the_data_set_has_a_key(db):
    owner = new_id()
    row = [owner, "川A00001", "货车", "120000", "2022-02-02"]
    outcome = run(db, "vehicles", csv_bytes(VEHICLE_HEADERS, [row, row, [*row[:1], "川A00002", *row[2:]]]))
    assert outcome.ok and (outcome.total_rows, outcome.rows, outcome.duplicates_merged) == (3, 2, 1)
    rows = death_rows(2)
    again = [rows[1][0], "测试重", "2026-05-05", ""]
    outcome = run(db, "deaths", csv_bytes(DEATH_HEADERS, [*rows, again]))
    assert errors_of(outcome) == [(4, "身份证号码", "与第3行重复：死亡人员中同一身份证号码只能有一行")]
    assert outcome.errors[0].value == mask_id_number(rows[1][0])
    card = [["C0001", new_id(), "挂失", "2026-01-05"], ["C0001", new_id(), "正常", "2026-01-05"]]
    outcome = run(db, "card_registry", csv_bytes(["社会保障卡号", "持卡人身份证号码", "卡状态", "变更日期"], card))
    assert errors_of(outcome) == [(3, "社会保障卡号", "与第2行重复：社保卡状态中同一社会保障卡号、变更日期只能有一行")]


# ---------------------------------------------------------------- refusals: nothing stored


def test_every_bad_cell_is_reported_and_nothing_is_stored(db):
    before = snapshots(db)
    good = new_id()
    wrong_check = good[:-1] + ("0" if good[-1] != "0" else "1")
    rows = [
        [wrong_check, "测试甲", "2026-01-01", ""],  # row 2: bad ID
        [new_id(), "", "2026-13-01", ""],  # row 3: name empty, bad date
        [new_id(), "测试丙", "2026-02-30", "x" * 41],  # row 4: no such day, source too long
    ]
    outcome = run(db, "deaths", csv_bytes(DEATH_HEADERS, rows))
    assert not outcome.ok and outcome.snapshot is None
    assert errors_of(outcome) == [
        (2, "身份证号码", "身份证号校验位错误"),
        (3, "姓名", "必填项为空"),
        (3, "死亡日期", "日期格式错误，应为 YYYY-MM-DD，如 2024-03-15"),
        (4, "死亡日期", "日期格式错误，应为 YYYY-MM-DD，如 2024-03-15"),
        (4, "信息来源", "长度不能超过40个字符，实际41个"),
    ]
    assert outcome.errors[0].value == mask_id_number(wrong_check)
    assert snapshots(db) == before
    assert not db.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "shared.import",
                                                                            AuditEvent.at == NOW))


def test_missing_column_is_one_error_naming_it(db):
    outcome = run(db, "deaths", csv_bytes(["身份证号码", "姓名", "信息来源"], [[new_id(), "测试", "x"]]))
    assert errors_of(outcome) == [(1, "死亡日期", "缺少必填列“死亡日期”（也可写作 death_date）")]
    outcome = run(db, "deaths", csv_bytes([*DEATH_HEADERS, "性别"], [[new_id(), "测试", "2026-01-01", "", "男"]]))
    assert outcome.errors[0].column == "性别" and outcome.errors[0].reason.startswith("未知的列名（第E列）")


def test_amounts_choices_and_periods(db):
    owner = new_id()
    vehicles = [[owner, "川A1", "货车", "-5", "2022-02-02"], [owner, "川A2", "货车", "12.345", "2022-02-02"]]
    outcome = run(db, "vehicles", csv_bytes(VEHICLE_HEADERS, vehicles))
    assert errors_of(outcome) == [
        (2, "车辆价值（元）", "金额不能为负数"),
        (3, "车辆价值（元）", "金额格式错误，应为不超过两位小数的非负元金额，如 123.45")]
    hukou = [[new_id(), "测试", "511002001001", "", "外迁", "", ""],
             [new_id(), "测试", "511002001001", "", "迁出", "2001-01-01", ""],
             [new_id(), "测试", "5110", "", "正常", "", ""]]
    outcome = run(db, "hukou", csv_bytes(["身份证号码", "姓名", "户籍地区划代码", "户号", "户籍状态", "迁入日期",
                                          "迁出日期"], hukou))
    assert errors_of(outcome) == [(2, "户籍状态", "应为以下之一：正常、迁出、注销"),
                                  (3, "迁出日期", "户籍状态为迁出时须填写迁出日期")]
    payroll = [[new_id(), "测试", "某局", "2020-05-01", "2020-04-30"], [new_id(), "测试", "某局", "2020-05-01", ""]]
    outcome = run(db, "payroll", csv_bytes(["身份证号码", "姓名", "工作单位", "起始日期", "终止日期"], payroll))
    assert errors_of(outcome) == [(2, "终止日期", "终止日期早于起始日期（2020-05-01）")]
    prisoners = [[new_id(), "测试", "2024-01-01", "2023-12-31"]]
    outcome = run(db, "prisoners", csv_bytes(["身份证号码", "姓名", "收押日期", "释放日期"], prisoners))
    assert errors_of(outcome) == [(2, "释放日期", "释放日期早于收押日期（2024-01-01）")]
    payments = [[new_id(), "测试", "ZS007", "2026-02-01", "2026-01-31", "650", "2026-02-05", "省平台"]]
    outcome = run(db, "other_payments", csv_bytes(["身份证号码", "姓名", "补贴项目代码", "所属期起", "所属期止",
                                                   "发放金额（元）", "发放日期", "发放系统"], payments))
    assert errors_of(outcome) == [(2, "所属期止", "所属期止早于所属期起（2026-02-01）")]


def test_region_codes_are_padded(db):
    hukou = [[new_id(), "测试", "511002", "H1", "正常", "", ""],
             [new_id(), "测试", "511002001001", "H2", "注销", "", "2026-01-01"]]
    outcome = run(db, "hukou", csv_bytes(["身份证号码", "姓名", "户籍地区划代码", "户号", "户籍状态", "迁入日期",
                                          "迁出日期"], hukou))
    assert outcome.ok, outcome.errors
    assert sorted(stored_table(db, outcome).column("region_code").to_pylist()) == ["511002000000", "511002001001"]


def test_excel_number_id_is_refused(db):
    rows = [[int(new_id()[:15]), "测试", "2026-01-01", ""], [new_id(), "测试", "2026-01-01", ""]]
    outcome = run(db, "deaths", xlsx_bytes(DEATH_HEADERS, rows), filename="d.xlsx")
    assert errors_of(outcome) == [(2, "身份证号码", "身份证号码被Excel存为数字，请将该列设置为文本格式后重新填写")]


def test_empty_files_and_bad_requests(db, users):
    assert run(db, "deaths", csv_bytes(DEATH_HEADERS, [])).errors[0].reason == "文件中没有数据行"
    assert run(db, "deaths", b"").errors[0].reason == "文件是空的"
    with pytest.raises(Invalid, match="不能晚于今天"):
        run(db, "deaths", csv_bytes(DEATH_HEADERS, death_rows(1)), as_of=date(2026, 12, 1))
    with pytest.raises(Invalid, match="提供数据的单位"):
        run(db, "deaths", csv_bytes(DEATH_HEADERS, death_rows(1)), agency_name="  ")
    with pytest.raises(NotFound):
        run(db, "nothing", csv_bytes(DEATH_HEADERS, death_rows(1)))
    with pytest.raises(Forbidden):
        run(db, "deaths", csv_bytes(DEATH_HEADERS, death_rows(1)), actor=users["village_clerk"])


def test_error_list_stops_at_1000_but_all_are_counted(db):
    rows = [["123", "测试", "2026-01-01", ""] for _ in range(1500)]
    outcome = run(db, "deaths", csv_bytes(DEATH_HEADERS, rows))
    assert outcome.error_count == 1500 and len(outcome.errors) == 1000
    assert [e.row for e in outcome.errors[:3]] == [2, 3, 4]


# ---------------------------------------------------------------- provenance and what is in force


def test_provenance_and_audit(db, users):
    finance = users["city_finance"]
    data = csv_bytes(DEATH_HEADERS, death_rows(3))
    name = agency()
    outcome = run(db, "deaths", data, agency_name=name, actor=finance, filename="死亡名单.csv")
    snap = db.get(SharedSnapshot, outcome.snapshot.id)
    assert (snap.dataset, snap.agency, snap.as_of, snap.filename, snap.file_format, snap.rows) == (
        "deaths", name, AS_OF, "死亡名单.csv", "csv", 3)
    assert snap.file_sha256 == hashlib.sha256(data).hexdigest() == outcome.sha256
    assert (snap.imported_at, snap.imported_by, snap.importer_name) == (NOW, finance.id, finance.display_name)
    assert store.snapshot_path(snap).is_file()
    event = db.scalars(select(AuditEvent).where(AuditEvent.action == "shared.import",
                                                AuditEvent.object_id == str(snap.id),
                                                AuditEvent.detail.contains(name))).one()
    assert event.username == finance.username and '"rows": 3' in event.detail and event.at == NOW


def test_a_newer_delivery_replaces_the_older_of_the_same_agency_only(db):
    police, health = agency(), agency()
    first = run(db, "deaths", csv_bytes(DEATH_HEADERS, death_rows(2)), agency_name=police, as_of=date(2026, 9, 30))
    other = run(db, "deaths", csv_bytes(DEATH_HEADERS, death_rows(1)), agency_name=health, as_of=date(2026, 8, 31))
    newer = run(db, "deaths", csv_bytes(DEATH_HEADERS, death_rows(4)), agency_name=police, as_of=date(2026, 10, 31))
    late = run(db, "deaths", csv_bytes(DEATH_HEADERS, death_rows(1)), agency_name=police, as_of=date(2026, 7, 31))
    current = {s.id for s in store.current_snapshots(db)["deaths"] if s.agency in (police, health)}
    assert current == {newer.snapshot.id, other.snapshot.id}  # a late-imported older extract does not win
    assert first.snapshot.id not in current and late.snapshot.id not in current
    assert newer.snapshot.in_force and not late.snapshot.in_force

    from yikatong.sharing.service import dataset_view, overview

    view = dataset_view(db, None, "deaths")
    assert [s.id for s in view.history if s.agency == police] == [newer.snapshot.id, first.snapshot.id,
                                                                    late.snapshot.id]
    assert view.in_force(db.get(SharedSnapshot, newer.snapshot.id))
    assert not view.in_force(db.get(SharedSnapshot, first.snapshot.id))
    mine = sum(s.rows for s in view.current if s.agency in (police, health))
    assert mine == 5
    deaths = next(v for v in overview(db, None) if v.dataset.code == "deaths")
    assert deaths.rows_in_force == view.rows_in_force >= 5


def test_template_files_read_back_as_empty(db):
    from yikatong.sharing.service import template_bytes

    for fmt in ("csv", "xlsx"):
        data = template_bytes("deaths", fmt)
        outcome = run(db, "deaths", data)
        assert outcome.errors[0].reason == "文件中没有数据行", fmt
    xlsx = template_bytes("vehicles", "xlsx")
    sheet = load_workbook(io.BytesIO(xlsx)).worksheets[0]
    assert [c.value for c in sheet[1]] == VEHICLE_HEADERS
    assert sheet["A2"].number_format == "@"


def test_parquet_round_trip_of_every_data_set_schema(db):
    """Every data set's stored schema is what rules expect (store.arrow_schema), whatever came in."""
    for code in ("hukou", "retirees", "businesses", "village_cadres"):
        schema = store.arrow_schema(store.BY_CODE[code])
        assert all(pa.types.is_string(t) or pa.types.is_date(t) or pa.types.is_int64(t) for t in schema.types)
    a = new_id()
    rows = [[a, "测试", "511002001001", "村支书", a, "本人"]]
    outcome = run(db, "village_cadres", csv_bytes(["身份证号码", "姓名", "任职村区划代码", "职务", "干部身份证号码",
                                                   "与干部关系"], rows))
    assert outcome.ok, outcome.errors
    got = stored_table(db, outcome).to_pylist()[0]
    assert got["id_hash"] == got["cadre_id_hash"] == search_hash(crypto.ID_NUMBER, a)
    assert pq.read_schema(store.snapshot_path(db.get(SharedSnapshot, outcome.snapshot.id))).names == list(
        store.arrow_schema(store.BY_CODE["village_cadres"]).names)
