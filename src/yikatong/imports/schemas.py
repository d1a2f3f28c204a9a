"""The import report: what a file would change, or every row, column and reason it was refused."""

from __future__ import annotations

from pydantic import BaseModel, Field

from yikatong.core.readers import RowError  # every import reports its errors alike


class ImportReport(BaseModel):
    kind: str
    kind_label: str
    filename: str
    sha256: str
    ok: bool = Field(description="True when every row is valid (and, unless dry_run, was written)")
    dry_run: bool = False
    total_rows: int = Field(0, description="Data rows read (blank rows not counted)")
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    extra: dict[str, int] = Field(default_factory=dict,
                                  description="Further counts, e.g. categories_added for the catalogue")
    error_count: int = Field(0, description="All errors found; `errors` lists at most the first 1000")
    errors: list[RowError] = Field(default_factory=list)


class RequestProblem(BaseModel):
    """A request the API could not take at all (a missing file field, a bad query value)."""

    detail: str
    errors: list[str] = Field(default_factory=list)
