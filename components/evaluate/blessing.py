"""The blessing decision [TFX Evaluator's validation]: a pure function of the candidate's metrics,
the trivial model's, the baseline's and the config. No TensorFlow, no model: what is computed
from models is in :mod:`components.evaluate.core`.

A candidate is blessed when it beats the trivial model (the train split's majority class, or its
mean) on the primary metric, meets every absolute threshold, and, when there is a baseline,
improves on the baseline's primary metric by more than ``min_improvement``. When the run joined
the prediction log's labelled rows, the candidate must also do at least as well as the baseline
(the serving version) on those of them in the eval split: the traffic the model will serve,
labelled, which neither model trained on. A tie passes there, as TFX's change thresholds are
written (``absolute: -1e-10``): on a few hundred served rows both models are often right on
every one, and the eval split already asked for an improvement.
"""

from dataclasses import dataclass, field

from components import constants
from components.errors import ConfigurationError
from components.settings import check, setting

# The metric blessing compares with the trivial model and the baseline, and its direction:
# +1 higher is better, -1 lower is better.
PRIMARY = {constants.CLASSIFICATION: ("accuracy", 1.0), constants.REGRESSION: ("rmse", -1.0)}
_BOUNDS = ("lower_bound", "upper_bound")


@dataclass(frozen=True)
class EvalConfig:
    """How a candidate is blessed.

    Attributes:
        thresholds: Metric name to bounds, e.g. ``{"accuracy": {"lower_bound": 0.9}}``
            (TFMA's ``GenericValueThreshold``).
        min_improvement: How much the primary metric (accuracy, or RMSE downwards) must improve
            on the baseline; 0 means any improvement.
    """

    thresholds: dict[str, dict[str, float]] = setting(
        {},
        "absolute bounds per metric, e.g. accuracy>=0.9 or rmse<=3 "
        '(as a parameter: {"accuracy": {"lower_bound": 0.9}})',
        show="none",
    )
    min_improvement: float = setting(
        0.0,
        "how much the primary metric (accuracy, or RMSE downwards) must improve on the "
        "baseline; 0 means any improvement",
        lambda v: v >= 0,
        "0 or more",
    )
    min_labelled_rows: int = setting(
        30,
        "fewest labelled log rows in the eval split to compare the candidate with the serving "
        "version on (below, the comparison is skipped and the reasons say so)",
        lambda v: v >= 1,
        "at least 1",
    )

    def __post_init__(self) -> None:
        check(self)

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


@dataclass(frozen=True)
class BaselineMetrics:
    """The baseline's metrics on the candidate's eval rows.

    Attributes:
        version: The baseline's registry version.
        metrics: Its metrics; empty when it could not score the eval rows.
        failure: Why it could not score them (e.g. the data's features changed), if it could not.
    """

    version: int
    metrics: dict[str, float] = field(default_factory=dict)
    failure: str | None = None


@dataclass(frozen=True)
class LabelledRows:
    """The primary metric on the prediction log's labelled rows in the eval split.

    Attributes:
        rows: How many there are.
        candidate: The candidate's metric on them (None when there are none).
        baseline: The baseline's (None without a baseline, or when it cannot score them).
    """

    rows: int
    candidate: float | None = None
    baseline: float | None = None


@dataclass(frozen=True)
class Blessing:
    """The decision and the reasons for it: the failures, or why it is good enough."""

    blessed: bool
    reasons: list[str]


def _threshold_failures(metrics: dict[str, float], config: EvalConfig) -> list[str]:
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


def _baseline_failures(
    primary: str, direction: float, value: float, baseline: BaselineMetrics, config: EvalConfig
) -> list[str]:
    if baseline.failure is not None:
        return [
            f"the baseline (version {baseline.version}) cannot score this eval data "
            f"({baseline.failure}); the data's features changed, so push under a new model name"
        ]
    other = baseline.metrics[primary]
    if direction * (value - other) <= config.min_improvement:
        return [
            f"{primary} {value:.4f} does not improve on the baseline's {other:.4f} "
            f"(version {baseline.version}) by more than {config.min_improvement}"
        ]
    return []


def _labelled_verdict(
    primary: str,
    direction: float,
    labelled: LabelledRows,
    baseline: BaselineMetrics,
    config: EvalConfig,
) -> tuple[list[str], str]:
    """The failures of the comparison on labelled log rows, and what it found otherwise."""
    where = f"{labelled.rows} labelled rows of the prediction log"
    if labelled.rows < config.min_labelled_rows:
        return [], f"not compared on {where} (fewer than {config.min_labelled_rows})"
    if labelled.candidate is None or labelled.baseline is None:
        return [], f"not compared on {where} (the baseline cannot score them)"
    candidate, other = labelled.candidate, labelled.baseline
    if direction * (candidate - other) < 0:
        return [
            f"on {where}, {primary} {candidate:.4f} is worse than the serving version's "
            f"{other:.4f} (version {baseline.version})"
        ], ""
    return [], f"on {where}, {primary} {candidate:.4f} against the serving version's {other:.4f}"


def bless(
    task: str,
    metrics: dict[str, float],
    trivial_metrics: dict[str, float],
    baseline: BaselineMetrics | None,
    config: EvalConfig,
    labelled: LabelledRows | None = None,
) -> Blessing:
    """Decides whether the candidate is good enough to push.

    Args:
        task: ``classification`` or ``regression``; decides the primary metric and its direction.
        metrics: The candidate's metrics on the eval split.
        trivial_metrics: The trivial model's metrics on the same rows (at least the primary).
        baseline: The baseline's metrics on the same rows, or None when there is no baseline.
        config: Thresholds and the required improvement.
        labelled: Both models on the labelled log rows in the eval split, when the run joined
            a prediction log.

    Returns:
        Blessed or not, with every reason it is not, or the one reason it is.
    """
    primary, direction = PRIMARY[task]
    value, trivial = metrics[primary], trivial_metrics[primary]
    failures = []
    if direction * (value - trivial) <= 0:
        failures.append(
            f"{primary} {value:.4f} does not beat the trivial model's {trivial:.4f} "
            f"({'majority class' if task == constants.CLASSIFICATION else 'train mean'})"
        )
    failures += _threshold_failures(metrics, config)
    found = ""
    if baseline is not None:
        failures += _baseline_failures(primary, direction, value, baseline, config)
        if labelled is not None and baseline.failure is None:
            more, found = _labelled_verdict(primary, direction, labelled, baseline, config)
            failures += more
    if failures:
        return Blessing(False, failures)
    reason = f"{primary} {value:.4f} beats the trivial model's {trivial:.4f}"
    if baseline is None:
        reason += " and there is no baseline yet"
    else:
        other = baseline.metrics[primary]
        reason += f" and the baseline's {other:.4f} (version {baseline.version})"
    return Blessing(True, [reason, found] if found else [reason])
