"""`ykt import`: plain-words help, a summary or the error table, exit status, templates."""

from __future__ import annotations

from sqlalchemy import select
from typer.testing import CliRunner

from yikatong.cli import app
from yikatong.core import crypto
from yikatong.core.db import new_session
from yikatong.core.protect import search_hash
from yikatong.imports.kinds import KINDS
from yikatong.registry.models import Person

from .conftest import csv_bytes
from .test_service import PERSON_HEADERS, person_rows

runner = CliRunner()


def stored(number: str) -> bool:
    with new_session() as s:
        return s.scalar(select(Person.id).where(Person.id_number_hash == search_hash(crypto.ID_NUMBER, number))) \
            is not None


def test_help_is_in_plain_words():
    result = runner.invoke(app, ["import", "--help"])
    assert result.exit_code == 0
    for kind in KINDS:
        assert kind in result.output
    result = runner.invoke(app, ["import", "persons", "--help"])
    assert result.exit_code == 0
    for words in ("--encoding", "--user", "--dry-run", "--report", "All or nothing", "身份证号"):
        assert words in result.output
    assert runner.invoke(app, ["import", "template", "--help"]).exit_code == 0


def test_import_then_reimport_then_bad_file(area, tmp_path):
    rows = person_rows(area, 3)
    good = tmp_path / "p.csv"
    good.write_bytes(csv_bytes(PERSON_HEADERS, rows))
    result = runner.invoke(app, ["import", "persons", str(good)])
    assert result.exit_code == 0, result.output
    assert "人员导入完成" in result.output and stored(rows[0][0])
    result = runner.invoke(app, ["import", "persons", str(good), "--user", area.county_user])
    assert result.exit_code == 0 and "│      3 │    0 │    0 │    3 │" in result.output

    bad_rows = person_rows(area, 2)
    bad_rows[1][2] = "99"
    bad = tmp_path / "bad.csv"
    bad.write_bytes(csv_bytes(PERSON_HEADERS, bad_rows))
    report = tmp_path / "errors.csv"
    result = runner.invoke(app, ["import", "persons", str(bad), "--report", str(report)])
    assert result.exit_code == 1
    assert "人员导入失败" in result.output and "区划代码" in result.output
    assert not stored(bad_rows[0][0])
    lines = report.read_text(encoding="utf-8-sig").splitlines()
    assert lines[0] == "行号,列名,值,原因" and lines[1].startswith("3,区划代码,99,")


def test_dry_run_gb18030_and_refusals(area, tmp_path):
    rows = person_rows(area, 1)
    path = tmp_path / "gbk.csv"
    path.write_bytes(csv_bytes(PERSON_HEADERS, rows, encoding="gb18030"))
    result = runner.invoke(app, ["import", "persons", str(path), "--encoding", "gb18030", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "未写入" in result.output and not stored(rows[0][0])
    result = runner.invoke(app, ["import", "persons", str(path)])
    assert result.exit_code == 1 and "UTF-8" in result.output
    result = runner.invoke(app, ["import", "catalogue", str(path), "--user", area.clerk])
    assert result.exit_code == 2 and "无权导入" in result.output
    result = runner.invoke(app, ["import", "persons", str(path), "--user", "nobody-here"])
    assert result.exit_code == 2


def test_template_command(tmp_path):
    out = tmp_path / "cards.xlsx"
    result = runner.invoke(app, ["import", "template", "cards", str(out)])
    assert result.exit_code == 0 and out.read_bytes().startswith(b"PK")
    out = tmp_path / "cards.txt"
    assert runner.invoke(app, ["import", "template", "cards", str(out), "--format", "csv"]).exit_code == 0
    assert out.read_text(encoding="utf-8-sig").startswith("社会保障卡号,身份证号")
    assert runner.invoke(app, ["import", "template", "aliens", str(out)]).exit_code == 2
