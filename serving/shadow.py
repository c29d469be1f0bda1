"""Shadow: a candidate version that sees the traffic the served version answers, and answers
nobody; and the report that compares the two.

Live, in ``mlops-serve --shadow-version N``: the candidate is loaded beside the served version
and runs on each request's columns on a thread of its own, after the served answer is computed,
never holding it. A queue of ``queue_requests`` requests stands between them; beyond it, requests
are not shadowed and are counted. Each shadowed request goes to the prediction log as kind
``shadow`` (the served predictions' columns without the features, the shadow's version, or
``error`` when it failed), and its agreement, latency and errors are counted on ``/metrics``.

Replayed, for a runtime that cannot hold a second version (KServe's TensorFlow Serving): ``mlops
shadow replay`` runs the candidate on the logged features of a window and writes the same rows.

Either way ``mlops shadow report`` joins the shadow rows to what was served by (request id, row):
agreement (the same label, or the mean absolute difference of a regressor's predictions), errors,
latency of both per request, and, on rows whose labels arrived, each one's accuracy or RMSE. The
decision to promote is :func:`decide`: no more errors than allowed, agreement and latency within
bounds, and on labelled rows the candidate at least as good as the served version.
"""

import collections
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from components.settings import check, setting
from serving import prediction_log as pl

logger = logging.getLogger(__name__)

ERROR = "error"


@dataclass
class ShadowCounts:
    """What the live shadow did, in rows (``requests`` and ``seconds`` per request)."""

    requests: int = 0
    compared: int = 0
    agreed: int = 0
    absolute_difference: float = 0.0
    errors: int = 0
    dropped: int = 0
    seconds: float = 0.0
    classifier: bool = True


def _labels(values: Any) -> list:
    return [v.decode() if isinstance(v, bytes) else v for v in np.asarray(values).ravel()]


def agreement(served: Mapping[str, Any], shadow: Mapping[str, Any]) -> tuple[int, int, float]:
    """Rows compared, rows with the same label (a classifier), and the sum of absolute
    differences of the prediction (a regressor) between two models' outputs."""
    if "label" in served and "label" in shadow:
        pairs = list(zip(_labels(served["label"]), _labels(shadow["label"]), strict=True))
        return len(pairs), sum(a == b for a, b in pairs), 0.0
    if "prediction" in served and "prediction" in shadow:
        first = np.asarray(served["prediction"], dtype=float).ravel()
        second = np.asarray(shadow["prediction"], dtype=float).ravel()
        return len(first), 0, float(np.abs(first - second).sum())
    raise ValueError(
        f"the candidate answers {sorted(shadow)}, which do not compare with the served "
        f"{sorted(served)}"
    )


