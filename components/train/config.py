"""The train step's settings (TFX's ``TrainArgs`` and ``FnArgs`` in spirit), defined once: the
``mlops run`` flags, the pipeline parameters' descriptions and components/train/README.md's
table come from here (:mod:`components.settings`)."""

from dataclasses import dataclass

from components.settings import check, setting


def parse_units(text: str) -> tuple[int, ...]:
    """``64,32`` to ``(64, 32)``."""
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise ValueError("give layer widths like 64,32") from None


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters and the device layout."""

    epochs: int = setting(
        50,
        "most passes over the train split; early stopping may end sooner",
        lambda v: v >= 1,
        "at least 1",
    )
    batch_size: int = setting(
        32, "global batch size, split across replicas", lambda v: v >= 1, "at least 1"
    )
    learning_rate: float = setting(0.01, "Adam's learning rate", lambda v: v > 0, "above 0")
    hidden_units: tuple[int, ...] = setting(
        (64, 32),
        "width of each hidden layer",
        lambda v: len(v) > 0 and min(v) >= 1,
        "one or more widths of at least 1",
        parse=parse_units,
    )
    dropout: float = setting(
        0.1, "dropout rate after each hidden layer", lambda v: 0.0 <= v < 1.0, "in [0, 1)"
    )
    embedding_dim: int = setting(
        8, "embedding width of each categorical feature", lambda v: v >= 1, "at least 1"
    )
    early_stopping_patience: int = setting(
        5, "epochs without a better eval loss before stopping", lambda v: v >= 0, "0 or more"
    )
    seed: int = setting(42, "seed of weights and shuffling: the same seed, the same model")
    cpu_devices: int = setting(
        1,
        "split the CPU into this many logical devices and train under MirroredStrategy "
        "(GPUs are used when present)",
        lambda v: v >= 1,
        "at least 1",
    )
    workers: int = setting(
        1,
        "train in this many pods, one worker each, under MultiWorkerMirroredStrategy (a TFJob "
        "of Kubeflow's Training Operator; needs a cluster); 1 trains in the step's own pod",
        lambda v: v >= 1,
        "at least 1",
    )
    job_timeout_minutes: int = setting(
        60,
        "with workers above 1: the longest the TFJob may take, scheduling included, before "
        "the step deletes it and fails",
        lambda v: v >= 1,
        "at least 1",
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden_units", tuple(self.hidden_units))
        check(self)
