"""Lineage recorded from a KFP 2.5.0 step's pod into KFP's store, over real gRPC.

The store is tests/mlmd_server.py: the ML Metadata gRPC service on a real SQLite store. What KFP
puts there before a step's code runs is put there the way its driver and launcher do
(kubeflow/pipelines@2.5.0 backend/src/v2/metadata/client.go:306-319 creates the
``system.PipelineRun`` context named by the run id; :555-580 the ``system.ContainerExecution``
with the step's ``image``; the launcher's PrePublishExecution, :670-686, adds ``pod_name`` before
the step's code starts, launcher_v2.go:206 then :227).
"""

import contextlib
import io
import json
import logging
import time

import pytest
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2 as mlmd

from components.lineage import kfp, recording, store
from components.lineage.mlmd import open_store
from pipelines.cli import main
from tests.mlmd_server import MetadataServer

RUN_ID = "4f6d3c1e-8a2b-4d7e-9c51-2b7f0e6a9d10"
POD = "mlops-training-x7k2p-system-container-impl-1234567890"


@pytest.fixture()
def server(tmp_path):
    with MetadataServer(str(tmp_path / "kfp.sqlite")) as running:
        yield running


def _kfp_starts_a_step(uri: str, pod: str = POD) -> int:
    """What KFP 2.5.0's driver and launcher record before the step's code runs."""
    host, _, port = uri.removeprefix("grpc://").rpartition(":")
    client = metadata_store.MetadataStore(mlmd.MetadataStoreClientConfig(host=host, port=int(port)))
    pipeline_type = client.put_context_type(mlmd.ContextType(name="system.Pipeline"))
    run_type = client.put_context_type(mlmd.ContextType(name=kfp.RUN_CONTEXT))
    container_type = client.put_execution_type(mlmd.ExecutionType(name=kfp.CONTAINER_EXECUTION))
    dag_type = client.put_execution_type(mlmd.ExecutionType(name=kfp.DAG_EXECUTION))
    pipeline = mlmd.Context(type_id=pipeline_type, name="mlops-training")
    run = mlmd.Context(type_id=run_type, name=RUN_ID)
    for key, value in {
        "namespace": "kubeflow",
        "resource_name": "run-resource",
        "pipeline_root": f"minio://mlpipeline/v2/artifacts/mlops-training/{RUN_ID}",
    }.items():
        run.custom_properties[key].string_value = value
    pipeline_id, run_id = client.put_contexts([pipeline, run])
    # The root DAG: named run/<id>, the run's parameters as its inputs (driver.go:189-201).
    root = mlmd.Execution(
        type_id=dag_type, name=f"run/{RUN_ID}", last_known_state=mlmd.Execution.RUNNING
    )
    root.custom_properties["inputs"].struct_value.update(
        {"model_name": "penguins", "epochs": 50, "data_uri": "/data/penguins.csv"}
    )
    # The step: image is declared by KFP 2.5.0 but never filled (ExecutionConfig.Image unset).
    execution = mlmd.Execution(type_id=container_type, last_known_state=mlmd.Execution.RUNNING)
    for key, value in {
        "display_name": "train",
        "task_name": "train",
        "pod_name": pod,
        "pod_uid": "c0ffee",
        "namespace": "kubeflow",
        "image": "",
    }.items():
        execution.custom_properties[key].string_value = value
    execution.custom_properties["parent_dag_id"].int_value = 1
    root_id, execution_id = client.put_executions([root, execution])
    client.put_attributions_and_associations(
        [],
        [
            mlmd.Association(context_id=pipeline_id, execution_id=root_id),
            mlmd.Association(context_id=run_id, execution_id=root_id),
            mlmd.Association(context_id=pipeline_id, execution_id=execution_id),
            mlmd.Association(context_id=run_id, execution_id=execution_id),
        ],
    )
    return execution_id


