"""Evaluate [TFX Evaluator]: metrics of the candidate on the eval split, and a blessing.

The candidate, the trivial model (the train split's majority class, or its mean) and the
baseline are scored on the same eval rows; :func:`components.evaluate.blessing.bless` decides.
The baseline is an input, as TFX's Evaluator takes the LatestBlessedModelStrategy resolver's
output: the resolve_baseline step copied the registry's newest version for this run. When the
run joined the prediction log's labelled rows, both are also scored on those of them in the eval
split (ingest writes them on their own), the served traffic's own evidence.
"""

import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import tensorflow as tf
from sklearn import metrics as sk

from components import constants
from components.evaluate.blessing import (
    PRIMARY,
    BaselineMetrics,
    EvalConfig,
    LabelledRows,
    bless,
)
from components.features import Arrays, TransformSpec, iter_split_values, read_split

logger = logging.getLogger(__name__)

_PREDICT_BATCH = 4096


@dataclass(frozen=True)
class Baseline:
    """The model the candidate must improve on: a registry version, as a local SavedModel."""

    version: int
    model_dir: str


@dataclass
class EvaluationResult:
    """Metrics and the blessing decision."""

    task: str
    metrics: dict[str, float]
    trivial_metrics: dict[str, float]
    classes: list = field(default_factory=list)
    per_class: dict[str, dict[str, float]] = field(default_factory=dict)
    confusion_matrix: list[list[int]] = field(default_factory=list)
    roc_curve: dict[str, list[float]] = field(default_factory=dict)
    baseline_version: int | None = None
    baseline_metrics: dict[str, float] = field(default_factory=dict)
    blessed: bool = False
    reasons: list[str] = field(default_factory=list)
    labelled_rows: int = 0
    labelled_metrics: dict[str, float] = field(default_factory=dict)
    labelled_baseline_metrics: dict[str, float] = field(default_factory=dict)

    @property
    def primary_metric(self) -> str:
        """The metric compared with the trivial model and the baseline."""
        return PRIMARY[self.task][0]


def predict(model_dir: str, features: Arrays) -> dict[str, np.ndarray]:
    """Runs a SavedModel's serving signature over raw feature arrays, in batches."""
    signature = tf.saved_model.load(model_dir).signatures[constants.SERVING_SIGNATURE]
    rows = len(next(iter(features.values())))
    outputs: dict[str, list[np.ndarray]] = {}
    for start in range(0, rows, _PREDICT_BATCH):
        batch = {name: values[start : start + _PREDICT_BATCH] for name, values in features.items()}
        _keep(outputs, _call(signature, batch))
    return {name: np.concatenate(parts) for name, parts in outputs.items()}


def _call(signature: Any, batch: Arrays) -> dict[str, np.ndarray]:
    return {
        name: value.numpy()
        for name, value in signature(**{k: tf.constant(v) for k, v in batch.items()}).items()
    }


def _keep(outputs: dict[str, list[np.ndarray]], batch: dict[str, np.ndarray]) -> None:
    for name, value in batch.items():
        outputs.setdefault(name, []).append(value)


class _Scorer:
    """One model's outputs over a split that arrives in pieces: each kept, nothing else."""

    def __init__(self, model_dir: str, catch: tuple[type[BaseException], ...] = ()) -> None:
        self.outputs: dict[str, list[np.ndarray]] = {}
        self.failure: str | None = None
        self._catch = catch
        try:
            self._signature = tf.saved_model.load(model_dir).signatures[constants.SERVING_SIGNATURE]
        except catch as err:
            self.failure = f"{type(err).__name__}: {err}"

    def add(self, batch: Arrays) -> None:
        if self.failure is not None:
            return
        try:
            _keep(self.outputs, _call(self._signature, batch))
        except self._catch as err:
            self.failure = f"{type(err).__name__}: {err}"

    def result(self) -> dict[str, np.ndarray]:
        return {name: np.concatenate(parts) for name, parts in self.outputs.items()}


