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
import datetime as dt
import logging
import math
import os
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.fs as pa_fs
import pyarrow.parquet as pq

logger = logging.getLogger(__name__)

PREDICTIONS = "predictions"
LABELS = "labels"

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


def _number(value: Any) -> float | None:
    # The server validated its rows; the sink logs what clients sent, which may not be numbers.
    # A missing value is null (the server hands the model NaN for it).
    if value is None or isinstance(value, str | bytes):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def _text(value: Any) -> str | None:
    # A missing value is null (the server hands the model "" for it).
    if value is None:
        return None
    text = value.decode() if isinstance(value, bytes) else str(value)
    return text or None


def predictions_table(batch: Sequence[Prediction]) -> pa.Table:
    """The predictions rows of ``batch`` (one model) as one table."""
    columns: dict[str, list] = {name: [] for name in OWN_COLUMNS}
    kinds: dict[str, str] = {}
    for prediction in batch:
        kinds.update(prediction.feature_kinds)
    outputs = sorted({name for p in batch for name in p.outputs if name in OUTPUT_TYPES})
    features = sorted(kinds)
    for name in features:
        columns[feature_column(name)] = []
    for name in outputs:
        columns[name] = []
    for prediction in batch:
        rows = prediction.rows
        columns[REQUEST_ID] += [prediction.request_id] * rows
        columns[ROW] += list(range(rows))
        columns[TIME] += [int(prediction.answered * 1000)] * rows
        columns[VERSION] += [prediction.version] * rows
        columns[LATENCY_MS] += [prediction.latency_ms] * rows
        for name in features:
            values = prediction.features.get(name)
            convert = _number if kinds[name] == NUMBER else _text
            columns[feature_column(name)] += (
                [convert(v) for v in values] if values is not None else [None] * rows
            )
        for name in outputs:
            values = prediction.outputs.get(name)
            if values is None:
                columns[name] += [None] * rows
            elif name == "probabilities":
                columns[name] += [[float(p) for p in row] for row in values]
            elif name == "label":
                columns[name] += [_text(v) for v in values]
            else:
                columns[name] += [_number(v) for v in values]
    types = {
        REQUEST_ID: pa.string(),
        ROW: pa.int32(),
        TIME: pa.timestamp("ms", tz="UTC"),
        VERSION: pa.int64(),
        LATENCY_MS: pa.float64(),
        **{feature_column(name): _FEATURE_TYPES[kinds[name]] for name in features},
        **{name: OUTPUT_TYPES[name] for name in outputs},
    }
    return pa.table({name: pa.array(values, type=types[name]) for name, values in columns.items()})


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
class Counts:
    """What a writer did with the rows handed to it."""

    written: int = 0
    dropped: int = 0  # the queue was full
    lost: int = 0  # the store kept failing past the retry budget
    failures: dict[str, int] = field(default_factory=dict)


