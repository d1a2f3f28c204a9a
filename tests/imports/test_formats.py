"""Readers, column parsers, templates and docs/data-formats.md agree with each other."""

from __future__ import annotations

import io
from datetime import date, datetime
from pathlib import Path

import pytest
from openpyxl import Workbook, load_workbook

from yikatong.core import readers
from yikatong.core.readers import FileError, Num, header_key, read_table
from yikatong.imports.kinds import KINDS, NUM_REFUSE, markdown_columns
from yikatong.imports.service import column_letter, match_headers
from yikatong.imports.template import template_bytes

DOC = Path(__file__).resolve().parents[2] / "docs" / "data-formats.md"


@pytest.mark.parametrize("kind", list(KINDS))
def test_docs_table_matches_the_column_specs(kind):
    assert markdown_columns(KINDS[kind]) in DOC.read_text(encoding="utf-8"), (
        f"docs/data-formats.md is out of date for {kind}: paste markdown_columns(KINDS[{kind!r}])")


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_example_parses_and_every_header_is_unique(kind):
    spec = KINDS[kind]
    seen: set[str] = set()
    for column in spec.columns:
        column.read(column.example)
        for name in (column.header, *column.aliases):
            assert header_key(name) not in seen
            seen.add(header_key(name))


@pytest.mark.parametrize("kind", list(KINDS))
def test_templates_have_the_headers_and_read_back_empty(kind):
    spec = KINDS[kind]
    for fmt in ("csv", "xlsx"):
        table = read_table(template_bytes(spec, fmt))
        assert table.headers[: len(spec.columns)] == [c.header for c in spec.columns]
        assert table.rows == []
        columns, errors = match_headers(spec, table.headers)
        assert errors == [] and len(columns) == len(spec.columns)


def test_csv_row_numbers_follow_the_lines_the_user_sees():
    data = b'a,b\r\n1,"two\r\nlines"\r\n\r\n,\r\n3,x\r\n'
    table = read_table(data)
    assert table.headers == ["a", "b"]
    assert table.rows == [(2, ["1", "two\r\nlines"]), (6, ["3", "x"])]


def test_csv_bom_tabs_utf16_and_full_width_spaces():
    assert read_table("\ufeff姓名,区划代码\n张三,1\n".encode()).headers == ["姓名", "区划代码"]
    assert read_table("姓名\t区划代码\n张三\t1\n".encode()).rows == [(2, ["张三", "1"])]
    assert read_table("姓名\t区划代码\n\u3000张三 \t1\n".encode("utf-16")).rows == [(2, ["张三", "1"])]


def test_csv_encoding_errors_name_the_line():
    data = "姓名\n张三\n李四\n".encode("gb18030")
    with pytest.raises(FileError) as e:
        read_table(data)
    assert e.value.row == 1 and "第1行不是有效的UTF-8编码，请另存为UTF-8（或指定编码 gb18030）" == e.value.reason
    assert read_table(data, "gb18030").rows == [(2, ["张三"]), (3, ["李四"])]
    assert read_table(data, "GBK").rows[0] == (2, ["张三"])
    with pytest.raises(FileError, match="引号"):
        read_table(b'a,b\n"1,2\n')


def test_xlsx_cells_numbers_dates_and_gaps():
    wb = Workbook()
    ws = wb.active
    ws.append(["a", "b", "c", "d"])
    ws.append([13812345678, 12.35, datetime(2024, 3, 15), True])
    ws["A5"] = "x"
    ws["D5"] = 0.1
    ws["B6"] = 45000
    ws["B6"].number_format = 'yyyy"年"m"月"d"日"'
    ws["C6"] = 1.5e17
    ws["A7"] = "=1+1"
    buf = io.BytesIO()
    wb.save(buf)
    table = read_table(buf.getvalue())
    assert table.rows[0] == (2, ["13812345678", "12.35", "2024-03-15", "是"])
    assert [type(c) for c in table.rows[0][1]] == [Num, Num, str, str]
    assert table.rows[1] == (5, ["x", None, None, "0.1"])
    assert table.rows[2] == (6, [None, date(2023, 3, 15).isoformat(), "150000000000000000"])
    assert len(table.rows) == 3  # the never-calculated formula row is empty


