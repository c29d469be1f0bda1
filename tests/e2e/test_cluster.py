"""End to end on a real cluster: upload, submit, wait for the runs, query the InferenceServices.

Runs when MLOPS_E2E=1 and kubectl reaches a cluster where `make platform` installed Kubeflow
Pipelines and KServe and the CPU images are loaded (`make e2e` does all of it on kind). Two runs
of the training pipeline start together, one per serving runtime: KServe's TensorFlow Serving
runtime, queried over V1, and this project's predictor (images/serving, ServingRuntime
``mlops-predictor``), queried over V1 and V2. Each run deploys its own model name, fresh for each
session, so a model is always compared against no baseline and blessed when it beats the trivial
model. The KFP API and the predictors are reached through `kubectl port-forward`s this test
starts itself.
"""

import json
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any

import pytest
import requests

from components.rollout.inference_service import (
    GROUP,
    PLURAL,
    PROJECT_RUNTIME,
    TF_SERVING_RUNTIME,
    VERSION,
)
from pipelines import cluster
from pipelines.cli import main

RUN_TIMEOUT_SECONDS = 3600
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        os.environ.get("MLOPS_E2E") != "1" or shutil.which("kubectl") is None,
        reason="needs a Kubernetes cluster with KFP and KServe: run `make e2e` (sets MLOPS_E2E=1)",
    ),
    # The first test waits for the runs; pyproject's 900 s default is shorter than a run.
    pytest.mark.timeout(RUN_TIMEOUT_SECONDS + 600),
]

PIPELINE = "mlops-e2e"
EXPERIMENT = "mlops-e2e"
NAMESPACE = "mlops-models"
# The run states after which a run never changes (KFP 2.5.0 backend/api/v2beta1/run.proto:221-249,
# RuntimeState). kfp 2.13's Client.wait_for_run_completion does not stop on CANCELED.
TERMINAL_STATES = frozenset({"SUCCEEDED", "FAILED", "SKIPPED", "CANCELED"})
ROW = {
    "island": "Biscoe",
    "bill_length_mm": 47.0,
    "bill_depth_mm": 15.0,
    "flipper_length_mm": 220.0,
    "body_mass_g": 5200.0,
    "sex": "male",
    "year": 2008.0,
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _text(stream: IO[str]) -> str:
    stream.seek(0)
    return stream.read().strip() or "(kubectl printed nothing)"


@contextmanager
def port_forward(namespace: str, target: str, remote: int, timeout: float = 60) -> Iterator[str]:
    """``kubectl port-forward`` to a loopback port; yields the local URL once the port is open.

    Fails with kubectl's stderr when kubectl exits or the port does not open within ``timeout``.
    """
    local = _free_port()
    what = f"-n {namespace} {target} {local}:{remote}"
    with tempfile.TemporaryFile("w+") as stderr:
        process = subprocess.Popen(
            ["kubectl", "port-forward", "-n", namespace, target, f"{local}:{remote}"],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            text=True,
        )
        try:
            deadline = time.monotonic() + timeout
            while True:
                if process.poll() is not None:
                    pytest.fail(
                        f"kubectl port-forward {what} exited {process.returncode}: {_text(stderr)}"
                    )
                with socket.socket() as sock:
                    if sock.connect_ex(("127.0.0.1", local)) == 0:
                        break
                if time.monotonic() > deadline:
                    pytest.fail(
                        f"kubectl port-forward {what} did not open the port in {timeout:.0f} s: "
                        f"{_text(stderr)}"
                    )
                time.sleep(0.5)
            yield f"http://127.0.0.1:{local}"
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_for_run(client: Any, run_id: str, timeout: float, poll_seconds: float = 10) -> Any:
    """Polls the run until it reaches a terminal state; fails when ``timeout`` passes first."""
    deadline = time.monotonic() + timeout
    while True:
        run = client.get_run(run_id)
        if run.state in TERMINAL_STATES:
            return run
        if time.monotonic() > deadline:
            pytest.fail(f"run {run_id} is still {run.state} after {timeout:.0f} s")
        time.sleep(poll_seconds)


def failed_tasks(run: Any) -> str:
    """The tasks of a run that failed, with their error messages."""
    tasks = (run.run_details.task_details if run.run_details else None) or []
    failed = [
        f"{task.display_name}: {task.error.message if task.error else 'no message'}"
        for task in tasks
        if task.state == "FAILED"
    ]
    return "; ".join(failed) or "no task reports a failure"


def _custom_objects() -> Any:
    from kubernetes import client, config

    config.load_kube_config()
    return client.CustomObjectsApi()


def inference_service(name: str) -> dict[str, Any] | None:
    """The InferenceService ``name`` in the serving namespace, or None when there is none."""
    from kubernetes.client.exceptions import ApiException

    try:
        return _custom_objects().get_namespaced_custom_object(
            GROUP, VERSION, NAMESPACE, PLURAL, name
        )
    except ApiException as err:
        if err.status == 404:
            return None
        raise


def delete_inference_service(name: str) -> None:
    from kubernetes.client.exceptions import ApiException

    try:
        _custom_objects().delete_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, name)
    except ApiException as err:
        if err.status != 404:
            raise


