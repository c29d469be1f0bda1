"""The transform step's settings, defined once (see :mod:`components.settings`)."""

from dataclasses import dataclass

from components import constants
from components.settings import check, setting


@dataclass(frozen=True)
class TransformConfig:
    """What the label is and how the preprocessing is fitted."""

    task: str = setting(
        constants.AUTO,
        "auto: text labels and integers with at most 20 values are classes, other numbers "
        "regression",
        lambda v: v in constants.TASKS,
        "one of " + ", ".join(constants.TASKS),
    )
    max_vocab_size: int = setting(
        1000,
        "most frequent values kept per categorical feature; the rest go to OOV buckets",
        lambda v: v >= 1,
        "at least 1",
    )
    num_oov_buckets: int = setting(
        2,
        "hash buckets for categorical values outside the vocabulary",
        lambda v: v >= 1,
        "at least 1",
    )

    def __post_init__(self) -> None:
        check(self)