def _streamed_outputs(path: str, spec: TransformSpec, scorers: list["_Scorer"]) -> np.ndarray:
    """Feeds a split's labelled rows to each scorer in the batches :func:`predict` would use
    on the whole split (so every output is the same to the bit), holding at most two batches
    of features at a time; returns the labels as the metrics take them (:func:`_scored_rows`).
    """
    labels: list[np.ndarray] = []
    pending: list[Arrays] = []
    waiting, unknown = 0, 0

    def flush(rows: int) -> None:
        nonlocal pending, waiting
        joined = {n: np.concatenate([p[n] for p in pending]) for n in pending[0]}
        batch = {n: values[:rows] for n, values in joined.items()}
        for scorer in scorers:
            scorer.add(batch)
        rest = {n: values[rows:] for n, values in joined.items()}
        pending, waiting = [rest], waiting - rows

    for features, values in iter_split_values(path, spec, _PREDICT_BATCH):
        y, features, dropped = _as_scored(spec, features, values)
        unknown += dropped
        labels.append(y)
        pending.append(features)
        waiting += len(y)
        while waiting >= _PREDICT_BATCH:
            flush(_PREDICT_BATCH)
    if waiting:
        flush(waiting)
    if unknown:
        logger.warning("Ignoring %d rows of %s: a class train never had", unknown, path)
    return np.concatenate(labels) if labels else np.zeros(0)


def classification_metrics(y: np.ndarray, probabilities: np.ndarray) -> dict[str, Any]:
    """Accuracy, log loss, AUC (when every class is present), macro precision/recall,
    per-class precision/recall, the confusion matrix and, for two classes, the ROC curve."""
    labels = list(range(probabilities.shape[1]))
    predicted = probabilities.argmax(axis=1)
    precision, recall, _, support = sk.precision_recall_fscore_support(
        y, predicted, labels=labels, zero_division=0
    )
    clipped = np.clip(probabilities, 1e-7, 1.0)
    clipped /= clipped.sum(axis=1, keepdims=True)
    result: dict[str, Any] = {
        "metrics": {
            "accuracy": float(sk.accuracy_score(y, predicted)),
            "log_loss": float(sk.log_loss(y, clipped, labels=labels)),
            "macro_precision": float(precision.mean()),
            "macro_recall": float(recall.mean()),
        },
        "per_class": {
            "precision": precision.tolist(),
            "recall": recall.tolist(),
            "support": support.tolist(),
        },
        "confusion_matrix": sk.confusion_matrix(y, predicted, labels=labels).tolist(),
        "roc_curve": {},
    }
    if len(np.unique(y)) == len(labels):
        if len(labels) == 2:
            result["metrics"]["auc"] = float(sk.roc_auc_score(y, probabilities[:, 1]))
            fpr, tpr, thresholds = sk.roc_curve(y, probabilities[:, 1])
            finite = np.isfinite(thresholds)
            result["roc_curve"] = {
                "fpr": fpr[finite].tolist(),
                "tpr": tpr[finite].tolist(),
                "thresholds": thresholds[finite].tolist(),
            }
        else:
            result["metrics"]["auc"] = float(
                sk.roc_auc_score(y, probabilities, multi_class="ovr", labels=labels)
            )
    else:
        logger.warning("AUC skipped: not every class occurs in the eval split")
    return result


def regression_metrics(y: np.ndarray, prediction: np.ndarray) -> dict[str, float]:
    """RMSE, MAE and R²."""
    return {
        "rmse": float(math.sqrt(sk.mean_squared_error(y, prediction))),
        "mae": float(sk.mean_absolute_error(y, prediction)),
        "r2": float(sk.r2_score(y, prediction)),
    }


def _score(spec: TransformSpec, model_dir: str, features: Arrays, y: np.ndarray) -> dict[str, Any]:
    return _metrics_of(spec, y, predict(model_dir, features))


def _trivial_metrics(spec: TransformSpec, y: np.ndarray) -> dict[str, float]:
    if spec.label.task == constants.CLASSIFICATION:
        return {"accuracy": float(np.mean(y == spec.label.majority_class))}
    return regression_metrics(y, np.full(len(y), spec.label.mean))


