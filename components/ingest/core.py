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
import hashlib
import logging
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.dataset as ds
import pyarrow.fs as pa_fs
import pyarrow.parquet as pq

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

    def _read_csv(self, **convert: Any) -> Any:
        # "NA", "null", "" and the like mean missing in text columns too.
        options = pa_csv.ConvertOptions(strings_can_be_null=True, **convert)
        parse = pa_csv.ParseOptions(delimiter=self._delimiter)
        stream = self._fs.open_input_stream(self._path, compression="detect")
        if "include_columns" in convert:
            with stream:
                return pa_csv.read_csv(stream, parse_options=parse, convert_options=options)
        return pa_csv.open_csv(stream, parse_options=parse, convert_options=options)

    def _raw_batches(self) -> Iterator[pa.RecordBatch]:
        """The data's record batches as read, types and names untouched."""
        if self._parquet:
            dataset = ds.dataset(
                self._path, filesystem=self._fs, format="parquet", partitioning="hive"
            )
            yield from dataset.to_batches(batch_size=BATCH_ROWS, use_threads=False)
            return
        while True:
            reader = self._read_csv(column_types=self._csv_types)
            try:
                yield from reader
                return
            except pa.ArrowInvalid as err:
                widened = _CSV_COLUMN_ERROR.search(str(err))
                name = reader.schema.names[int(widened.group(1))] if widened else None
                if name is None or name in self._csv_types:
                    raise
                # Only a scan gets here: it has not yielded a batch whose type changes.
                self._csv_types[name] = self._read_csv(include_columns=[name]).column(0).type
                logger.info("Column %r widens to %s further on", name, self._csv_types[name])
                raise _Widened from err
            finally:
                reader.close()

    def scan(self) -> Scan:
        """Reads the data once (again for each CSV column whose type widens further on) for the
        columns to write, their types, which integer columns lack values, and the rows.

        Raises:
            DataError: The data cannot be read, has no rows, or has a column the pipeline
                cannot use.
        """
        while True:
            try:
                schema, nulls, rows = None, collections.Counter(), 0
                for batch in self._checked(self._raw_batches()):
                    schema = schema or batch.schema
                    rows += batch.num_rows
                    for name, column in zip(batch.schema.names, batch.columns, strict=True):
                        nulls[name] += column.null_count
                break
            except _Widened:
                continue
        if schema is None or rows == 0:
            raise DataError(f"{self.uri!r} has a header but no rows; there is nothing to train on.")
        sources, fields = [], []
        for field in schema:
            if nulls[field.name] == rows:
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
        nullable = {f.name for f, s in zip(fields, sources, strict=True) if nulls[s]}
        return Scan(pa.schema(fields), sources, frozenset(nullable), rows)

    def batches(self, scan: Scan) -> Iterator[pa.RecordBatch]:
        """The data in record batches of ``scan``'s columns and types."""
        for batch in self._checked(self._raw_batches()):
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


class _Widened(Exception):
    """A CSV column's type widened: the scan starts again."""


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

    def hexdigest(self) -> str:
        digest = hashlib.sha256(f"{self._schema}\n{self._rows}".encode())
        digest.update(self._sums.tobytes())
        return digest.hexdigest()[:16]


def ingest(
    data_uri: str,
    train_path: str,
    eval_path: str,
    eval_fraction: float,
    labelled: tuple[str, str, str, float] | None = None,
    labelled_eval_path: str | None = None,
) -> IngestResult:
    """Reads ``data_uri`` (and the labelled log's rows), splits the rows and writes the splits
    as Parquet files, a record batch at a time: memory holds a few batches, never the table.

    Args:
        data_uri: A CSV or Parquet file or folder, local or ``gs://``/``s3://``.
        train_path: Where to write the train split.
        eval_path: Where to write the eval split.
        eval_fraction: The share of rows for eval.
        labelled: ``(log, model, label, hours)``: the prediction log whose recent labelled rows
            of ``model`` join the data (see :func:`labelled_log_rows`).
        labelled_eval_path: Where to write the log's rows that are in the eval split (written,
            with no rows, without a log).

    Returns:
        Row counts, a content fingerprint and the column names.

    Raises:
        DataError: The data cannot be read, or has too few rows for both splits; nothing is
            written then.
    """
    logger.info("Ingesting %s (eval_fraction=%s)", data_uri, eval_fraction)
    # Checks them before anything is read.
    IngestConfig(eval_fraction, **({"labelled_hours": labelled[3]} if labelled else {}))
    source = Source(data_uri)
    scan = source.scan()
    rows = (
        labelled_log_rows(labelled[0], labelled[1], labelled[2], scan.schema, labelled[3])
        if labelled is not None
        else scan.schema.empty_table()
    )
    from_log = rows.num_rows
    writers = [_SplitWriter(path, scan.schema) for path in (train_path, eval_path)]
    fingerprint = _Fingerprint(scan.schema)
    try:
        for batch in source.batches(scan):
            hashes = row_hashes(batch, scan.nullable)
            fingerprint.add(hashes)
            is_eval = _in_eval(hashes, eval_fraction)
            writers[0].write(batch.filter(pa.array(~is_eval)))
            writers[1].write(batch.filter(pa.array(is_eval)))
        if not (writers[0].rows and writers[1].rows):
            raise DataError(
                f"{scan.rows} rows are too few to split into train and eval at "
                f"eval_fraction={eval_fraction}: one split would be empty. Give more rows."
            )
        if labelled is not None:
            log, model = labelled[:2]
            logger.info("Joining %d labelled rows of %s from %s", rows.num_rows, model, log)
            hashes = row_hashes(rows, scan.nullable)
            fingerprint.add(hashes)
            is_eval = _in_eval(hashes, eval_fraction)
            writers[0].write(rows.filter(pa.array(~is_eval)))
            rows = rows.filter(pa.array(is_eval))  # from here on, the log's rows in eval
            writers[1].write(rows)
    except BaseException:
        for writer in writers:
            writer.discard()
        raise
    for writer in writers:
        writer.commit()
    if labelled_eval_path is not None:
        os.makedirs(os.path.dirname(os.path.abspath(labelled_eval_path)), exist_ok=True)
        pq.write_table(rows, labelled_eval_path)
    logger.info("Wrote %d train and %d eval rows", writers[0].rows, writers[1].rows)
    return IngestResult(
        writers[0].rows,
        writers[1].rows,
        fingerprint.hexdigest(),
        scan.schema.names,
        from_log,
        rows.num_rows,
    )