class Shadow:
    """Runs ``run`` (the candidate's ``serving_default`` on whole columns) on each submitted
    request off the request path, and keeps what it found.

    Args:
        run: The candidate: columns in, outputs out.
        version: The candidate's version.
        model: The model's name (the log's partition).
        log: Where shadow rows go (None: counted only).
        queue_requests: Requests waiting to be shadowed; beyond, they are dropped and counted.
        features: The features the candidate takes (None: every column it is given); a request
            without one of them is a failure of the candidate, counted.
    """

    def __init__(
        self,
        run: Callable[[Mapping[str, Any]], Mapping[str, Any]],
        version: int,
        model: str,
        log: pl.PredictionLog | None,
        queue_requests: int = 1000,
        features: set[str] | None = None,
    ) -> None:
        self.run = run
        self.features = features
        self.version = version
        self.model = model
        self.log = log
        self.queue_requests = queue_requests
        self.counts = ShadowCounts()
        self._queue: collections.deque = collections.deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._said = False
        self._thread = threading.Thread(target=self._loop, name="shadow", daemon=True)
        self._thread.start()

    def submit(
        self, request_id: str, columns: Mapping[str, Any], served: Mapping[str, Any]
    ) -> bool:
        """Queues a request the served version answered with ``served``; never blocks. False
        when the queue was full and it was dropped (counted)."""
        if self._stop.is_set() or len(self._queue) >= self.queue_requests:
            with self._lock:
                self.counts.dropped += len(next(iter(served.values()), ()))
            if not self._said:
                self._said = True
                logger.warning(
                    "Shadow of version %s cannot keep up (%d requests waiting): requests go "
                    'unshadowed and are counted (mlops_shadow_rows_total{outcome="dropped"})',
                    self.version,
                    self.queue_requests,
                )
            return False
        self._queue.append((request_id, columns, served))
        self._wake.set()
        return True

    def close(self, timeout: float = 30.0) -> None:
        """Shadows what is queued, then stops."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)

    def _loop(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            while self._queue:
                request = self._queue.popleft()
                try:
                    self._shadow(*request)
                except Exception:  # never let one request end the shadow (the log's write)
                    logger.exception("Shadow of version %s: a request was lost", self.version)
            if self._stop.is_set() and not self._queue:
                return

    def _shadow(
        self, request_id: str, columns: Mapping[str, Any], served: Mapping[str, Any]
    ) -> None:
        rows = len(next(iter(served.values()), ()))
        started = time.perf_counter()
        try:
            outputs = self.run(self._taken(columns))
            compared, agreed, difference = agreement(served, outputs)
        except Exception as err:  # the candidate's failure is a finding, not the server's
            seconds = time.perf_counter() - started
            with self._lock:
                self.counts.requests += 1
                self.counts.errors += rows
                self.counts.seconds += seconds
            self._write(request_id, seconds, {ERROR: [f"{type(err).__name__}: {err}"] * rows})
            return
        seconds = time.perf_counter() - started
        with self._lock:
            self.counts.classifier = "label" in served
            self.counts.requests += 1
            self.counts.compared += compared
            self.counts.agreed += agreed
            self.counts.absolute_difference += difference
            self.counts.seconds += seconds
        self._write(request_id, seconds, outputs)

    def _taken(self, columns: Mapping[str, Any]) -> Mapping[str, Any]:
        """The request's columns the candidate takes (a newer model may take fewer)."""
        if self.features is None:
            return columns
        if missing := sorted(self.features - set(columns)):
            raise ValueError(f"the request has no {', '.join(missing)}, which the candidate takes")
        return {name: columns[name] for name in self.features}

    def _write(self, request_id: str, seconds: float, outputs: Mapping[str, Any]) -> None:
        if self.log is None:
            return
        self.log.log(
            pl.Prediction(
                model=self.model,
                version=self.version,
                request_id=request_id,
                answered=time.time(),
                latency_ms=seconds * 1000,
                features={},
                feature_kinds={},
                outputs=outputs,
            )
        )


@dataclass(frozen=True)
class ShadowConfig:
    """When a shadow's results allow promoting it."""

    min_rows: int = setting(
        200, "fewest compared rows to decide on", lambda v: v >= 1, "at least 1"
    )
    max_error_rate: float = setting(
        0.0, "largest share of rows the candidate may fail on", lambda v: 0 <= v <= 1, "in [0, 1]"
    )
    min_agreement: float = setting(
        0.8,
        "smallest share of rows where a classifier candidate answers the served label (a "
        "retrained model should differ where the old one was wrong, not everywhere)",
        lambda v: 0 <= v <= 1,
        "in [0, 1]",
    )
    max_latency_ratio: float = setting(
        2.0,
        "largest p99 latency of the candidate's model call over the served version's",
        lambda v: v > 0,
        "above 0",
    )

    def __post_init__(self) -> None:
        check(self)


@dataclass
class ShadowReport:
    """The comparison of a shadow with what was served, and the decision."""

    model: str
    served_versions: list[int]
    shadow_version: int | None
    rows: int
    errors: int
    agreement: float | None
    mean_absolute_difference: float | None
    latency_ms: dict[str, dict[str, float]]
    labelled: dict[str, Any] = field(default_factory=dict)
    promote: bool = False
    reasons: list[str] = field(default_factory=list)


def _keyed(table: pa.Table, prefix: str, columns: Sequence[str]) -> pa.Table:
    kept = [c for c in columns if c in table.column_names]
    return table.select([pl.REQUEST_ID, pl.ROW, *kept]).rename_columns(
        [pl.REQUEST_ID, pl.ROW, *[prefix + c for c in kept]]
    )


