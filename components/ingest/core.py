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

import hashlib
import logging
import os
import re
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
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


def read_table(uri: str) -> pa.Table:
    """Reads a CSV file, a Parquet file or a folder of Parquet files.

    Args:
        uri: A local path or a ``file://``, ``gs://`` or ``s3://`` URI.

    Returns:
        The table with column names and types normalised by :func:`normalize_table`.

    Raises:
        DataError: The path does not exist, is not CSV or Parquet, or cannot be parsed.
    """
    fs, path = _filesystem(uri)
    try:
        info = fs.get_file_info(path)
    except OSError as err:
        raise DataError(f"Cannot reach {uri!r}: {err}") from err
    if info.type == pa_fs.FileType.NotFound:
        raise DataError(
            f"No data at {uri!r}: the path does not exist. Give a CSV or Parquet file, "
            "or a folder of Parquet files."
        )
    lower = path.lower()
    try:
        if info.type == pa_fs.FileType.Directory or lower.endswith(PARQUET_SUFFIXES):
            table = pq.read_table(path, filesystem=fs)
        elif lower.endswith(CSV_SUFFIXES):
            delimiter = "\t" if lower.endswith(".tsv") else ","
            with fs.open_input_stream(path, compression="detect") as stream:
                table = pa_csv.read_csv(
                    stream,
                    parse_options=pa_csv.ParseOptions(delimiter=delimiter),
                    # "NA", "null", "" and the like mean missing in text columns too.
                    convert_options=pa_csv.ConvertOptions(strings_can_be_null=True),
                )
        else:
            raise DataError(
                f"Cannot tell the format of {uri!r}: name it *.csv, *.tsv, *.csv.gz, "
                "*.parquet or *.pq, or give a folder of Parquet files."
            )
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as err:
        raise DataError(f"Cannot read {uri!r}: {err}") from err
    if table.num_rows == 0:
        raise DataError(f"{uri!r} has a header but no rows; there is nothing to train on.")
    return normalize_table(table)


def _feature_name(column: str) -> str:
    if _VALID_NAME.match(column):
        return column
    name = re.sub(r"[^A-Za-z0-9_.\-]", "_", column.strip())
    return name if _VALID_NAME.match(name) else f"f{name}"


