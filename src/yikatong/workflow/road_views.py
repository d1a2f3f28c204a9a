"""(being written)"""

from __future__ import annotations

from fastapi import APIRouter

api = APIRouter(prefix="/api/v1", tags=["workflow"])
pages = APIRouter(include_in_schema=False)
