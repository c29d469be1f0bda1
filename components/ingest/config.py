"""The ingest step's settings, defined once (see :mod:`components.settings`)."""

from dataclasses import dataclass

from components.settings import check, setting


@dataclass(frozen=True)
class IngestConfig:
    """How rows are split, and which rows of the prediction log join them."""

    eval_fraction: float = setting(
        0.2,
        "share of rows for the eval split (rows go by a hash of their values, the same on "
        "every run)",
        lambda v: 0.0 < v < 1.0,
        "between 0 and 1",
    )
    labelled_log: str = setting(
        "",
        "a prediction log (folder or URI) whose recent labelled rows join the data; those the "
        "split puts in eval also gate the candidate against the serving version",
        show="none",
    )
    labelled_hours: float = setting(
        168.0,
        "how recent the labelled log's rows are: predictions answered this many hours back",
        lambda v: v > 0,
        "more than 0",
    )

    def __post_init__(self) -> None:
        check(self)
