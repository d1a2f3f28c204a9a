"""Mainland mobile numbers, as people write them."""

from __future__ import annotations

import re

_MOBILE = re.compile(r"^1[3-9]\d{9}$")


def parse_mobile(value: str) -> str:
    """'+86 138-1234-5678' -> '13812345678'. ValueError with a Chinese reason otherwise."""
    digits = re.sub(r"[\s\-]", "", value)
    if digits.startswith("+86"):
        digits = digits[3:]
    elif digits.startswith("86") and len(digits) == 13:
        digits = digits[2:]
    if not _MOBILE.match(digits):
        raise ValueError("手机号应为11位大陆手机号码，以1开头，如 13812345678")
    return digits
