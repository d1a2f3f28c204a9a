"""Claim periods and amounts. A period is named by the item's frequency: 2026-11 (月), 2026Q4 (季),
2026H2 (半年), 2026 (年 and 一次性). The amount is the item's standard times the quantity, in fen."""

from __future__ import annotations

import re
from calendar import monthrange
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation

from yikatong.catalog.models import Basis, Frequency


@dataclass(frozen=True)
class Period:
    label: str
    start: date
    end: date


_FORMS = {
    Frequency.MONTH: (re.compile(r"^(\d{4})-?(\d{1,2})$|^(\d{4})年(\d{1,2})月$"), "2026-11"),
    Frequency.QUARTER: (re.compile(r"^(\d{4})[Qq]([1-4])$|^(\d{4})年第?([1-4一二三四])季度?$"), "2026Q4"),
    Frequency.HALF_YEAR: (re.compile(r"^(\d{4})[Hh]([12])$|^(\d{4})年?([上下])半年$"), "2026H2"),
    Frequency.YEAR: (re.compile(r"^(\d{4})年?$"), "2026"),
    Frequency.ONCE: (re.compile(r"^(\d{4})年?$"), "2026"),
}
_ZH_DIGIT = {"一": "1", "二": "2", "三": "3", "四": "4", "上": "1", "下": "2"}


def parse_period(frequency: str, text: str) -> Period:
    """'2026-11' for a monthly item -> Period('2026-11', 2026-11-01, 2026-11-30). ValueError in Chinese."""
    freq = Frequency(frequency)
    pattern, example = _FORMS[freq]
    m = pattern.match(str(text).strip())
    if not m:
        raise ValueError(f"发放周期为“{freq.value}”的项目，期次应写作 {example}")
    parts = [g for g in m.groups() if g is not None]
    year = int(parts[0])
    if not 2000 <= year <= 2099:
        raise ValueError("期次年份应在2000至2099之间")
    if freq in (Frequency.YEAR, Frequency.ONCE):
        return Period(f"{year}", date(year, 1, 1), date(year, 12, 31))
    n = int(_ZH_DIGIT.get(parts[1], parts[1]))
    if freq is Frequency.MONTH:
        if not 1 <= n <= 12:
            raise ValueError("月份应在1至12之间")
        return Period(f"{year}-{n:02d}", date(year, n, 1), date(year, n, monthrange(year, n)[1]))
    months = 3 if freq is Frequency.QUARTER else 6
    first = (n - 1) * months + 1
    last = first + months - 1
    label = f"{year}Q{n}" if freq is Frequency.QUARTER else f"{year}H{n}"
    return Period(label, date(year, first, 1), date(year, last, monthrange(year, last)[1]))


def period_of(frequency: str, day: date) -> str:
    """The label of the period that contains `day` (what a new application claims by default)."""
    freq = Frequency(frequency)
    if freq is Frequency.MONTH:
        return f"{day.year}-{day.month:02d}"
    if freq is Frequency.QUARTER:
        return f"{day.year}Q{(day.month - 1) // 3 + 1}"
    if freq is Frequency.HALF_YEAR:
        return f"{day.year}H{1 if day.month <= 6 else 2}"
    return f"{day.year}"


MAX_QUANTITY_CENTI = 100_000_00  # 100,000 亩: far above any household's land


def parse_quantity(basis: str, text: str | int | Decimal | None) -> int:
    """The quantity x 100. Persons and households always count 1; mu need a positive area with at
    most two decimals."""
    if Basis(basis) is not Basis.MU:
        if text not in (None, "", 1, "1", "1.00", "1.0"):
            raise ValueError(f"按“{basis}”发放的项目数量固定为1")
        return 100
    if text is None or str(text).strip() == "":
        raise ValueError("按亩发放的项目须填写面积（亩）")
    try:
        value = Decimal(str(text).strip())
    except InvalidOperation:
        raise ValueError("面积应为数字，最多两位小数，如 12.5") from None
    if value <= 0 or value != value.quantize(Decimal("0.01")) or value * 100 > MAX_QUANTITY_CENTI:
        raise ValueError("面积应为大于0、最多两位小数、不超过100000的数字，如 12.5")
    return int(value * 100)


def amount_fen(standard_fen: int, quantity_centi: int) -> int:
    """standard x quantity, rounded half up to the fen, in integers only."""
    return (standard_fen * quantity_centi + 50) // 100


def format_quantity(basis: str, quantity_centi: int) -> str:
    """1250 亩-centi -> '12.5亩'; a person or household counts 1."""
    if Basis(basis) is not Basis.MU:
        return f"1{basis}"
    whole, frac = divmod(quantity_centi, 100)
    return f"{whole}.{frac:02d}".rstrip("0").rstrip(".") + "亩"
