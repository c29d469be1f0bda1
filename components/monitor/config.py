"""The monitor's settings, defined once (see :mod:`components.settings`)."""

from dataclasses import dataclass

from components.settings import check, setting


def _thresholds(value: dict) -> bool:
    return all(isinstance(v, int | float) and 0 < v <= 1 for v in value.values())


@dataclass(frozen=True)
class MonitorConfig:
    """When a window of served traffic says the model is stale."""

    min_rows: int = setting(
        200,
        "fewest rows in a window to decide on (below, the monitor says too few rows): "
        "Jensen-Shannon divergence grows as samples shrink",
        lambda v: v >= 1,
        "at least 1",
    )
    numeric_threshold: float = setting(
        0.15,
        "Jensen-Shannon divergence above which a numeric feature has skewed or drifted",
        lambda v: 0 < v <= 1,
        "in (0, 1]",
    )
    categorical_threshold: float = setting(
        0.15,
        "L-infinity distance above which a categorical feature has skewed or drifted",
        lambda v: 0 < v <= 1,
        "in (0, 1]",
    )
    feature_thresholds: dict = setting(
        {},
        "a threshold per feature, over the two above (--feature-threshold NAME=VALUE)",
        _thresholds,
        "values in (0, 1]",
        show="none",
    )
    decay_tolerance: float = setting(
        0.05,
        "how far the primary metric on labelled rows may fall below the version's evaluation",
        lambda v: v >= 0,
        "at least 0",
    )
    windows_in_a_row: int = setting(
        2,
        "windows that must say 'retrain' in a row before it is acted on",
        lambda v: v >= 1,
        "at least 1",
    )
    label_lookback_hours: float = setting(
        72.0,
        "labels that arrive in a window are joined to predictions answered up to this long "
        "before them (a later label is not counted)",
        lambda v: v > 0,
        "more than 0",
    )
    settle_seconds: float = setting(
        90.0,
        "a window ends this long before now: rows reach the log up to a writer's window "
        "(60 s) after they are answered",
        lambda v: v >= 0,
        "at least 0",
    )

    def __post_init__(self) -> None:
        check(self)

    def threshold(self, feature: str, categorical: bool) -> float:
        """The threshold of ``feature``."""
        default = self.categorical_threshold if categorical else self.numeric_threshold
        return float(self.feature_thresholds.get(feature, default))
