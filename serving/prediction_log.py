"""The prediction log: what a served model was asked and what it answered, as Parquet.

One layout everywhere, under a local folder or an object-store URI (``s3://``, ``gs://``)::

    <log>/predictions/model=<name>/hour=<YYYY-MM-DDTHH>/<window start>-<writer>-<n>.parquet
    <log>/labels/model=<name>/hour=<YYYY-MM-DDTHH>/<arrival>-<writer>-<n>.parquet

Hive-style partitions, so ``pandas.read_parquet("<log>/predictions")`` or
``pyarrow.dataset.dataset("<log>/predictions", partitioning="hive")`` read it with ``model`` and
``hour`` columns, and a window of one model and hour is one file. A file appears whole or not at
all: on a local disk it is written under a hidden name (``.``-prefixed, which pyarrow and pandas
skip) and renamed; an object store makes an object visible only when its upload completes.

A predictions row is one predicted row of a request: :data:`REQUEST_ID`, :data:`ROW` (its place
in the request), :data:`TIME` (when it was answered, UTC), :data:`VERSION` (the model version
that computed it; null when unknown), :data:`LATENCY_MS` (of the model call for the whole
request), then one column per feature as the model's signature takes it (numbers as float64,
strings as string) and one per output (``label`` string, ``probabilities`` list of float64,
``prediction`` float64). A feature whose name is one of the log's own columns is stored as
``feature.<name>``. A labels row is :data:`REQUEST_ID`, :data:`ROW`, :data:`TIME` (when the label
arrived) and :data:`LABEL` (the ground truth, as text).

Only pyarrow is needed, in either environment (pyarrow 10 in the pipeline's, newer in the
server's).
"""

import atexit
import collections
import datetime as dt
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pa_fs
import pyarrow.parquet as pq

logger = logging.getLogger(__name__)

PREDICTIONS = "predictions"
LABELS = "labels"
# What a shadow version answered to the same requests (serving/shadow.py).
SHADOW = "shadow"

REQUEST_ID = "request_id"
ROW = "row"
TIME = "time"
VERSION = "version"
LATENCY_MS = "latency_ms"
LABEL = "label"
OWN_COLUMNS = (REQUEST_ID, ROW, TIME, VERSION, LATENCY_MS)
# The outputs the exported models have (components.constants), with their column types.
OUTPUT_TYPES = {
    "label": pa.string(),
    "probabilities": pa.list_(pa.float64()),
    "prediction": pa.float64(),
    # Why a shadow version failed on a request (serving/shadow.py).
    "error": pa.string(),
}
FEATURE_PREFIX = "feature."

# Feature kinds as the models' signatures take them, and their column types.
NUMBER = "number"
STRING = "string"
_FEATURE_TYPES = {NUMBER: pa.float64(), STRING: pa.string()}


def feature_column(name: str) -> str:
    """The column of feature ``name``: its name, or ``feature.<name>`` when the log uses it."""
    if name in OWN_COLUMNS or name in OUTPUT_TYPES or name.startswith(FEATURE_PREFIX):
        return FEATURE_PREFIX + name
    return name


def hour_of(when: float) -> str:
    """The hour partition of a UTC time: ``YYYY-MM-DDTHH``."""
    return dt.datetime.fromtimestamp(when, dt.UTC).strftime("%Y-%m-%dT%H")


@dataclass
class Prediction:
    """One request's predictions, as the server answered them.

    Args:
        model: The model's name.
        version: The version that computed them, if known.
        request_id: The request's id.
        answered: When the answer was sent, seconds since the epoch.
        latency_ms: The model call's time for the whole request.
        features: Each feature's values, one per row, by feature name.
        feature_kinds: :data:`NUMBER` or :data:`STRING` per feature.
        outputs: Each output's values, one per row, by output name (see :data:`OUTPUT_TYPES`).
    """

    model: str
    version: int | None
    request_id: str
    answered: float
    latency_ms: float
    features: Mapping[str, Sequence[Any]]
    feature_kinds: Mapping[str, str]
    outputs: Mapping[str, Sequence[Any]]

    @property
    def rows(self) -> int:
        """How many rows the request predicted."""
        return len(next(iter(self.outputs.values()), ()))


