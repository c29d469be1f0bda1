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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import tensorflow as tf

from components import beam, constants, splits
from components.errors import DataError
from components.evaluate import metrics
from components.evaluate.blessing import (
    PRIMARY,
    BaselineMetrics,
    EvalConfig,
    LabelledRows,
    bless,
)
from components.features import Arrays, TransformSpec, split_values

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


def _output(model_dir: str, batch: Arrays, output: str) -> np.ndarray:
    """One output of a SavedModel's serving signature on a batch of raw features."""
    signature = _signature(model_dir)
    takes = sorted(signature.structured_input_signature[1])
    if takes != sorted(batch):
        # TensorFlow's own error prints the batch's values.
        raise ValueError(
            f"its serving signature takes {', '.join(takes)}; the data has "
            f"{', '.join(sorted(batch))}"
        )
    tensors = {name: tf.constant(values) for name, values in batch.items()}
    return signature(**tensors)[output].numpy()


@functools.lru_cache(maxsize=4)
def _signature(model_dir: str) -> Any:
    """A SavedModel's serving signature, loaded once per process (a Beam worker scores many
    units of a split with the same models)."""
    return tf.saved_model.load(model_dir).signatures[constants.SERVING_SIGNATURE]


# A model's metrics on the rows scored so far: a classifier's or a regressor's.
Metrics = metrics.Classification | metrics.Regression

# A baseline that cannot score the eval rows (another signature, other features, outputs that
# are not probabilities) is reported as failing, not a crash: the blessing says so.
_BASELINE_ERRORS = (KeyError, ValueError, TypeError, tf.errors.OpError)

# The output of the serving signature the metrics of a task read.
_METRIC_OUTPUT = {
    constants.CLASSIFICATION: constants.OUTPUT_PROBABILITIES,
    constants.REGRESSION: constants.OUTPUT_PREDICTION,
}


@dataclass
class _Scored:
    """A split's rows scored so far: the rows left out (a class train never had), the trivial
    model's metrics (the train split's majority class, or its mean) and each model's (the
    candidate's, then the baseline's) with why the model could not score the rows, if so."""

    unknown: int
    trivial: metrics.Confusion | metrics.Regression
    models: list[Metrics]
    failures: list[str | None]

    def merge(self, other: "_Scored") -> "_Scored":
        """Adds the scores of other rows."""
        self.unknown += other.unknown
        self.trivial.merge(other.trivial)
        for index, theirs in enumerate(other.models):
            # The same failure whatever order Beam merges the parts in.
            failures = [f for f in (self.failures[index], other.failures[index]) if f]
            self.failures[index] = min(failures, default=None)
            self.models[index].merge(theirs)
        return self


@dataclass(frozen=True)
class _Scoring:
    """How a split is scored: the transform's spec, the models (a SavedModel, and whether its
    failures are caught and reported rather than raised: the candidate's are raised, the
    baseline's caught) and the folder where the metrics rank scores. Also the Beam combiner
    of the units' scores."""

    spec: TransformSpec
    models: tuple[tuple[str, bool], ...]
    folder: str

    def create_accumulator(self) -> _Scored:
        label = self.spec.label
        failures: list[str | None] = [None for _ in self.models]
        if label.task == constants.CLASSIFICATION:
            classes = len(label.classes)
            scores = [metrics.Classification(classes, self.folder) for _ in self.models]
            return _Scored(0, metrics.Confusion(classes), scores, failures)
        regressions = [metrics.Regression() for _ in self.models]
        return _Scored(0, metrics.Regression(), regressions, failures)

    def merge_accumulators(self, parts: Iterable[_Scored]) -> _Scored:
        return functools.reduce(_Scored.merge, parts, self.create_accumulator())

    def extract_output(self, scored: _Scored) -> _Scored:
        return scored

    def rows(self, table: pa.Table) -> _Scored:
        """Scores a batch of a split (at most :data:`_PREDICT_BATCH` rows, one call of each
        model): its labelled rows of known classes."""
        label = self.spec.label
        features, values = split_values(table, self.spec)
        y, features, unknown = _as_scored(self.spec, features, values)
        scored = self.create_accumulator()
        scored.unknown = unknown
        if not len(y):
            return scored
        trivial = label.majority_class if label.task == constants.CLASSIFICATION else label.mean
        scored.trivial.add(y, np.full(len(y), trivial))
        # Only the output the metrics read: a classifier's label and classes are text per row.
        output = _METRIC_OUTPUT[label.task]
        for index, (model_dir, caught) in enumerate(self.models):
            try:
                scored.models[index].add(y, _output(model_dir, features, output))
            except _BASELINE_ERRORS as err:
                if not caught:
                    raise
                scored.failures[index] = f"{type(err).__name__}: {err}"
        return scored

    def unit(self, unit: splits.Unit) -> _Scored:
        """Scores a unit of a split (on a Beam worker), a batch at a time."""
        batches = splits.unit_batches(unit, [*self.spec.feature_names, self.spec.label.name])
        return self.merge_accumulators(self.rows(rows) for rows in batches)

    def split(self, path: str, beam_args: Sequence[str]) -> _Scored:
        """The split's labelled rows through each model, :data:`_PREDICT_BATCH` rows at a time:
        in this process, holding one batch of features, or in units on a Beam runner's
        workers. The metrics are counts and exact sums, the same either way to the bit."""
        if beam_args:
            units = splits.units(path, _PREDICT_BATCH, _BATCHES_PER_UNIT)
            scored = beam.run(units, self.unit, beam_args, combiner=self)
        else:
            columns = [*self.spec.feature_names, self.spec.label.name]
            batches = splits.batches(path, columns, _PREDICT_BATCH)
            scored = self.merge_accumulators(
                self.rows(pa.Table.from_batches([batch])) for batch in batches
            )
        if scored.unknown:
            logger.warning("Ignoring %d rows of %s: a class train never had", scored.unknown, path)
        return scored


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


