"""Ingest [TFX ExampleGen]: read a CSV or Parquet table and split it into train and eval.

Rows are assigned to a split by a hash of their values, so the split is the same on every run
and on every machine, and duplicate rows never straddle the two splits.

With a prediction log, its recent labelled rows (served features and the label that arrived for
them, :mod:`serving.prediction_log`) join the splits, so a retrained model learns from the
traffic it will serve. Each goes to the split a data row with its values would go to, and the
data's own rows split as they do without a log. Those in eval are also written on their own:
evaluate compares the candidate with the serving version on them, rows neither model trained on
(the split of a row never changes, so no earlier retraining trained on them either).
"""

import collections
import functools
import hashlib
import logging
import os
import re
import shutil
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.dataset as ds
import pyarrow.fs as pa_fs
import pyarrow.parquet as pq

from components import beam, splits
from components.errors import DataError
from components.ingest.config import IngestConfig
from serving import prediction_log as pl

logger = logging.getLogger(__name__)

CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2", ".tsv")
PARQUET_SUFFIXES = (".parquet", ".pq")
# Split buckets: fine enough that eval_fraction=0.123 means 12.3 %.
_BUCKETS = 10_000
# TensorFlow signature input names must match this; the serving model takes the columns by name.
_VALID_NAME = re.compile(r"^[A-Za-z0-9.][A-Za-z0-9_.\-]*$")


@dataclass(frozen=True)
class IngestResult:
    """What ingest wrote.

    Attributes:
        train_rows: Rows in the train split.
        eval_rows: Rows in the eval split.
        fingerprint: A short hash of the whole table's content and column types.
        columns: The column names as written (after renaming to valid feature names).
        labelled_rows: Rows from the prediction log among them.
        labelled_eval_rows: Those of them in the eval split.
    """

    train_rows: int
    eval_rows: int
    fingerprint: str
    columns: list[str]
    labelled_rows: int = 0
    labelled_eval_rows: int = 0


def _filesystem(uri: str) -> tuple[pa_fs.FileSystem, str]:
    if "://" not in uri:
        return pa_fs.LocalFileSystem(), os.path.abspath(os.path.expanduser(uri))
    try:
        return pa_fs.FileSystem.from_uri(uri)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as err:
        raise DataError(
            f"Cannot open {uri!r}: {err}. Use a local path, file://, gs:// or s3:// URI, "
            "with credentials for the object store in the environment."
        ) from err


# Rows per record batch read, and per row group written: memory holds a few of them, never
# the table.
BATCH_ROWS = 65_536
# What the CSV reader says when a later block does not fit the type a column was given.
_CSV_COLUMN_ERROR = re.compile(r"In CSV column #(\d+): CSV conversion error")


@dataclass(frozen=True)
class Scan:
    """What a first pass over the data learns: the columns as written (valid feature names,
    the pipeline's types), the raw columns they come from, and the rows."""

    schema: pa.Schema
    sources: list[str]
    nullable: frozenset[str]
    rows: int