@dataclass(frozen=True)
class Submitted:
    """The runs started for this session: runtime → model name, runtime → run id."""

    client: Any
    ui_host: str
    models: dict[str, str]
    run_ids: dict[str, str]
    package: str


@pytest.fixture(scope="module")
def submitted(request, tmp_path_factory) -> Iterator[Submitted]:
    """Compiles and uploads the pipeline, then starts one run per serving runtime."""
    package = str(tmp_path_factory.mktemp("e2e") / "training.yaml")
    assert main(["compile", "--output", package]) == 0
    token = secrets.token_hex(3)
    # Neither name is a prefix of the other: KServe's storage initializer lists S3 by prefix.
    models = {TF_SERVING_RUNTIME: f"e2e-tfs-{token}", PROJECT_RUNTIME: f"e2e-mlops-{token}"}
    with port_forward("kubeflow", "svc/ml-pipeline", 8888) as host:
        assert main(["upload", "--host", host, "--package", package, "--name", PIPELINE]) == 0
        client = cluster.connect(host)
        run_ids = {}
        for runtime, model in models.items():
            params = {
                # Data, registry and serve=true: the compiled defaults, as for a run
                # started from the dashboard.
                "model_name": model,
                "serving_runtime": runtime,
                "epochs": 10,
            }
            run_ids[runtime], _ = cluster.submit(
                client,
                PIPELINE,
                package,
                EXPERIMENT,
                params,
                # No service account: KFP's pipeline-runner, as for a run from the dashboard.
                ui_host=host,
            )
        yield Submitted(client, host, models, run_ids, package)
    # Left in place when something failed, for `kubectl get inferenceservices -A -o yaml`.
    if request.session.testsfailed == 0:
        for model in models.values():
            delete_inference_service(model)


def serving(submitted: Submitted, runtime: str) -> Iterator[str]:
    """Waits for the runtime's run, checks its model was deployed and is Ready, and yields the
    predictor's URL through a port-forward."""
    model, run_id = submitted.models[runtime], submitted.run_ids[runtime]
    where = f"run {run_id} ({submitted.ui_host}/#/runs/details/{run_id})"
    run = wait_for_run(submitted.client, run_id, RUN_TIMEOUT_SECONDS)
    if run.state != "SUCCEEDED":
        error = run.error.message if run.error else "no run error"
        pytest.fail(f"{where} ended {run.state}: {error}; failed tasks: {failed_tasks(run)}")
    service = inference_service(model)
    if service is None:
        pytest.fail(
            f"{where} succeeded but there is no InferenceService {NAMESPACE}/{model}: the model "
            "was not blessed by evaluate, or deploy did not push it, or rollout did not serve it; "
            "read the evaluate, deploy and rollout steps' logs in the run"
        )
    conditions = service.get("status", {}).get("conditions", [])
    ready = next((c for c in conditions if c["type"] == "Ready"), {})
    if ready.get("status") != "True":
        pytest.fail(f"InferenceService {NAMESPACE}/{model} is not Ready: {conditions}")
    with port_forward(NAMESPACE, f"svc/{model}-predictor", 80) as url:
        yield url


@pytest.fixture(scope="module")
def tf_serving(submitted) -> Iterator[str]:
    """The URL of the model served by KServe's TensorFlow Serving runtime."""
    yield from serving(submitted, TF_SERVING_RUNTIME)