def _percentiles(table: pa.Table, column: str) -> dict[str, float]:
    """p50 and p99 of a per-request latency (each request's value once)."""
    per_request = table.group_by(pl.REQUEST_ID).aggregate([(column, "max")])
    values = np.array(per_request.column(f"{column}_max").to_pylist(), dtype=float)
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return {}
    return {"p50": float(np.percentile(values, 50)), "p99": float(np.percentile(values, 99))}


def newest_rows(shadow: pa.Table, version: int | None = None) -> pa.Table:
    """The shadow rows of one candidate ``version`` (the newest in the rows when None), the
    newest of each (request id, row): a replay run twice, or a live shadow and a replay of the
    same version, answer each request once."""
    if shadow.num_rows == 0:
        return shadow
    versions = [v for v in shadow.column(pl.VERSION).to_pylist() if v is not None]
    wanted = version if version is not None else max(versions, default=None)
    if wanted is not None:
        shadow = shadow.filter(pc.equal(shadow.column(pl.VERSION), wanted))
    ordered = shadow.sort_by([(pl.REQUEST_ID, "ascending"), (pl.ROW, "ascending"),
                              (pl.TIME, "ascending")])  # fmt: skip
    keys = list(zip(ordered.column(pl.REQUEST_ID).to_pylist(), ordered.column(pl.ROW).to_pylist(),
                    strict=True))  # fmt: skip
    last = [i + 1 == len(keys) or keys[i] != keys[i + 1] for i in range(len(keys))]
    return ordered.filter(pa.array(last))


def report(
    predictions: pa.Table,
    shadow: pa.Table,
    labels: pa.Table,
    config: ShadowConfig,
    version: int | None = None,
) -> ShadowReport:
    """Compares the shadow rows of candidate ``version`` (the newest when None) with the served
    ones they shadowed, and decides."""
    shadow = newest_rows(shadow, version)
    outputs = ["label", "prediction", pl.LATENCY_MS, pl.VERSION]
    served = _keyed(predictions, "served_", outputs)
    candidate = _keyed(shadow, "shadow_", [*outputs, ERROR])
    joined = served.join(candidate, [pl.REQUEST_ID, pl.ROW], join_type="inner")
    model = predictions.column("model")[0].as_py() if predictions.num_rows else ""
    rows = joined.num_rows
    failed = (
        joined.filter(pc.is_valid(joined.column("shadow_error")))
        if "shadow_error" in joined.column_names
        else joined.slice(0, 0)
    )
    ok = (
        joined.filter(pc.is_null(joined.column("shadow_error")))
        if "shadow_error" in joined.column_names
        else joined
    )
    classifier = "served_label" in ok.column_names and "shadow_label" in ok.column_names
    agreed = mean_difference = None
    if ok.num_rows and classifier:
        same = pc.equal(ok["served_label"], ok["shadow_label"])
        agreed = float(pc.mean(pc.cast(same, pa.float64())).as_py())
    elif ok.num_rows and "served_prediction" in ok.column_names:
        difference = pc.abs(pc.subtract(ok["served_prediction"], ok["shadow_prediction"]))
        mean_difference = float(pc.mean(difference).as_py())
    latency = {}
    for who in ("served", "shadow"):
        if f"{who}_{pl.LATENCY_MS}" in joined.column_names and rows:
            latency[who] = _percentiles(joined, f"{who}_{pl.LATENCY_MS}")
    labelled = _labelled(ok, labels, classifier)
    found = ShadowReport(
        model=model,
        served_versions=sorted(
            {v for v in joined.column("served_version").to_pylist() if v is not None}
        )
        if "served_version" in joined.column_names
        else [],
        shadow_version=max(
            (v for v in joined.column("shadow_version").to_pylist() if v is not None),
            default=None,
        )
        if "shadow_version" in joined.column_names
        else None,
        rows=rows,
        errors=failed.num_rows,
        agreement=agreed,
        mean_absolute_difference=mean_difference,
        latency_ms=latency,
        labelled=labelled,
    )
    found.promote, found.reasons = decide(found, config)
    return found