# A baseline that cannot score the eval rows (another signature, other features) is reported as
# failing, not a crash: the blessing says so.
_BASELINE_ERRORS = (KeyError, ValueError, TypeError, tf.errors.OpError)


def _baseline_from(
    spec: TransformSpec, version: int, scorer: _Scorer, y: np.ndarray
) -> BaselineMetrics:
    if scorer.failure is not None:
        return BaselineMetrics(version, failure=scorer.failure)
    try:
        return BaselineMetrics(version, _metrics_of(spec, y, scorer.result())["metrics"])
    except _BASELINE_ERRORS as err:
        return BaselineMetrics(version, failure=f"{type(err).__name__}: {err}")


def _as_scored(
    spec: TransformSpec, features: Arrays, labels: np.ndarray
) -> tuple[np.ndarray, Arrays, int]:
    """Labels as the metrics take them: the label's own units for a regressor, class indices
    for a classifier, whose rows of a class train never had are left out (and counted)."""
    if spec.label.task == constants.REGRESSION:
        return labels.astype(np.float64), features, 0
    y = spec.label.encode(labels)
    keep = y >= 0
    if keep.all():
        return y, features, 0
    return y[keep], {name: values[keep] for name, values in features.items()}, int((~keep).sum())


def _scored_rows(path: str, spec: TransformSpec) -> tuple[Arrays, np.ndarray]:
    """A split's raw features and its labels as the metrics take them (:func:`_as_scored`)."""
    features, labels = read_split(path, spec)
    y, features, unknown = _as_scored(spec, features, labels)
    if unknown:
        logger.warning("Ignoring %d rows of %s: a class train never had", unknown, path)
    return features, y


def _metrics_of(spec: TransformSpec, y: np.ndarray, outputs: dict[str, np.ndarray]) -> dict:
    if spec.label.task == constants.CLASSIFICATION:
        return classification_metrics(y, outputs[constants.OUTPUT_PROBABILITIES])
    return {"metrics": regression_metrics(y, outputs[constants.OUTPUT_PREDICTION])}


def _scores(
    path: str, spec: TransformSpec, model_dir: str, baseline: Baseline | None
) -> tuple[np.ndarray, dict[str, Any], BaselineMetrics | None]:
    """The split streamed through the candidate and the baseline: its labels, the candidate's
    metrics and the baseline's (or why it could not score the split)."""
    candidate = _Scorer(model_dir)
    other = None if baseline is None else _Scorer(baseline.model_dir, _BASELINE_ERRORS)
    y = _streamed_outputs(path, spec, [candidate] + ([other] if other else []))
    scored = _metrics_of(spec, y, candidate.result()) if len(y) else {"metrics": {}}
    against = None
    if baseline is not None and other is not None:
        against = _baseline_from(spec, baseline.version, other, y)
    return y, scored, against


def _on_labelled_rows(
    path: str, spec: TransformSpec, model_dir: str, baseline: Baseline
) -> tuple[LabelledRows, dict[str, float], dict[str, float]]:
    """Both models on the prediction log's labelled rows in the eval split."""
    y, scored, against = _scores(path, spec, model_dir, baseline)
    if len(y) == 0:
        return LabelledRows(0), {}, {}
    primary = PRIMARY[spec.label.task][0]
    candidate, other = scored["metrics"], against.metrics if against else {}
    found = LabelledRows(len(y), candidate[primary], other.get(primary))
    return found, candidate, other