@pytest.fixture(scope="module")
def mlops_predictor(submitted) -> Iterator[str]:
    """The URL of the model served by this project's predictor."""
    yield from serving(submitted, PROJECT_RUNTIME)


def v2_body(row: dict[str, Any]) -> dict[str, Any]:
    """An Open Inference Protocol JSON request with one row: ``BYTES`` for text, ``FP32`` for
    numbers, one tensor of shape [1] per feature (what serving/payload.py takes)."""
    return {
        "inputs": [
            {
                "name": name,
                "datatype": "BYTES" if isinstance(value, str) else "FP32",
                "shape": [1],
                "data": [value],
            }
            for name, value in row.items()
        ]
    }


def test_tf_serving_runtime_answers_v1(tf_serving, submitted):
    model = submitted.models[TF_SERVING_RUNTIME]
    response = requests.post(
        f"{tf_serving}/v1/models/{model}:predict", json={"instances": [ROW]}, timeout=60
    )
    assert response.status_code == 200, response.text
    assert response.json()["predictions"][0]["label"] == "Gentoo"


def test_project_predictor_answers_v1(mlops_predictor, submitted):
    model = submitted.models[PROJECT_RUNTIME]
    response = requests.post(
        f"{mlops_predictor}/v1/models/{model}:predict", json={"instances": [ROW]}, timeout=60
    )
    assert response.status_code == 200, response.text
    assert response.json()["predictions"][0]["label"] == "Gentoo"


def test_project_predictor_answers_v2(mlops_predictor, submitted):
    model = submitted.models[PROJECT_RUNTIME]
    response = requests.post(
        f"{mlops_predictor}/v2/models/{model}/infer", json=v2_body(ROW), timeout=60
    )
    assert response.status_code == 200, response.text
    outputs = {output["name"]: output for output in response.json()["outputs"]}
    assert outputs["label"]["data"] == ["Gentoo"]


def _sink_metric(url: str, outcome: str, name: str = "mlops_log_sink_events_total") -> float:
    text = requests.get(f"{url}/metrics", timeout=10).text
    line = f'{name}{{outcome="{outcome}"}} '
    return float(next(x for x in text.splitlines() if x.startswith(line)).split()[-1])


def test_predictions_through_kserves_agent_reach_the_prediction_log(tf_serving, submitted):
    """The rollout gave the InferenceService a logger; KServe's agent posts to mlops-log-sink."""
    model = submitted.models[TF_SERVING_RUNTIME]
    request_id = f"e2e-{secrets.token_hex(4)}"
    with port_forward(NAMESPACE, "svc/mlops-log-sink", 80) as sink:
        before = _sink_metric(sink, "logged")
        response = requests.post(
            f"{tf_serving}/v1/models/{model}:predict",
            json={"instances": [ROW]},
            headers={"Ce-Id": request_id},  # the agent keeps a client's Ce-Id (handler.go:202)
            timeout=60,
        )
        assert response.status_code == 200, response.text
        deadline = time.monotonic() + 60
        while _sink_metric(sink, "logged") < before + 2 and time.monotonic() < deadline:
            time.sleep(1)
        assert _sink_metric(sink, "logged") >= before + 2, "request and response not both logged"
        # Written to the object store within a window (60 s): the sink's S3 writes work.
        rows = "mlops_prediction_log_rows_total"
        deadline = time.monotonic() + 120
        while _sink_metric(sink, "written", rows) < 1 and time.monotonic() < deadline:
            time.sleep(5)
        assert _sink_metric(sink, "written", rows) >= 1, _sink_metric(sink, "lost", rows)
        stored = requests.post(
            f"{sink}/v1/feedback/{model}",
            json=[{"request_id": request_id, "label": "Gentoo"}],
            timeout=30,
        )
        assert stored.json() == {"stored": 1}, stored.text


def test_lineage_of_the_served_model_is_in_kfps_store(tf_serving, submitted, capsys):
    model = submitted.models[TF_SERVING_RUNTIME]
    with port_forward("kubeflow", "svc/metadata-grpc-service", 8080) as url:
        store = "grpc://" + url.removeprefix("http://")
        assert main(["lineage", model, "--json", "--store", store]) == 0
    tree = json.loads(capsys.readouterr().out)
    assert tree["run"] == submitted.run_ids[TF_SERVING_RUNTIME]
    assert tree["deployed"]["serving"] is True
    assert tree["data"]["splits"]["train"]["rows"] > 0
    assert tree["parameters"]["epochs"] == 10


