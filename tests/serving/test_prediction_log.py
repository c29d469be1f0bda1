"""The prediction log of a real mlops-serve process under load, across a hot swap: every
answered request is in the log exactly once, with the version that answered it."""

import os
import shutil
import threading
import time
import uuid

import pyarrow.dataset as ds
import pytest
import requests

from tests.serving.conftest import copy_version, read_log, start_server

pytestmark = pytest.mark.slow


def _v2_body(rows: list[dict]) -> dict:
    """An Open Inference Protocol request of raw rows: one tensor per feature."""
    inputs = []
    for name in rows[0]:
        values = [row[name] for row in rows]
        if any(isinstance(v, str) for v in values):
            inputs.append(
                {"name": name, "datatype": "BYTES", "shape": [len(rows)],
                 "data": ["" if v is None else v for v in values]}
            )  # fmt: skip
        else:
            inputs.append(
                {"name": name, "datatype": "FP32", "shape": [len(rows)],
                 "data": [float("nan") if v is None else v for v in values]}
            )  # fmt: skip
    return {"inputs": inputs}


def test_every_answered_request_is_logged_once_with_the_version_that_answered(trained, tmp_path):
    registry, log = tmp_path / "registry", tmp_path / "prediction-log"
    shutil.copytree(os.path.join(trained["registry"], "penguins", "1"), registry / "penguins" / "1")
    server = start_server(
        str(registry),
        str(tmp_path / "serve.log"),
        "--poll-seconds", "0.5",
        "--prediction-log", str(log),
        "--prediction-log-window-seconds", "2",
    )  # fmt: skip
    rows = trained["rows"][:3]
    answered: dict[str, tuple[int | None, list]] = {}  # request id -> (version, labels)
    failures: list[str] = []
    stop = threading.Event()

    def v1_client(named: bool) -> None:
        session = requests.Session()
        while not stop.is_set():
            sent = str(uuid.uuid4()) if named else None
            response = session.post(
                f"{server.http}/v1/models/penguins:predict",
                json={"instances": rows},
                headers={"x-request-id": sent} if sent else {},
                timeout=30,
            )
            if response.status_code != 200:
                failures.append(response.text)
                continue
            request_id = response.headers["x-request-id"]
            assert sent is None or request_id == sent
            labels = [p["label"] for p in response.json()["predictions"]]
            answered[request_id] = (None, labels)

    def v2_client() -> None:
        session = requests.Session()
        while not stop.is_set():
            sent = str(uuid.uuid4())
            response = session.post(
                f"{server.http}/v2/models/penguins/infer",
                json={"id": sent, **_v2_body(rows)},
                timeout=30,
            )
            if response.status_code != 200:
                failures.append(response.text)
                continue
            body = response.json()
            assert body["id"] == sent
            labels = next(o["data"] for o in body["outputs"] if o["name"] == "label")
            answered[sent] = (int(body["model_version"]), labels)

    clients = [
        threading.Thread(target=v1_client, args=(True,)),
        threading.Thread(target=v1_client, args=(False,)),
        threading.Thread(target=v2_client),
        threading.Thread(target=v2_client),
    ]
    try:
        for client in clients:
            client.start()
        time.sleep(2.0)
        copy_version(str(registry), 1, 2)
        deadline = time.monotonic() + 90
        while "now serves version 2" not in read_log(server.log) and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(2.0)  # requests keep flowing across the swap
    finally:
        stop.set()
        for client in clients:
            client.join()
        server.stop()  # SIGTERM: the server writes what its log still holds, then exits
    assert not failures
    assert "now serves version 2 (was 1)" in read_log(server.log)

    table = ds.dataset(log / "predictions", partitioning="hive").to_table()  # pyarrow alone
    logged = table.select(["request_id", "row", "version", "label", "island"]).to_pylist()
    ids = [(r["request_id"], r["row"]) for r in logged]
    assert len(ids) == len(set(ids)), "a prediction was logged twice"
    assert {request_id for request_id, _ in ids} == set(answered), "logged != answered"
    assert len(logged) == len(answered) * len(rows)
    versions = {r["request_id"]: r["version"] for r in logged}
    v2 = {request_id: v for request_id, (v, _) in answered.items() if v is not None}
    assert {versions[request_id] for request_id in v2} == {1, 2}  # both sides of the swap
    assert all(versions[request_id] == version for request_id, version in v2.items())
    for record in logged:
        assert record["label"] == answered[record["request_id"]][1][record["row"]]
        assert record["island"] == rows[record["row"]]["island"]


def test_the_log_counts_on_metrics_beside_kserves(trained, tmp_path):
    log = tmp_path / "prediction-log"
    server = start_server(
        trained["registry"],
        str(tmp_path / "serve.log"),
        "--model-name", "penguins",
        "--prediction-log", str(log),
        "--prediction-log-window-seconds", "0.5",
    )  # fmt: skip
    try:
        response = requests.post(
            f"{server.http}/v1/models/penguins:predict",
            json={"instances": trained["rows"][:4]},
            timeout=30,
        )
        assert response.status_code == 200
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            metrics = requests.get(f"{server.http}/metrics", timeout=5).text
            if 'mlops_prediction_log_rows_total{outcome="written"} 4.0' in metrics:
                break
            time.sleep(0.3)
        assert 'mlops_prediction_log_rows_total{outcome="written"} 4.0' in metrics
        assert 'mlops_prediction_log_rows_total{outcome="dropped"} 0.0' in metrics
        assert "request_predict_seconds" in metrics  # KServe's own, on the same endpoint
    finally:
        server.stop()
