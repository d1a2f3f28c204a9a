"""What the sharing API returns: data sets with their deliveries in force, one delivery's provenance,
and the outcome of an import (the snapshot, or every row, column and reason it was refused)."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, Field

from yikatong.core.readers import RowError


class SnapshotOut(BaseModel):
    """One delivery (快照) of one data set by one agency, and where it came from."""

    id: int
    dataset: str
    agency: str = Field(description="提供单位")
    as_of: date = Field(description="数据截止日期")
    filename: str = Field(description="The file as delivered")
    file_sha256: str
    file_format: str = Field(description="csv, xlsx, parquet (or synth for the synthetic city)")
    rows: int
    imported_at: datetime
    importer_name: str = Field(description="Who imported it (系统 for the command line)")
    in_force: bool = Field(description="True when this is the latest delivery of its agency (in force)")


class ColumnOut(BaseModel):
    key: str
    header: str = Field(description="Chinese header")
    alias: str = Field(description="English alias")
    required: bool
    kind: str
    format: str = Field(description="Format, in Chinese")
    description: str
    stored: list[str] = Field(description="The stored columns (what rules read)")


class DatasetOut(BaseModel):
    code: str
    label: str
    provider: str
    summary: str
    rows_in_force: int = Field(description="Rows of the deliveries in force, added up")
    latest: SnapshotOut | None = Field(description="The newest delivery in force")
    in_force: list[SnapshotOut] = Field(description="The latest delivery of each agency")
    columns: list[ColumnOut]


class ImportOutcome(BaseModel):
    dataset: str
    dataset_label: str
    filename: str
    sha256: str
    file_format: str = Field("", description="csv, xlsx or parquet, recognised from the content")
    agency: str
    as_of: date
    ok: bool = Field(description="True when every row was valid and the snapshot was stored")
    total_rows: int = Field(0, description="Data rows read (blank rows not counted)")
    rows: int = Field(0, description="Rows stored (identical rows merged)")
    duplicates_merged: int = Field(0, description="Rows identical in every column to an earlier row, merged")
    error_count: int = Field(0, description="All errors found; `errors` lists at most the first 1000")
    errors: list[RowError] = Field(default_factory=list)
    snapshot: SnapshotOut | None = None
