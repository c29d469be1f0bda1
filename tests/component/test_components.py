"""Component wrappers through ``python_func``: artifacts in, artifacts and metadata out."""

import json
import os

import pytest
from kfp import dsl

from components import constants
from components.deploy.component import deploy
from components.evaluate.component import evaluate
from components.ingest.component import ingest
from components.lineage import recording
from components.lineage.mlmd import sqlite_store
from components.resolve_baseline.component import resolve_baseline
from components.rollout.component import rollout
from components.train.component import train
from components.transform.component import transform
from components.validate.component import validate
from pipelines import lineage


def _read(path: str) -> str:
    with open(path) as handle:
        return handle.read()


def _artifact(kind, folder, name, **metadata):
    return kind(name=name, uri=str(folder / name), metadata=dict(metadata))


@pytest.fixture(scope="module")
def pipeline_outputs(tmp_path_factory, penguins_csv):
    """Runs ingest → validate → transform → train → resolve_baseline → evaluate → deploy by their
    python_func."""
    folder = tmp_path_factory.mktemp("wrappers")
    out = {
        name: _artifact(kind, folder, name)
        for name, kind in [
            ("train_data", dsl.Dataset),
            ("eval_data", dsl.Dataset),
            ("labelled_eval", dsl.Dataset),
            ("statistics", dsl.Artifact),
            ("schema", dsl.Artifact),
            ("anomalies", dsl.Artifact),
            ("statistics_view", dsl.HTML),
            ("transform_graph", dsl.Artifact),
            ("model", dsl.Model),
            ("training_report", dsl.Markdown),
            ("baseline", dsl.Model),
            ("metrics", dsl.Metrics),
            ("classification_metrics", dsl.ClassificationMetrics),
            ("report", dsl.Markdown),
            ("blessing", dsl.Artifact),
            ("push_result", dsl.Artifact),
        ]
    }
    registry = str(folder / "registry")
    ingest.python_func(penguins_csv, out["train_data"], out["eval_data"], out["labelled_eval"], 0.2)
    validate.python_func(
        out["train_data"],
        out["eval_data"],
        "species",
        out["statistics"],
        out["schema"],
        out["anomalies"],
        out["statistics_view"],
    )
    transform.python_func(out["train_data"], out["schema"], "species", out["transform_graph"])
    train.python_func(
        out["train_data"],
        out["eval_data"],
        out["transform_graph"],
        out["model"],
        out["training_report"],
        [16],
        epochs=10,
    )
    resolve_baseline.python_func(registry, "penguins", out["baseline"])
    evaluate.python_func(
        out["eval_data"],
        out["model"],
        out["transform_graph"],
        out["baseline"],
        out["labelled_eval"],
        out["metrics"],
        out["classification_metrics"],
        out["report"],
        out["blessing"],
    )
    deploy.python_func(
        out["model"],
        out["blessing"],
        out["train_data"],
        out["schema"],
        out["statistics"],
        registry,
        "penguins",
        out["push_result"],
    )
    out["registry"] = registry
    return out


def test_deploy_keeps_the_train_statistics_with_the_version(pipeline_outputs):
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import statistics_pb2

    from components.registry import ModelRegistry

    registry = ModelRegistry(pipeline_outputs["registry"])
    assert registry.metadata("penguins", 1)["train_statistics"] == "train_statistics.pbtxt"
    path = os.path.join(registry.path("penguins", 1), "train_statistics.pbtxt")
    with open(path) as f:
        kept = text_format.Parse(f.read(), statistics_pb2.DatasetFeatureStatisticsList())
    rows = kept.datasets[0].num_examples
    assert rows == pipeline_outputs["train_data"].metadata[constants.NUM_ROWS]


def test_ingest_records_rows_and_fingerprint(pipeline_outputs):
    train_meta = pipeline_outputs["train_data"].metadata
    eval_meta = pipeline_outputs["eval_data"].metadata
    assert train_meta[constants.NUM_ROWS] + eval_meta[constants.NUM_ROWS] == 344
    assert train_meta[constants.FINGERPRINT] == eval_meta[constants.FINGERPRINT]
    assert "species" in train_meta[constants.COLUMNS]


def test_validate_writes_statistics_schema_anomalies_and_view(pipeline_outputs):
    stats = pipeline_outputs["statistics"].path
    assert sorted(os.listdir(stats)) == ["eval_stats.pb", "train_stats.pb"]
    assert 'name: "species"' in _read(pipeline_outputs["schema"].path)
    assert pipeline_outputs["anomalies"].metadata[constants.ANOMALY_COUNT] == 0
    assert "<svg" in _read(pipeline_outputs["statistics_view"].path)


def test_transform_records_the_task_and_classes(pipeline_outputs):
    meta = pipeline_outputs["transform_graph"].metadata
    assert meta[constants.TASK] == constants.CLASSIFICATION
    assert meta[constants.CLASSES] == ["Adelie", "Chinstrap", "Gentoo"]