def _normalize_column(name: str, column: pa.ChunkedArray) -> pa.ChunkedArray:
    kind = column.type
    if pa.types.is_dictionary(kind):
        column = column.cast(kind.value_type)
        kind = column.type
    if pa.types.is_boolean(kind):
        return column.cast(pa.int64())
    if pa.types.is_integer(kind):
        return column.cast(pa.int64())
    if pa.types.is_floating(kind):
        return column.cast(pa.float64())
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return column.cast(pa.string())
    try:
        return pc.cast(column, pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
        raise DataError(
            f"Column {name!r} has type {kind}, which the pipeline cannot use as a feature; "
            "give numbers or strings (one value per row)."
        ) from err


def normalize_table(table: pa.Table) -> pa.Table:
    """Gives every column a valid feature name and one of the types the pipeline handles.

    Integers and booleans become int64, floats float64, everything else string (dates,
    timestamps, dictionary-encoded text). Columns with no value at all are dropped.

    Raises:
        DataError: Two columns map to the same feature name, or a column has a nested type.
    """
    names: list[str] = []
    arrays: list[pa.ChunkedArray] = []
    for column_name, column in zip(table.column_names, table.columns, strict=True):
        if column.null_count == len(column):
            logger.warning("Dropping column %r: it has no values", column_name)
            continue
        name = _feature_name(column_name)
        if name != column_name:
            logger.warning("Renaming column %r to %r (a valid feature name)", column_name, name)
        if name in names:
            raise DataError(
                f"Two columns are both named {name!r} (after renaming to valid feature names); "
                "rename one of them."
            )
        names.append(name)
        arrays.append(_normalize_column(column_name, column))
    return pa.Table.from_arrays(arrays, names=names)


def row_hashes(table: pa.Table) -> pd.Series:
    """A stable 64-bit hash of each row's values (pandas' fixed-key hashing)."""
    return pd.util.hash_pandas_object(table.to_pandas(), index=False)


def _in_eval(hashes: np.ndarray, eval_fraction: float) -> np.ndarray:
    return (hashes % _BUCKETS) < round(eval_fraction * _BUCKETS)


def split_table(table: pa.Table, eval_fraction: float) -> tuple[pa.Table, pa.Table, str]:
    """Splits rows into train and eval by hashing their values.

    Args:
        table: The normalised table.
        eval_fraction: The share of rows to put in eval, in (0, 1).

    Returns:
        The train table, the eval table and a fingerprint of the content.

    Raises:
        ConfigurationError: ``eval_fraction`` is not in (0, 1).
        DataError: One of the splits would be empty.
    """
    IngestConfig(eval_fraction=eval_fraction)  # Checks it.
    hashes = row_hashes(table).to_numpy()
    is_eval = _in_eval(hashes, eval_fraction)
    train, evaluation = table.filter(pa.array(~is_eval)), table.filter(pa.array(is_eval))
    if train.num_rows == 0 or evaluation.num_rows == 0:
        raise DataError(
            f"{table.num_rows} rows are too few to split into train and eval at "
            f"eval_fraction={eval_fraction}: one split would be empty. Give more rows."
        )
    digest = hashlib.sha256(str(table.schema).encode())
    digest.update(hashes.tobytes())
    return train, evaluation, digest.hexdigest()[:16]


# What a logged null is hashed as in an integer column the data fills: pandas holds that column
# as int64, which has no null.
_NULL_INTEGER = np.iinfo(np.int64).min


def log_row_hashes(rows: pa.Table, data: pa.Table) -> np.ndarray:
    """Hashes of the log's rows, each as :func:`row_hashes` hashes the same values in ``data``:
    a log row's split depends on its own values alone, and a row the data has too lands in the
    same split. (Hashing the two tables together would not do: one logged null in an integer
    column turns pandas' column into floats, and every data row's hash, and split, with it.)"""
    frame = rows.to_pandas()
    for field in data.schema:
        if pa.types.is_integer(field.type) and data.column(field.name).null_count == 0:
            frame[field.name] = frame[field.name].fillna(_NULL_INTEGER).astype(np.int64)
    return pd.util.hash_pandas_object(frame, index=False).to_numpy()


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


def _write(path: str, table: pa.Table) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    pq.write_table(table, path)


def ingest(
    data_uri: str,
    train_path: str,
    eval_path: str,
    eval_fraction: float,
    labelled: tuple[str, str, str, float] | None = None,
    labelled_eval_path: str | None = None,
) -> IngestResult:
    """Reads ``data_uri`` (and the labelled log's rows), splits the rows and writes the splits
    as Parquet files.

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
    """
    logger.info("Ingesting %s (eval_fraction=%s)", data_uri, eval_fraction)
    # Checks them before anything is read.
    IngestConfig(eval_fraction, **({"labelled_hours": labelled[3]} if labelled else {}))
    table = read_table(data_uri)
    train, evaluation, fingerprint = split_table(table, eval_fraction)
    log_eval = table.slice(0, 0)
    from_log = 0
    if labelled is not None:
        log, model, label, hours = labelled
        rows = labelled_log_rows(log, model, label, table.schema, hours)
        logger.info("Joining %d labelled rows of %s from %s", rows.num_rows, model, log)
        hashes = log_row_hashes(rows, table)
        is_eval = _in_eval(hashes, eval_fraction)
        log_eval = rows.filter(pa.array(is_eval))
        train = pa.concat_tables([train, rows.filter(pa.array(~is_eval))])
        evaluation = pa.concat_tables([evaluation, log_eval])
        fingerprint = hashlib.sha256(fingerprint.encode() + hashes.tobytes()).hexdigest()[:16]
        from_log = rows.num_rows
    for path, split in ((train_path, train), (eval_path, evaluation)):
        _write(path, split)
    if labelled_eval_path is not None:
        _write(labelled_eval_path, log_eval)
    logger.info("Wrote %d train and %d eval rows", train.num_rows, evaluation.num_rows)
    return IngestResult(
        train.num_rows,
        evaluation.num_rows,
        fingerprint,
        table.column_names,
        from_log,
        log_eval.num_rows,
    )