class PredictionLog:
    """Writes predictions off the request path: :meth:`log` only queues; a background thread
    gathers each model's rows per hour and writes a window when it is ``window_seconds`` old or
    has ``window_rows`` rows, and whatever is left on :meth:`close`.

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
    ) -> None:
        self.store = LogStore(root)
        self.window_seconds = window_seconds
        self.window_rows = window_rows
        self.pending_rows = pending_rows
        self.writer_id = writer_id or uuid.uuid4().hex[:12]
        self.counts = Counts()
        self._clock = clock
        self._queue: queue.Queue[Prediction | None] = queue.Queue(maxsize=queue_requests)
        self._open: dict[tuple[str, str], tuple[float, list[Prediction]]] = {}
        self._pending: list[tuple[str, str, list[Prediction]]] = []
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
        try:
            if self._closed:
                raise queue.Full
            self._queue.put_nowait(prediction)
        except queue.Full:
            with self._lock:
                self.counts.dropped += prediction.rows
            self._say_once(
                "full",
                "Prediction log queue full (%d requests): dropping predictions and counting them "
                '(mlops_prediction_log_rows_total{outcome="dropped"})',
                self._queue.maxsize,
            )
            return False
        return True

    def close(self, timeout: float = 30.0) -> None:
        """Writes what is queued and open, then stops the writer (once; later calls wait)."""
        if not self._closed:
            self._closed = True
            self._queue.put(None)
        self._thread.join(timeout)

    def _say_once(self, key: str, message: str, *args: object) -> None:
        if key not in self._said:
            self._said.add(key)
            logger.warning(message, *args)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            try:
                item = self._queue.get(timeout=min(1.0, self.window_seconds))
            except queue.Empty:
                item = False
            if item is None:
                stopping = True
            elif item is not False:
                self._add(item)
            self._flush(everything=stopping)
        left = sum(p.rows for _, _, batch in self._pending for p in batch)
        if left:
            with self._lock:
                self.counts.lost += left
            logger.warning(
                "Prediction log closed with %d rows it could not write to %s: lost",
                left,
                self.store.uri,
            )

    def _add(self, prediction: Prediction) -> None:
        key = (prediction.model, hour_of(prediction.answered))
        self._open.setdefault(key, (self._clock(), []))[1].append(prediction)

    def _flush(self, everything: bool = False) -> None:
        now = self._clock()
        for key, (opened, batch) in list(self._open.items()):
            rows = sum(p.rows for p in batch)
            if everything or rows >= self.window_rows or now - opened >= self.window_seconds:
                del self._open[key]
                self._pending.append((key[0], key[1], batch))
        still = []
        for model, hour, batch in self._pending:
            if not self._write(model, hour, batch):
                still.append((model, hour, batch))
        while sum(p.rows for _, _, b in still for p in b) > self.pending_rows:
            _, _, lost = still.pop(0)
            with self._lock:
                self.counts.lost += sum(p.rows for p in lost)
        self._pending = still

    def _write(self, model: str, hour: str, batch: list[Prediction]) -> bool:
        self._files += 1
        name = f"{int(batch[0].answered * 1000)}-{self.writer_id}-{self._files}.parquet"
        try:
            self.store.write(PREDICTIONS, model, hour, name, predictions_table(batch))
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
            self.counts.written += sum(p.rows for p in batch)
        return True


def write_labels(root: str, model: str, labels: Sequence[tuple[str, int, str]]) -> str:
    """Stores late labels ``(request id, row, label)`` of ``model``, as one file."""
    now = time.time()
    name = f"{int(now * 1000)}-{uuid.uuid4().hex[:12]}-1.parquet"
    return LogStore(root).write(LABELS, model, hour_of(now), name, labels_table(labels, now))


def read(root: str, kind: str, model: str | None = None) -> pa.Table:
    """Every row of ``kind`` (of ``model``), with ``model`` and ``hour`` columns; an empty table
    when there is none."""
    import pyarrow.dataset as ds

    store = LogStore(root)
    base = f"{store.root}/{kind}"
    if store.fs.get_file_info(base).type == pa_fs.FileType.NotFound:
        return pa.table({})
    dataset = ds.dataset(base, filesystem=store.fs, format="parquet", partitioning="hive")
    # Files of different versions may have different features: every column of every file.
    schema = pa.unify_schemas(
        [f.physical_schema for f in dataset.get_fragments()] or [pa.schema([])]
    )
    for name in ("model", "hour"):
        if name not in schema.names:
            schema = schema.append(pa.field(name, pa.string()))
    dataset = ds.dataset(
        base, filesystem=store.fs, format="parquet", partitioning="hive", schema=schema
    )
    table = dataset.to_table(filter=(ds.field("model") == model) if model else None)
    return table


def join_labels(predictions: pa.Table, labels: pa.Table) -> pa.Table:
    """``predictions`` with the newest label of each (request id, row) as ``true_label``."""
    if labels.num_rows == 0:
        return predictions.append_column("true_label", pa.nulls(predictions.num_rows, pa.string()))
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
    truth = [
        newest.get((request_id, row), (None, None))[1]
        for request_id, row in zip(
            predictions.column(REQUEST_ID).to_pylist(),
            predictions.column(ROW).to_pylist(),
            strict=True,
        )
    ]
    return predictions.append_column("true_label", pa.array(truth, pa.string()))


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
