"""Evaluate [TFX Evaluator]: metrics of the candidate on the eval split, and a blessing.

A candidate is blessed when it beats the trivial model (the train split's majority class, or its
mean), meets every absolute threshold, and improves on the baseline (the newest model in the
registry, scored on the same eval rows) by more than ``min_improvement``.
"""

import logging
import math
import tempfile
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import tensorflow as tf
from sklearn import metrics as sk

from components import constants
from components.errors import ConfigurationError
from components.features import Arrays, TransformSpec, read_split
from components.registry import ModelRegistry

logger = logging.getLogger(__name__)

# The metric blessing compares with the trivial model and the baseline, and its direction.
PRIMARY = {constants.CLASSIFICATION: ("accuracy", 1.0), constants.REGRESSION: ("rmse", -1.0)}
_BOUNDS = ("lower_bound", "upper_bound")
_PREDICT_BATCH = 4096


@dataclass(frozen=True)
class EvalConfig:
    """How a candidate is blessed.

    Attributes:
        thresholds: Metric name to bounds, e.g. ``{"accuracy": {"lower_bound": 0.9}}``
            (TFMA's ``GenericValueThreshold``).
        min_improvement: How much the primary metric (accuracy, or RMSE downwards) must improve
            on the baseline; 0 means any improvement.
    """

    thresholds: dict[str, dict[str, float]] = field(default_factory=dict)
    min_improvement: float = 0.0

    def check(self, task: str) -> None:
        """Raises ConfigurationError for a threshold the task does not compute."""
        known = (
            constants.CLASSIFICATION_METRICS
            if task == constants.CLASSIFICATION
            else constants.REGRESSION_METRICS
        )
        for name, bounds in self.thresholds.items():
            if name not in known:
                raise ConfigurationError(
                    f"Threshold on {name!r}: a {task} evaluation computes {', '.join(known)}."
                )
            if not bounds or set(bounds) - set(_BOUNDS):
                raise ConfigurationError(
                    f"Threshold on {name!r} must give lower_bound and/or upper_bound, got {bounds}."
                )
        if self.min_improvement < 0:
            raise ConfigurationError(f"min_improvement must be >= 0, got {self.min_improvement}.")


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
        batch = {
            name: tf.constant(values[start : start + _PREDICT_BATCH])
            for name, values in features.items()
        }
        for name, value in signature(**batch).items():
            outputs.setdefault(name, []).append(value.numpy())
    return {name: np.concatenate(parts) for name, parts in outputs.items()}


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
    outputs = predict(model_dir, features)
    if spec.label.task == constants.CLASSIFICATION:
        return classification_metrics(y, outputs[constants.OUTPUT_PROBABILITIES])
    return {"metrics": regression_metrics(y, outputs[constants.OUTPUT_PREDICTION])}


def _trivial_metrics(spec: TransformSpec, y: np.ndarray) -> dict[str, float]:
    if spec.label.task == constants.CLASSIFICATION:
        return {"accuracy": float(np.mean(y == spec.label.majority_class))}
    return regression_metrics(y, np.full(len(y), spec.label.mean))


def _check_thresholds(metrics: dict[str, float], config: EvalConfig) -> list[str]:
    failures = []
    for name, bounds in sorted(config.thresholds.items()):
        value = metrics.get(name)
        if value is None:
            failures.append(f"{name} was not computed, so its threshold cannot be met")
            continue
        if "lower_bound" in bounds and value < bounds["lower_bound"]:
            failures.append(f"{name} {value:.4f} is below the threshold {bounds['lower_bound']}")
        if "upper_bound" in bounds and value > bounds["upper_bound"]:
            failures.append(f"{name} {value:.4f} is above the threshold {bounds['upper_bound']}")
    return failures


