"""The predictor's own settings, defined once (see :mod:`components.settings`): the
``mlops-serve`` flags and :class:`serving.model.ServedModel`'s defaults come from here. KServe's
server flags are KServe's (``kserve.model_server.parser``)."""

from dataclasses import dataclass

from components.settings import check, setting


@dataclass(frozen=True)
class ServingConfig:
    """Limits and timings of the predictor."""

    max_rows: int = setting(10_000, "most rows per request", lambda v: v >= 1, "at least 1")
    max_body_bytes: int = setting(
        16 * 1024 * 1024, "larger request bodies get 413", lambda v: v >= 1, "at least 1"
    )
    poll_seconds: float = setting(
        2.0, "how often --version latest looks for a new version", lambda v: v > 0, "above 0"
    )
    worker_start_seconds: float = setting(
        120.0,
        "with --workers > 1: a worker not started by then stops the server, saying why",
        lambda v: v > 0,
        "above 0",
    )

    def __post_init__(self) -> None:
        check(self)