def test_xlsx_reader_agrees_with_openpyxl():
    wb = Workbook()
    ws = wb.active
    ws.append(["身份证号", "姓名", "金额", "日期"])
    for i in range(50):
        ws.append([f"51101119900101{i:04d}", f" 名{i} ", i * 1.25, datetime(2024, 1, 1 + i % 28)])
    buf = io.BytesIO()
    wb.save(buf)
    table = readers.read_xlsx(buf.getvalue())
    expected = [(cell.row, [readers._cell(c.value) for c in row])
                for row in load_workbook(io.BytesIO(buf.getvalue())).active.iter_rows(min_row=2)
                for cell in row[:1]]
    assert table.headers == ["身份证号", "姓名", "金额", "日期"]
    assert table.rows == expected
    assert table.rows[1] == (3, ["511011199001010001", "名1", "1.25", "2024-01-02"])


def test_xlsx_refuses_what_it_cannot_read():
    with pytest.raises(FileError, match="不是有效的 .xlsx 文件"):
        read_table(b"PK\x03\x04 not a zip")
    with pytest.raises(FileError, match="旧版 Excel"):
        read_table(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1 old")
    wb = Workbook()
    wb.active["B2"] = "no header"
    buf = io.BytesIO()
    wb.save(buf)
    with pytest.raises(FileError, match="第1行应为列名"):
        read_table(buf.getvalue())


def test_number_cells_are_refused_where_digits_may_be_lost():
    id_column = KINDS["persons"].column("id_number")
    assert id_column.numeric == NUM_REFUSE
    with pytest.raises(ValueError, match="身份证号被Excel存为数字，请将该列设置为文本格式"):
        id_column.read(Num("511011199001010034"))
    account = KINDS["cards"].column("bank_account")
    with pytest.raises(ValueError, match="可能已丢失位数"):
        account.read(Num("6217001234567890000"))
    assert KINDS["persons"].column("phone").read(Num("13812345678")) == "13812345678"
    assert KINDS["catalogue"].column("standard_yuan").read(Num("12.35")) == 1235


@pytest.mark.parametrize(("text", "fen"), [("650", 65000), ("650.5", 65050), ("1,020.50", 102050),
                                           ("¥95.80", 9580), ("95.8元", 9580), ("0", 0)])
def test_amounts_become_fen(text, fen):
    assert KINDS["catalogue"].column("standard_yuan").read(text) == fen


@pytest.mark.parametrize("text", ["12.345", "-5", "1e3", "abc", "12.", ".5", "NaN"])
def test_bad_amounts(text):
    with pytest.raises(ValueError, match="金额"):
        KINDS["catalogue"].column("standard_yuan").read(text)


def test_misc_parsers():
    persons = KINDS["persons"]
    assert persons.column("phone").read("+86 138-1234-5678") == "13812345678"
    assert persons.column("is_beneficiary").read("TRUE") is True
    assert persons.column("region_code").read("511002") == "511002000000"
    assert persons.column("name").read("阿依古丽·买买提") == "阿依古丽·买买提"
    with pytest.raises(ValueError):
        persons.column("name").read("张3")
    cards = KINDS["cards"]
    assert cards.column("issued_on").read("2024年3月5日") == date(2024, 3, 5)
    assert cards.column("issued_on").read("20240305") == date(2024, 3, 5)
    assert cards.column("card_number").read("a1234567b") == "A1234567B"


def test_header_rules():
    spec = KINDS["persons"]
    columns, errors = match_headers(spec, ["*身份证号", "NAME", "区划代码 ", "序号", None, "备注"])
    assert errors == [] and columns == {"id_number": 0, "name": 1, "region_code": 2}
    _, errors = match_headers(spec, ["身份证号", "id_number", "姓名", "区划代码", "手机"])
    assert [(e.column, e.reason[:3]) for e in errors] == [("id_number", "列重复"), ("手机", "未知的")]
    assert [column_letter(i) for i in (0, 25, 26, 701, 702)] == ["A", "Z", "AA", "ZZ", "AAA"]
