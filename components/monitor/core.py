"""Monitor: skew, drift and decay of one window of the prediction log, and whether to retrain.

- **Skew**: the window's features against the statistics of the data that trained the version
  that served it (kept with each version in the registry by deploy).
- **Drift**: the window against the previous window the monitor looked at.
- **Decay**: on the rows whose labels arrived in the window (``mlops feedback``; a label comes
  hours or days after its prediction, so it is joined to predictions up to
  ``label_lookback_hours`` older than the window), the version's primary metric against what
  evaluate measured for it.

Skew and drift use TFDV's own comparators (``validate_statistics`` with ``skew_comparator`` and
``drift_comparator``): Jensen-Shannon divergence for numeric features, L-infinity distance for
categorical ones. TFDV's in-process statistics keep top values of a feature with more than 1,024
distinct values as Misra-Gries estimates; the window's categorical counts here are exact
(:func:`statistics_of` counts every value), so the L-infinity distance on the served side has
no estimation error.

Each window's statistics and decision are kept under ``<log>/monitor/model=<m>/<window end>/``,
so the next run finds the previous window and how many windows in a row said "retrain". What was
done about a decision to retrain (the trigger's outcome, :meth:`MonitorState.record_outcome`) is
kept beside it: a decision that was not acted on (the trigger failed, or never ran) stands, and
the next window that says retrain acts at once instead of counting again from one.
"""

import dataclasses
import json
import math
import os
import time
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pa_fs
import tensorflow_data_validation as tfdv
from google.protobuf import text_format
from tensorflow_data_validation.statistics import stats_impl
from tensorflow_metadata.proto.v0 import schema_pb2, statistics_pb2

from components import constants, statistics_view
from components.errors import DataError
from components.monitor.config import MonitorConfig
from components.registry import ModelRegistry
from components.validate.core import to_tfdv_batch
from serving import prediction_log as pl

JSD = "jensen_shannon_divergence"
LINF = "infinity_norm"
MONITOR = "monitor"
STATISTICS_FILE = "statistics.pb"
DECISION_FILE = "decision.json"
OUTCOME_FILE = "outcome.json"
OUTCOME = "outcome"
# Columns of the log that are not features.
_NOT_FEATURES = {*pl.OWN_COLUMNS, *pl.OUTPUT_TYPES, "model", "hour", "true_label"}


class NoTraffic(DataError):
    """The window holds no prediction of the model: nothing to monitor (yet)."""


@dataclasses.dataclass(frozen=True)
class FeatureCheck:
    """One feature's distances and verdicts."""

    feature: str
    comparator: str
    threshold: float
    skew: float | None
    drift: float | None

    @property
    def skewed(self) -> bool:
        return self.skew is not None and self.skew > self.threshold

    @property
    def drifted(self) -> bool:
        return self.drift is not None and self.drift > self.threshold


@dataclasses.dataclass(frozen=True)
class MonitorResult:
    """What one window showed, and the decision."""

    model: str
    version: int | None
    window_start: float | None
    window_end: float
    rows: int
    labelled_rows: int
    too_few: bool
    features: list[FeatureCheck]
    decay: dict | None
    retrain_signal: bool
    windows_in_a_row: int
    retrain: bool
    reasons: list[str]

    def to_json(self) -> dict:
        """The decision as JSON data (features with their verdicts)."""
        data = dataclasses.asdict(self)
        data["features"] = [
            {**dataclasses.asdict(f), "skewed": f.skewed, "drifted": f.drifted}
            for f in self.features
        ]
        return data


def feature_columns(table: pa.Table) -> dict[str, str]:
    """The log's feature columns: feature name to column name."""
    return {
        name.removeprefix(pl.FEATURE_PREFIX): name
        for name in table.column_names
        if name not in _NOT_FEATURES
    }


def read_window(log: str, model: str, since: float | None, until: float) -> pa.Table:
    """The predictions of ``model`` answered in ``(since, until]``."""
    return pl.read(log, pl.PREDICTIONS, model, since, until=until)


def late_labelled(
    log: str, model: str, since: float | None, until: float, lookback_hours: float
) -> pa.Table:
    """The predictions whose labels arrived in ``(since, until]``, with ``true_label``: answered
    in this window or up to ``lookback_hours`` before the first of those labels arrived. Each
    label is counted in the window it arrived in, once; only the columns decay needs are read.
    """
    labels = pl.read(log, pl.LABELS, model, since, until=until)
    if labels.num_rows == 0:
        return pa.table({})
    first = pc.min(pc.cast(labels.column(pl.TIME), pa.int64())).as_py() / 1000
    start = first - lookback_hours * 3600
    columns = [pl.REQUEST_ID, pl.ROW, pl.TIME, pl.VERSION, *pl.OUTPUT_TYPES]
    predictions = pl.read(log, pl.PREDICTIONS, model, start, columns, until)
    return pl.labelled(predictions, labels)