def test_the_monitor_runs_on_a_schedule(submitted, capsys):
    """mlops schedule against the real API server: one recurring run of the monitoring pipeline,
    hourly, one at a time; removed again afterwards."""
    experiment = f"mlops-e2e-monitor-{secrets.token_hex(3)}"
    model = submitted.models[TF_SERVING_RUNTIME]
    with port_forward("kubeflow", "svc/ml-pipeline", 8888) as host:
        args = ["schedule", "--host", host, "--experiment", experiment, "--param",
                f"model_name={model}"]  # fmt: skip
        assert main(args) == 0
        client = cluster.connect(host)
        experiment_id = client.get_experiment(experiment_name=experiment).experiment_id
        (recurring,) = client.list_recurring_runs(experiment_id=experiment_id).recurring_runs
        try:
            assert recurring.trigger.cron_schedule.cron == "0 0 * * * *"
            assert int(recurring.max_concurrency) == 1 and recurring.no_catchup
            assert main(args) == 1  # a second schedule is refused
        finally:
            client.delete_recurring_run(recurring.recurring_run_id)


def test_the_trigger_starts_a_retraining_run_the_real_api_server_accepts(submitted):
    """The trigger's run, as a scheduled monitor starts it: the real API server checks every
    parameter against the version's (template/v2_template.go:383-440), so a parameter the
    training pipeline does not declare, or of another type, fails here."""
    from components.trigger import core
    from pipelines.cluster_training import CLUSTER_DEFAULTS
    from pipelines.monitoring import PREDICTION_LOG

    experiment = f"mlops-e2e-trigger-{secrets.token_hex(3)}"
    params = {
        "data_uri": CLUSTER_DEFAULTS.data_uri,
        "registry": CLUSTER_DEFAULTS.registry,
        "model_name": f"e2e-retrain-{secrets.token_hex(3)}",
        "labelled_log": PREDICTION_LOG,
        "serve": False,  # started to be accepted, not to serve
    }
    with port_forward("kubeflow", "svc/ml-pipeline", 8888) as host:
        client = cluster.connect(host)
        done = core.trigger(
            True, ["e2e"], lambda: cluster.connect(host), PIPELINE, experiment, params
        )
        try:
            assert done.started and done.acted
            run = client.get_run(done.run_id)
            assert run.runtime_config.parameters["labelled_log"] == PREDICTION_LOG
        finally:
            client.terminate_run(done.run_id)


def test_rollout_status_reads_the_real_inference_service(tf_serving, submitted, capsys):
    """`mlops rollout` with the kubeconfig `make e2e` uses: the one version served, all its
    traffic, and no version before it to roll back to (each model is new to the session)."""
    model = submitted.models[TF_SERVING_RUNTIME]
    capsys.readouterr()
    assert main(["rollout", "status", model, "--namespace", NAMESPACE]) == 0
    printed = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert printed[0][-1] == "ready"
    assert printed[1][:5] == ["version", "1", "100", "%", "serving"]
    assert main(["rollout", "rollback", model, "--namespace", NAMESPACE]) == 1
    assert "no version to roll back to" in capsys.readouterr().err


ROUTING_NAMESPACE = "mlops-routing"


def _run_to_the_end(submitted: Submitted, package_params: dict[str, Any]) -> None:
    run_id, _ = cluster.submit(
        submitted.client,
        PIPELINE,
        submitted.package,
        EXPERIMENT,
        package_params,
        ui_host=submitted.ui_host,
    )
    run = wait_for_run(submitted.client, run_id, RUN_TIMEOUT_SECONDS)
    if run.state != "SUCCEEDED":
        error = run.error.message if run.error else "no run error"
        pytest.fail(f"run {run_id} ended {run.state}: {error}; failed tasks: {failed_tasks(run)}")