def test_train_exports_a_saved_model_and_a_report(pipeline_outputs):
    assert os.path.isfile(os.path.join(pipeline_outputs["model"].path, "saved_model.pb"))
    assert pipeline_outputs["model"].metadata["replicas"] == 1
    assert "| epoch |" in _read(pipeline_outputs["training_report"].path)


def test_evaluate_logs_metrics_and_confusion_matrix(pipeline_outputs):
    assert pipeline_outputs["metrics"].metadata["accuracy"] > 0.9
    matrix = pipeline_outputs["classification_metrics"].metadata["confusionMatrix"]
    assert [c["displayName"] for c in matrix["annotationSpecs"]] == [
        "Adelie",
        "Chinstrap",
        "Gentoo",
    ]
    assert pipeline_outputs["blessing"].metadata[constants.BLESSED] is True
    assert json.loads(_read(pipeline_outputs["blessing"].path))["blessed"] is True


def test_resolve_baseline_finds_none_in_an_empty_registry(pipeline_outputs):
    assert pipeline_outputs["baseline"].metadata == {
        constants.BASELINE_FOUND: False,
        constants.REASON: "no baseline: no version of 'penguins' has been pushed yet",
    }


def test_evaluate_scores_the_resolved_baseline_on_the_same_rows(pipeline_outputs, tmp_path):
    # The model just pushed is the next run's baseline: the same model is no improvement.
    baseline = _artifact(dsl.Model, tmp_path, "baseline")
    resolve_baseline.python_func(pipeline_outputs["registry"], "penguins", baseline)
    assert baseline.metadata[constants.BASELINE_FOUND] is True
    assert baseline.metadata[constants.VERSION] == 1
    assert baseline.metadata[constants.METRICS]["accuracy"] > 0.9
    outputs = {
        name: _artifact(kind, tmp_path, name)
        for name, kind in [
            ("metrics", dsl.Metrics),
            ("classification_metrics", dsl.ClassificationMetrics),
            ("report", dsl.Markdown),
            ("blessing", dsl.Artifact),
        ]
    }
    evaluate.python_func(
        pipeline_outputs["eval_data"],
        pipeline_outputs["model"],
        pipeline_outputs["transform_graph"],
        baseline,
        pipeline_outputs["labelled_eval"],
        **outputs,
    )
    blessing = outputs["blessing"].metadata
    assert blessing[constants.BLESSED] is False
    assert blessing[constants.BASELINE_VERSION] == 1
    assert "does not improve on the baseline" in blessing[constants.REASONS][0]


def test_deploy_pushes_the_blessed_model(pipeline_outputs):
    meta = pipeline_outputs["push_result"].metadata
    assert meta[constants.PUSHED] is True and meta[constants.VERSION] == 1
    version = os.path.join(pipeline_outputs["registry"], "penguins", "1")
    assert os.path.isfile(os.path.join(version, "saved_model.pb"))
    recorded = json.loads(_read(os.path.join(version, constants.REGISTRY_METADATA_FILE)))
    fingerprint = pipeline_outputs["train_data"].metadata[constants.FINGERPRINT]
    assert recorded[constants.DATA_FINGERPRINT] == fingerprint
    assert recorded["schema"] == constants.REGISTRY_SCHEMA_FILE
    assert 'name: "species"' in _read(os.path.join(version, recorded["schema"]))
    assert recorded["metrics"]["accuracy"] > 0.9


def _write_kubeconfig(path, host: str) -> None:
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: standin\n"
        f"clusters: [{{name: standin, cluster: {{server: '{host}'}}}}]\n"
        "contexts: [{name: standin, context: {cluster: standin, user: standin}}]\n"
        "users: [{name: standin, user: {token: none}}]\n"
    )


def _use_kubeconfig(monkeypatch, path, host: str) -> None:
    """Makes the API at ``host`` the one a step outside a pod reaches: a kubeconfig in the
    kubernetes client's default place (which it reads from KUBECONFIG once, at import)."""
    _write_kubeconfig(path, host)
    monkeypatch.setattr(
        "kubernetes.config.kube_config.KUBE_CONFIG_DEFAULT_LOCATION", str(path), raising=True
    )


def _push_result(folder, **metadata):
    return _artifact(dsl.Artifact, folder, "push_result", **metadata)


def _roll_out(folder, push_result, registry, **settings):
    rollout_result = _artifact(dsl.Artifact, folder, "rollout_result")
    rollout.python_func(
        push_result, registry, "penguins", rollout_result, serving_namespace="models", **settings
    )
    return rollout_result


def test_rollout_does_nothing_when_nothing_was_pushed(tmp_path):
    pushed = _push_result(tmp_path, pushed=False, reason="not pushed: not blessed")
    result = _roll_out(tmp_path, pushed, f"file://{tmp_path}/store")
    assert result.metadata == {
        "rolled_out": False,
        "reason": "nothing to roll out: deploy pushed nothing",
    }
    assert json.loads(_read(result.path))["url"] is None


