"""mlops-log-sink as a real process on loopback, sent the events KServe 0.15.2's payload logger
sends, over real HTTP; then the Parquet it wrote, read back with pyarrow.

How the agent sends an event (kserve/kserve@v0.15.2): one POST per event, binary-mode CloudEvent
(pkg/logger/worker.go:150), to logger.url as configured, query string included (worker.go:86-88);
headers Ce-Specversion 1.0, Ce-Id (the client's Ce-Id or a new uuid, handler.go:202-207, the same
for request and response), Ce-Type org.kubeflow.serving.inference.request|response
(worker.go:38-39), Ce-Source (http://localhost:9081/ when the pod name is unknown,
cmd/agent/main.go:282-284), Ce-Time, Ce-Inferenceservicename, Ce-Namespace, Ce-Component
(predictor), Ce-Endpoint (empty in raw mode), Ce-Metadata ({} on requests, null on responses,
handler.go:179-192); Content-Type the request's, for both events; the body unchanged.
"""

import concurrent.futures
import json
import signal
import subprocess
import sys
import time
import uuid

import pyarrow.dataset as ds
import pytest
import requests

from tests.serving.conftest import ROOT, free_port, read_log

pytestmark = pytest.mark.slow

REQUEST = "org.kubeflow.serving.inference.request"
RESPONSE = "org.kubeflow.serving.inference.response"
ROWS = [
    {"island": "Biscoe", "bill_length_mm": 47.0, "bill_depth_mm": 15.0,
     "flipper_length_mm": 220.0, "body_mass_g": 5200.0, "sex": "male", "year": 2008.0},
    {"island": "Dream", "bill_length_mm": None, "bill_depth_mm": 18.0,
     "flipper_length_mm": 190.0, "body_mass_g": 3700.0, "sex": None, "year": 2007.0},
]  # fmt: skip