def _pod_environment(uri: str, pod: str = POD) -> dict[str, str]:
    """A step container's environment from KFP 2.5.0 (metadata-grpc-configmap, KFP_POD_NAME)."""
    host, _, port = uri.removeprefix("grpc://").rpartition(":")
    return {kfp.HOST_ENV: host, kfp.PORT_ENV: port, kfp.POD_ENV: pod}


class _KfpArtifact:
    def __init__(self, uri: str, metadata: dict | None = None) -> None:
        self.uri, self.metadata = uri, metadata or {}


def test_a_step_in_a_kfp_pod_records_into_the_run_kfp_made(server):
    _kfp_starts_a_step(server.uri)
    model_uri = f"minio://mlpipeline/v2/artifacts/mlops-training/{RUN_ID}/train/model"
    with recording.step(
        "train",
        {"epochs": 3},
        {"train_data": _KfpArtifact("minio://mlpipeline/.../train_data", {"num_rows": 275})},
        {"model": _KfpArtifact(model_uri, {"task": "classification"})},
        environ=_pod_environment(server.uri),
    ):
        pass
    lineage = open_store(server.uri)
    executions = lineage.executions(store.RUN_CONTEXT, RUN_ID)
    assert [e.type_name for e in executions] == [
        kfp.DAG_EXECUTION,
        kfp.CONTAINER_EXECUTION,
        "mlops.train",
    ]
    ours = executions[2]
    assert ours.state == store.COMPLETE
    assert ours.properties[recording.CODE_VERSION] == recording.code_version()
    # The run's model name, from KFP's root DAG, though train does not take it.
    assert (store.MODEL_CONTEXT, "penguins") in ours.contexts
    assert ours.properties[recording.DISPLAY_NAME] == "train"
    assert ours.outputs["model"].uri == model_uri
    assert ours.inputs["train_data"].properties == {"display_name": "train_data", "num_rows": 275}
    assert "GetExecutions" in server.calls  # found by its pod, with a filter query
    # KFP's driver, listing the run's executions, skips ours (client.go:847-856).
    assert not set(ours.properties) & set(kfp.TASK_PROPERTIES)


def test_an_execution_kfp_would_take_for_a_task_is_not_recorded(server, caplog):
    _kfp_starts_a_step(server.uri)
    environ = _pod_environment(server.uri)
    with (
        caplog.at_level(logging.WARNING),
        recording.step("x", {"task_name": "train"}, {}, {}, environ=environ),
    ):
        pass
    assert "would make KFP take this execution for one of its tasks" in caplog.text
    assert len(open_store(server.uri).executions(store.RUN_CONTEXT, RUN_ID)) == 2


def test_no_step_has_a_parameter_kfp_reads_as_a_task_property():
    from pipelines import cluster_training

    spec = cluster_training.cluster_training_pipeline.pipeline_spec
    for name, component in spec.components.items():
        taken = set(component.input_definitions.parameters) & set(kfp.TASK_PROPERTIES)
        assert not taken, f"{name} has parameters {taken}"