def test_rollout_serves_the_pushed_version_with_the_clusters_credentials(
    pipeline_outputs, tmp_path, monkeypatch
):
    # The version deploy pushed, into an object-store registry (file:// takes that code path).
    from tests.k8s_standin import KServeStandIn

    registry = f"file://{tmp_path}/store"
    push_result = _push_result(tmp_path)
    lineage_store = str(tmp_path / "metadata.sqlite")
    monkeypatch.setenv(recording.STORE_ENV, lineage_store)
    monkeypatch.setenv(recording.RUN_ENV, "run-7")
    deploy.python_func(
        pipeline_outputs["model"],
        pipeline_outputs["blessing"],
        pipeline_outputs["train_data"],
        pipeline_outputs["schema"],
        pipeline_outputs["statistics"],
        registry,
        "penguins",
        push_result,
    )
    with KServeStandIn() as standin:
        _use_kubeconfig(monkeypatch, tmp_path / "kubeconfig", standin.host)
        result = _roll_out(tmp_path, push_result, registry)
        served = standin.objects[("models", "penguins")]["spec"]["predictor"]["model"]
    assert result.metadata["rolled_out"] is True and result.metadata["version"] == 1
    assert result.metadata["url"] == "http://penguins-models.example.com"
    assert served["storageUri"] == f"{registry}/_served/penguins/1/"
    # Both steps recorded their lineage: where version 1 is deployed now.
    tree = lineage.provenance(sqlite_store(lineage_store), "penguins", 1)
    assert tree["deployed"]["serving"] is True
    assert tree["deployed"]["namespace"] == "models"
    assert tree["deployed"]["url"] == "http://penguins-models.example.com"
    assert tree["deployed"]["storage_uri"] == f"{registry}/_served/penguins/1/"
    assert tree["deployed"]["run"] == "run-7"


def test_a_failed_rollout_is_one_marked_line_and_its_version_is_discarded(
    pipeline_outputs, tmp_path, monkeypatch, capfd
):
    from components.errors import RolloutFailed, find_reported_error
    from components.registry import ModelRegistry
    from tests.k8s_standin import KServeStandIn, PodFailure

    registry = f"file://{tmp_path}/store"
    ModelRegistry(registry).push("penguins", pipeline_outputs["model"].path, {})
    crash = PodFailure(reason="CrashLoopBackOff", message="back-off restarting failed container")
    with KServeStandIn(lambda annotations: crash) as standin:
        _use_kubeconfig(monkeypatch, tmp_path / "kubeconfig", standin.host)
        with pytest.raises(RolloutFailed):
            _roll_out(
                tmp_path,
                _push_result(tmp_path, pushed=True, version=1),
                registry,
                rollout_timeout_seconds=1,
            )
    reported = find_reported_error(capfd.readouterr().err)
    assert reported["step"] == "rollout"
    assert "did not serve within 1 s version 1" in reported["message"]
    assert "CrashLoopBackOff" in reported["message"]
    assert ModelRegistry(registry).versions("penguins") == []


TERMINATED_ROLLOUT = """
import sys
from kfp import dsl
from components.rollout.component import rollout

registry, folder = sys.argv[1:3]
push_result = dsl.Artifact(
    name="push_result", uri=folder + "/push_result", metadata={"pushed": True, "version": 1}
)
result = dsl.Artifact(name="rollout_result", uri=folder + "/rollout_result")
rollout.python_func(push_result, registry, "penguins", result, serving_namespace="models")
"""


def test_a_rollout_terminated_from_the_dashboard_rolls_back_and_discards(
    pipeline_outputs, tmp_path
):
    # KFP stops a terminated run's pods with SIGTERM; the step must unwind, not just die.
    import signal
    import subprocess
    import sys
    import time

    from components.registry import ModelRegistry
    from tests.k8s_standin import KServeStandIn, PodFailure

    registry = f"file://{tmp_path}/store"
    ModelRegistry(registry).push("penguins", pipeline_outputs["model"].path, {})
    crash = PodFailure(reason="CrashLoopBackOff", message="back-off restarting failed container")
    with KServeStandIn(lambda annotations: crash) as standin:
        kubeconfig = tmp_path / "kubeconfig"
        _write_kubeconfig(kubeconfig, standin.host)
        step = subprocess.Popen(
            [sys.executable, "-c", TERMINATED_ROLLOUT, registry, str(tmp_path)],
            env={**os.environ, "KUBECONFIG": str(kubeconfig)},
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 120
        while ("models", "penguins") not in standin.objects and time.monotonic() < deadline:
            assert step.poll() is None, step.stderr.read()
            time.sleep(0.2)
        step.send_signal(signal.SIGTERM)
        status = step.wait(timeout=60)
        leftover = dict(standin.objects)
    assert status == 143
    assert leftover == {}  # The service it created is gone again.
    assert ModelRegistry(registry).versions("penguins") == []
    assert ModelRegistry(registry).served_versions("penguins") == []
