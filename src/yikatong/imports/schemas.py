"""The import report: what a file would change, or every row, column and reason it was refused."""

from __future__ import annotations

from pydantic import BaseModel, Field


class RowError(BaseModel):
    row: int | None = Field(description="Row number as shown in Excel or a text editor (header = 1); "
                                        "null for a problem of the whole file")
    column: str = Field(description="The column header as written in the file (empty for the whole file)")
    value: str = Field(description="The cell as read; ID numbers, names, phones and accounts masked")
    reason: str = Field(description="Why the row is refused, in Chinese")


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
