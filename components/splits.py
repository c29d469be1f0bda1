"""A split as the data steps hand it on: one Parquet file (written by ingest in this process),
or a folder of Parquet shards (written by ingest on a Beam runner, one shard per unit of work)
whose rows, read in the shards' name order, are the rows of the split in order.

The readers here cut a split into the same batches whether they are read in this process or
as units of work on a Beam runner's workers (:mod:`components.beam`).

On a cluster a folder travels between steps as it is: KFP 2.5.0's launcher uploads an output
artifact that is a folder file by file under the artifact's key
(backend/src/v2/component/launcher_v2.go:565; objectstore/object_store.go:88-121, UploadBlob)
and downloads every object under that key into the next step's path, making the folders
(launcher_v2.go:682; object_store.go:123-150 DownloadBlob, :191-194).
"""

import os
from collections.abc import Iterator, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

# The suffix of a shard in a split folder.
SHARD_SUFFIX = ".parquet"

# A unit of work over a split: (file, first row, row after the last, rows per batch).
Unit = tuple[str, int, int, int]


def files(path: str) -> list[str]:
    """The Parquet files of a split, in order."""
    path = os.path.abspath(path)  # the same file to a worker in another folder
    if not os.path.isdir(path):
        return [path]
    shards = sorted(name for name in os.listdir(path) if name.endswith(SHARD_SUFFIX))
    return [os.path.join(path, name) for name in shards]


def schema(path: str) -> pa.Schema:
    """The split's columns and types."""
    return pq.read_schema(files(path)[0])


def batches(path: str, columns: Sequence[str] | None, batch_rows: int) -> Iterator[pa.RecordBatch]:
    """The split's rows in batches of ``batch_rows`` (each file's last one shorter)."""
    for name in files(path):
        yield from pq.ParquetFile(name).iter_batches(
            batch_size=batch_rows, columns=None if columns is None else list(columns)
        )


def units(path: str, batch_rows: int, batches_per_unit: int) -> list[Unit]:
    """The split cut into units of ``batches_per_unit`` of :func:`batches`' batches each."""
    found = []
    for name in files(path):
        rows = pq.ParquetFile(name).metadata.num_rows
        step = batch_rows * batches_per_unit
        found += [
            (name, start, min(start + step, rows), batch_rows) for start in range(0, rows, step)
        ]
    return found


def unit_batches(unit: Unit, columns: Sequence[str]) -> Iterator[pa.Table]:
    """A unit's batches: the rows ``[start, stop)`` of its file, ``batch_rows`` at a time,
    reading only the row groups that hold them."""
    name, start, stop, batch_rows = unit
    split = pq.ParquetFile(name)
    groups, first, offset = [], None, 0
    for index in range(split.metadata.num_row_groups):
        size = split.metadata.row_group(index).num_rows
        if offset < stop and offset + size > start:
            groups.append(index)
            first = offset if first is None else first
        offset += size
    if not groups:
        return
    rows = split.read_row_groups(groups, columns=list(columns)).slice(start - first, stop - start)
    for begin in range(0, rows.num_rows, batch_rows):
        yield rows.slice(begin, batch_rows)


def pattern(path: str) -> str:
    """A file pattern of the split's files, for Beam's Parquet reader."""
    return os.path.join(path, "*" + SHARD_SUFFIX) if os.path.isdir(path) else path
