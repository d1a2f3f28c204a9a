import pytest
from hypothesis import given
from hypothesis import strategies as st

from yikatong.core.masking import mask_account, mask_id_number, mask_name, mask_phone
from yikatong.core.money import format_fen, parse_yuan


def test_masks_keep_only_what_may_be_published():
    assert mask_id_number("511025199001011234") == "511025********1234"
    assert mask_phone("13812345678") == "138****5678"
    assert mask_account("6228480012345678901") == "6228 **** **** 8901"
    assert mask_name("张三") == "张*"
    assert mask_name("张小明") == "张*明"
    assert mask_name("欧阳小明") == "欧**明"


@given(st.text(alphabet="0123456789X", min_size=18, max_size=18))
def test_id_mask_hides_birth_date(number):
    masked = mask_id_number(number)
    assert masked[6:14] == "*" * 8 and len(masked) == 18


@pytest.mark.parametrize(("text", "fen"), [("0", 0), ("12", 1200), ("12.3", 1230), ("12.34", 1234),
                                           ("1,234.56", 123456), ("0.01", 1), ("999999999999.99", 99999999999999)])
def test_parse_yuan_is_exact(text, fen):
    assert parse_yuan(text) == fen


@pytest.mark.parametrize("text", ["12.345", "abc", "-5", "1e3", "", "01.5", "12.", ".5", "NaN"])
def test_parse_yuan_refuses_malformed(text):
    with pytest.raises(ValueError, match="金额格式错误"):
        parse_yuan(text)


@given(st.integers(min_value=0, max_value=10**13))
def test_format_and_parse_round_trip(fen):
    assert parse_yuan(format_fen(fen)) == fen
