"""The blessing decision [TFX Evaluator's validation]: a pure function of the candidate's metrics,
the trivial model's, the baseline's and the config. No TensorFlow, no model: what is computed
from models is in :mod:`components.evaluate.core`.

A candidate is blessed when it beats the trivial model (the train split's majority class, or its
mean) on the primary metric, meets every absolute threshold, and, when there is a baseline,
improves on the baseline's primary metric by more than ``min_improvement``.
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


def bless(
    task: str,
    metrics: dict[str, float],
    trivial_metrics: dict[str, float],
    baseline: BaselineMetrics | None,
    config: EvalConfig,
) -> Blessing:
    """Decides whether the candidate is good enough to push.

    Args:
        task: ``classification`` or ``regression``; decides the primary metric and its direction.
        metrics: The candidate's metrics on the eval split.
        trivial_metrics: The trivial model's metrics on the same rows (at least the primary).
        baseline: The baseline's metrics on the same rows, or None when there is no baseline.
        config: Thresholds and the required improvement.

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
    if baseline is not None:
        failures += _baseline_failures(primary, direction, value, baseline, config)
    if failures:
        return Blessing(False, failures)
    reason = f"{primary} {value:.4f} beats the trivial model's {trivial:.4f}"
    if baseline is None:
        reason += " and there is no baseline yet"
    else:
        other = baseline.metrics[primary]
        reason += f" and the baseline's {other:.4f} (version {baseline.version})"
    return Blessing(True, [reason])