def statistics_of(
    table: pa.Table, columns: dict[str, str]
) -> statistics_pb2.DatasetFeatureStatisticsList:
    """TFDV statistics of the feature columns, with every categorical value counted exactly."""
    features = table.select(list(columns.values())).rename_columns(list(columns))
    statistics = stats_impl.generate_statistics_in_memory(
        to_tfdv_batch(features), tfdv.StatsOptions()
    )
    for feature in statistics.datasets[0].features:
        name = feature.path.step[0]
        if not feature.HasField("string_stats"):
            continue
        counts = pc.value_counts(pc.drop_null(features.column(name).combine_chunks()))
        pairs = sorted(
            zip(
                counts.field("values").to_pylist(),
                counts.field("counts").to_pylist(),
                strict=True,
            ),
            key=lambda pair: (-pair[1], str(pair[0])),
        )
        histogram = feature.string_stats.rank_histogram
        del histogram.buckets[:]
        for rank, (value, count) in enumerate(pairs):
            histogram.buckets.add(
                low_rank=rank, high_rank=rank, label=str(value), sample_count=float(count)
            )
        del feature.string_stats.top_values[:]
        for value, count in pairs[:20]:
            feature.string_stats.top_values.add(value=str(value), frequency=float(count))
        feature.string_stats.unique = len(pairs)
    return statistics


def _schema(
    train: statistics_pb2.DatasetFeatureStatisticsList,
    served: set[str],
    config: MonitorConfig,
) -> schema_pb2.Schema:
    schema = tfdv.infer_schema(train)
    # The features the model is served: not the label, which training statistics have too.
    kept = [f for f in schema.feature if f.name in served]
    del schema.feature[:]
    schema.feature.extend(kept)
    for feature in schema.feature:
        categorical = feature.type == schema_pb2.BYTES
        threshold = config.threshold(feature.name, categorical)
        for comparator in (feature.skew_comparator, feature.drift_comparator):
            if categorical:
                comparator.infinity_norm.threshold = threshold
            else:
                comparator.jensen_shannon_divergence.threshold = threshold
        # Only the distributions are judged here; a value train never saw is the transform's
        # OOV bucket, not an error of the window.
        feature.ClearField("domain")
        feature.ClearField("presence")
        feature.ClearField("value_count")
    del schema.string_domain[:]
    return schema


def _measurements(anomalies: Any, kind: str) -> dict[str, float]:
    found = {}
    for info in anomalies.drift_skew_info:
        measurements = info.skew_measurements if kind == "skew" else info.drift_measurements
        for measurement in measurements:
            found[info.path.step[0]] = float(measurement.value)
    return found


def compare(
    window: statistics_pb2.DatasetFeatureStatisticsList,
    train: statistics_pb2.DatasetFeatureStatisticsList,
    previous: statistics_pb2.DatasetFeatureStatisticsList | None,
    config: MonitorConfig,
) -> list[FeatureCheck]:
    """Skew (the window against train) and drift (against the previous window) per feature of
    the training data, with TFDV's comparators."""
    schema = _schema(train, set(statistics_view.features_of(window)), config)
    skew = _measurements(
        tfdv.validate_statistics(statistics=train, schema=schema, serving_statistics=window),
        "skew",
    )
    drift = (
        _measurements(
            tfdv.validate_statistics(
                statistics=window, schema=schema, previous_statistics=previous
            ),
            "drift",
        )
        if previous is not None
        else {}
    )
    checks = []
    for feature in schema.feature:
        categorical = feature.type == schema_pb2.BYTES
        checks.append(
            FeatureCheck(
                feature=feature.name,
                comparator=LINF if categorical else JSD,
                threshold=config.threshold(feature.name, categorical),
                skew=skew.get(feature.name),
                drift=drift.get(feature.name),
            )
        )
    return checks