def _labelled(ok: pa.Table, labels: pa.Table, classifier: bool) -> dict[str, Any]:
    """Each model's accuracy (RMSE) on the compared rows whose labels arrived."""
    if labels.num_rows == 0 or ok.num_rows == 0:
        return {}
    rows = pl.labelled(ok, labels)
    if rows.num_rows == 0:
        return {}
    truth = rows.column("true_label").to_pylist()
    found: dict[str, Any] = {"rows": rows.num_rows}
    for who in ("served", "shadow"):
        if classifier:
            answers = rows.column(f"{who}_label").to_pylist()
            found["metric"] = "accuracy"
            found[who] = float(np.mean([a == t for a, t in zip(answers, truth, strict=True)]))
        else:
            answers = np.array(rows.column(f"{who}_prediction").to_pylist(), dtype=float)
            found["metric"] = "rmse"
            found[who] = float(np.sqrt(np.mean((answers - np.array(truth, dtype=float)) ** 2)))
    return found


def decide(found: ShadowReport, config: ShadowConfig) -> tuple[bool, list[str]]:
    """Whether the shadow may be promoted, and why (every failed bound, or what it met)."""
    if found.rows < config.min_rows:
        return False, [f"too few shadowed rows to decide: {found.rows} < {config.min_rows}"]
    failures = []
    error_rate = found.errors / found.rows
    if error_rate > config.max_error_rate:
        failures.append(
            f"the candidate failed on {found.errors} of {found.rows} rows "
            f"({error_rate:.2%} > {config.max_error_rate:.2%})"
        )
    if found.agreement is not None and found.agreement < config.min_agreement:
        failures.append(
            f"it answers the served label on {found.agreement:.2%} of rows "
            f"(< {config.min_agreement:.0%})"
        )
    served_p99 = found.latency_ms.get("served", {}).get("p99")
    shadow_p99 = found.latency_ms.get("shadow", {}).get("p99")
    if served_p99 and shadow_p99 and shadow_p99 / served_p99 > config.max_latency_ratio:
        failures.append(
            f"its p99 latency {shadow_p99:.2f} ms is over {config.max_latency_ratio:g}x the "
            f"served version's {served_p99:.2f} ms"
        )
    labelled = found.labelled
    if labelled:
        higher = labelled["metric"] == "accuracy"
        worse = labelled["shadow"] < labelled["served"] if higher else (
            labelled["shadow"] > labelled["served"])  # fmt: skip
        if worse:
            failures.append(
                f"on {labelled['rows']} labelled rows its {labelled['metric']} "
                f"{labelled['shadow']:.4f} is worse than the served version's "
                f"{labelled['served']:.4f}"
            )
    if failures:
        return False, failures
    said = [f"{found.rows} rows shadowed, {found.errors} failed"]
    if found.agreement is not None:
        said.append(f"agreement {found.agreement:.2%}")
    if found.mean_absolute_difference is not None:
        said.append(f"mean absolute difference {found.mean_absolute_difference:.4f}")
    if labelled:
        said.append(
            f"{labelled['metric']} on {labelled['rows']} labelled rows {labelled['shadow']:.4f} "
            f"against {labelled['served']:.4f}"
        )
    return True, ["; ".join(said)]


def markdown(found: ShadowReport) -> str:
    """The report as Markdown."""
    lines = [
        f"# Shadow: {found.model} version {found.shadow_version} beside "
        f"{', '.join(map(str, found.served_versions)) or '?'}",
        "",
        f"**{'Promote' if found.promote else 'Do not promote'}**: {'; '.join(found.reasons)}",
        "",
        "| | served | shadow |",
        "|---|---|---|",
    ]
    for quantile in ("p50", "p99"):
        served = found.latency_ms.get("served", {}).get(quantile)
        shadow = found.latency_ms.get("shadow", {}).get(quantile)
        lines.append(
            f"| model call {quantile} (ms) | {'' if served is None else f'{served:.2f}'} | "
            f"{'' if shadow is None else f'{shadow:.2f}'} |"
        )
    if found.labelled:
        lines.append(
            f"| {found.labelled['metric']} on {found.labelled['rows']} labelled rows | "
            f"{found.labelled['served']:.4f} | {found.labelled['shadow']:.4f} |"
        )
    lines += ["", f"Rows compared: {found.rows}; candidate errors: {found.errors}."]
    if found.agreement is not None:
        lines.append(f"Agreement (same label): {found.agreement:.2%}.")
    if found.mean_absolute_difference is not None:
        lines.append(f"Mean absolute difference: {found.mean_absolute_difference:.4f}.")
    return "\n".join(lines) + "\n"


