"""The e2e harness's own helpers (tests/e2e/test_cluster.py), run everywhere: `kubectl` is a
stand-in on PATH, KFP's run records are kfp_server_api's own model classes."""

import os
import stat
import sys

import pytest
from kfp_server_api import (
    GooglerpcStatus,
    V2beta1PipelineTaskDetail,
    V2beta1Run,
    V2beta1RunDetails,
)

from tests.e2e.test_cluster import failed_tasks, port_forward, wait_for_run

# `kubectl port-forward -n NS TARGET LOCAL:REMOTE` listens on 127.0.0.1:LOCAL until stopped.
LISTENS = """
import socket, sys, time
local = int(sys.argv[-1].split(":")[0])
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", local))
server.listen()
time.sleep(60)
"""
# What kubectl prints and how it exits when the service's pod is not running yet (k8s.io/kubectl
# pkg/cmd/portforward/portforward.go, RunPortForwardContext; cobra prints "error: " and exits 1).
EXITS = """
import sys
print('error: unable to forward port because pod is not running. Current status=Pending',
      file=sys.stderr)
sys.exit(1)
"""
# A kubectl that neither listens nor exits, as when it waits on an unreachable API server.
HANGS = "import time\ntime.sleep(60)\n"


@pytest.fixture
def kubectl(tmp_path, monkeypatch):
    """Puts a `kubectl` running the given Python body first on PATH."""

    def install(body: str) -> None:
        path = tmp_path / "kubectl"
        path.write_text(f"#!{sys.executable}\n{body}")
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
        monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")

    return install


def test_port_forward_yields_the_url_once_the_port_is_open(kubectl):
    kubectl(LISTENS)
    with port_forward("kubeflow", "svc/ml-pipeline", 8888, timeout=20) as url:
        assert url.startswith("http://127.0.0.1:")


def test_port_forward_fails_with_kubectls_error_when_kubectl_exits(kubectl):
    kubectl(EXITS)
    with (
        pytest.raises(pytest.fail.Exception, match=r"pod is not running\. Current status=Pending"),
        port_forward("mlops-models", "svc/x-predictor", 80, timeout=20),
    ):
        pass


def test_port_forward_fails_when_the_port_never_opens(kubectl):
    kubectl(HANGS)
    with (
        pytest.raises(pytest.fail.Exception, match=r"did not open the port in 1 s"),
        port_forward("mlops-models", "svc/x-predictor", 80, timeout=1),
    ):
        pass


class _Runs:
    """Answers get_run with the given states in turn, as KFP does while a run moves on."""

    def __init__(self, *states: str) -> None:
        self.states = list(states)

    def get_run(self, run_id: str) -> V2beta1Run:
        return V2beta1Run(run_id=run_id, state=self.states.pop(0))


@pytest.mark.parametrize("end", ["SUCCEEDED", "FAILED", "SKIPPED", "CANCELED"])
def test_waiting_stops_at_any_terminal_state(end):
    run = wait_for_run(_Runs("PENDING", "RUNNING", "CANCELING", end), "r1", 60, poll_seconds=0)
    assert run.state == end


def test_waiting_fails_when_the_run_outlasts_the_timeout():
    with pytest.raises(pytest.fail.Exception, match=r"run r1 is still RUNNING after 0 s"):
        wait_for_run(_Runs("RUNNING", "RUNNING"), "r1", 0, poll_seconds=0)


def test_failed_tasks_names_each_failed_task_with_its_error():
    run = V2beta1Run(
        state="FAILED",
        run_details=V2beta1RunDetails(
            task_details=[
                V2beta1PipelineTaskDetail(display_name="ingest", state="SUCCEEDED"),
                V2beta1PipelineTaskDetail(
                    display_name="train",
                    state="FAILED",
                    error=GooglerpcStatus(message="OOMKilled"),
                ),
            ]
        ),
    )
    assert failed_tasks(run) == "train: OOMKilled"
