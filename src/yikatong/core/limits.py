"""Bounds every request states: a row id fits the key columns (INTEGER, 32-bit on PostgreSQL), a page number
stays small enough that OFFSET never overflows. Out of them a request is refused (422) instead of failing in the
database. (Should the keys become BIGINT, raise MAX_ID to 2**63 - 1.)"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

MAX_ID = 2**31 - 1
MAX_PAGE = 100_000

Id = Annotated[int, Field(ge=1, le=MAX_ID)]
