"""Each request the predictor answers, counted by version and outcome and timed, on /metrics:
what a canary's gates read (components/rollout/gates.py parses the real page here)."""

import requests

from components.rollout import gates


def test_metrics_count_each_outcome_of_the_served_version(server, trained):
    before = gates.parse(requests.get(f"{server.http}/metrics", timeout=10).text, "penguins", 1)
    rows = trained["rows"][:3]
    url = f"{server.http}/v1/models/penguins:predict"
    for row in rows:
        assert requests.post(url, json={"instances": [row]}, timeout=30).status_code == 200
    bad = requests.post(url, json={"instances": [{"island": "Biscoe"}]}, timeout=30)
    assert bad.status_code == 400
    page = requests.get(f"{server.http}/metrics", timeout=10).text
    step = gates.parse(page, "penguins", 1).since(before)
    assert (step.requests.get("ok"), step.requests.get("invalid")) == (3, 1)
    assert step.requests.get("error", 0) == 0
    assert step.total == 4 and step.error_rate == 0.25
    p99 = step.quantile(0.99)
    assert p99 is not None and 0 < p99 < 5
    # Another version's figures are not these.
    assert gates.parse(page, "penguins", 2).total == 0
