"""The prediction log's figures as Prometheus metrics, beside KServe's on ``/metrics``.

KServe's REST server answers ``/metrics`` from prometheus_client's default registry
(kserve/protocol/rest/server.py:24, :57 in .venv-serving); a collector registered there is read at
each scrape, so the figures are the writer's own counts, never a copy that could drift. With
``--workers N`` each worker process has its writer and its ``/metrics``.
"""

from collections.abc import Iterator

from prometheus_client import REGISTRY
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from serving.prediction_log import PredictionLog

ROWS = "mlops_prediction_log_rows"
FAILURES = "mlops_prediction_log_write_failures"


class _LogCollector(Collector):
    def __init__(self, log: PredictionLog) -> None:
        self._log = log

    def collect(self) -> Iterator[CounterMetricFamily]:
        counts = self._log.counts
        rows = CounterMetricFamily(
            ROWS,
            "Predicted rows handed to the prediction log, by outcome: written; dropped (the "
            "queue was full); lost (the store failed past the retry budget)",
            labels=["outcome"],
        )
        for outcome in ("written", "dropped", "lost"):
            rows.add_metric([outcome], getattr(counts, outcome))
        yield rows
        failures = CounterMetricFamily(
            FAILURES, "Writes of a prediction log window that failed, by error", labels=["error"]
        )
        for error, count in sorted(counts.failures.items()):
            failures.add_metric([error], count)
        yield failures


def register_metrics(log: PredictionLog) -> None:
    """Reports ``log``'s counts on ``/metrics``."""
    REGISTRY.register(_LogCollector(log))