def evaluate(
    eval_path: str,
    model_dir: str,
    spec: TransformSpec,
    baseline: Baseline | None = None,
    config: EvalConfig | None = None,
    labelled_path: str | None = None,
) -> EvaluationResult:
    """Scores the candidate (and the baseline) on the eval split and decides the blessing.

    Args:
        eval_path: The eval split (Parquet).
        model_dir: The candidate SavedModel.
        spec: The transform's spec (task, classes, train-split label statistics).
        baseline: The model to improve on; None when there is none yet.
        config: Thresholds and the required improvement (none, and any improvement, if None).
        labelled_path: The prediction log's labelled rows in the eval split (Parquet), when
            the run joined a log: the candidate must do as well as the baseline on them.

    Returns:
        The evaluation, with ``blessed`` and the reasons for it.
    """
    task = spec.label.task
    config = config or EvalConfig()
    config.check(task)
    logger.info(
        "Evaluating %s on %s (task %s, thresholds %s, min_improvement %s, baseline %s)",
        model_dir,
        eval_path,
        task,
        config.thresholds,
        config.min_improvement,
        f"version {baseline.version} at {baseline.model_dir}" if baseline else "none",
    )
    # The eval split streams through both models; only labels and outputs are kept whole.
    y, scored, against = _scores(eval_path, spec, model_dir, baseline)
    trivial = _trivial_metrics(spec, y)
    labelled, labelled_metrics, labelled_baseline = None, {}, {}
    if labelled_path is not None and baseline is not None:
        labelled, labelled_metrics, labelled_baseline = _on_labelled_rows(
            labelled_path, spec, model_dir, baseline
        )
    blessing = bless(task, scored["metrics"], trivial, against, config, labelled)
    logger.info("Blessed: %s (%s)", blessing.blessed, "; ".join(blessing.reasons))
    return EvaluationResult(
        task=task,
        metrics=scored["metrics"],
        trivial_metrics=trivial,
        classes=spec.label.classes,
        per_class=scored.get("per_class", {}),
        confusion_matrix=scored.get("confusion_matrix", []),
        roc_curve=scored.get("roc_curve", {}),
        baseline_version=None if baseline is None else baseline.version,
        baseline_metrics={} if against is None else against.metrics,
        blessed=blessing.blessed,
        reasons=blessing.reasons,
        labelled_rows=0 if labelled is None else labelled.rows,
        labelled_metrics=labelled_metrics,
        labelled_baseline_metrics=labelled_baseline,
    )


def markdown_report(evaluation: EvaluationResult) -> str:
    """A Markdown page for the KFP UI: metrics, per-class table, confusion matrix, blessing."""
    lines = [f"# Evaluation ({evaluation.task})", ""]
    lines += [
        f"**{'Blessed' if evaluation.blessed else 'Not blessed'}**: "
        + "; ".join(evaluation.reasons),
        "",
        "| metric | candidate | trivial model | baseline |",
        "|---|---|---|---|",
    ]
    for name, value in evaluation.metrics.items():
        trivial = evaluation.trivial_metrics.get(name)
        baseline = evaluation.baseline_metrics.get(name)
        lines.append(
            f"| {name} | {value:.4f} | {'' if trivial is None else f'{trivial:.4f}'} | "
            f"{'' if baseline is None else f'{baseline:.4f}'} |"
        )
    if evaluation.labelled_metrics:
        lines += [
            "",
            f"On the {evaluation.labelled_rows} labelled rows of the prediction log in the eval "
            "split:",
            "",
            "| metric | candidate | serving version |",
            "|---|---|---|",
        ]
        for name, value in evaluation.labelled_metrics.items():
            other = evaluation.labelled_baseline_metrics.get(name)
            lines.append(f"| {name} | {value:.4f} | {'' if other is None else f'{other:.4f}'} |")
    if evaluation.per_class:
        lines += ["", "| class | precision | recall | support |", "|---|---|---|---|"]
        for i, name in enumerate(evaluation.classes):
            lines.append(
                f"| {name} | {evaluation.per_class['precision'][i]:.4f} | "
                f"{evaluation.per_class['recall'][i]:.4f} | {evaluation.per_class['support'][i]} |"
            )
        header = " | ".join(str(name) for name in evaluation.classes)
        lines += ["", "Confusion matrix (rows: true class, columns: predicted)", ""]
        lines += [f"| | {header} |", "|---" * (len(evaluation.classes) + 1) + "|"]
        for name, row in zip(evaluation.classes, evaluation.confusion_matrix, strict=True):
            lines.append(f"| **{name}** | " + " | ".join(str(v) for v in row) + " |")
    return "\n".join(lines) + "\n"
