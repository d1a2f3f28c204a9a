"""Bank templates: every bank of the demo city has one, a new bank is a new file, a bad one is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from yikatong.core.errors import Invalid, NotFound
from yikatong.disbursement.bank.connector import connector_for, registry
from yikatong.disbursement.bank.flat import FlatConnector
from yikatong.disbursement.bank.iso20022 import IsoConnector
from yikatong.disbursement.bank.records import BankConnector
from yikatong.disbursement.bank.template import BANKS_DIR, parse_template
from yikatong.synth.catalog_data import BANKS

from .conftest import make_batch


def test_every_bank_of_the_demo_city_has_a_template() -> None:
    connectors = registry()
    assert {b.code for b in BANKS} <= set(connectors)
    assert isinstance(connectors["ABC"], FlatConnector) and connectors["ABC"].template.format == "fixed"
    assert isinstance(connectors["PSBC"], FlatConnector) and connectors["PSBC"].template.encoding == "gbk"
    assert isinstance(connectors["SCRCU"], IsoConnector)
    for c in connectors.values():
        assert all(callable(getattr(c, m)) for m in ("export_batch", "read_return", "read_statement"))
        accepts: BankConnector = c  # the interface the payment core speaks (checked by type checkers)
        assert accepts is c
        assert c.bank_code == c.template.code


def test_a_new_bank_is_a_new_template(tmp_path: Path) -> None:
    (tmp_path / "ICBC.toml").write_text(
        'code = "ICBC"\nname = "中国工商银行内江分行"\nformat = "csv"\ndelimiter = ","\nencoding = "utf-8"\n'
        'line_end = "lf"\nmax_records_per_file = 2\n', encoding="utf-8")
    c = connector_for("ICBC", tmp_path)
    batch = make_batch("ICBC", 3)
    paths = c.export_batch(batch, tmp_path)
    assert [p.name for p in paths] == ["FF20261205000001_001of002.csv", "FF20261205000001_002of002.csv"]
    assert paths[0].read_text(encoding="utf-8").startswith("H,PAY,FF20261205000001,ICBC,1,2,20261205093000,")
    with pytest.raises(NotFound, match="没有文件模板"):
        connector_for("CCB", tmp_path)


@pytest.mark.parametrize(("text", "fragment"), [
    ('code = "X"\nname = "x"\nformat = "xml"\nmax_records_per_file = 1\n', "format"),
    ('code = "X"\nname = "x"\nformat = "csv"\nencoding = "latin-1"\nmax_records_per_file = 1\n', "encoding"),
    ('code = "X"\nname = "x"\nformat = "csv"\nmax_records_per_file = 0\n', "max_records_per_file"),
    ('code = "X"\nname = "x"\nformat = "fixed"\nmax_records_per_file = 5\n', "widths"),
    ('code = "X"\nname = "x"\nformat = "csv"\nmax_records_per_file = 5\n[batch]\nfields = ["seq", "iban"]\n',
     "不认识的字段"),
    ('code = "X"\nname = "x"\nformat = "csv"\nmax_records_per_file = 5\n[return]\nfields = ["seq"]\n',
     "缺少必需字段"),
    ('code = "X"\nformat = "csv"\nmax_records_per_file = 5\n', "name"),
])
def test_a_bad_template_is_refused_with_its_mistake(text: str, fragment: str) -> None:
    with pytest.raises(Invalid, match=fragment):
        parse_template(text, "X.toml")


def test_the_template_file_name_is_its_code(tmp_path: Path) -> None:
    (tmp_path / "BOC.toml").write_text((BANKS_DIR / "PSBC.toml").read_text(encoding="utf-8"), encoding="utf-8")
    with pytest.raises(Invalid, match="code 应为 BOC"):
        registry(tmp_path)
