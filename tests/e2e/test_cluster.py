"""End to end on a real cluster: upload, submit, wait for the run, query the InferenceService.

Runs when MLOPS_E2E=1 and kubectl reaches a cluster where `make platform` installed Kubeflow
Pipelines and KServe and the images are loaded (`make e2e` does all of it on kind). The KFP API
and the predictor are reached through `kubectl port-forward`s this test starts itself.
"""

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import requests

from pipelines import cluster
from pipelines.cli import main

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        os.environ.get("MLOPS_E2E") != "1" or shutil.which("kubectl") is None,
        reason="needs a Kubernetes cluster with KFP and KServe: run `make e2e` (sets MLOPS_E2E=1)",
    ),
]

NAMESPACE = "mlops-models"
MODEL = "penguins-e2e"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def port_forward(namespace: str, target: str, remote: int) -> Iterator[str]:
    """``kubectl port-forward`` to a loopback port; yields the local URL."""
    local = _free_port()
    process = subprocess.Popen(
        ["kubectl", "port-forward", "-n", namespace, target, f"{local}:{remote}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", local)) == 0:
                    break
            time.sleep(0.5)
        yield f"http://127.0.0.1:{local}"
    finally:
        process.terminate()


def test_training_run_deploys_a_model_that_answers(tmp_path):
    package = str(tmp_path / "training.yaml")
    assert main(["compile", "--output", package]) == 0
    with port_forward("kubeflow", "svc/ml-pipeline", 8888) as host:
        assert main(["upload", "--host", host, "--package", package, "--name", "mlops-e2e"]) == 0
        client = cluster.connect(host)
        run_id, _ = cluster.submit(
            client,
            "mlops-e2e",
            "mlops-e2e",
            {**_cluster_params(), "model_name": MODEL, "epochs": 10},
            ui_host=host,
            service_account="mlops-deployer",
        )
        run = client.wait_for_run_completion(run_id, timeout=3600)
    assert run.state == "SUCCEEDED", f"run {run_id} ended {run.state}"

    from kubernetes import client as k8s
    from kubernetes import config

    config.load_kube_config()
    service = k8s.CustomObjectsApi().get_namespaced_custom_object(
        "serving.kserve.io", "v1beta1", NAMESPACE, "inferenceservices", MODEL
    )
    ready = next(c for c in service["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True"
    row = {
        "island": "Biscoe",
        "bill_length_mm": 47.0,
        "bill_depth_mm": 15.0,
        "flipper_length_mm": 220.0,
        "body_mass_g": 5200.0,
        "sex": "male",
        "year": 2008.0,
    }
    with port_forward(NAMESPACE, f"svc/{MODEL}-predictor", 80) as predictor:
        response = requests.post(
            f"{predictor}/v1/models/{MODEL}:predict", json={"instances": [row]}, timeout=60
        )
    assert response.status_code == 200, response.text
    prediction = response.json()["predictions"][0]
    assert prediction["label"] == "Gentoo"


def _cluster_params() -> dict:
    from pipelines.cli import CLUSTER_DEFAULTS

    return dict(CLUSTER_DEFAULTS)
