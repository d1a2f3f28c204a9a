"""Money is integer fen (分). Yuan strings are parsed exactly, never through float."""

from __future__ import annotations

import re
from decimal import Decimal

_YUAN = re.compile(r"^(0|[1-9]\d{0,11})(\.\d{1,2})?$")


def parse_yuan(text: str | int | Decimal) -> int:
    """'1234.5' -> 123450 fen. Raises ValueError with a Chinese reason on anything else."""
    if isinstance(text, bool):
        raise ValueError("金额格式错误")
    if isinstance(text, int):
        return text * 100
    s = str(text).strip().replace(",", "")
    if not _YUAN.match(s):
        raise ValueError(f"金额格式错误：{text!r}，应为不超过两位小数的非负元金额，如 123.45")
    return int((Decimal(s) * 100).to_integral_exact())


def format_fen(fen: int) -> str:
    """123450 -> '1,234.50' (yuan, two decimals)."""
    sign = "-" if fen < 0 else ""
    yuan, cents = divmod(abs(fen), 100)
    return f"{sign}{yuan:,}.{cents:02d}"