def _numbers(values: Any, rows: int) -> np.ndarray:
    """float64 values of one feature or output; NaN for what is missing or not a number (the
    server validated its rows; the sink logs what clients sent, which may be anything)."""
    if values is None:
        return np.full(rows, np.nan)
    array = np.asarray(values)
    if array.dtype.kind in "fiub":
        return array.astype(np.float64).reshape(-1)
    out = np.full(len(array), np.nan)
    for index, value in enumerate(array.reshape(-1)):
        if isinstance(value, int | float | np.number) and not isinstance(value, bool):
            out[index] = float(value)
    return out


def _texts(values: Any, rows: int) -> list:
    """str values of one feature or output; None for what is missing."""
    if values is None:
        return [None] * rows
    found = []
    for value in np.asarray(values, dtype=object).reshape(-1):
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        found.append(None if value is None or value == "" else str(value))
    return found


def _probabilities(values: Any, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Offsets and float64 values of one request's probabilities, a list per row."""
    if values is None:
        return np.zeros(rows, dtype=np.int32), np.empty(0)
    try:
        matrix = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        matrix = np.empty((0, 0))
    if matrix.ndim == 2 and len(matrix) == rows:
        return np.full(rows, matrix.shape[1], dtype=np.int32), matrix.reshape(-1)
    lists = [np.asarray(row if isinstance(row, list) else [], dtype=np.float64) for row in values]
    return np.array([len(x) for x in lists], dtype=np.int32), (
        np.concatenate(lists) if lists else np.empty(0)
    )


def _arrays(found: list, kinds: str) -> np.ndarray | None:
    """The values of every request concatenated, when each is a NumPy array of ``kinds``
    (the server's columns): one C-level pass instead of one per value."""
    if found and all(isinstance(v, np.ndarray) and v.dtype.kind in kinds for v in found):
        return np.concatenate(found)
    return None


def _floats(values: np.ndarray) -> pa.Array:
    """float64 with NaN as null."""
    values = values.astype(np.float64).reshape(-1)
    return pa.array(values, pa.float64(), mask=np.isnan(values))


def _number_column(found: list, rows: np.ndarray) -> pa.Array:
    joined = _arrays(found, "fiu")
    if joined is None:
        joined = np.concatenate([_numbers(v, n) for v, n in zip(found, rows, strict=True)])
    return _floats(joined)


def _text_column(found: list, rows: np.ndarray) -> pa.Array:
    joined = _arrays(found, "O")
    if joined is not None:
        try:
            kind = pa.binary() if isinstance(joined[0], bytes) else pa.string()
            array = pa.array(joined, kind).cast(pa.string())
        except (pa.ArrowInvalid, pa.ArrowTypeError, IndexError):
            joined = None
        else:
            empty = pc.equal(array, "")  # what the server hands the model for a missing value
            return pc.if_else(empty, pa.scalar(None, pa.string()), array)
    texts = [t for v, n in zip(found, rows, strict=True) for t in _texts(v, n)]
    return pa.array(texts, pa.string())


def _list_column(found: list, rows: np.ndarray) -> pa.Array:
    joined = _arrays(found, "f")
    if joined is not None and joined.ndim == 2:
        offsets = np.arange(len(joined) + 1, dtype=np.int32) * joined.shape[1]
        values = pa.array(joined.astype(np.float64).reshape(-1))
        return pa.ListArray.from_arrays(pa.array(offsets), values)
    parts = [_probabilities(v, n) for v, n in zip(found, rows, strict=True)]
    lengths = np.concatenate([o for o, _ in parts])
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    values = pa.array(np.concatenate([v for _, v in parts]), pa.float64())
    return pa.ListArray.from_arrays(pa.array(offsets), values)


def predictions_table(batch: Sequence[Prediction]) -> pa.Table:
    """The predictions rows of ``batch`` (one model) as one table: whole columns at a time, so
    the writer thread holds the interpreter as briefly as it can."""
    kinds: dict[str, str] = {}
    for prediction in batch:
        kinds.update(prediction.feature_kinds)
    outputs = sorted({name for p in batch for name in p.outputs if name in OUTPUT_TYPES})
    rows = np.array([p.rows for p in batch], dtype=np.int64)
    total = int(rows.sum())
    columns: dict[str, pa.Array] = {
        REQUEST_ID: pa.array(np.repeat(np.array([p.request_id for p in batch], object), rows)),
        ROW: pa.array(
            np.concatenate([np.arange(n, dtype=np.int32) for n in rows])
            if total
            else np.empty(0, np.int32)
        ),
        TIME: pa.array(
            np.repeat(np.array([int(p.answered * 1000) for p in batch], np.int64), rows),
            pa.timestamp("ms", tz="UTC"),
        ),
        VERSION: pa.array(
            np.repeat(np.array([p.version for p in batch], object), rows), pa.int64()
        ),
        LATENCY_MS: _floats(np.repeat(np.array([p.latency_ms for p in batch], np.float64), rows)),
    }
    for name in sorted(kinds):
        found = [p.features.get(name) for p in batch]
        if kinds[name] == NUMBER:
            columns[feature_column(name)] = _number_column(found, rows)
        else:
            columns[feature_column(name)] = _text_column(found, rows)
    for name in outputs:
        found = [p.outputs.get(name) for p in batch]
        if name == "probabilities":
            columns[name] = _list_column(found, rows)
        elif name in ("label", "error"):
            columns[name] = _text_column(found, rows)
        else:
            columns[name] = _number_column(found, rows)
    return pa.table(columns)


def labels_table(labels: Sequence[tuple[str, int, str]], arrived: float) -> pa.Table:
    """Labels ``(request id, row, label)`` that arrived at ``arrived`` as one table."""
    return pa.table(
        {
            REQUEST_ID: pa.array([r for r, _, _ in labels], pa.string()),
            ROW: pa.array([row for _, row, _ in labels], pa.int32()),
            TIME: pa.array([int(arrived * 1000)] * len(labels), pa.timestamp("ms", tz="UTC")),
            LABEL: pa.array([label for _, _, label in labels], pa.string()),
        }
    )


class LogStore:
    """The log's files: a local folder or an object store, written a whole file at a time.

    Args:
        root: The log's folder or URI.
    """

    def __init__(self, root: str) -> None:
        self.is_local = "://" not in root
        if self.is_local:
            self.fs: pa_fs.FileSystem = pa_fs.LocalFileSystem()
            self.root = os.path.abspath(os.path.expanduser(root))
        else:
            self.fs, self.root = pa_fs.FileSystem.from_uri(root)
        self.uri = root

    def folder(self, kind: str, model: str, hour: str) -> str:
        """The partition folder of ``kind`` (:data:`PREDICTIONS`, :data:`LABELS`)."""
        return f"{self.root}/{kind}/model={model}/hour={hour}"

    def write(self, kind: str, model: str, hour: str, name: str, table: pa.Table) -> str:
        """Writes ``table`` as the file ``name`` of a partition, whole or not at all."""
        folder = self.folder(kind, model, hour)
        path = f"{folder}/{name}"
        if self.is_local:
            os.makedirs(folder, exist_ok=True)
            hidden = f"{folder}/.{name}.partial"
            try:
                pq.write_table(table, hidden, version="2.6")
                os.replace(hidden, path)
            except BaseException:
                if os.path.exists(hidden):
                    os.remove(hidden)
                raise
        else:
            with self.fs.open_output_stream(path) as stream:
                pq.write_table(table, stream, version="2.6")
        return path


@dataclass
class _Window:
    """The rows of one model and hour gathered since ``opened``."""

    model: str
    hour: str
    opened: float
    predictions: list[Prediction] = field(default_factory=list)
    rows: int = 0


@dataclass
class Counts:
    """What a writer did with the rows handed to it."""

    written: int = 0
    dropped: int = 0  # the queue was full
    lost: int = 0  # the store kept failing past the retry budget
    failures: dict[str, int] = field(default_factory=dict)


class PredictionLog:
    """Writes predictions off the request path: :meth:`log` only appends to a queue; a
    background thread takes what gathered every ``check_seconds`` (waking once per interval,
    not once per request, which would cost the server a thread switch per request), gathers
    each model's rows per hour and writes a window when it is ``window_seconds`` old or has
    ``window_rows`` rows, and whatever is left on :meth:`close`.

    The queue holds ``queue_requests`` requests; when it is full :meth:`log` drops the request,
    counts it and says so once. A window the store does not take stays pending and is retried;
    past ``pending_rows`` pending rows the oldest window is given up, counted as lost, and the
    reason logged once per kind of failure.

    Args:
        root: The log's folder or URI.
        window_seconds: The longest a row waits to be written.
        window_rows: The most rows in one file.
        queue_requests: Requests the queue holds.
        pending_rows: Rows kept for a failing store before the oldest window is lost.
        writer_id: Names this writer's files (a random id by default).
        clock: Seconds since the epoch (a test's hook).
        check_seconds: How often the writer takes the queue and looks at its windows.
        kind: What it writes: :data:`PREDICTIONS`, or :data:`SHADOW` for a shadow's answers.
    """

    def __init__(
        self,
        root: str,
        window_seconds: float = 60.0,
        window_rows: int = 10_000,
        queue_requests: int = 10_000,
        pending_rows: int = 1_000_000,
        writer_id: str | None = None,
        clock: Callable[[], float] = time.time,
        check_seconds: float = 0.2,
        kind: str = PREDICTIONS,
    ) -> None:
        self.store = LogStore(root)
        self.kind = kind
        # pyarrow imports pandas on its first NumPy conversion, which holds the interpreter for
        # about a second: pay that now, before the server serves, not at the first write.
        pa.array(np.zeros(1))
        self.window_seconds = window_seconds
        self.window_rows = window_rows
        self.pending_rows = pending_rows
        self.writer_id = writer_id or uuid.uuid4().hex[:12]
        self.counts = Counts()
        self._clock = clock
        # A deque: appending is atomic and wakes nobody (queue.Queue notifies a waiter on each put).
        self._queue: collections.deque[Prediction] = collections.deque()
        self.queue_requests = queue_requests
        self.check_seconds = min(check_seconds, window_seconds)
        self._stop = threading.Event()
        self.retry_seconds = min(5.0, window_seconds)
        self._retry_at = 0.0
        self._open: dict[tuple[str, str], _Window] = {}
        self._pending: list[_Window] = []
        self._files = 0
        self._said: set[str] = set()
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()
        # A server stopped by a signal exits normally: write what is left first.
        atexit.register(self.close)

    def log(self, prediction: Prediction) -> bool:
        """Queues one request's predictions; never blocks. False when the queue was full (or the
        log closed) and the request was dropped (counted)."""
        if self._closed or len(self._queue) >= self.queue_requests:
            with self._lock:
                self.counts.dropped += prediction.rows
            self._say_once(
                "full",
                "Prediction log queue full (%d requests): dropping predictions and counting them "
                '(mlops_prediction_log_rows_total{outcome="dropped"})',
                self.queue_requests,
            )
            return False
        self._queue.append(prediction)
        return True

    def close(self, timeout: float = 30.0) -> None:
        """Writes what is queued and open, then stops the writer (once; later calls wait)."""
        self._closed = True
        self._stop.set()
        self._thread.join(timeout)
        if not self._thread.is_alive():
            # A request that raced the close, appended after the writer's last look: counted.
            while self._queue:
                with self._lock:
                    self.counts.dropped += self._queue.popleft().rows

    def _say_once(self, key: str, message: str, *args: object) -> None:
        if key not in self._said:
            self._said.add(key)
            logger.warning(message, *args)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            stopping = self._stop.wait(self.check_seconds)
            while self._queue:
                self._add(self._queue.popleft())
            self._flush(everything=stopping)
        left = sum(window.rows for window in self._pending)
        if left:
            with self._lock:
                self.counts.lost += left
            logger.warning(
                "Prediction log closed with %d rows it could not write to %s: lost",
                left,
                self.store.uri,
            )

    def _add(self, prediction: Prediction) -> None:
        key = (prediction.model, int(prediction.answered // 3600))  # the hour, as a number
        window = self._open.get(key)
        if window is None:
            window = _Window(prediction.model, hour_of(prediction.answered), self._clock())
            self._open[key] = window
        window.predictions.append(prediction)
        window.rows += prediction.rows
        if window.rows >= self.window_rows:
            del self._open[key]
            self._pending.append(window)
            self._retry_at = 0.0  # a full window is written now, not at the next retry

    def _flush(self, everything: bool = False) -> None:
        now = self._clock()
        for key, window in list(self._open.items()):
            if everything or now - window.opened >= self.window_seconds:
                del self._open[key]
                self._pending.append(window)
        if not self._pending or (time.monotonic() < self._retry_at and not everything):
            return
        still = [window for window in self._pending if not self._write(window)]
        # A store that failed is tried again after a pause, not on every request.
        self._retry_at = time.monotonic() + self.retry_seconds if still else 0.0
        while sum(window.rows for window in still) > self.pending_rows:
            lost = still.pop(0)
            with self._lock:
                self.counts.lost += lost.rows
        self._pending = still

    def _write(self, window: "_Window") -> bool:
        self._files += 1
        first = window.predictions[0].answered
        name = f"{int(first * 1000)}-{self.writer_id}-{self._files}.parquet"
        try:
            table = predictions_table(window.predictions)
            self.store.write(self.kind, window.model, window.hour, name, table)
        except Exception as err:  # a full disk, an unreachable store: keep the window, retry
            kind = type(err).__name__
            with self._lock:
                self.counts.failures[kind] = self.counts.failures.get(kind, 0) + 1
            self._say_once(
                f"write-{kind}",
                "Prediction log: cannot write to %s (%s: %s); keeping the rows and retrying",
                self.store.uri,
                kind,
                err,
            )
            return False
        with self._lock:
            self.counts.written += window.rows
        return True


def write_labels(root: str, model: str, labels: Sequence[tuple[str, int, str]]) -> str:
    """Stores late labels ``(request id, row, label)`` of ``model``, as one file."""
    now = time.time()
    name = f"{int(now * 1000)}-{uuid.uuid4().hex[:12]}-1.parquet"
    return LogStore(root).write(LABELS, model, hour_of(now), name, labels_table(labels, now))


def _partition_files(
    store: LogStore, kind: str, model: str | None, since_hour: str | None
) -> list[str]:
    """The Parquet files of ``kind`` (of ``model``) in hours from ``since_hour`` on: only those
    folders are listed, so a window's read does not grow with the log's history."""
    base = f"{store.root}/{kind}"

    def folders(path: str, prefix: str) -> list[str]:
        selector = pa_fs.FileSelector(path, allow_not_found=True)
        return sorted(
            info.path
            for info in store.fs.get_file_info(selector)
            if info.type == pa_fs.FileType.Directory and info.base_name.startswith(prefix)
        )

    models = [f"{base}/model={model}"] if model else folders(base, "model=")
    files = []
    for model_folder in models:
        for hour_folder in folders(model_folder, "hour="):
            if since_hour and hour_folder.rsplit("hour=", 1)[1] < since_hour:
                continue
            selector = pa_fs.FileSelector(hour_folder, allow_not_found=True)
            files += sorted(
                info.path
                for info in store.fs.get_file_info(selector)
                if info.type == pa_fs.FileType.File
                and info.base_name.endswith(".parquet")
                and not info.base_name.startswith((".", "_"))
            )
    return files


def read(
    root: str,
    kind: str,
    model: str | None = None,
    since: float | None = None,
    columns: Sequence[str] | None = None,
    until: float | None = None,
) -> pa.Table:
    """Every row of ``kind`` (of ``model``) whose time is after ``since`` and at most ``until``
    (seconds since the epoch; None: no bound), with ``model`` and ``hour`` columns; an empty
    table when there is none. Only the hour folders from ``since`` on are listed, so a read
    does not grow with the log's history. ``columns``: only those of them the log has (Parquet
    reads no other)."""
    import pyarrow.dataset as ds

    store = LogStore(root)
    files = _partition_files(store, kind, model, hour_of(since) if since is not None else None)
    if not files:
        return pa.table({})
    partitioning = ds.partitioning(
        pa.schema([("model", pa.string()), ("hour", pa.string())]), flavor="hive"
    )
    dataset = ds.dataset(
        files, filesystem=store.fs, format="parquet", partitioning=partitioning,
        partition_base_dir=f"{store.root}/{kind}",
    )  # fmt: skip
    # Files of different versions may have different features: every column of every file.
    schema = pa.unify_schemas([f.physical_schema for f in dataset.get_fragments()])
    for name in ("model", "hour"):
        if name not in schema.names:
            schema = schema.append(pa.field(name, pa.string()))
    wanted = None if columns is None else [c for c in columns if c in schema.names]
    bounded = since is not None or until is not None
    if bounded and wanted is not None and TIME not in wanted:
        wanted = [*wanted, TIME]
    table = dataset.replace_schema(schema).to_table(columns=wanted)
    if not bounded or table.num_rows == 0:
        return table
    times = pc.cast(table.column(TIME), pa.int64())  # milliseconds
    keep = pc.greater(times, -1 if since is None else int(since * 1000))
    if until is not None:
        keep = pc.and_(keep, pc.less_equal(times, int(until * 1000)))
    table = table.filter(keep)
    return table if columns is None or TIME in columns else table.drop([TIME])


def _newest_labels(labels: pa.Table) -> dict[tuple[str, int], str]:
    """The newest label of each (request id, row): a label sent again replaces the first."""
    newest: dict[tuple[str, int], tuple[Any, str]] = {}
    for request_id, row, when, label in zip(
        labels.column(REQUEST_ID).to_pylist(),
        labels.column(ROW).to_pylist(),
        labels.column(TIME).to_pylist(),
        labels.column(LABEL).to_pylist(),
        strict=True,
    ):
        if (request_id, row) not in newest or newest[(request_id, row)][0] <= when:
            newest[(request_id, row)] = (when, label)
    return {key: label for key, (_, label) in newest.items()}


def join_labels(predictions: pa.Table, labels: pa.Table) -> pa.Table:
    """``predictions`` with the newest label of each (request id, row) as ``true_label``."""
    if labels.num_rows == 0:
        return predictions.append_column("true_label", pa.nulls(predictions.num_rows, pa.string()))
    newest = _newest_labels(labels)
    truth = [
        newest.get((request_id, row))
        for request_id, row in zip(
            predictions.column(REQUEST_ID).to_pylist(),
            predictions.column(ROW).to_pylist(),
            strict=True,
        )
    ]
    return predictions.append_column("true_label", pa.array(truth, pa.string()))


def labelled(predictions: pa.Table, labels: pa.Table) -> pa.Table:
    """The predictions that have a label, with the newest one as ``true_label``, in log order:
    a hash join, so no Python loop runs over every prediction."""
    if labels.num_rows == 0 or predictions.num_rows == 0:
        return join_labels(predictions.slice(0, 0), labels.slice(0, 0))
    newest = _newest_labels(labels)
    keys = pa.table(
        {
            REQUEST_ID: pa.array([request_id for request_id, _ in newest], pa.string()),
            ROW: pa.array([row for _, row in newest], predictions.schema.field(ROW).type),
            "true_label": pa.array(list(newest.values()), pa.string()),
        }
    )
    # Join the keys alone (Arrow joins no list column, such as probabilities), then take rows.
    index = predictions.select([REQUEST_ID, ROW]).append_column(
        "_index", pa.array(np.arange(predictions.num_rows, dtype=np.int64))
    )
    found = index.join(keys, [REQUEST_ID, ROW], join_type="inner").sort_by("_index")
    return predictions.take(found.column("_index")).append_column(
        "true_label", found.column("true_label")
    )


def known_requests(root: str, model: str) -> set[tuple[str, int]]:
    """The (request id, row) pairs of ``model``'s predictions."""
    table = read(root, PREDICTIONS, model)
    if table.num_rows == 0:
        return set()
    return set(
        zip(table.column(REQUEST_ID).to_pylist(), table.column(ROW).to_pylist(), strict=True)
    )


def rows_of(labels: Iterable[Mapping[str, Any]]) -> list[tuple[str, int, str]]:
    """``(request id, row, label)`` from mappings with ``request_id``, ``label`` and an
    optional ``row`` (0 by default).

    Raises:
        ValueError: A mapping without a request id or a label, or a row that is not a number.
    """
    found = []
    for index, item in enumerate(labels):
        request_id, label = item.get(REQUEST_ID), item.get(LABEL)
        if request_id in (None, "") or label is None:
            raise ValueError(f"label {index + 1}: needs {REQUEST_ID!r} and {LABEL!r}")
        row = item.get(ROW)
        try:
            row = 0 if row is None or row == "" else int(row)
        except (TypeError, ValueError) as err:
            raise ValueError(f"label {index + 1}: {ROW!r} {row!r} is not a number") from err
        found.append((str(request_id), row, str(label)))
    return found