def decay(table: pa.Table, version: int, evaluated: dict[str, float]) -> dict | None:
    """The primary metric of ``version`` on the labelled rows it answered, against its
    evaluation: accuracy for a classifier, RMSE for a regressor. None without such rows."""
    if "true_label" not in table.column_names:
        return None
    keep = pc.is_valid(table.column("true_label"))
    if pl.VERSION in table.column_names:  # a log written without versions: every row
        answered = table.column(pl.VERSION)
        keep = pc.and_(keep, pc.or_(pc.is_null(answered), pc.equal(answered, version)))
    labelled = table.filter(keep)
    if labelled.num_rows == 0:
        return None
    truth = labelled.column("true_label").to_pylist()
    if "label" in labelled.column_names:
        predicted = labelled.column("label").to_pylist()
        value = float(np.mean([p == t for p, t in zip(predicted, truth, strict=True)]))
        metric, higher_is_better = "accuracy", True
    else:
        predicted = np.array(labelled.column("prediction").to_pylist(), dtype=float)
        value = float(np.sqrt(np.mean((predicted - np.array(truth, dtype=float)) ** 2)))
        metric, higher_is_better = "rmse", False
    baseline = evaluated.get(metric)
    drop = None
    if baseline is not None and not math.isnan(baseline):
        drop = baseline - value if higher_is_better else value - baseline
    return {"metric": metric, "served": value, "evaluated": baseline, "drop": drop,
            "rows": labelled.num_rows}  # fmt: skip


class MonitorState:
    """The windows the monitor looked at, kept in the log: ``<log>/monitor/model=<m>/``."""

    def __init__(self, log: str, model: str) -> None:
        self.store = pl.LogStore(log)
        self.folder = f"{self.store.root}/{MONITOR}/model={model}"

    def _windows(self) -> list[str]:
        """The finished windows: a folder without its decision (a monitor stopped while saving)
        is left out, as the registry leaves out a version without its metadata."""
        selector = pa_fs.FileSelector(self.folder, allow_not_found=True)
        found = sorted(
            info.base_name
            for info in self.store.fs.get_file_info(selector)
            if info.type == pa_fs.FileType.Directory and info.base_name.isdigit()
        )
        return [
            name
            for name in found
            if self.store.fs.get_file_info(f"{self.folder}/{name}/{DECISION_FILE}").type
            != pa_fs.FileType.NotFound
        ]

    def _exists(self, path: str) -> bool:
        return self.store.fs.get_file_info(path).type != pa_fs.FileType.NotFound

    def last(self) -> tuple[float | None, dict | None, Any]:
        """The last window's end, decision (with what was done about it under ``outcome``,
        when anything was) and statistics; None when there was none."""
        windows = self._windows()
        if not windows:
            return None, None, None
        folder = f"{self.folder}/{windows[-1]}"
        with self.store.fs.open_input_stream(f"{folder}/{DECISION_FILE}") as f:
            decision = json.loads(f.read())
        if self._exists(f"{folder}/{OUTCOME_FILE}"):
            with self.store.fs.open_input_stream(f"{folder}/{OUTCOME_FILE}") as f:
                decision[OUTCOME] = json.loads(f.read())
        statistics = None
        if self._exists(f"{folder}/{STATISTICS_FILE}"):
            with self.store.fs.open_input_stream(f"{folder}/{STATISTICS_FILE}") as f:
                statistics = statistics_pb2.DatasetFeatureStatisticsList.FromString(f.read())
        return int(windows[-1]) / 1000, decision, statistics

    @staticmethod
    def window(window_end: float) -> str:
        """The name of the folder of the window that ended at ``window_end``."""
        return str(int(window_end * 1000))

    def save(self, result: MonitorResult, statistics: Any, reports: dict[str, str]) -> str:
        """Keeps a window's decision, statistics and reports; returns its folder."""
        folder = f"{self.folder}/{self.window(result.window_end)}"
        files = {DECISION_FILE: json.dumps(result.to_json(), indent=2).encode(), **{
            name: text.encode() for name, text in reports.items()}}  # fmt: skip
        if statistics is not None:
            files[STATISTICS_FILE] = statistics.SerializeToString()
        if self.store.is_local:
            os.makedirs(folder, exist_ok=True)
        # The decision last: a window without one was never finished and is not read.
        for name in sorted(files, key=lambda n: n == DECISION_FILE):
            with self.store.fs.open_output_stream(f"{folder}/{name}") as f:
                f.write(files[name])
        return folder

    def record_outcome(self, window: str, outcome: dict) -> None:
        """Keeps what was done about the decision of ``window`` (:meth:`window`): ``acted`` (a
        retraining run started or was running), and why not or what it was."""
        path = f"{self.folder}/{window}/{OUTCOME_FILE}"
        with self.store.fs.open_output_stream(path) as f:
            f.write(json.dumps(outcome, indent=2).encode())


def _not_acted_on(decision: dict) -> str | None:
    """Why a decision to retrain was not acted on, when it was not."""
    if not decision.get("retrain"):
        return None
    outcome = decision.get(OUTCOME)
    if outcome is None:
        return "nothing was done about it"
    if outcome.get("acted"):
        return None
    return str(outcome.get("reason") or "the trigger failed")


