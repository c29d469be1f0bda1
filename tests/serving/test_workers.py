"""``--workers N``: HTTP worker processes that start on a busy machine, are replaced with a logged
reason when they die, and stop the server with the reason when they cannot start.

kserve 0.15.2 alone SIGKILLs a worker that has not answered a ping in 5 s
(kserve/protocol/rest/multiprocess/server.py:48-52, :178-192 in .venv-serving) while the worker
cannot answer before it has imported TensorFlow and loaded the model (:45, :74): with both cores
busy it never became ready, logging only "Child process [N] died". serving/workers.py says more.
"""

import os
import re
import signal
import time

import pytest
import requests

from tests.serving.conftest import read_log, start_server

pytestmark = pytest.mark.slow

STARTED = re.compile(r"HTTP worker \[(\d+)\] started in ([\d.]+) s")


def _wait_for(log: str, pattern: str, seconds: float) -> re.Match:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if match := re.search(pattern, read_log(log), re.DOTALL):
            return match
        time.sleep(0.1)
    raise AssertionError(f"no {pattern!r} in {seconds:g} s: {read_log(log)[-3000:]}")


def test_several_http_workers_start_on_busy_cores_and_keep_the_body_limit(
    trained, tmp_path, busy_cores
):
    server = start_server(
        trained["registry"],
        str(tmp_path / "serve.log"),
        "--model-name",
        "penguins",
        "--workers",
        "2",
        "--max-body-bytes",
        "2000",
        ready_seconds=240,
    )
    url = f"{server.http}/v1/models/penguins:predict"
    try:
        # Both workers, not just the first one up: requests could reach either.
        _wait_for(server.log, f"{STARTED.pattern}.*{STARTED.pattern}", 120)
        small = [
            requests.post(url, json={"instances": trained["rows"][:1]}, timeout=30)
            for _ in range(6)
        ]
        large = requests.post(url, json={"instances": trained["rows"] * 5}, timeout=30)
    finally:
        server.stop()
    log = read_log(server.log)
    assert "died" not in log and "starting another" not in log
    assert [response.status_code for response in small] == [200] * 6
    assert large.status_code == 413


def test_a_worker_killed_after_it_started_is_logged_with_the_reason_and_replaced(trained, tmp_path):
    server = start_server(
        trained["registry"],
        str(tmp_path / "serve.log"),
        "--model-name",
        "penguins",
        "--workers",
        "2",
    )
    try:
        pid = int(_wait_for(server.log, STARTED.pattern, 60)[1])
        os.kill(pid, signal.SIGKILL)
        killed = rf"HTTP worker \[{pid}\] was killed by SIGKILL[^\n]*; starting another"
        new = int(_wait_for(server.log, rf"{killed}.*Started HTTP worker \[(\d+)\]", 30)[1])
        _wait_for(server.log, rf"HTTP worker \[{new}\] started in", 60)
        response = requests.post(
            f"{server.http}/v1/models/penguins:predict",
            json={"instances": trained["rows"][:1]},
            timeout=30,
        )
    finally:
        server.stop()
    assert response.status_code == 200


def test_a_worker_killed_while_starting_stops_the_server_with_the_reason(trained, tmp_path):
    server = start_server(
        trained["registry"],
        str(tmp_path / "serve.log"),
        "--model-name",
        "penguins",
        "--workers",
        "2",
        wait=False,
    )
    try:
        # A worker takes seconds to import TensorFlow, so it is still starting here.
        pid = int(_wait_for(server.log, r"Started HTTP worker \[(\d+)\]", 60)[1])
        os.kill(pid, signal.SIGKILL)
        returncode = server.process.wait(timeout=60)
    finally:
        server.stop()
    log = read_log(server.log)
    assert returncode == 1
    assert f"error: HTTP worker [{pid}] was killed by SIGKILL" in log
    assert "while starting" in log


def test_a_worker_not_started_in_time_stops_the_server_with_the_reason(trained, tmp_path):
    # Importing TensorFlow alone takes seconds, so no worker starts in 1 s.
    server = start_server(
        trained["registry"],
        str(tmp_path / "serve.log"),
        "--model-name",
        "penguins",
        "--workers",
        "2",
        "--worker-start-seconds",
        "1",
        wait=False,
    )
    try:
        returncode = server.process.wait(timeout=120)
    finally:
        server.stop()
    log = read_log(server.log)
    assert returncode == 1
    assert re.search(r"error: HTTP worker \[\d+\] did not start in 1 s", log)
    assert "raise --worker-start-seconds" in log
    assert "Traceback" not in log
