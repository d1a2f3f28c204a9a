from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stdnum.cn import ric

from yikatong.core.idnumber import make_id_number, parse_id_number


def with_check(body: str) -> str:
    """A number with a correct check character, so only the other defect is tested."""
    return body + ric.calc_check_digit(body + "0")

# Published example from GB 11643 (ISO 7064 MOD 11-2): 11010519491231002X.
GB_EXAMPLE = "11010519491231002X"


def test_standard_example_is_valid_and_facts_are_derived():
    facts = parse_id_number(GB_EXAMPLE.lower())
    assert facts.number == GB_EXAMPLE
    assert facts.birth_date == date(1949, 12, 31)
    assert facts.gender == "女"  # 17th digit 2 is even
    assert facts.region6 == "110105"


@pytest.mark.parametrize(
    ("number", "reason"),
    [
        ("110105194912310021", "校验位错误"),
        ("11010519491231002", "应为18位"),
        (with_check("11010519491331002"), "出生日期无效"),
        ("1101051949123100AX", "只能由数字"),
        (with_check("11010529991231002"), "晚于今天"),
    ],
)
def test_bad_numbers_are_refused_with_chinese_reason(number, reason):
    with pytest.raises(ValueError, match=reason):
        parse_id_number(number)


@given(
    birth=st.dates(min_value=date(1900, 1, 1), max_value=date(2024, 12, 31)),
    sequence=st.integers(min_value=0, max_value=499),
    male=st.booleans(),
)
def test_generated_numbers_validate_and_round_trip(birth, sequence, male):
    number = make_id_number("511025", birth, sequence, male)
    facts = parse_id_number(number)
    assert facts.birth_date == birth
    assert facts.gender == ("男" if male else "女")


@given(st.integers(min_value=0, max_value=16), st.integers(min_value=0, max_value=9))
def test_any_single_digit_change_is_caught(position, digit):
    number = make_id_number("511025", date(1980, 5, 17), 12, True)
    changed = number[:position] + str(digit) + number[position + 1:]
    if changed != number:
        with pytest.raises(ValueError):
            facts = parse_id_number(changed)
            # a changed date digit may still be a valid date; then the checksum must fail
            assert facts is None