class Sink:
    def __init__(self, log: str, output: str, *extra: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.output = output
        self.process = subprocess.Popen(
            [sys.executable, "-m", "serving.log_sink", "--log", log, "--port", str(self.port),
             "--window-seconds", "0.5", "--unanswered-seconds", "2", *extra],
            stdout=open(output, "w"),  # noqa: SIM115 - the process writes it until stop()
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while True:
            assert self.process.poll() is None, read_log(output)
            try:
                if requests.get(f"{self.url}/healthz", timeout=1).ok:
                    return
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, read_log(output)
            time.sleep(0.2)

    def metrics(self) -> dict[str, float]:
        text = requests.get(f"{self.url}/metrics", timeout=5).text
        found = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                found[name] = float(value)
        return found

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)


@pytest.fixture
def sink(tmp_path):
    running = Sink(str(tmp_path / "log"), str(tmp_path / "sink.out"))
    yield running
    if running.process.poll() is None:
        running.process.kill()


def agent_post(sink, event_id, kind, body, query="?model=penguins&version=3", **headers):
    """One event as KServe's agent posts it."""
    sent = {
        "Ce-Specversion": "1.0",
        "Ce-Id": event_id,
        "Ce-Type": kind,
        "Ce-Source": "http://localhost:9081/",
        "Ce-Time": "2026-11-27T18:00:00.123456789Z",
        "Ce-Inferenceservicename": "penguins",
        "Ce-Namespace": "mlops-models",
        "Ce-Component": "predictor",
        "Ce-Endpoint": "",
        "Ce-Metadata": "{}" if kind == REQUEST else "null",
        "Content-Type": "application/json",
        **headers,
    }
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return requests.post(f"{sink.url}/log{query}", data=data, headers=sent, timeout=10)


CLASSES = ["Adelie", "Chinstrap", "Gentoo"]
V1_RESPONSE = {"predictions": [  # TF Serving's row format for several outputs
    {"label": "Gentoo", "probabilities": [0.01, 0.02, 0.97], "classes": CLASSES},
    {"label": "Adelie", "probabilities": [0.9, 0.08, 0.02], "classes": CLASSES},
]}  # fmt: skip


def _v2_request(rows):
    names = list(rows[0])
    return {"inputs": [
        {"name": n, "datatype": "BYTES" if isinstance(rows[0][n], str) else "FP32",
         "shape": [len(rows)], "data": [r[n] for r in rows]} for n in names
    ]}  # fmt: skip


V2_RESPONSE = {"id": "x", "model_name": "penguins", "model_version": "4", "outputs": [
    {"name": "label", "datatype": "BYTES", "shape": [2], "data": ["Gentoo", "Adelie"]},
    {"name": "probabilities", "datatype": "FP32", "shape": [2, 3],
     "data": [0.01, 0.02, 0.97, 0.9, 0.08, 0.02]},
]}  # fmt: skip


def _read(tmp_path):
    return ds.dataset(tmp_path / "log" / "predictions", partitioning="hive").to_table()


def test_events_as_the_agent_sends_them_become_the_prediction_log(sink, tmp_path):
    assert agent_post(sink, "v1-a", REQUEST, {"instances": ROWS}).status_code == 200
    assert agent_post(sink, "v1-a", RESPONSE, V1_RESPONSE).status_code == 200
    # V2, the response first (the agent's events race), no model/version in the URL.
    assert agent_post(sink, "v2-b", RESPONSE, V2_RESPONSE, query="").status_code == 200
    assert agent_post(sink, "v2-b", REQUEST, _v2_request(ROWS[:1] * 2), query="").status_code == 200
    # The same id again: a client re-sending its Ce-Id.
    assert agent_post(sink, "v1-a", REQUEST, {"instances": ROWS}).status_code == 200
    # A request the model answered with an error: the agent sends no response (handler.go:177).
    assert agent_post(sink, "err-c", REQUEST, {"instances": ROWS}).status_code == 200
    # A metadata call through the agent: an empty body.
    assert agent_post(sink, "meta-d", REQUEST, b"").status_code == 200
    assert (
        agent_post(sink, "meta-d", RESPONSE, {"name": "penguins", "ready": True}).status_code == 200
    )
    deadline = time.monotonic() + 20
    while sink.metrics().get('mlops_log_sink_events_total{outcome="unanswered"}') != 1:
        assert time.monotonic() < deadline, sink.metrics()
        time.sleep(0.3)
    assert sink.stop() == 0
    metrics_line = read_log(sink.output)
    assert "Traceback" not in metrics_line
    rows = _read(tmp_path).to_pylist()
    by_id = {}
    for row in rows:
        by_id.setdefault(row["request_id"], []).append(row)
    assert sorted(by_id) == ["v1-a", "v2-b"]
    first, second = sorted(by_id["v1-a"], key=lambda r: r["row"])
    assert (first["model"], first["version"], first["label"]) == ("penguins", 3, "Gentoo")
    assert first["probabilities"] == [0.01, 0.02, 0.97]
    assert (second["island"], second["bill_length_mm"], second["sex"]) == ("Dream", None, None)
    assert [r["version"] for r in by_id["v2-b"]] == [4, 4]  # the response names its version
    assert {r["island"] for r in by_id["v2-b"]} == {"Biscoe"}
    assert all(r["latency_ms"] is None or r["latency_ms"] != r["latency_ms"] for r in rows)


def test_every_event_is_counted_once_by_outcome(sink):
    agent_post(sink, "a", REQUEST, {"instances": ROWS})
    agent_post(sink, "a", RESPONSE, V1_RESPONSE)
    agent_post(sink, "a", RESPONSE, V1_RESPONSE)  # duplicate
    agent_post(sink, "b", REQUEST, b"\x00\x01 binary tensor data")
    agent_post(sink, "b", RESPONSE, V1_RESPONSE)
    agent_post(sink, "c", RESPONSE, V1_RESPONSE)  # its request never comes
    # A rollout's smoke request and its answer (components/rollout/smoke.py marks its Ce-Id).
    agent_post(sink, "mlops-smoke-1f2e", REQUEST, {"instances": ROWS[:1]})
    agent_post(sink, "mlops-smoke-1f2e", RESPONSE, V1_RESPONSE)
    bad = agent_post(sink, "d", "com.example.other", {"instances": ROWS})
    assert bad.status_code == 400 and "not a KServe inference event" in bad.text
    deadline = time.monotonic() + 20
    while sink.metrics().get('mlops_log_sink_events_total{outcome="unmatched_response"}') != 1:
        assert time.monotonic() < deadline, sink.metrics()
        time.sleep(0.3)
    counts = {
        key.split('"')[1]: value
        for key, value in sink.metrics().items()
        if key.startswith("mlops_log_sink_events_total")
    }
    assert counts == {
        "logged": 2, "unanswered": 0, "unmatched_response": 1, "duplicate": 1,
        "malformed": 1, "not_a_prediction": 2, "dropped": 0, "smoke_test": 2,
    }  # fmt: skip
    sink.stop()
    said = read_log(sink.output)
    assert said.count("counting them as 'duplicate'") == 1
    assert said.count("counting them as 'not_a_prediction'") == 1


def test_many_agents_at_once_are_all_answered_and_logged_once(sink, tmp_path):
    ids = [str(uuid.uuid4()) for _ in range(200)]

    def send(event_id):
        return (
            agent_post(sink, event_id, REQUEST, {"instances": ROWS}).status_code,
            agent_post(sink, event_id, RESPONSE, V1_RESPONSE).status_code,
        )

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(send, ids))
    assert set(statuses) == {(200, 200)}
    assert sink.stop() == 0
    table = _read(tmp_path)
    assert sorted(set(table.column("request_id").to_pylist())) == sorted(ids)
    assert table.num_rows == 2 * len(ids)


