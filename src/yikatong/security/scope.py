"""Region scope: a user sees the subtree of their region and nothing else.

Statistical codes nest by prefix (省2 市4 县6 乡镇9 村12 digits), so a subtree is a contiguous code
range that a plain B-tree index answers on SQLite and PostgreSQL alike."""

from __future__ import annotations

from sqlalchemy import ColumnElement
from sqlalchemy.orm import InstrumentedAttribute

from yikatong.core.errors import BadCode, Forbidden
from yikatong.registry.models import RegionLevel


def pad_code(code: str) -> str:
    """'511025' (GB/T 2260) -> '511025000000' (12-digit statistical code)."""
    code = code.strip()
    if not code.isdigit() or len(code) not in (2, 4, 6, 9, 12):
        raise BadCode(f"区划代码格式错误：{code}")
    return code.ljust(12, "0")


def level_of(code: str) -> RegionLevel:
    code = pad_code(code)
    if code[2:] == "0" * 10:
        return RegionLevel.PROVINCE
    if code[4:] == "0" * 8:
        return RegionLevel.CITY
    if code[6:] == "0" * 6:
        return RegionLevel.COUNTY
    if code[9:] == "000":
        return RegionLevel.TOWNSHIP
    return RegionLevel.VILLAGE


_PREFIX = {
    RegionLevel.PROVINCE: 2,
    RegionLevel.CITY: 4,
    RegionLevel.COUNTY: 6,
    RegionLevel.TOWNSHIP: 9,
    RegionLevel.VILLAGE: 12,
}


PREFIX_LENGTHS = tuple(_PREFIX.values())  # 2, 4, 6, 9, 12: the subtree prefixes a code can have


def parent_of(code: str) -> str | None:
    level = level_of(code)
    order = list(_PREFIX)
    if level is RegionLevel.PROVINCE:
        return None
    return pad_code(code)[: _PREFIX[order[order.index(level) - 1]]].ljust(12, "0")


def child_prefix_length(code: str) -> int | None:
    """How many leading digits name a child region of `code` (None for a village: it has none)."""
    levels = list(_PREFIX)
    index = levels.index(level_of(code))
    return _PREFIX[levels[index + 1]] if index + 1 < len(levels) else None


def subtree_prefix(code: str) -> str:
    return pad_code(code)[: _PREFIX[level_of(code)]]


def subtree_bounds(code: str) -> tuple[str, str]:
    prefix = subtree_prefix(code)
    return prefix.ljust(12, "0"), prefix.ljust(12, "9")


def in_subtree(scope_code: str, code: str) -> bool:
    return pad_code(code).startswith(subtree_prefix(scope_code))


def within(column: InstrumentedAttribute[str], scope_code: str) -> ColumnElement[bool]:
    """SQL condition: column holds a region code inside scope_code's subtree."""
    lo, hi = subtree_bounds(scope_code)
    return column.between(lo, hi)


def require_region(scope_code: str, code: str) -> None:
    if not in_subtree(scope_code, code):
        raise Forbidden("无权访问本辖区以外的数据")
