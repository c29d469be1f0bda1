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

    prediction_log: str | None = setting(
        None,
        "log every prediction as Parquet under this folder or URI (s3://, gs://); off when unset",
        parse=str,
        show="off",
    )
    prediction_log_window_seconds: float = setting(
        60.0, "the longest a prediction waits to be written", lambda v: v > 0, "above 0"
    )
    prediction_log_queue: int = setting(
        10_000,
        "requests waiting to be logged; beyond, predictions are dropped and counted",
        lambda v: v >= 1,
        "at least 1",
    )

    shadow_version: int | None = setting(
        None,
        "a registry version run beside the served one on every request after it is answered, "
        "answering nobody; its answers go to the prediction log as shadow rows "
        "(mlops shadow report compares them)",
        lambda v: v is None or v >= 1,
        "a version number",
        parse=int,
        show="none",
    )
    shadow_queue: int = setting(
        1000,
        "requests waiting to be shadowed; beyond, they go unshadowed and are counted",
        lambda v: v >= 1,
        "at least 1",
    )

    def __post_init__(self) -> None:
        check(self)