def test_late_labels_over_http_join_the_log(sink, tmp_path):
    from serving import prediction_log as pl

    agent_post(sink, "a", REQUEST, {"instances": ROWS})
    agent_post(sink, "a", RESPONSE, V1_RESPONSE)
    stored = requests.post(
        f"{sink.url}/v1/feedback/penguins",
        json=[
            {"request_id": "a", "row": 1, "label": "Chinstrap"},
            {"request_id": "a", "label": "Gentoo"},
        ],
        timeout=10,
    )
    assert stored.json() == {"stored": 2}
    bad = requests.post(f"{sink.url}/v1/feedback/penguins", json=[{"label": "x"}], timeout=10)
    assert bad.status_code == 400 and "request_id" in bad.json()["error"]
    assert sink.stop() == 0
    joined = pl.join_labels(
        pl.read(str(tmp_path / "log"), pl.PREDICTIONS, "penguins"),
        pl.read(str(tmp_path / "log"), pl.LABELS, "penguins"),
    )
    truth = joined.select(["row", "true_label"]).to_pylist()
    assert sorted((r["row"], r["true_label"]) for r in truth) == [(0, "Gentoo"), (1, "Chinstrap")]


def test_a_log_it_cannot_write_keeps_the_sink_answering_and_counts(tmp_path):
    blocked = tmp_path / "log"
    blocked.write_text("a file where the log's folder should be")
    sink = Sink(str(blocked), str(tmp_path / "sink.out"))
    try:
        for index in range(5):
            assert agent_post(sink, str(index), REQUEST, {"instances": ROWS}).status_code == 200
            assert agent_post(sink, str(index), RESPONSE, V1_RESPONSE).status_code == 200
        deadline = time.monotonic() + 20
        while sink.metrics().get('mlops_log_sink_events_total{outcome="logged"}') != 10:
            assert time.monotonic() < deadline
            time.sleep(0.3)
        time.sleep(1.5)
        assert sink.metrics()['mlops_prediction_log_rows_total{outcome="written"}'] == 0
        assert requests.get(f"{sink.url}/healthz", timeout=5).ok
    finally:
        assert sink.stop() == 0
    said = read_log(sink.output)
    assert said.count("cannot write to") == 1
    assert "10 rows it could not write" in said  # lost on exit, and said
