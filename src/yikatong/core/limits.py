"""Bounds every request states: a row id fits a 64-bit key, a page number stays small enough that OFFSET never
overflows. Out of them a request is refused (422) instead of failing in the database."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

MAX_ID = 2**63 - 1
MAX_PAGE = 100_000

Id = Annotated[int, Field(ge=1, le=MAX_ID)]