class Source:
    """A CSV file, a Parquet file or a folder of Parquet files, read in record batches.

    A whole-table read of a CSV (``pyarrow.csv.read_csv``) infers each column's type from the
    first block and widens it when a later block does not fit; a streaming reader cannot go
    back. So :meth:`scan` streams with the types inferred from the first block and, when a
    later block does not fit a column, asks the whole-table reader for that column alone (one
    column in memory) and streams again with its type fixed. The types are then exactly what a
    whole-table read gives, and :meth:`batches` reads every block with them.
    """

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self._fs, self._path = _filesystem(uri)
        try:
            info = self._fs.get_file_info(self._path)
        except OSError as err:
            raise DataError(f"Cannot reach {uri!r}: {err}") from err
        if info.type == pa_fs.FileType.NotFound:
            raise DataError(
                f"No data at {uri!r}: the path does not exist. Give a CSV or Parquet file, "
                "or a folder of Parquet files."
            )
        lower = self._path.lower()
        self._parquet = info.type == pa_fs.FileType.Directory or lower.endswith(PARQUET_SUFFIXES)
        if not self._parquet and not lower.endswith(CSV_SUFFIXES):
            raise DataError(
                f"Cannot tell the format of {uri!r}: name it *.csv, *.tsv, *.csv.gz, "
                "*.parquet or *.pq, or give a folder of Parquet files."
            )
        self._delimiter = "\t" if lower.endswith(".tsv") else ","
        self._csv_types: dict[str, pa.DataType] = {}

    def _csv_options(self, **convert: Any) -> dict[str, Any]:
        return {
            "parse_options": pa_csv.ParseOptions(delimiter=self._delimiter),
            # "NA", "null", "" and the like mean missing in text columns too.
            "convert_options": pa_csv.ConvertOptions(strings_can_be_null=True, **convert),
        }

    def _open(self) -> Any:
        return self._fs.open_input_stream(self._path, compression="detect")

    def _whole_file_type(self, name: str) -> pa.DataType:
        """The type a whole-file read of the CSV gives column ``name`` (read alone)."""
        with self._open() as stream:
            options = self._csv_options(include_columns=[name])
            return pa_csv.read_csv(stream, **options).column(0).type

    def _dataset(self) -> ds.Dataset:
        # Hive partitions (year=2013/...) are columns, as pyarrow.parquet.read_table has them.
        return ds.dataset(self._path, filesystem=self._fs, format="parquet", partitioning="hive")

    @property
    def is_parquet(self) -> bool:
        """Whether the data is Parquet, which can be cut into units (a CSV cannot be, without
        reading it through)."""
        return self._parquet

    def units(self) -> list["Unit"]:
        """The Parquet data cut into units of work for a Beam runner's workers, in the data's
        order: each row group of each file."""
        found = []
        try:
            dataset = self._dataset()
            for fragment in dataset.get_fragments():
                partition = ds._get_partition_keys(fragment.partition_expression)
                for group in range(fragment.metadata.num_row_groups):
                    unit = Unit(
                        self.uri, fragment.path, partition, group, len(found), dataset.schema
                    )
                    found.append(unit)
        except (pa.ArrowInvalid, OSError) as err:
            raise DataError(f"Cannot read {self.uri!r}: {err}") from err
        return found

    def _file_batches(
        self,
        schema: pa.Schema,
        path: str,
        partition: dict[str, Any],
        row_groups: list[int] | None = None,
    ) -> Iterator[pa.RecordBatch]:
        """A Parquet file's batches as the dataset has them (its columns and types, the Hive
        partition's values as columns), read a batch at a time: Arrow's dataset scanner reads
        row groups ahead, which held 300 MiB more at 3 million rows (bench/scale.py)."""
        with self._fs.open_input_file(path) as handle:
            rows = pq.ParquetFile(handle)
            for batch in rows.iter_batches(batch_size=BATCH_ROWS, row_groups=row_groups):
                columns = []
                for field in schema:
                    if field.name in partition:
                        value = pa.scalar(partition[field.name], field.type)
                        column = pa.repeat(value, batch.num_rows)
                    elif field.name in batch.schema.names:
                        column = batch.column(field.name).cast(field.type)
                    else:
                        column = pa.nulls(batch.num_rows, field.type)
                    columns.append(column)
                yield pa.RecordBatch.from_arrays(columns, schema=schema)

    def _raw_batches(self) -> Iterator[pa.RecordBatch]:
        """The data's record batches as read, types and names untouched."""
        if self._parquet:
            dataset = self._dataset()
            for fragment in dataset.get_fragments():
                partition = ds._get_partition_keys(fragment.partition_expression)
                yield from self._file_batches(dataset.schema, fragment.path, partition)
            return
        while True:
            reader = pa_csv.open_csv(
                self._open(), **self._csv_options(column_types=self._csv_types)
            )
            try:
                yield from reader
                return
            except pa.ArrowInvalid as err:
                widened = _CSV_COLUMN_ERROR.search(str(err))
                name = reader.schema.names[int(widened.group(1))] if widened else None
                if name is None or name in self._csv_types:
                    raise
                # Only a scan gets here: it has not yielded a batch whose type changes.
                self._csv_types[name] = self._whole_file_type(name)
                logger.info("Column %r widens to %s further on", name, self._csv_types[name])
                raise _Widened from err
            finally:
                reader.close()

    def scan(self, beam_pipeline_args: Sequence[str] = ()) -> Scan:
        """Reads the data once (again for each CSV column whose type widens further on), or has
        a Beam runner's workers read it, for the columns to write, their types, which integer
        columns lack values, and the rows.

        Raises:
            DataError: The data cannot be read, has no rows, or has a column the pipeline
                cannot use.
        """
        if beam_pipeline_args:
            units = self.units()
            nulls, rows = beam.run(units, _count_unit, beam_pipeline_args, _COUNTS)
            return self._scan_of(self._dataset().schema, nulls, rows)
        while True:
            try:
                schema, nulls, rows = None, collections.Counter(), 0
                for batch in self._checked(self._raw_batches()):
                    schema = schema or batch.schema
                    nulls, rows = _COUNTS.merge_accumulators([(nulls, rows), _counts(batch)])
                return self._scan_of(schema, nulls, rows)
            except _Widened:
                continue

    def _scan_of(self, schema: pa.Schema | None, nulls: dict[str, int], rows: int) -> Scan:
        if schema is None or rows == 0:
            raise DataError(f"{self.uri!r} has a header but no rows; there is nothing to train on.")
        sources, fields = [], []
        for field in schema:
            if nulls.get(field.name, 0) == rows:
                logger.warning("Dropping column %r: it has no values", field.name)
                continue
            name = _feature_name(field.name)
            if name != field.name:
                logger.warning("Renaming column %r to %r (a valid feature name)", field.name, name)
            if name in (f.name for f in fields):
                raise DataError(
                    f"Two columns are both named {name!r} (after renaming to valid feature "
                    "names); rename one of them."
                )
            sources.append(field.name)
            fields.append(pa.field(name, _pipeline_type(field.name, field.type)))
        nullable = {f.name for f, s in zip(fields, sources, strict=True) if nulls.get(s)}
        return Scan(pa.schema(fields), sources, frozenset(nullable), rows)

    def batches(self, scan: Scan, unit: "Unit | None" = None) -> Iterator[pa.RecordBatch]:
        """The data (or one unit of it) in record batches of ``scan``'s columns and types."""
        raw = self._raw_batches() if unit is None else unit.raw_batches(self)
        for batch in self._checked(raw):
            yield pa.RecordBatch.from_arrays(
                [
                    _normalize_column(source, batch.column(source), field.type)
                    for source, field in zip(scan.sources, scan.schema, strict=True)
                ],
                schema=scan.schema,
            )

    def _checked(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        try:
            yield from batches
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OSError) as err:
            raise DataError(f"Cannot read {self.uri!r}: {err}") from err


