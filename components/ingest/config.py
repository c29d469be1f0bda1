"""The ingest step's settings, defined once (see :mod:`components.settings`)."""

from dataclasses import dataclass

from components.settings import check, setting


@dataclass(frozen=True)
class IngestConfig:
    """How rows are split."""

    eval_fraction: float = setting(
        0.2,
        "share of rows for the eval split (rows go by a hash of their values, the same on "
        "every run)",
        lambda v: 0.0 < v < 1.0,
        "between 0 and 1",
    )

    def __post_init__(self) -> None:
        check(self)
