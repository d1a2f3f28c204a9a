"""`ykt sharing`: plain-words help, import (a table and the snapshot ID, or the error table and exit
status 1), list, history, template, datasets. The command commits: the test uses its own agency,
ID numbers nobody has (born 1890) and the deaths data set, and deletes its snapshot rows at the end."""

from __future__ import annotations

from sqlalchemy import select
from typer.testing import CliRunner

from yikatong.cli import app
from yikatong.core.db import new_session
from yikatong.sharing.datasets import DATASETS
from yikatong.sharing.models import SharedSnapshot

from .conftest import DEATH_HEADERS, agency, csv_bytes, death_rows, remove_snapshots

runner = CliRunner()
WIDE = {"COLUMNS": "250"}  # Rich tables wide enough to show whole cells


def test_help_is_in_plain_words():
    result = runner.invoke(app, ["sharing", "--help"])
    assert result.exit_code == 0
    for command in ("import", "list", "history", "template", "datasets"):
        assert command in result.output
    result = runner.invoke(app, ["sharing", "import", "--help"], env=WIDE)
    assert result.exit_code == 0
    for words in ("--agency", "--as-of", "--encoding", "--user", "--report", "All or nothing", "deaths"):
        assert words in result.output
    for command in ("list", "history", "template", "datasets"):
        assert runner.invoke(app, ["sharing", command, "--help"]).exit_code == 0


def test_import_success_then_failure_then_history(city, tmp_path):
    name = agency()
    try:
        good = tmp_path / "deaths.csv"
        good.write_bytes(csv_bytes(DEATH_HEADERS, death_rows(3), bom=True))
        result = runner.invoke(app, ["sharing", "import", "deaths", str(good), "--agency", name,
                                     "--as-of", "2026-06-30"], env=WIDE)
        assert result.exit_code == 0, result.output
        assert "死亡人员导入完成" in result.output
        with new_session() as s:
            snap = s.scalars(select(SharedSnapshot).where(SharedSnapshot.agency == name)).one()
            assert (snap.rows, snap.importer_name, snap.file_format, str(snap.as_of)) == (3, "系统", "csv",
                                                                                         "2026-06-30")
        assert f"快照 {snap.id} 现为{name}在用的死亡人员数据" in result.output

        rows = death_rows(2)
        rows[1][2] = "2026-02-30"
        bad = tmp_path / "bad.csv"
        bad.write_bytes(csv_bytes(DEATH_HEADERS, rows))
        report = tmp_path / "errors.csv"
        result = runner.invoke(app, ["sharing", "import", "deaths", str(bad), "--agency", name,
                                     "--as-of", "2026-07-31", "--report", str(report)], env=WIDE)
        assert result.exit_code == 1
        assert "死亡人员导入失败" in result.output and "死亡日期" in result.output
        assert report.read_text(encoding="utf-8-sig").splitlines()[1].startswith("3,死亡日期,2026-02-30,")
        with new_session() as s:
            assert len(s.scalars(select(SharedSnapshot).where(SharedSnapshot.agency == name)).all()) == 1

        result = runner.invoke(app, ["sharing", "history", "deaths"], env=WIDE)
        assert result.exit_code == 0 and name in result.output and "deaths.csv" in result.output
        result = runner.invoke(app, ["sharing", "list"], env=WIDE)
        assert result.exit_code == 0 and "死亡人员" in result.output and "户籍人口" in result.output
    finally:
        remove_snapshots(name)


def test_import_refusals_exit_2(city, tmp_path):
    file = tmp_path / "d.csv"
    file.write_bytes(csv_bytes(DEATH_HEADERS, death_rows(1)))
    result = runner.invoke(app, ["sharing", "import", "deaths", str(file), "--agency", agency(),
                                 "--as-of", "2999-01-01"])
    assert result.exit_code == 2 and "不能晚于今天" in result.output
    result = runner.invoke(app, ["sharing", "import", "nothing", str(file), "--agency", "x", "--as-of", "2026-01-01"])
    assert result.exit_code == 2 and "没有这个共享数据集" in result.output
    result = runner.invoke(app, ["sharing", "import", "deaths", str(file), "--agency", "x", "--as-of", "2026-01-01",
                                 "--user", "village_clerk"])
    assert result.exit_code == 2 and "无此权限" in result.output


def test_template_and_datasets(tmp_path):
    out = tmp_path / "t.csv"
    result = runner.invoke(app, ["sharing", "template", "vehicles", "--format", "csv", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes().decode("utf-8-sig").strip() == "车主身份证号码,号牌号码,车辆类型,车辆价值（元）,登记日期"
    out = tmp_path / "t.xlsx"
    assert runner.invoke(app, ["sharing", "template", "deaths", "-o", str(out)]).exit_code == 0
    assert out.read_bytes().startswith(b"PK")
    result = runner.invoke(app, ["sharing", "datasets"], env=WIDE)
    assert result.exit_code == 0
    for d in DATASETS:
        assert d.code in result.output