class Unit(NamedTuple):
    """A unit of work on a Beam worker: one row group of one Parquet file of the data, with
    what reading it needs (the dataset's columns, the file's Hive partition), so a worker
    reads that row group and nothing else (no listing of the data's files)."""

    uri: str
    path: str
    partition: dict[str, Any]
    row_group: int
    position: int
    schema: pa.Schema

    def raw_batches(self, source: Source) -> Iterator[pa.RecordBatch]:
        return source._file_batches(self.schema, self.path, self.partition, [self.row_group])


class _Widened(Exception):
    """A CSV column's type widened: the scan starts again."""


def _counts(batch: pa.RecordBatch) -> tuple[collections.Counter, int]:
    """The missing values of each column of a batch, and its rows."""
    nulls = collections.Counter(
        {name: batch.column(index).null_count for index, name in enumerate(batch.schema.names)}
    )
    return nulls, batch.num_rows


class _Counts:
    """Sums (missing values per column, rows): the combiner of a scan's units."""

    def create_accumulator(self) -> tuple[collections.Counter, int]:
        return collections.Counter(), 0

    def merge_accumulators(self, parts: Iterable[tuple[collections.Counter, int]]) -> tuple:
        nulls, rows = collections.Counter(), 0
        for part_nulls, part_rows in parts:
            nulls.update(part_nulls)
            rows += part_rows
        return nulls, rows

    def extract_output(self, counts: tuple) -> tuple:
        return counts