@contextmanager
def live_traffic(model: str) -> Iterator[None]:
    """A client in the cluster posting a row to the model's InferenceGraph five times a second:
    a pod in kubeflow with the label KFP gives its step pods, which the routing namespace's
    NetworkPolicy admits (manifests/base/routing.yaml)."""
    name = f"traffic-{model}"
    url = f"http://{model}.{ROUTING_NAMESPACE}.svc.cluster.local"
    loop = (
        f"while true; do curl -s -o /dev/null -X POST {url} -H 'Content-Type: application/json' "
        f"-d '{json.dumps(v2_body(ROW))}'; sleep 0.2; done"
    )
    subprocess.run(
        ["kubectl", "run", name, "-n", "kubeflow", "--restart=Never",
         "--labels=pipelines.kubeflow.org/v2_component=true", "--image=curlimages/curl:8.11.1",
         "--command", "--", "sh", "-c", loop],
        check=True,
    )  # fmt: skip
    try:
        yield
    finally:
        subprocess.run(["kubectl", "delete", "pod", name, "-n", "kubeflow", "--wait=false"])


@pytest.mark.timeout(2 * RUN_TIMEOUT_SECONDS + 600)
def test_blue_green_then_a_canary_switch_through_the_real_inference_graph(submitted, capsys):
    """Two runs of one model on the project's predictor: blue-green serves version 1 as blue
    behind the InferenceGraph; with a client posting to the graph, a canary (one 50 % step of
    60 s) judges version 2 on the step's live traffic, read from both colours' /metrics
    through the real NetworkPolicies, and moves it to green; a rollback switches the graph
    back to blue. Each time the model answers through the graph's router."""
    model = f"e2e-bg-{secrets.token_hex(3)}"
    params = {"model_name": model, "serving_runtime": PROJECT_RUNTIME, "epochs": 10}
    _run_to_the_end(submitted, {**params, "rollout_strategy": "blue-green"})
    canary = {"rollout_strategy": "canary", "canary_steps": "50", "canary_step_seconds": 60}
    with live_traffic(model):
        _run_to_the_end(submitted, {**params, **canary})
    capsys.readouterr()
    assert main(["rollout", "status", model, "--namespace", NAMESPACE]) == 0
    printed = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert printed[0][:2] == [f"{ROUTING_NAMESPACE}/{model}", "(blue-green):"]
    assert printed[1][:5] == ["version", "2", "100", "%", "green"]
    assert printed[2][:5] == ["version", "1", "0", "%", "blue"]
    with port_forward(ROUTING_NAMESPACE, f"svc/{model}", 80) as url:
        answer = requests.post(url, json=v2_body(ROW), timeout=60)
    assert answer.status_code == 200, answer.text
    assert main(["rollout", "rollback", model, "--namespace", NAMESPACE]) == 0
    assert f"rolled {model} back to version 1 (from version 2)" in capsys.readouterr().out
    with port_forward(ROUTING_NAMESPACE, f"svc/{model}", 80) as url:
        answer = requests.post(url, json=v2_body(ROW), timeout=60)
    assert answer.status_code == 200, answer.text
    assert {o["name"]: o for o in answer.json()["outputs"]}["label"]["data"] == ["Gentoo"]
    # Passed: take the model's objects away (a failure leaves them for `kubectl describe`).
    for colour in ("blue", "green"):
        delete_inference_service(f"{model}-{colour}")
    _custom_objects().delete_namespaced_custom_object(
        GROUP, "v1alpha1", ROUTING_NAMESPACE, "inferencegraphs", model
    )


def test_training_across_two_workers_and_the_data_steps_on_beam(submitted):
    """A run with workers=2 and the data steps on the DirectRunner's worker processes: the train
    step's TFJob of the Training Operator (make platform) trains in two pods that reach each
    other and MinIO, the chief's model goes on to evaluate and deploy, and the step deletes its
    TFJob."""
    model = f"e2e-workers-{secrets.token_hex(3)}"
    beam = ["--runner=DirectRunner", "--direct_running_mode=multi_processing",
            "--direct_num_workers=2"]  # fmt: skip
    params = {"model_name": model, "serve": False, "epochs": 5, "workers": 2}
    _run_to_the_end(submitted, {**params, "beam_pipeline_args": beam})
    left = _custom_objects().list_namespaced_custom_object(
        "kubeflow.org",
        "v1",
        "kubeflow",
        "tfjobs",
        label_selector="app.kubernetes.io/part-of=mlops-suite",
    )
    assert left["items"] == [], [item["metadata"]["name"] for item in left["items"]]
