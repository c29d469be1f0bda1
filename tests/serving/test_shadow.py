"""A shadow version in a real mlops-serve process: it sees every request the served version
answers, answers nobody, and the report compares the two from the prediction log."""

import json
import os
import shutil
import subprocess
import threading
import uuid

import pyarrow.dataset as ds
import pytest
import requests

from tests.serving.conftest import (
    ROOT,
    TRAIN_SCRIPT,
    pipeline_python,
    read_log,
    start_server,
)
from tests.serving.test_prediction_log import _v2_body

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def two_versions(trained, tmp_path_factory):
    """Version 1 (15 epochs) and version 2, trained by the same code for one epoch: another
    model, whose answers differ on some rows."""
    work = tmp_path_factory.mktemp("two-versions")
    registry = work / "registry"
    shutil.copytree(os.path.join(trained["registry"], "penguins", "1"), registry / "penguins" / "1")
    data = subprocess.run(
        [pipeline_python(), "-c", "import palmerpenguins, os; print(os.path.join(os.path.dirname("
         "palmerpenguins.__file__), 'data', 'penguins.csv'))"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    done = subprocess.run(
        [pipeline_python(), "-c", TRAIN_SCRIPT.format(epochs=1), data, str(work), str(registry)],
        capture_output=True, text=True, cwd=ROOT, timeout=600,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(os.listdir(registry / "penguins")) == ["1", "2"]
    return str(registry)


def test_the_shadow_sees_every_answered_request_and_changes_no_answer(
    two_versions, trained, expected, tmp_path
):
    log = tmp_path / "prediction-log"
    server = start_server(
        two_versions, str(tmp_path / "serve.log"),
        "--model-name", "penguins", "--version", "1", "--shadow-version", "2",
        "--prediction-log", str(log), "--prediction-log-window-seconds", "1",
    )  # fmt: skip
    rows = trained["rows"][:3]
    served_labels = [label.decode() for label in expected["label"].ravel()[:3]]
    answered, problems, stop = [], [], threading.Event()

    def client(v2: bool) -> None:
        session = requests.Session()
        while not stop.is_set() and len(answered) < 400:
            request_id = str(uuid.uuid4())
            if v2:
                body = {**_v2_body(rows), "id": request_id}
                reply = session.post(f"{server.http}/v2/models/penguins/infer", json=body,
                                     timeout=30)  # fmt: skip
                labels = next(o["data"] for o in reply.json()["outputs"] if o["name"] == "label")
            else:
                reply = session.post(f"{server.http}/v1/models/penguins:predict",
                                     json={"instances": rows},
                                     headers={"x-request-id": request_id}, timeout=30)  # fmt: skip
                labels = [p["label"] for p in reply.json()["predictions"]]
            if labels != served_labels:  # the served version's answers, never the shadow's
                problems.append(f"{request_id}: {labels}")
            answered.append(request_id)

    threads = [threading.Thread(target=client, args=(v2,)) for v2 in (False, True)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        stop.set()
        metrics = requests.get(f"{server.http}/metrics", timeout=10).text
    finally:
        stop.set()
        server.stop()
    assert problems == [] and len(answered) >= 400
    assert "mlops_shadow_rows_total" in metrics and 'version="2"' in metrics
    assert 'mlops_shadow_log_rows_total{outcome="lost"} 0.0' in metrics  # the shadow log's own
    assert "shadows version 2" in read_log(server.log)
    shadowed = ds.dataset(str(log / "shadow"), format="parquet", partitioning="hive").to_table()
    keys = list(zip(shadowed.column("request_id").to_pylist(), shadowed.column("row").to_pylist(),
                    strict=True))  # fmt: skip
    # Every answered request, each of its rows once, by version 2.
    assert sorted(keys) == sorted((r, i) for r in answered for i in range(3))
    assert set(shadowed.column("version").to_pylist()) == {2}
    report = subprocess.run(
        [pipeline_python(), "-m", "pipelines.cli", "shadow", "report", "--log", str(log),
         "--min-rows", "10", "--json"],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )  # fmt: skip
    assert report.returncode in (0, 3), report.stderr[-2000:]
    found = json.loads(report.stdout)
    assert found["rows"] == 3 * len(answered) and found["errors"] == 0
    assert found["served_versions"] == [1] and found["shadow_version"] == 2
    assert 0.0 <= found["agreement"] <= 1.0
    assert found["latency_ms"]["served"]["p50"] > 0 and found["latency_ms"]["shadow"]["p50"] > 0


def test_a_shadow_version_that_does_not_load_leaves_the_served_one_serving(trained, tmp_path):
    server = start_server(
        trained["registry"], str(tmp_path / "serve.log"),
        "--model-name", "penguins", "--version", "1", "--shadow-version", "9",
    )  # fmt: skip
    try:
        reply = requests.post(f"{server.http}/v1/models/penguins:predict",
                              json={"instances": trained["rows"][:1]}, timeout=30)  # fmt: skip
    finally:
        server.stop()
    assert reply.status_code == 200
    assert "No shadow: version 9 of 'penguins' does not load" in read_log(server.log)