_COUNTS = _Counts()


def _count_unit(unit: "Unit") -> tuple[collections.Counter, int]:
    source = Source(unit.uri)
    return _COUNTS.merge_accumulators(map(_counts, source._checked(unit.raw_batches(source))))


def read_table(uri: str) -> pa.Table:
    """Reads a CSV file, a Parquet file or a folder of Parquet files whole (for small data;
    :func:`ingest` streams).

    Args:
        uri: A local path or a ``file://``, ``gs://`` or ``s3://`` URI.

    Returns:
        The table with valid feature names and the pipeline's types (see :func:`ingest`).

    Raises:
        DataError: The path does not exist, is not CSV or Parquet, or cannot be parsed.
    """
    source = Source(uri)
    scan = source.scan()
    return pa.Table.from_batches(list(source.batches(scan)), schema=scan.schema)


def _feature_name(column: str) -> str:
    if _VALID_NAME.match(column):
        return column
    name = re.sub(r"[^A-Za-z0-9_.\-]", "_", column.strip())
    return name if _VALID_NAME.match(name) else f"f{name}"


def _pipeline_type(name: str, kind: pa.DataType) -> pa.DataType:
    """Integers and booleans become int64, floats float64, everything else string (dates,
    timestamps, dictionary-encoded text)."""
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    if pa.types.is_boolean(kind) or pa.types.is_integer(kind):
        return pa.int64()
    if pa.types.is_floating(kind):
        return pa.float64()
    if pa.types.is_nested(kind):
        raise DataError(
            f"Column {name!r} has type {kind}, which the pipeline cannot use as a feature; "
            "give numbers or strings (one value per row)."
        )
    return pa.string()


def _normalize_column(name: str, column: pa.Array, kind: pa.DataType) -> pa.Array:
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    try:
        return pc.cast(column, kind)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
        raise DataError(
            f"Column {name!r} has type {column.type}, which the pipeline cannot use as a "
            f"feature ({err}); give numbers or strings (one value per row)."
        ) from err


def row_hashes(rows: pa.Table | pa.RecordBatch, nullable: frozenset[str]) -> np.ndarray:
    """A stable 64-bit hash of each row's values (pandas' fixed-key hashing), each row's own:
    the same values hash the same in any batch.

    Args:
        rows: Rows of the data's columns and types.
        nullable: The integer columns that lack a value somewhere in the data. pandas holds a
            whole column of them as floats, so each batch's values are hashed as floats; an
            integer column the data fills is hashed as integers, a value missing there (a log
            row's) as ``_NULL_INTEGER``.
    """
    frame = rows.to_pandas()
    for field in rows.schema:
        if pa.types.is_integer(field.type):
            column = frame[field.name]
            frame[field.name] = (
                column.astype(np.float64)
                if field.name in nullable
                else column.fillna(_NULL_INTEGER).astype(np.int64)
            )
    return pd.util.hash_pandas_object(frame, index=False).to_numpy()


def _in_eval(hashes: np.ndarray, eval_fraction: float) -> np.ndarray:
    return (hashes % _BUCKETS) < round(eval_fraction * _BUCKETS)


# What a logged null is hashed as in an integer column the data fills.
_NULL_INTEGER = np.iinfo(np.int64).min