def _baseline_from(version: int, model: Metrics, failure: str | None) -> BaselineMetrics:
    if failure is not None:
        return BaselineMetrics(version, failure=failure)
    try:
        return BaselineMetrics(version, model.result()["metrics"])
    except _BASELINE_ERRORS as err:
        return BaselineMetrics(version, failure=f"{type(err).__name__}: {err}")


@dataclass
class _Scores:
    """A split's evaluation: the rows scored, the candidate's metrics (with its per-class
    figures, confusion matrix and ROC curve), the trivial model's, and the baseline's or why it
    could not score the split."""

    rows: int
    candidate: dict[str, Any]
    trivial: dict[str, float]
    baseline: BaselineMetrics | None


def _scores(
    path: str,
    spec: TransformSpec,
    model_dir: str,
    baseline: Baseline | None,
    beam_args: Sequence[str] = (),
) -> _Scores:
    """The split streamed through the candidate and the baseline, and their metrics."""
    models = ((model_dir, False),) + (((baseline.model_dir, True),) if baseline else ())
    with beam.scratch(beam_args) as folder:
        split = _Scoring(spec, models, folder).split(path, beam_args)
        if not split.trivial.rows:
            return _Scores(0, {"metrics": {}}, {}, None)
        try:
            candidate = split.models[0].result()
        except ValueError as err:  # NaN outputs: its training diverged
            raise DataError(f"the candidate cannot be evaluated on {path}: {err}") from None
        against = None
        if baseline is not None:
            against = _baseline_from(baseline.version, split.models[1], split.failures[1])
    if spec.label.task == constants.CLASSIFICATION and "auc" not in candidate["metrics"]:
        logger.warning("AUC skipped: not every class occurs in %s", path)
    return _Scores(split.trivial.rows, candidate, split.trivial.result()["metrics"], against)


def _on_labelled_rows(
    path: str, spec: TransformSpec, model_dir: str, baseline: Baseline
) -> tuple[LabelledRows, dict[str, float], dict[str, float]]:
    """Both models on the prediction log's labelled rows in the eval split."""
    scores = _scores(path, spec, model_dir, baseline)
    if not scores.rows:
        return LabelledRows(0), {}, {}
    primary = PRIMARY[spec.label.task][0]
    candidate = scores.candidate["metrics"]
    other = scores.baseline.metrics if scores.baseline else {}
    found = LabelledRows(scores.rows, candidate[primary], other.get(primary))
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
    # The eval split streams through both models into metrics of bounded memory.
    scores = _scores(eval_path, spec, model_dir, baseline, beam_pipeline_args)
    if not scores.rows:
        raise DataError(
            f"the eval split {eval_path} has no rows to score (none, or only classes the train "
            "split never had): ingest more data or raise eval_fraction"
        )
    scored, against = scores.candidate, scores.baseline
    labelled, labelled_metrics, labelled_baseline = None, {}, {}
    if labelled_path is not None and baseline is not None:
        labelled, labelled_metrics, labelled_baseline = _on_labelled_rows(
            labelled_path, spec, model_dir, baseline
        )
    blessing = bless(task, scored["metrics"], scores.trivial, against, config, labelled)
    logger.info("Blessed: %s (%s)", blessing.blessed, "; ".join(blessing.reasons))
    return EvaluationResult(
        task=task,
        metrics=scored["metrics"],
        trivial_metrics=scores.trivial,
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
