"""Readiness of a missing model, and hot swap to a newly pushed version without failed requests."""

import os
import shutil
import subprocess
import sys
import threading
import time

import pytest
import requests

from tests.serving.conftest import ROOT, copy_version, free_port, read_log, start_server

pytestmark = pytest.mark.slow


def test_missing_model_fails_readiness_with_a_clear_message(tmp_path):
    (tmp_path / "registry").mkdir()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "serving",
            "--registry",
            str(tmp_path / "registry"),
            "--model-name",
            "ghost",
            "--http-port",
            "0",
            "--grpc-port",
            "0",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 1
    assert "Model 'ghost' is not ready: cannot load it" in done.stdout + done.stderr
    assert "error: model 'ghost' is not ready" in done.stderr


def test_latest_follows_a_new_push_without_dropping_requests(trained, tmp_path):
    registry = tmp_path / "registry"
    shutil.copytree(os.path.join(trained["registry"], "penguins", "1"), registry / "penguins" / "1")
    server = start_server(str(registry), str(tmp_path / "serve.log"), "--poll-seconds", "0.5")
    body = {"instances": trained["rows"][:3]}
    statuses: list[int] = []
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            url = f"{server.http}/v1/models/penguins:predict"
            statuses.append(requests.post(url, json=body, timeout=30).status_code)

    threads = [threading.Thread(target=client) for _ in range(3)]
    try:
        for thread in threads:
            thread.start()
        time.sleep(1.0)
        copy_version(str(registry), 1, 2)
        deadline = time.monotonic() + 60
        while "now serves version 2" not in read_log(server.log) and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.0)  # keep requests flowing across the swap
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    version = requests.get(f"{server.http}/v2/models/penguins", timeout=5)
    server.stop()
    assert "now serves version 2 (was 1)" in read_log(server.log)
    assert version.status_code == 200
    assert len(statuses) > 10 and set(statuses) == {200}


@pytest.mark.parametrize("layout", ["saved_model", "versions"])
def test_model_dir_as_kserve_mounts_it(trained, tmp_path, layout):
    # KServe's storage initializer puts the storageUri's content in /mnt/models: for a registry
    # version that is the SavedModel itself; for a model folder, its numeric versions.
    source = os.path.join(trained["registry"], "penguins", "1")
    mount = tmp_path / "mnt" / "models"
    shutil.copytree(source, mount if layout == "saved_model" else mount / "3")
    http_port = str(free_port())
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "serving",
            "--model_dir",
            str(mount),
            "--model_name",
            "penguins",
            "--http_port",
            http_port,
            "--grpc_port",
            str(free_port()),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
    )
    url = f"http://127.0.0.1:{http_port}/v1/models/penguins"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if requests.get(url, timeout=1).ok:
                    break
            except requests.ConnectionError:
                time.sleep(0.3)
        response = requests.post(
            f"{url}:predict", json={"instances": trained["rows"][:2]}, timeout=30
        )
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert response.status_code == 200
    assert len(response.json()["predictions"]) == 2
