"""Tables of the shared data sets. The records themselves live in immutable Parquet files (one per
snapshot, under YKT_DATA_DIR/sharing/); the database keeps who delivered what, when, and how many."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from yikatong.core.db import Base


class SharedSnapshot(Base):
    """One delivery of one data set by one agency, as of a date (a full extract, not a delta).

    The current content of a data set is the latest snapshot (by as_of, then id) of each agency that
    delivers it, taken together: deaths may come from the police and from civil affairs at once."""

    __tablename__ = "shared_snapshots"
    id: Mapped[int] = mapped_column(primary_key=True)
    dataset: Mapped[str] = mapped_column(String(30))  # sharing.datasets code: deaths, payroll...
    agency: Mapped[str] = mapped_column(String(60))  # 提供单位: 市公安局, 市卫健委...
    as_of: Mapped[date] = mapped_column(Date)  # 数据截止日期
    filename: Mapped[str] = mapped_column(String(200))  # the file as delivered
    file_sha256: Mapped[str] = mapped_column(String(64))  # of the delivered file
    file_format: Mapped[str] = mapped_column(String(8))  # csv / xlsx / parquet / synth
    rows: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(String(300))  # the stored Parquet, relative to YKT_DATA_DIR
    imported_at: Mapped[datetime]
    imported_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    importer_name: Mapped[str] = mapped_column(String(60))
    note: Mapped[str] = mapped_column(Text, default="")

    __table_args__ = (Index("ix_shared_snapshots_current", "dataset", "agency", "as_of", "id"),)
