"""A canary gate's figures: read from the predictor's real metrics page (serving/metrics.py
through prometheus_client), differenced across a step, and judged."""

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from components.rollout import gates
from serving.metrics import RequestMetrics


def _page(observations: list[tuple[int, str, float]]) -> str:
    registry = CollectorRegistry()
    metrics = RequestMetrics(registry)
    for version, outcome, seconds in observations:
        metrics.observe("penguins-green", version, outcome, seconds)
    return generate_latest(registry).decode()


def test_parse_reads_one_versions_requests_and_latency():
    page = _page([(2, "ok", 0.003)] * 8 + [(2, "error", 0.003)] * 2 + [(1, "ok", 0.5)] * 5)
    two = gates.parse(page, "penguins-green", 2)
    assert dict(two.requests) == {"ok": 8.0, "error": 2.0}
    assert two.total == 10 and two.error_rate == pytest.approx(0.2)
    # 99 % of 10 requests lie at or below 5 ms, interpolated in the (2 ms, 5 ms] bucket.
    assert 0.002 < two.quantile(0.99) <= 0.005
    assert gates.parse(page, "penguins-green", 3).total == 0
    assert gates.parse(page, "penguins-blue", 2).quantile(0.99) is None


def test_quantile_interpolates_within_the_bucket_as_prometheus_does():
    traffic = gates.Traffic({"ok": 100}, {0.01: 50, 0.02: 100, float("inf"): 100})
    assert traffic.quantile(0.5) == pytest.approx(0.01)
    assert traffic.quantile(0.75) == pytest.approx(0.015)
    slow = gates.Traffic({"ok": 10}, {0.01: 0, float("inf"): 10})
    assert slow.quantile(0.99) == pytest.approx(0.01)  # beyond the largest bound: that bound


def test_a_step_counts_what_came_after_the_first_read():
    before = gates.Traffic({"ok": 100, "error": 5}, {0.01: 105, float("inf"): 105})
    after = gates.Traffic({"ok": 130, "error": 5}, {0.01: 135, float("inf"): 135})
    step = after.since(before)
    assert dict(step.requests) == {"ok": 30, "error": 0} and step.error_rate == 0


def test_a_restart_in_between_counts_everything_after_it():
    before = gates.Traffic({"ok": 100, "error": 5}, {0.01: 105, float("inf"): 105})
    # Past the old count again, but the error series has not come back yet.
    after = gates.Traffic({"ok": 150}, {0.01: 150, float("inf"): 150})
    assert after.since(before) == after


def test_the_gate_fails_a_candidate_erring_more_and_judges_latency_only_on_enough_requests():
    gate = gates.CanaryGate(min_requests=20, max_error_rate_increase=0.01, max_latency_ratio=2)
    stable = gates.Traffic({"ok": 900, "error": 9}, {0.01: 909, float("inf"): 909})
    bad = gates.Traffic({"ok": 50, "error": 50}, {0.01: 100, float("inf"): 100})
    verdict = gate.judge(stable, bad)
    assert not verdict.passed and "error rate 50.00%" in verdict.reasons[0]
    assert verdict.values["candidate_requests"] == 100
    slow = gates.Traffic({"ok": 150}, {0.01: 0, 0.1: 150, float("inf"): 150})
    assert "p99" in gate.judge(stable, slow).reasons[0]
    few_slow = gates.Traffic({"ok": 30}, {0.01: 0, 0.1: 30, float("inf"): 30})
    assert gate.judge(stable, few_slow).passed  # 30 requests: a p99 is their slowest one
    assert not gate.judge(stable, gates.Traffic({"ok": 5}, {})).passed  # too little traffic
