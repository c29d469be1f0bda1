"""Evaluate [TFX Evaluator]: metrics of the candidate on the eval split, and a blessing.

The candidate, the trivial model (the train split's majority class, or its mean) and the
baseline are scored on the same eval rows; :func:`components.evaluate.blessing.bless` decides.
The baseline is an input, as TFX's Evaluator takes the LatestBlessedModelStrategy resolver's
output: the resolve_baseline step copied the registry's newest version for this run. When the
run joined the prediction log's labelled rows, both are also scored on those of them in the eval
split (ingest writes them on their own), the served traffic's own evidence.
"""

import functools
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import tensorflow as tf
from sklearn import metrics as sk

from components import beam, constants, splits
from components.evaluate.blessing import (
    PRIMARY,
    BaselineMetrics,
    EvalConfig,
    LabelledRows,
    bless,
)
from components.features import Arrays, TransformSpec, read_split, split_values

logger = logging.getLogger(__name__)

_PREDICT_BATCH = 4096
# Batches a Beam worker scores per unit of work (a unit reads whole row groups).
_BATCHES_PER_UNIT = 16


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


@functools.lru_cache(maxsize=4)
def _signature(model_dir: str) -> Any:
    """A SavedModel's serving signature, loaded once per process (a Beam worker scores many
    units of a split with the same models)."""
    return tf.saved_model.load(model_dir).signatures[constants.SERVING_SIGNATURE]


@dataclass
class _Outputs:
    """One model's outputs over the rows scored so far, or why it could not score them."""

    parts: dict[str, list[np.ndarray]] = field(default_factory=dict)
    failure: str | None = None

    def merge(self, other: "_Outputs") -> None:
        """Appends the outputs of the rows after these (or the first failure)."""
        if self.failure is None and other.failure is not None:
            self.failure = other.failure
        for name, values in other.parts.items():
            self.parts.setdefault(name, []).extend(values)

    def result(self) -> dict[str, np.ndarray]:
        return {name: np.concatenate(parts) for name, parts in self.parts.items()}


@dataclass
class _Scored:
    """A split's rows scored so far: their labels as the metrics take them, the rows left out
    (a class train never had), and each model's outputs (the candidate's, then the baseline's).
    """

    labels: list[np.ndarray] = field(default_factory=list)
    unknown: int = 0
    outputs: list[_Outputs] = field(default_factory=list)

    def merge(self, other: "_Scored") -> "_Scored":
        """Appends the scores of the rows after these."""
        self.labels.extend(other.labels)
        self.unknown += other.unknown
        for mine, theirs in zip(self.outputs, other.outputs, strict=True):
            mine.merge(theirs)
        return self


def _merged(parts: Iterable[_Scored], models: int) -> _Scored:
    """Scored parts of a split, in order, as one."""
    return functools.reduce(
        _Scored.merge, parts, _Scored(outputs=[_Outputs() for _ in range(models)])
    )


def _score_rows(
    spec: TransformSpec, models: tuple[tuple[str, bool], ...], table: pa.Table
) -> _Scored:
    """Scores a batch of a split (at most :data:`_PREDICT_BATCH` rows, one call of each model):
    its labelled rows of known classes. ``models`` are (SavedModel, whether its failures are
    caught and reported rather than raised): the candidate's are raised, the baseline's caught.
    """
    features, values = split_values(table, spec)
    y, features, unknown = _as_scored(spec, features, values)
    scored = _Scored([y], unknown, [_Outputs() for _ in models])
    if not len(y):
        return scored
    # Only the output the metrics read: a classifier's label and classes are text per row, and
    # the eval split's worth of them would grow with the data.
    output = _METRIC_OUTPUT[spec.label.task]
    for (model_dir, caught), outputs in zip(models, scored.outputs, strict=True):
        try:
            outputs.parts[output] = [_call(_signature(model_dir), features)[output]]
        except _BASELINE_ERRORS as err:
            if not caught:
                raise
            outputs.failure = f"{type(err).__name__}: {err}"
    return scored


def _score_unit(spec: TransformSpec, models: tuple, unit: splits.Unit) -> _Scored:
    parts = splits.unit_batches(unit, [*spec.feature_names, spec.label.name])
    return _merged((_score_rows(spec, models, rows) for rows in parts), len(models))


def _score_split(
    path: str, spec: TransformSpec, models: tuple[tuple[str, bool], ...], beam_args: Sequence[str]
) -> _Scored:
    """The split's labelled rows through each model, :data:`_PREDICT_BATCH` rows at a time:
    in this process, holding one batch of features, or in units on a Beam runner's workers.
    The batches are the same either way, so every output is the same to the bit."""
    if beam_args:
        units = splits.units(path, _PREDICT_BATCH, _BATCHES_PER_UNIT)
        parts = beam.run(units, functools.partial(_score_unit, spec, models), beam_args)
    else:
        columns = [*spec.feature_names, spec.label.name]
        batches = splits.batches(path, columns, _PREDICT_BATCH)
        parts = (_score_rows(spec, models, pa.Table.from_batches([b])) for b in batches)
    scored = _merged(parts, len(models))
    if scored.unknown:
        logger.warning("Ignoring %d rows of %s: a class train never had", scored.unknown, path)
    return scored


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
    spec: TransformSpec, version: int, outputs: _Outputs, y: np.ndarray
) -> BaselineMetrics:
    if outputs.failure is not None:
        return BaselineMetrics(version, failure=outputs.failure)
    try:
        return BaselineMetrics(version, _metrics_of(spec, y, outputs.result())["metrics"])
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


# The output of the serving signature the metrics of a task read.
_METRIC_OUTPUT = {
    constants.CLASSIFICATION: constants.OUTPUT_PROBABILITIES,
    constants.REGRESSION: constants.OUTPUT_PREDICTION,
}


def _metrics_of(spec: TransformSpec, y: np.ndarray, outputs: dict[str, np.ndarray]) -> dict:
    output = outputs[_METRIC_OUTPUT[spec.label.task]]
    if spec.label.task == constants.CLASSIFICATION:
        return classification_metrics(y, output)
    return {"metrics": regression_metrics(y, output)}


def _scores(
    path: str,
    spec: TransformSpec,
    model_dir: str,
    baseline: Baseline | None,
    beam_args: Sequence[str] = (),
) -> tuple[np.ndarray, dict[str, Any], BaselineMetrics | None]:
    """The split streamed through the candidate and the baseline: its labels, the candidate's
    metrics and the baseline's (or why it could not score the split)."""
    models = ((model_dir, False),) + (((baseline.model_dir, True),) if baseline else ())
    split = _score_split(path, spec, models, beam_args)
    y = np.concatenate(split.labels) if split.labels else np.zeros(0)
    scored = _metrics_of(spec, y, split.outputs[0].result()) if len(y) else {"metrics": {}}
    against = None
    if baseline is not None:
        against = _baseline_from(spec, baseline.version, split.outputs[1], y)
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
    beam_pipeline_args: Sequence[str] = (),
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
        beam_pipeline_args: Beam options to score the eval split on a Beam runner's workers;
            empty for in-process. The metrics are the same either way.

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
    y, scored, against = _scores(eval_path, spec, model_dir, baseline, beam_pipeline_args)
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