def evaluate(
    eval_path: str,
    model_dir: str,
    spec: TransformSpec,
    registry_root: str,
    model_name: str,
    config: EvalConfig = EvalConfig(),
) -> EvaluationResult:
    """Scores the candidate (and the baseline) on the eval split and decides the blessing.

    Args:
        eval_path: The eval split (Parquet).
        model_dir: The candidate SavedModel.
        spec: The transform's spec (task, classes, train-split label statistics).
        registry_root: The registry holding the baseline, if any.
        model_name: The model's name in the registry.
        config: Thresholds and the required improvement.

    Returns:
        The evaluation, with ``blessed`` and the reasons for it.
    """
    task = spec.label.task
    config.check(task)
    registry = ModelRegistry(registry_root)
    baseline_version = registry.latest(model_name)
    logger.info(
        "Evaluating %s on %s (task %s, thresholds %s, min_improvement %s, baseline %s)",
        model_dir,
        eval_path,
        task,
        config.thresholds,
        config.min_improvement,
        f"version {baseline_version}" if baseline_version else "none",
    )
    features, labels = read_split(eval_path, spec)
    if task == constants.REGRESSION:
        y = labels.astype(np.float64)  # metrics in the label's own units
    else:
        y = spec.label.encode(labels)
        if unknown := int(np.sum(y < 0)):
            logger.warning("Ignoring %d eval rows whose class the train split never had", unknown)
            keep = y >= 0
            features, y = {name: values[keep] for name, values in features.items()}, y[keep]
    scored = _score(spec, model_dir, features, y)
    evaluation = EvaluationResult(
        task=task,
        metrics=scored["metrics"],
        trivial_metrics=_trivial_metrics(spec, y),
        classes=spec.label.classes,
        per_class=scored.get("per_class", {}),
        confusion_matrix=scored.get("confusion_matrix", []),
        roc_curve=scored.get("roc_curve", {}),
        baseline_version=baseline_version,
    )
    primary, direction = PRIMARY[task]
    value, trivial = evaluation.metrics[primary], evaluation.trivial_metrics[primary]
    failures = []
    if direction * (value - trivial) <= 0:
        failures.append(
            f"{primary} {value:.4f} does not beat the trivial model's {trivial:.4f} "
            f"({'majority class' if task == constants.CLASSIFICATION else 'train mean'})"
        )
    failures += _check_thresholds(evaluation.metrics, config)
    if baseline_version is not None:
        with tempfile.TemporaryDirectory() as scratch:
            baseline_dir = registry.local_copy(model_name, baseline_version, scratch)
            failures += _compare_with_baseline(evaluation, spec, baseline_dir, features, y, config)
    evaluation.blessed = not failures
    evaluation.reasons = failures or [_blessing_reason(evaluation)]
    logger.info("Blessed: %s (%s)", evaluation.blessed, "; ".join(evaluation.reasons))
    return evaluation


def _compare_with_baseline(
    evaluation: EvaluationResult,
    spec: TransformSpec,
    baseline_dir: str,
    features: Arrays,
    y: np.ndarray,
    config: EvalConfig,
) -> list[str]:
    primary, direction = PRIMARY[evaluation.task]
    try:
        evaluation.baseline_metrics = _score(spec, baseline_dir, features, y)["metrics"]
    except (KeyError, ValueError, TypeError, tf.errors.OpError) as err:
        return [
            f"the baseline (version {evaluation.baseline_version}) cannot score this eval data "
            f"({type(err).__name__}: {err}); the data's features changed, so push under a new "
            "model name"
        ]
    value, baseline = evaluation.metrics[primary], evaluation.baseline_metrics[primary]
    if direction * (value - baseline) <= config.min_improvement:
        return [
            f"{primary} {value:.4f} does not improve on the baseline's {baseline:.4f} "
            f"(version {evaluation.baseline_version}) by more than {config.min_improvement}"
        ]
    return []


def _blessing_reason(evaluation: EvaluationResult) -> str:
    primary = evaluation.primary_metric
    parts = [
        f"{primary} {evaluation.metrics[primary]:.4f} beats the trivial model's "
        f"{evaluation.trivial_metrics[primary]:.4f}"
    ]
    if evaluation.baseline_version is not None:
        parts.append(
            f"and the baseline's {evaluation.baseline_metrics[primary]:.4f} "
            f"(version {evaluation.baseline_version})"
        )
    else:
        parts.append("and there is no baseline yet")
    return " ".join(parts)


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
