"""Periods named by frequency, quantities and amounts in integer fen."""

from __future__ import annotations

from datetime import date
from decimal import ROUND_HALF_UP, Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from yikatong.workflow.periods import amount_fen, parse_period, parse_quantity, period_of


@pytest.mark.parametrize(("frequency", "text", "label", "start", "end"), [
    ("月", "2026-02", "2026-02", date(2026, 2, 1), date(2026, 2, 28)),
    ("月", "2028年2月", "2028-02", date(2028, 2, 1), date(2028, 2, 29)),
    ("季", "2026Q4", "2026Q4", date(2026, 10, 1), date(2026, 12, 31)),
    ("季", "2026年第二季度", "2026Q2", date(2026, 4, 1), date(2026, 6, 30)),
    ("半年", "2026下半年", "2026H2", date(2026, 7, 1), date(2026, 12, 31)),
    ("年", "2026", "2026", date(2026, 1, 1), date(2026, 12, 31)),
    ("一次性", "2026年", "2026", date(2026, 1, 1), date(2026, 12, 31)),
])
def test_periods(frequency, text, label, start, end):
    p = parse_period(frequency, text)
    assert (p.label, p.start, p.end) == (label, start, end)


@pytest.mark.parametrize(("frequency", "text"), [("月", "2026-13"), ("月", "2026"), ("季", "2026Q5"),
                                                 ("年", "2026-01"), ("年", "1999"), ("半年", "2026H3")])
def test_bad_periods_say_how_to_write_them(frequency, text):
    with pytest.raises(ValueError, match="期次|月份|年份"):
        parse_period(frequency, text)


@given(st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 12, 31)),
       st.sampled_from(["月", "季", "半年", "年"]))
def test_period_of_contains_the_day(day, frequency):
    p = parse_period(frequency, period_of(frequency, day))
    assert p.start <= day <= p.end


@given(st.integers(min_value=0, max_value=10**8), st.integers(min_value=1, max_value=100_000_00))
def test_amount_is_exact_half_up(standard_fen, quantity_centi):
    exact = Decimal(standard_fen) * Decimal(quantity_centi) / 100
    assert amount_fen(standard_fen, quantity_centi) == int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def test_quantities():
    assert parse_quantity("亩", "12.5") == 1250
    assert parse_quantity("人", None) == 100 and parse_quantity("户", "1") == 100
    for bad in ("0", "-1", "1.234", "abc", ""):
        with pytest.raises(ValueError):
            parse_quantity("亩", bad)
    with pytest.raises(ValueError, match="固定为1"):
        parse_quantity("人", "2")


def test_quantities_are_shown_without_trailing_zeros():
    from yikatong.workflow.periods import format_quantity

    shown = [format_quantity("亩", c) for c in (1250, 500, 1000, 1235, 5)]
    assert shown == ["12.5亩", "5亩", "10亩", "12.35亩", "0.05亩"]
    assert format_quantity("户", 100) == "1户"
