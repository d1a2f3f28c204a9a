"""Where shared data snapshots are kept: one immutable Parquet file per delivery under
YKT_DATA_DIR/sharing/<dataset>/, sorted by the data set's key (read whole by the city run), its
indexed look-up file beside it (sharing.lookup: screening one claim reads only its people's rows),
and a `shared_snapshots` row with the provenance."""

from __future__ import annotations

import os
from collections import defaultdict
from datetime import date, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import select
from sqlalchemy.orm import Session

from yikatong.core.errors import Invalid
from yikatong.core.settings import get_settings
from yikatong.security.models import User
from yikatong.sharing import lookup
from yikatong.sharing.datasets import BY_CODE, Dataset
from yikatong.sharing.models import SharedSnapshot

ROW_GROUP = 128 * 1024
SYSTEM_NAME = "系统"


def sharing_dir() -> Path:
    return get_settings().data_dir / "sharing"


def arrow_schema(dataset: Dataset) -> pa.Schema:
    """The stored columns and their Arrow types (integers are fen, hundredths or counts)."""
    types = {"VARCHAR": pa.string(), "DATE": pa.date32(), "BIGINT": pa.int64()}
    return pa.schema([pa.field(name, types[type_]) for f in dataset.fields
                      for name, type_ in zip(f.stored, f.stored_types, strict=True)])


def save_snapshot(session: Session, dataset_code: str, table: pa.Table, *, agency: str, as_of: date, filename: str,
                  file_sha256: str, file_format: str, actor: User | None, now: datetime,
                  note: str = "") -> SharedSnapshot:
    """Write one delivery's rows (already validated, ID numbers already hashed and masked) as a
    Parquet file and record it. The file is written before the row and renamed into place, so a
    crash leaves at worst an orphan file, never a row pointing at nothing."""
    dataset = BY_CODE.get(dataset_code)
    if dataset is None:
        raise Invalid(f"没有这个共享数据集：{dataset_code}")
    if not agency.strip():
        raise Invalid("请填写提供数据的单位")
    schema = arrow_schema(dataset)
    table = table.select(schema.names).cast(schema)
    if dataset.sort_key in schema.names and table.num_rows:
        table = table.sort_by(dataset.sort_key)
    relative = Path("sharing") / dataset.code / f"{as_of:%Y%m%d}-{file_sha256[:16]}-{now:%Y%m%d%H%M%S%f}.parquet"
    target = get_settings().data_dir / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_suffix(".tmp")
    pq.write_table(table, temporary, row_group_size=ROW_GROUP, compression="zstd")
    os.replace(temporary, target)
    lookup.write_lookup(dataset, table, target)  # the rows again, indexed for screening one claim
    snapshot = SharedSnapshot(dataset=dataset.code, agency=agency.strip()[:60], as_of=as_of, filename=filename[:200],
                              file_sha256=file_sha256, file_format=file_format, rows=table.num_rows,
                              path=relative.as_posix(), imported_at=now, imported_by=actor.id if actor else None,
                              importer_name=actor.display_name if actor else SYSTEM_NAME, note=note)
    session.add(snapshot)
    session.flush()
    return snapshot


def current_snapshots(session: Session) -> dict[str, list[SharedSnapshot]]:
    """The snapshots in force: for each data set, the latest delivery (by as_of, then id) of each agency."""
    latest: dict[tuple[str, str], SharedSnapshot] = {}
    for snap in session.scalars(select(SharedSnapshot).order_by(SharedSnapshot.as_of, SharedSnapshot.id)):
        latest[(snap.dataset, snap.agency)] = snap
    out: dict[str, list[SharedSnapshot]] = defaultdict(list)
    for (dataset, _agency), snap in sorted(latest.items()):
        out[dataset].append(snap)
    return dict(out)


def snapshot_path(snapshot: SharedSnapshot) -> Path:
    return get_settings().data_dir / snapshot.path


def read_snapshot(snapshot: SharedSnapshot) -> pa.Table:
    return pq.read_table(snapshot_path(snapshot))


def index_deliveries(session: Session, progress=None) -> int:
    """Build the look-up file of every delivery in force that has none (stored before look-up files
    existed); screening would otherwise build each on first use. Returns how many were built."""
    missing = [s for snaps in current_snapshots(session).values() for s in snaps
               if not lookup.lookup_path(snapshot_path(s)).exists()]
    for done, snap in enumerate(missing, 1):
        lookup.ensure_lookup(BY_CODE[snap.dataset], snapshot_path(snap))
        if progress:
            progress("建立检索索引", done, len(missing))
    return len(missing)