def _inputs(table: pa.Table, specs: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The logged features as the candidate's signature takes them, missing values as the
    server hands them over (NaN, or the empty string)."""
    import tensorflow as tf

    columns = {}
    for name, spec in specs.items():
        column = pl.feature_column(name)
        if column not in table.column_names:
            raise ValueError(f"the log has no feature {name!r}, which the candidate takes")
        values = table.column(column)
        if spec.dtype == tf.string:
            texts = pc.fill_null(pc.cast(values, pa.string()), "").to_pylist()
            columns[name] = np.array(texts, dtype=object)
        else:
            numbers = np.array(pc.cast(values, pa.float64()).to_pylist(), dtype=float)
            columns[name] = numbers.astype(spec.dtype.as_numpy_dtype)
    return columns


def replay(predictions: pa.Table, model_dir: str, version: int, batch_rows: int = 4096) -> pa.Table:
    """The candidate's answers to the logged requests, as shadow rows (no latency: a replay's
    model calls are batched, unlike the served ones, so their times do not compare)."""
    import tensorflow as tf

    signature = tf.saved_model.load(model_dir).signatures["serving_default"]
    specs = signature.structured_input_signature[1]
    outputs: dict[str, list] = {}
    for start in range(0, predictions.num_rows, batch_rows):
        batch = _inputs(predictions.slice(start, batch_rows), specs)
        answered = signature(**{name: tf.constant(values) for name, values in batch.items()})
        for name, value in answered.items():
            outputs.setdefault(name, []).append(value.numpy())
    rows = predictions.num_rows
    columns: dict[str, Any] = {
        pl.REQUEST_ID: predictions.column(pl.REQUEST_ID),
        pl.ROW: predictions.column(pl.ROW),
        pl.TIME: pa.array([int(time.time() * 1000)] * rows, pa.timestamp("ms", tz="UTC")),
        pl.VERSION: pa.array([version] * rows, pa.int64()),
        pl.LATENCY_MS: pa.nulls(rows, pa.float64()),
    }
    for name, parts in sorted(outputs.items()):
        values = np.concatenate(parts)
        if name == "label":
            columns[name] = pa.array(_labels(values), pa.string())
        elif name == "prediction":
            columns[name] = pa.array(values.ravel().astype(float), pa.float64())
    return pa.table(columns)


def replay_version(predictions: pa.Table, registry: Any, model: str, version: int) -> pa.Table:
    """Runs registry ``version`` of ``model`` on the logged requests other versions answered
    (a shadow of its own answers is itself) and returns its shadow rows.

    Raises:
        ConfigurationError: The registry has no such version.
        DataError: The version cannot answer the logged requests.
    """
    import tempfile

    import tensorflow as tf

    from components.errors import ConfigurationError, DataError

    if version not in registry.versions(model):
        raise ConfigurationError(
            f"{model!r} has no version {version} in the registry ({registry.model_uri(model)}): "
            f"it has {registry.versions(model) or 'none'}."
        )
    answered_by = predictions.column(pl.VERSION)
    served = predictions.filter(pc.or_(pc.is_null(answered_by), pc.not_equal(answered_by, version)))
    with tempfile.TemporaryDirectory() as scratch:
        # A local copy: TensorFlow reads no s3:// here, and the registry's URI may carry a query.
        model_dir = registry.local_copy(model, version, scratch)
        try:
            return replay(served, model_dir, version)
        except (ValueError, KeyError, tf.errors.OpError) as err:
            raise DataError(f"Version {version} cannot answer the logged requests: {err}") from err
