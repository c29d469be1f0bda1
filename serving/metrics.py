"""The prediction log's figures as Prometheus metrics, beside KServe's on ``/metrics``.

KServe's REST server answers ``/metrics`` from prometheus_client's default registry
(kserve/protocol/rest/server.py:24, :57 in .venv-serving); a collector registered there is read at
each scrape, so the figures are the writer's own counts, never a copy that could drift. With
``--workers N`` each worker process has its writer and its ``/metrics``.
"""

from collections.abc import Iterator

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from serving.prediction_log import PredictionLog
from serving.shadow import Shadow

# The prediction log's metrics; a shadow's log reports the same under "mlops_shadow_log".
PREFIX = "mlops_prediction_log"
SHADOW_LOG_PREFIX = "mlops_shadow_log"


class _LogCollector(Collector):
    def __init__(self, log: PredictionLog, prefix: str) -> None:
        self._log = log
        self._prefix = prefix

    def collect(self) -> Iterator[CounterMetricFamily]:
        counts = self._log.counts
        rows = CounterMetricFamily(
            f"{self._prefix}_rows",
            "Predicted rows handed to the prediction log, by outcome: written; dropped (the "
            "queue was full); lost (the store failed past the retry budget)",
            labels=["outcome"],
        )
        for outcome in ("written", "dropped", "lost"):
            rows.add_metric([outcome], getattr(counts, outcome))
        yield rows
        failures = CounterMetricFamily(
            f"{self._prefix}_write_failures",
            "Writes of a prediction log window that failed, by error",
            labels=["error"],
        )
        for error, count in sorted(counts.failures.items()):
            failures.add_metric([error], count)
        yield failures


def register_metrics(log: PredictionLog, prefix: str = PREFIX) -> None:
    """Reports ``log``'s counts on ``/metrics``, named ``<prefix>_rows_total`` and
    ``<prefix>_write_failures_total``."""
    REGISTRY.register(_LogCollector(log, prefix))


SHADOW_ROWS = "mlops_shadow_rows"
SHADOW_SECONDS = "mlops_shadow_model_seconds"


class _ShadowCollector(Collector):
    def __init__(self, shadow: Shadow) -> None:
        self._shadow = shadow

    def collect(self) -> Iterator[CounterMetricFamily]:
        counts = self._shadow.counts
        version = str(self._shadow.version)
        rows = CounterMetricFamily(
            SHADOW_ROWS,
            "Rows the shadow version saw, by outcome: agreed (the served label), disagreed, "
            "compared (a regressor's, whose difference is in the log), error, dropped (the "
            "shadow could not keep up)",
            labels=["version", "outcome"],
        )
        classifier = counts.classifier
        outcomes = {
            "agreed": counts.agreed if classifier else 0,
            "disagreed": counts.compared - counts.agreed if classifier else 0,
            "compared": 0 if classifier else counts.compared,
            "error": counts.errors,
            "dropped": counts.dropped,
        }
        for outcome, value in outcomes.items():
            rows.add_metric([version, outcome], value)
        yield rows
        seconds = CounterMetricFamily(
            SHADOW_SECONDS, "Time in the shadow version's model calls", labels=["version"]
        )
        seconds.add_metric([version], counts.seconds)
        yield seconds


def register_shadow_metrics(shadow: Shadow) -> None:
    """Reports ``shadow``'s counts on ``/metrics``."""
    REGISTRY.register(_ShadowCollector(shadow))


# Every request a version answered, by outcome, and how long it took: what a canary's gates
# compare between the stable version and the candidate (components/rollout/gates.py).
REQUESTS = "mlops_requests"
REQUEST_SECONDS = "mlops_request_seconds"
OK, INVALID, ERROR = "ok", "invalid", "error"
# Fine enough below 100 ms that a p99 read from the buckets tells a slower version apart.
LATENCY_BUCKETS = (
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0,
)  # fmt: skip


class RequestMetrics:
    """``mlops_requests_total{model,version,outcome}`` (ok; invalid: the request did not fit
    the model; error: the model failed) and ``mlops_request_seconds{model,version}``."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self._requests = Counter(
            REQUESTS,
            "Requests answered, by version and outcome: ok, invalid (the request did not fit "
            "the model), error (the model failed)",
            ["model", "version", "outcome"],
            registry=registry,
        )
        self._seconds = Histogram(
            REQUEST_SECONDS,
            "Time to answer a request, by version",
            ["model", "version"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )

    def observe(self, model: str, version: int | None, outcome: str, seconds: float) -> None:
        """Counts one request of ``model`` ``version`` with ``outcome``, taking ``seconds``."""
        self._requests.labels(model, str(version), outcome).inc()
        self._seconds.labels(model, str(version)).observe(seconds)


_REQUEST_METRICS: list[RequestMetrics] = []


def request_metrics() -> RequestMetrics:
    """The process's :class:`RequestMetrics` on ``/metrics`` (made at the first request)."""
    if not _REQUEST_METRICS:
        _REQUEST_METRICS.append(RequestMetrics())
    return _REQUEST_METRICS[0]