def test_a_pod_kfp_does_not_know_is_one_warning_line(server, caplog):
    _kfp_starts_a_step(server.uri)
    environ = _pod_environment(server.uri, "other")
    with caplog.at_level(logging.WARNING), recording.step("ingest", {}, {}, {}, environ=environ):
        pass
    (message,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "KFP recorded no execution for pod 'other'" in message
    assert [e.type_name for e in open_store(server.uri).executions(store.RUN_CONTEXT, RUN_ID)] == [
        kfp.DAG_EXECUTION,
        kfp.CONTAINER_EXECUTION,
    ]


def test_an_unreachable_store_is_one_warning_line_or_an_error_when_strict(server, caplog):
    environ = _pod_environment("grpc://127.0.0.1:9")  # nothing listens on the discard port
    with caplog.at_level(logging.WARNING), recording.step("ingest", {}, {}, {}, environ=environ):
        pass
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
    strict = {**environ, recording.STRICT_ENV: "1"}
    with (
        pytest.raises(recording.LineageError),
        recording.step("ingest", {}, {}, {}, environ=strict),
    ):
        pass


def test_lineage_reads_a_store_over_grpc(server, capsys):
    _kfp_starts_a_step(server.uri)
    lineage = open_store(server.uri)
    for step, inputs, outputs in (
        ("ingest", {}, {"train_data": store.Artifact(store.EXAMPLES, "d", {"fingerprint": "f"})}),
        (
            "deploy",
            {"train_data": store.Artifact(store.EXAMPLES, "d", {"fingerprint": "f"})},
            {
                "push_result": store.Artifact(
                    store.PUSHED_MODEL, "p", {"pushed": True, "version": 4}
                )
            },
        ),
    ):
        lineage.record(
            store.with_context(
                recording.execution(step, {"model_name": "penguins"}, inputs, outputs, 1.0, 2.0),
                (store.RUN_CONTEXT, RUN_ID),
            )
        )
    assert main(["lineage", "--dataset", "f", "--json", "--store", server.uri]) == 0
    users = json.loads(capsys.readouterr().out)
    assert users == [
        {"run": RUN_ID, "model": "penguins", "pushed": True, "version": 4, "reason": None}
    ]


def test_lineage_says_what_to_start_when_the_store_does_not_answer(capsys):
    out = io.StringIO()
    with contextlib.redirect_stderr(out):
        assert main(["lineage", "penguins", "--store", "grpc://127.0.0.1:9"]) != 0
    printed = out.getvalue() + capsys.readouterr().err
    assert "kubectl port-forward -n kubeflow svc/metadata-grpc-service 8090:8080" in printed
    assert "Traceback" not in printed


def test_types_tfx_declared_first_are_shared_as_they_are(server):
    """TFX declares properties on Examples (tfx/types/standard_artifacts.py); MLMD refuses a put
    of the type that omits them unless can_omit_fields (metadata_store.cc:76-96)."""
    _kfp_starts_a_step(server.uri)
    host, _, port = server.uri.removeprefix("grpc://").rpartition(":")
    client = metadata_store.MetadataStore(mlmd.MetadataStoreClientConfig(host=host, port=int(port)))
    tfx_examples = mlmd.ArtifactType(name=store.EXAMPLES)
    tfx_examples.properties["span"] = mlmd.INT
    tfx_examples.properties["split_names"] = mlmd.STRING
    client.put_artifact_type(tfx_examples)
    strict = {**_pod_environment(server.uri), recording.STRICT_ENV: "1"}
    with recording.step(
        "ingest", {}, {}, {"train_data": _KfpArtifact("minio://x/train", {"rows": 3})},
        environ=strict,
    ):  # fmt: skip
        pass
    (examples,) = open_store(server.uri).artifacts(store.EXAMPLES)
    assert examples.properties["rows"] == 3


def test_code_version_is_what_the_image_was_built_from(monkeypatch):
    recording.code_version.cache_clear()
    monkeypatch.setenv(recording.CODE_VERSION_ENV, "0.1.0+g0123456789ab")
    try:
        assert recording.code_version() == "0.1.0+g0123456789ab"
    finally:
        monkeypatch.delenv(recording.CODE_VERSION_ENV)
        recording.code_version.cache_clear()


def test_a_store_slower_than_the_budget_is_left_behind(monkeypatch, caplog):
    monkeypatch.setattr(recording, "_store", lambda execution, environ: time.sleep(5))
    started = time.monotonic()
    execution = recording.execution("ingest", {}, {}, {}, 1.0, 2.0)
    with caplog.at_level(logging.WARNING):
        assert recording.record(execution, {}, budget_seconds=0.2) is None
    assert time.monotonic() - started < 2
    assert "did not answer within 0.2 s" in caplog.text
