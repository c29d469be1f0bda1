"""A canary step's gate: the candidate's error rate and p99 latency against the stable
version's, over the same minutes of live traffic.

The figures are the predictors' own (``mlops_requests_total`` and ``mlops_request_seconds``
on the project predictor's ``/metrics``, serving/metrics.py), read from every pod of each
version at the start and the end of the step; the difference is what the step's traffic did.
KServe 0.15.2's router measures nothing per step (cmd/router/main.go:96-170) and TF Serving
exports no request metrics without a monitoring config, so only the project's runtime can be
judged this way.
"""

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

# The project predictor's metric names and outcomes (serving/metrics.py, which this package
# does not import: it runs where the model server does).
REQUESTS, REQUEST_SECONDS = "mlops_requests", "mlops_request_seconds"
OK = "ok"

# Reads a URL's text (a pod's /metrics); the cluster's is an HTTP GET.
Get = Callable[[str, float], str]


@dataclass(frozen=True)
class Traffic:
    """What one version's pods answered: requests by outcome, and the cumulative latency
    histogram (upper bound in seconds → requests at most that slow)."""

    requests: Mapping[str, float] = field(default_factory=dict)
    buckets: Mapping[float, float] = field(default_factory=dict)

    @property
    def total(self) -> float:
        return sum(self.requests.values())

    @property
    def error_rate(self) -> float:
        """Share of requests not answered ok (0 when there were none)."""
        total = self.total
        return (total - self.requests.get(OK, 0.0)) / total if total else 0.0

    def quantile(self, q: float) -> float | None:
        """The ``q`` quantile of the latency, interpolated within its bucket as Prometheus'
        ``histogram_quantile`` does; None when there were no requests."""
        bounds = sorted(self.buckets)
        if not bounds or self.buckets[bounds[-1]] <= 0:
            return None
        rank = q * self.buckets[bounds[-1]]
        lower, below = 0.0, 0.0
        for bound in bounds:
            count = self.buckets[bound]
            if count >= rank:
                if math.isinf(bound):
                    return lower  # Slower than the largest finite bound: say that bound.
                return lower + (bound - lower) * (rank - below) / max(count - below, 1e-12)
            lower, below = bound, count
        return lower

    def __add__(self, other: "Traffic") -> "Traffic":
        return Traffic(_add(self.requests, other.requests), _add(self.buckets, other.buckets))

    def since(self, before: "Traffic") -> "Traffic":
        """What was answered after ``before`` was read. A count that went down or went away
        means the server restarted in between: all it counted since is new."""
        for now, then in ((self.requests, before.requests), (self.buckets, before.buckets)):
            if any(now.get(key, 0.0) < value for key, value in then.items()):
                return self
        return Traffic(
            _add(self.requests, before.requests, -1), _add(self.buckets, before.buckets, -1)
        )


def _add(a: Mapping[Any, float], b: Mapping[Any, float], sign: int = 1) -> dict[Any, float]:
    return {key: a.get(key, 0.0) + sign * b.get(key, 0.0) for key in {*a, *b}}


def parse(text: str, model: str, version: int | None) -> Traffic:
    """The figures of ``model`` ``version`` in one ``/metrics`` page."""
    requests: dict[str, float] = {}
    buckets: dict[float, float] = {}
    wanted = {"model": model, "version": str(version)}
    for family in text_string_to_metric_families(text):
        if family.name not in (REQUESTS, REQUEST_SECONDS):
            continue
        for sample in family.samples:
            if any(sample.labels.get(key) != value for key, value in wanted.items()):
                continue
            if sample.name == f"{REQUESTS}_total":
                outcome = sample.labels["outcome"]
                requests[outcome] = requests.get(outcome, 0.0) + sample.value
            elif sample.name == f"{REQUEST_SECONDS}_bucket":
                bound = float(sample.labels["le"])
                buckets[bound] = buckets.get(bound, 0.0) + sample.value
    return Traffic(requests, buckets)


@dataclass(frozen=True)
class Verdict:
    """A gate's decision, why, and the values it judged."""

    passed: bool
    reasons: list[str]
    values: dict[str, Any]


@dataclass(frozen=True)
class CanaryGate:
    """What the candidate must show at each step, against the stable version.

    Attributes:
        min_requests: Fewest requests the candidate must have answered in the step; fewer
            cannot tell a bad version from a good one, so the step fails.
        max_error_rate_increase: How far the candidate's error rate may exceed the stable's.
        max_latency_ratio: How many times the stable's p99 the candidate's may be (judged
            once both answered ``min_latency_requests``).
    """

    min_requests: int = 20
    max_error_rate_increase: float = 0.01
    max_latency_ratio: float = 2.0
    # Below this many requests a p99 is about the slowest one: latency is not judged.
    min_latency_requests: int = 100

    def judge(self, stable: Traffic, candidate: Traffic) -> Verdict:
        stable_p99, candidate_p99 = stable.quantile(0.99), candidate.quantile(0.99)
        values = {
            "candidate_requests": int(candidate.total),
            "stable_requests": int(stable.total),
            "candidate_error_rate": round(candidate.error_rate, 4),
            "stable_error_rate": round(stable.error_rate, 4),
            "candidate_p99_ms": _ms(candidate_p99),
            "stable_p99_ms": _ms(stable_p99),
        }
        reasons = []
        if candidate.total < self.min_requests:
            reasons.append(
                f"the candidate answered {int(candidate.total)} request(s), fewer than "
                f"min_requests {self.min_requests}: too little traffic to judge it"
            )
        if candidate.error_rate > stable.error_rate + self.max_error_rate_increase:
            reasons.append(
                f"error rate {candidate.error_rate:.2%} against the stable version's "
                f"{stable.error_rate:.2%} (at most {self.max_error_rate_increase:.2%} more)"
            )
        if (
            stable_p99 is not None
            and candidate_p99 is not None
            and min(stable.total, candidate.total) >= self.min_latency_requests
            and candidate_p99 > stable_p99 * self.max_latency_ratio
        ):
            reasons.append(
                f"p99 {candidate_p99 * 1000:.1f} ms against the stable version's "
                f"{stable_p99 * 1000:.1f} ms (at most {self.max_latency_ratio:g}x)"
            )
        return Verdict(not reasons, reasons, values)


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


def http_get(url: str, timeout: float) -> str:
    """GETs a pod's URL directly: no proxy from the environment stands between pods."""
    import requests

    with requests.Session() as session:
        session.trust_env = False
        reply = session.get(url, timeout=timeout)
        reply.raise_for_status()
        return reply.text
