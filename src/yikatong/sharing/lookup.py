"""Point look-ups into a delivery. Beside each snapshot's Parquet file (which the city run reads
whole, column by column) an SQLite file holds the same rows with an index on every key a rule joins
on (the keyed ID hashes, the card number), so screening one claim reads the few rows of the claim's
people in a millisecond instead of scanning millions.

The file is written once, when the delivery is stored (store.save_snapshot); for a delivery stored
before look-up files existed it is built on first use, or for all at once by `ykt shared index`.
Like the Parquet file it is immutable, so readers open it without locks."""

from __future__ import annotations

import fcntl
import os
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from yikatong.sharing.datasets import Dataset

SUFFIX = ".lookup.sqlite"
CHUNK = 900  # keys per IN (...): below SQLite's limit on bound parameters
BATCH = 50_000


def lookup_path(parquet: Path) -> Path:
    return parquet.with_name(parquet.name.removesuffix(".parquet") + SUFFIX)


def write_lookup(dataset: Dataset, table: pa.Table, parquet: Path) -> Path:
    """Write the look-up file of a delivery whose rows are `table` (already sorted by the data set's
    sort key, so row order is the Parquet file's). Written beside and renamed into place."""
    target = lookup_path(parquet)
    temporary = target.with_name(target.name + ".tmp")
    temporary.unlink(missing_ok=True)
    columns = table.schema.names
    with closing(sqlite3.connect(temporary)) as con:
        con.execute("PRAGMA journal_mode=OFF")
        con.execute("PRAGMA synchronous=OFF")
        con.execute(f"CREATE TABLE rows ({', '.join(columns)})")
        insert = f"INSERT INTO rows VALUES ({', '.join('?' for _ in columns)})"
        for batch in table.to_batches(BATCH):
            # dates as ISO text (what DuckDB casts back); everything else as stored
            values = [(pc.cast(c, pa.string()) if pa.types.is_date(c.type) else c).to_pylist() for c in batch.columns]
            con.executemany(insert, zip(*values, strict=True))
        for key in dataset.lookup_keys:
            con.execute(f"CREATE INDEX ix_{key} ON rows ({key})")
        con.execute("CREATE TABLE coverage (row INTEGER)")
        if dataset.coverage:
            column, length = dataset.coverage
            con.execute(f"INSERT INTO coverage SELECT min(rowid) FROM rows GROUP BY substr({column}, 1, {length})")
        con.commit()
    os.replace(temporary, target)
    return target


def ensure_lookup(dataset: Dataset, parquet: Path) -> Path:
    """The delivery's look-up file, built from its Parquet file if it has none yet (one builder at a
    time across processes; the others wait and then find it)."""
    target = lookup_path(parquet)
    if target.exists():
        return target
    with _locked(target.with_name(target.name + ".lock")):
        if not target.exists():
            write_lookup(dataset, pq.read_table(parquet), parquet)
    return target


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def find_rows(dataset: Dataset, parquet: Path, keys: dict[str, Iterable[str]]) -> list[tuple]:
    """The delivery's rows whose key column matches one of the given values ({column: values}, only
    the data set's lookup_keys), plus its coverage rows, each row once, in the stored column order."""
    path = ensure_lookup(dataset, parquet)
    found: dict[int, tuple] = {}
    with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro&immutable=1", uri=True)) as con:
        for column, values in keys.items():
            if column not in dataset.lookup_keys:
                continue
            wanted = sorted({v for v in values if v})
            for start in range(0, len(wanted), CHUNK):
                part = wanted[start:start + CHUNK]
                marks = ", ".join("?" for _ in part)
                for row in con.execute(f"SELECT rowid, * FROM rows WHERE {column} IN ({marks})", part):
                    found[row[0]] = row[1:]
        for row in con.execute("SELECT rowid, * FROM rows WHERE rowid IN (SELECT row FROM coverage)"):
            found[row[0]] = row[1:]
    return [found[r] for r in sorted(found)]