def _train_statistics(registry: ModelRegistry, model: str, version: int) -> Any:
    try:
        text = registry.read_text(model, version, constants.REGISTRY_STATISTICS_FILE)
    except OSError as err:
        raise DataError(
            f"Version {version} of {model!r} has no training statistics in the registry "
            f"({constants.REGISTRY_STATISTICS_FILE}: pushed before deploy kept them); push a "
            "new version to monitor its skew."
        ) from err
    return text_format.Parse(text, statistics_pb2.DatasetFeatureStatisticsList())


def monitor(
    log: str,
    registry_root: str,
    model: str,
    config: MonitorConfig,
    since: float | None = None,
    until: float | None = None,
) -> tuple[MonitorResult, Any, Any, Any]:
    """Looks at one window: since the last monitor run (or ``since``) until now (or ``until``).

    Returns:
        The result, and the window's, the training data's and the previous window's statistics
        (for the reports).

    Raises:
        NoTraffic: No prediction of ``model`` in the window.
        DataError: The served version has no training statistics.
    """
    state = MonitorState(log, model)
    last_end, last_decision, previous = state.last()
    # Rows are written up to a window (60 s) after they are answered: a window ends early enough
    # for all of its rows to be in the log, or late rows would fall between two windows.
    until = time.time() - config.settle_seconds if until is None else until
    since = last_end if since is None else since
    table = read_window(log, model, since, until)
    if table.num_rows == 0:
        raise NoTraffic(
            f"No predictions of {model!r} in {log} "
            f"{'since the last monitor run' if since is not None else ''}: nothing to monitor."
        )
    versions = pc.value_counts(table.column(pl.VERSION))
    served = max(
        zip(
            versions.field("values").to_pylist(), versions.field("counts").to_pylist(), strict=True
        ),
        key=lambda pair: (pair[1], pair[0] or 0),
    )[0]
    registry = ModelRegistry(registry_root)
    if served is None:  # a log written without versions: the version a rollout served last
        served_versions = registry.served_versions(model)
        served = served_versions[-1] if served_versions else registry.latest(model)
    version = served
    train = _train_statistics(registry, model, version)
    columns = feature_columns(table)
    window = statistics_of(table, columns)
    rows = table.num_rows
    too_few = rows < config.min_rows
    checks = [] if too_few else compare(window, train, previous, config)
    evaluated = registry.metadata(model, version).get(constants.METRICS, {})
    decayed = decay(
        late_labelled(log, model, since, until, config.label_lookback_hours), version, evaluated
    )
    reasons = []
    if too_few:
        reasons.append(f"too few rows to decide: {rows} < {config.min_rows}")
    for check in checks:
        for kind, value, flagged in (
            ("skew", check.skew, check.skewed),
            ("drift", check.drift, check.drifted),
        ):
            if flagged:
                reasons.append(
                    f"{check.feature}: {kind} {value:.3f} > {check.threshold:g} "
                    f"({check.comparator})"
                )
    decayed_now = bool(
        decayed and decayed["drop"] is not None and decayed["drop"] > config.decay_tolerance
    )
    if decayed_now:
        reasons.append(
            f"{decayed['metric']} {decayed['served']:.4f} on {decayed['rows']} labelled rows, "
            f"{decayed['drop']:.4f} worse than evaluated ({decayed['evaluated']:.4f})"
        )
    signal = not too_few and (any(c.skewed or c.drifted for c in checks) or decayed_now)
    # Windows in a row count for one version, and start again after a decision to retrain that
    # was acted on; one that was not (the trigger failed) stands.
    pending = _not_acted_on(last_decision) if last_decision else None
    counting = bool(
        last_decision
        and last_decision.get("retrain_signal")
        and (not last_decision.get("retrain") or pending)
        and last_decision.get("version") == version
    )
    in_a_row = ((last_decision["windows_in_a_row"] if counting else 0) + 1) if signal else 0
    retrain = signal and in_a_row >= config.windows_in_a_row
    if signal and not retrain:
        reasons.append(f"window {in_a_row} of {config.windows_in_a_row} in a row that says retrain")
    if retrain and counting and pending:
        reasons.append(f"the last window's decision to retrain still stands: {pending}")
    if not reasons:
        reasons.append("no skew, drift or decay above the thresholds")
    result = MonitorResult(
        model=model,
        version=version,
        window_start=since,
        window_end=until,
        rows=rows,
        labelled_rows=decayed["rows"] if decayed else 0,
        too_few=too_few,
        features=checks,
        decay=decayed,
        retrain_signal=signal,
        windows_in_a_row=in_a_row,
        retrain=retrain,
        reasons=reasons,
    )
    return result, window, train, previous