def _fit(values: pa.Array | pa.ChunkedArray, kind: pa.DataType) -> tuple[pa.Array, np.ndarray]:
    """``values`` as ``kind``, and which of them fit: a value that does not (text that is no
    number, a fraction in an integer column) becomes null and is marked."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    try:
        return pc.cast(values, kind), np.ones(len(values), dtype=bool)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    if pa.types.is_integer(kind):  # "1.0" and 1.0 are 1; 1.5 is not an integer
        numbers = _fit(values, pa.float64())[0].to_numpy(zero_copy_only=False)
        whole = np.isfinite(numbers) & (np.floor(numbers) == numbers)
        fitted = pa.array(np.where(whole, numbers, 0).astype(np.int64), mask=~whole)
        return fitted, whole | ~pc.is_valid(values).to_numpy(zero_copy_only=False)
    fitted, fits = [], []
    for value in values:
        try:
            fitted.append(pc.cast(pa.array([value.as_py()], values.type), kind)[0].as_py())
            fits.append(True)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            fitted.append(None)
            fits.append(False)
    return pa.array(fitted, kind), np.array(fits, dtype=bool)


def labelled_log_rows(
    log: str, model: str, label: str, schema: pa.Schema, hours: float, now: float | None = None
) -> pa.Table:
    """The log's predictions of ``model`` answered in the last ``hours`` whose labels arrived,
    as rows of the data: each served feature in its column, the newest label in ``label``'s,
    with the data's types (a column the log lacks is empty). A row with a value that does not
    fit its column's type (what a client sent is logged as sent) is left out, and counted in a
    warning.

    Raises:
        DataError: ``label`` is not a column of the data.
    """
    if label not in schema.names:
        raise DataError(
            f"The label {label!r} is not a column of the data ({', '.join(schema.names)}): "
            "the log's labels have nowhere to go."
        )
    now = time.time() if now is None else now
    since = now - hours * 3600
    predictions = pl.read(log, pl.PREDICTIONS, model, since)
    rows = pl.labelled(predictions, pl.read(log, pl.LABELS, model, since))
    columns, keep, misfits = [], np.ones(rows.num_rows, dtype=bool), {}
    for field in schema:
        source = "true_label" if field.name == label else pl.feature_column(field.name)
        if rows.num_rows and source in rows.column_names:
            column, fits = _fit(rows.column(source), field.type)
            if not fits.all():
                misfits[field.name] = int((~fits).sum())
            columns.append(column)
            keep &= fits
        else:
            columns.append(pa.nulls(rows.num_rows, field.type))
    table = pa.Table.from_arrays(columns, schema=schema)
    if misfits:
        logger.warning(
            "Left out %d labelled rows of %s whose values do not fit the data's types (%s)",
            int((~keep).sum()),
            log,
            ", ".join(f"{name}: {count}" for name, count in misfits.items()),
        )
    return table.filter(pa.array(keep))


class _SplitWriter:
    """Writes one split's rows as they come, in row groups of :data:`BATCH_ROWS`, to a file
    beside ``path`` that becomes ``path`` only when the whole split is written."""

    def __init__(self, path: str, schema: pa.Schema) -> None:
        self.path, self.rows = path, 0
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self._partial = f"{path}.partial"
        self._writer = pq.ParquetWriter(self._partial, schema)
        self._pending: list[pa.RecordBatch] = []

    def write(self, rows: pa.RecordBatch | pa.Table) -> None:
        self._pending.extend(rows.to_batches() if isinstance(rows, pa.Table) else [rows])
        self.rows += rows.num_rows
        if sum(batch.num_rows for batch in self._pending) >= BATCH_ROWS:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            self._writer.write_table(pa.Table.from_batches(self._pending), BATCH_ROWS)
            self._pending = []

    def commit(self) -> None:
        self._flush()
        self._writer.close()
        os.replace(self._partial, self.path)

    def discard(self) -> None:
        self._writer.close()
        os.remove(self._partial)


class _Fingerprint:
    """A short hash of the rows' content and column types, whatever order or batches the rows
    come in (the hashes' sum, and the sum of their squares, modulo 2**64)."""

    def __init__(self, schema: pa.Schema) -> None:
        self._schema, self._rows = str(schema), 0
        self._sums = np.zeros(2, dtype=np.uint64)

    def add(self, hashes: np.ndarray) -> None:
        self._rows += len(hashes)
        with np.errstate(over="ignore"):
            self._sums += np.array([hashes.sum(), (hashes * hashes).sum()], dtype=np.uint64)

    def merge(self, other: "_Fingerprint") -> None:
        """Adds the rows another fingerprint saw."""
        self._rows += other._rows
        with np.errstate(over="ignore"):
            self._sums += other._sums

    def hexdigest(self) -> str:
        digest = hashlib.sha256(f"{self._schema}\n{self._rows}".encode())
        digest.update(self._sums.tobytes())
        return digest.hexdigest()[:16]


class _Split:
    """Rows split into train and eval by their hashes as they come, and written to two
    Parquet files (whole, or not at all: :meth:`commit` or :meth:`discard`)."""

    def __init__(self, paths: Sequence[str], scan: Scan, eval_fraction: float) -> None:
        self._scan, self._eval_fraction = scan, eval_fraction
        self.writers = [_SplitWriter(path, scan.schema) for path in paths]
        self.fingerprint = _Fingerprint(scan.schema)

    def add(self, rows: pa.RecordBatch | pa.Table) -> pa.RecordBatch | pa.Table:
        """Splits and writes ``rows``; returns those that went to eval."""
        hashes = row_hashes(rows, self._scan.nullable)
        self.fingerprint.add(hashes)
        is_eval = _in_eval(hashes, self._eval_fraction)
        self.writers[0].write(rows.filter(pa.array(~is_eval)))
        evaluation = rows.filter(pa.array(is_eval))
        self.writers[1].write(evaluation)
        return evaluation

    @property
    def rows(self) -> tuple[int, int]:
        return self.writers[0].rows, self.writers[1].rows

    def commit(self) -> None:
        for writer in self.writers:
            writer.commit()

    def discard(self) -> None:
        for writer in self.writers:
            writer.discard()


def _split_unit(
    scan: Scan, eval_fraction: float, folders: Sequence[str], unit: Unit
) -> tuple[int, int, _Fingerprint]:
    """On a Beam worker: splits one unit of the data into a shard of each split's folder,
    named by the unit's position, so the shards in name order are the data's rows in order."""
    shard = f"part-{unit.position:05d}{splits.SHARD_SUFFIX}"
    split = _Split([os.path.join(folder, shard) for folder in folders], scan, eval_fraction)
    try:
        for batch in Source(unit.uri).batches(scan, unit):
            split.add(batch)
    except BaseException:
        split.discard()
        raise
    split.commit()
    return (*split.rows, split.fingerprint)


def _too_few(scan: Scan, eval_fraction: float) -> DataError:
    return DataError(
        f"{scan.rows} rows are too few to split into train and eval at "
        f"eval_fraction={eval_fraction}: one split would be empty. Give more rows."
    )


def ingest(
    data_uri: str,
    train_path: str,
    eval_path: str,
    eval_fraction: float,
    labelled: tuple[str, str, str, float] | None = None,
    labelled_eval_path: str | None = None,
    beam_pipeline_args: Sequence[str] = (),
) -> IngestResult:
    """Reads ``data_uri`` (and the labelled log's rows), splits the rows and writes the splits
    as Parquet, a record batch at a time: memory holds a few batches, never the table.

    In this process each split is one Parquet file. Given Beam pipeline options, the data's
    row groups are split on the runner's workers and each split is a folder of Parquet
    shards, one per row group of the data (and one for the log's rows), named in the data's
    order: the same rows in the same order, and the same fingerprint (:mod:`components.splits`
    reads either).

    Args:
        data_uri: A CSV or Parquet file or folder, local or ``gs://``/``s3://`` (a CSV is ingested
            in-process, even with Beam options).
        train_path: Where to write the train split.
        eval_path: Where to write the eval split.
        eval_fraction: The share of rows for eval.
        labelled: ``(log, model, label, hours)``: the prediction log whose recent labelled rows
            of ``model`` join the data (see :func:`labelled_log_rows`).
        labelled_eval_path: Where to write the log's rows that are in the eval split (written,
            with no rows, without a log).
        beam_pipeline_args: Beam options to split the data on a Beam runner; empty for
            in-process.

    Returns:
        Row counts, a content fingerprint and the column names.

    Raises:
        DataError: The data cannot be read, or has too few rows for both splits; nothing is
            written then.
        ConfigurationError: Beam options the runner rejects (before any work).
    """
    logger.info("Ingesting %s (eval_fraction=%s)", data_uri, eval_fraction)
    # Checks them before anything is read.
    IngestConfig(eval_fraction, **({"labelled_hours": labelled[3]} if labelled else {}))
    source = Source(data_uri)
    if beam_pipeline_args:
        beam.pipeline_options(beam_pipeline_args)
        if not source.is_parquet:
            logger.warning(
                "Ingesting the CSV %s in this process, not on Beam: a CSV cannot be cut into "
                "units without reading it through. Give Parquet to split it on Beam's workers.",
                data_uri,
            )
            beam_pipeline_args = ()
    scan = source.scan(beam_pipeline_args)
    rows = (
        labelled_log_rows(labelled[0], labelled[1], labelled[2], scan.schema, labelled[3])
        if labelled is not None
        else scan.schema.empty_table()
    )
    from_log = rows.num_rows
    if labelled is not None:
        logger.info("%d labelled rows of %s in %s", from_log, labelled[1], labelled[0])
    paths = (train_path, eval_path)
    if beam_pipeline_args:
        counts, fingerprint, log_eval = _split_on_beam(source, scan, rows, eval_fraction, paths,
                                                       beam_pipeline_args)  # fmt: skip
    else:
        counts, fingerprint, log_eval = _split_here(source, scan, rows, eval_fraction, paths)
    if labelled_eval_path is not None:
        os.makedirs(os.path.dirname(os.path.abspath(labelled_eval_path)), exist_ok=True)
        pq.write_table(log_eval, labelled_eval_path)
    logger.info("Wrote %d train and %d eval rows", *counts)
    return IngestResult(
        *counts, fingerprint.hexdigest(), scan.schema.names, from_log, log_eval.num_rows
    )


def _join_log(split: _Split, rows: pa.Table) -> pa.Table:
    """Splits the log's rows after the data's; returns those in eval."""
    if rows.num_rows:
        logger.info("Joining %d labelled rows of the prediction log", rows.num_rows)
    return split.add(rows)


def _split_here(
    source: Source, scan: Scan, rows: pa.Table, eval_fraction: float, paths: Sequence[str]
) -> tuple[tuple[int, int], _Fingerprint, pa.Table]:
    split = _Split(paths, scan, eval_fraction)
    try:
        for batch in source.batches(scan):
            split.add(batch)
        if not all(split.rows):
            raise _too_few(scan, eval_fraction)
        log_eval = _join_log(split, rows)
    except BaseException:
        split.discard()
        raise
    split.commit()
    return split.rows, split.fingerprint, log_eval


def _split_on_beam(
    source: Source,
    scan: Scan,
    rows: pa.Table,
    eval_fraction: float,
    paths: Sequence[str],
    beam_pipeline_args: Sequence[str],
) -> tuple[tuple[int, int], _Fingerprint, pa.Table]:
    folders = [f"{os.path.abspath(path)}.partial" for path in paths]
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder)
    try:
        units = source.units()
        parts = beam.run(
            units,
            functools.partial(_split_unit, scan, eval_fraction, folders),
            beam_pipeline_args,
        )
        fingerprint = _Fingerprint(scan.schema)
        for _, _, part in parts:
            fingerprint.merge(part)
        counts = [sum(part[index] for part in parts) for index in (0, 1)]
        if not all(counts):
            raise _too_few(scan, eval_fraction)
        shard = f"part-{len(units):05d}{splits.SHARD_SUFFIX}"
        split = _Split([os.path.join(folder, shard) for folder in folders], scan, eval_fraction)
        log_eval = _join_log(split, rows)
        split.commit()
        fingerprint.merge(split.fingerprint)
        counts = [total + log for total, log in zip(counts, split.rows, strict=True)]
    except BaseException:
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)
        raise
    for folder, path in zip(folders, paths, strict=True):
        os.replace(folder, path)
    return (counts[0], counts[1]), fingerprint, log_eval
