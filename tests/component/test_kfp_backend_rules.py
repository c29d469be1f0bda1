"""Rules of the Kubeflow Pipelines 2.5.0 backend that the compiled pipeline and every step must
follow, each with the backend source it comes from (kubeflow/pipelines at tag 2.5.0).

``kfp.local`` enforces none of them, so a local run passing says nothing about a cluster run.
"""

import glob
import json
import math
import os

import pytest
import yaml
from kfp import dsl
from tensorflow_metadata.proto.v0 import statistics_pb2 as tfdv_statistics

from components import metadata
from pipelines import cluster_training, training
from pipelines.cli import main

# The cluster pipeline's steps (what `mlops compile` writes); the local pipeline has all but
# rollout.
STEPS = [
    "ingest",
    "validate",
    "transform",
    "train",
    "resolve-baseline",
    "evaluate",
    "deploy",
    "rollout",
]
LOCAL_STEPS = STEPS[:-1]
# Steps whose result depends on what the cache key cannot see, or that change the world:
# ingest (the data behind a URI), resolve-baseline (the registry's newest version), deploy
# (writes the registry), rollout (changes the cluster and, on failure, the registry). Evaluate
# reads only its inputs, the baseline included, so it may be cached.
UNCACHED = {"ingest", "resolve-baseline", "deploy", "rollout"}


def _ir(tmp_path, *flags) -> tuple[dict, dict]:
    path = tmp_path / "training.yaml"
    assert main(["compile", "--output", str(path), *flags]) == 0
    pipeline_spec, platform_spec = yaml.safe_load_all(path.read_text())
    return pipeline_spec, platform_spec


@pytest.mark.parametrize("flags", [[], ["--gpus", "1"], ["--schema", "gs://b/schema.pbtxt"]])
def test_task_names_are_the_task_keys(tmp_path, flags):
    # The driver records a task's execution under taskInfo.name (backend/src/v2/driver/
    # driver.go:329) and looks an input's producer up by the task key the IR names
    # (driver.go:1941-1945); a display name (set_display_name) in taskInfo.name makes the
    # consumer fail with "cannot find producer task" (kubeflow/pipelines#11173, seen with
    # backend 2.5.0 and SDK 2.13).
    ir, _ = _ir(tmp_path, *flags)
    tasks = ir["root"]["dag"]["tasks"]
    assert sorted(tasks) == sorted(STEPS)
    assert {key: task["taskInfo"]["name"] for key, task in tasks.items()} == {s: s for s in STEPS}


def test_steps_with_hidden_inputs_or_side_effects_are_never_cached(tmp_path):
    # The cache fingerprint covers the task's executor input and component, not what a step
    # reads on its own or changes outside; a task is looked up in the cache, and its cached
    # execution reused, only when its cachingOptions say enableCache (backend/src/v2/driver/
    # driver.go:2528-2538 and 364).
    ir, _ = _ir(tmp_path)
    caching = {
        key: task.get("cachingOptions", {}).get("enableCache", False)
        for key, task in ir["root"]["dag"]["tasks"].items()
    }
    assert caching == {step: step not in UNCACHED for step in STEPS}


def test_a_curated_schema_read_from_its_uri_turns_off_validate_caching(tmp_path):
    ir, _ = _ir(tmp_path, "--schema", "gs://b/schema.pbtxt")
    assert ir["root"]["dag"]["tasks"]["validate"]["cachingOptions"] == {}


def test_the_cluster_package_defaults_to_the_cluster_locations(tmp_path):
    # KFP fills each parameter a run does not set with the compiled default (backend/src/v2/
    # compiler/argocompiler/argo.go:71-81); a run from the dashboard or a schedule sets only
    # what a person typed, so the package must default to where a cluster run reads and writes.
    ir, _ = _ir(tmp_path)
    parameters = ir["root"]["inputDefinitions"]["parameters"]
    defaults = {name: parameters[name].get("defaultValue") for name in parameters}
    assert defaults["data_uri"] == cluster_training.CLUSTER_DEFAULTS.data_uri
    assert defaults["registry"].startswith("s3://mlpipeline/model-registry?")
    assert defaults["serve"] is True
    assert all(value is not None for value in defaults.values()), defaults


def test_metadata_leaves_out_nulls_and_non_finite_numbers():
    cleaned = metadata.without_nulls(
        {"url": None, "version": 2, "auc": math.nan, "metrics": {"rmse": 1.5, "r2": None}}
    )
    assert cleaned == {"version": 2, "metrics": {"rmse": 1.5}}


def test_metadata_refuses_a_null_inside_a_list():
    with pytest.raises(ValueError, match="classes"):
        metadata.without_nulls({"classes": ["Adelie", None]})


def _as_backend_hands_on(values: dict) -> dict:
    """Metadata as KFP 2.5.0 gives it to a consuming step: a list or dict wrapped in a one-key
    struct (backend/src/v2/metadata/converter.go:141-160, read back as a struct at 182-204),
    a bool as 1 or 0."""
    wrapped = {}
    for key, value in values.items():
        if isinstance(value, bool):
            wrapped[key] = float(value)
        elif isinstance(value, list):
            wrapped[key] = {"list": value}
        elif isinstance(value, dict):
            wrapped[key] = {"struct": value}
        else:
            wrapped[key] = value
    return wrapped


def test_reading_metadata_undoes_the_backends_wrapping():
    artifact = dsl.Artifact(
        name="blessing",
        uri="/tmp/blessing",
        metadata=_as_backend_hands_on(
            {"blessed": False, "reasons": ["too weak"], "metrics": {"accuracy": 0.5}}
        ),
    )
    assert bool(metadata.read(artifact, "blessed")) is False
    assert metadata.read(artifact, "reasons") == ["too weak"]
    assert metadata.read(artifact, "metrics") == {"accuracy": 0.5}
    assert metadata.read(artifact, "absent", {}) == {}


def test_deploy_reads_a_blessing_handed_on_by_the_backend(tmp_path):
    from components.deploy.component import deploy
    from components.registry import ModelRegistry

    model_dir = tmp_path / "model"
    (model_dir / "variables").mkdir(parents=True)
    (model_dir / "saved_model.pb").write_bytes(b"graph")
    schema = tmp_path / "schema.pbtxt"
    schema.write_text('feature { name: "species" }')
    statistics = tmp_path / "statistics"
    statistics.mkdir()
    (statistics / "train_stats.pb").write_bytes(
        tfdv_statistics.DatasetFeatureStatisticsList(
            datasets=[tfdv_statistics.DatasetFeatureStatistics(num_examples=3)]
        ).SerializeToString()
    )
    reasons = ["accuracy 0.97 >= 0.9", "no baseline"]
    blessing = {"blessed": True, "reasons": reasons, "metrics": {"accuracy": 0.97}}
    model = {"task": "classification", "classes": ["Adelie", "Gentoo"]}

    def artifact(kind, name, values):
        return kind(name=name, uri=str(tmp_path / name), metadata=_as_backend_hands_on(values))

    push_result = dsl.Artifact(name="push_result", uri=str(tmp_path / "push_result"))
    deploy.python_func(
        dsl.Model(name="model", uri=str(model_dir), metadata=_as_backend_hands_on(model)),
        artifact(dsl.Artifact, "blessing", blessing),
        artifact(dsl.Dataset, "train_data", {"fingerprint": "abc"}),
        dsl.Artifact(name="schema", uri=str(schema)),
        dsl.Artifact(name="statistics", uri=str(statistics)),
        str(tmp_path / "registry"),
        "penguins",
        push_result,
    )
    recorded = ModelRegistry(str(tmp_path / "registry")).metadata("penguins", 1)
    assert recorded["blessing"] == reasons
    assert recorded["metrics"] == {"accuracy": 0.97}
    assert recorded["classes"] == ["Adelie", "Gentoo"]
    assert push_result.metadata["version"] == 1


def test_evaluate_reads_a_baseline_handed_on_by_the_backend(
    tmp_path, penguins_splits, penguins_model, penguins_transform
):
    from components.evaluate.component import evaluate

    def artifact(kind, name, uri, values=None):
        return kind(name=name, uri=uri, metadata=_as_backend_hands_on(values or {}))

    outputs = {
        name: artifact(kind, name, str(tmp_path / name))
        for name, kind in [
            ("metrics", dsl.Metrics),
            ("classification_metrics", dsl.ClassificationMetrics),
            ("report", dsl.Markdown),
            ("blessing", dsl.Artifact),
        ]
    }
    baseline = {"found": True, "version": 1.0, "metrics": {"accuracy": 0.9}}
    evaluate.python_func(
        artifact(dsl.Dataset, "eval_data", penguins_splits["eval"]),
        artifact(dsl.Model, "model", penguins_model),
        artifact(dsl.Artifact, "transform_graph", penguins_transform),
        artifact(dsl.Model, "baseline", penguins_model, baseline),
        # Labelled log rows handed on with ingest's metadata (a string, a count as a double).
        artifact(
            dsl.Dataset,
            "labelled_eval",
            penguins_splits["eval"],
            {"labelled_log": "s3://mlpipeline/prediction-log", "num_rows": 62.0},
        ),
        **outputs,
    )
    blessing = outputs["blessing"].metadata
    assert blessing["baseline_version"] == 1 and blessing["blessed"] is False
    with open(outputs["blessing"].path) as f:
        evaluation = json.load(f)
    assert evaluation["labelled_rows"] > 0  # the labelled rows were read and scored
    assert evaluation["labelled_metrics"] == evaluation["labelled_baseline_metrics"]  # one model


def test_rollout_reads_a_push_result_handed_on_by_the_backend(tmp_path):
    # A bool arrives as 1.0 and an int as 1.0 (numbers are doubles in MLMD, converter.go:
    # 141-160); serve=false stops before any cluster call.
    from components.rollout.component import rollout

    def push_result(values):
        return dsl.Artifact(
            name="push_result", uri=str(tmp_path / "push"), metadata=_as_backend_hands_on(values)
        )

    pushed = push_result({"pushed": True, "version": 1.0, "reason": "pushed as version 1"})
    result = dsl.Artifact(name="rollout_result", uri=str(tmp_path / "rolled"))
    rollout.python_func(pushed, f"file://{tmp_path}/store", "penguins", result, serve=False)
    assert result.metadata["version"] == 1 and isinstance(result.metadata["version"], int)
    assert result.metadata["rolled_out"] is False

    nothing = push_result({"pushed": False, "reason": "not pushed: not blessed"})
    result = dsl.Artifact(name="rollout_result", uri=str(tmp_path / "nothing"))
    rollout.python_func(nothing, f"file://{tmp_path}/store", "penguins", result)
    assert "version" not in result.metadata


def _nulls(value, path="") -> list[str]:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return [path]
    if isinstance(value, dict):
        return [n for key, item in value.items() for n in _nulls(item, f"{path}.{key}")]
    if isinstance(value, list):
        return [n for i, item in enumerate(value) for n in _nulls(item, f"{path}[{i}]")]
    return []


@pytest.mark.integration
@pytest.mark.slow
def test_no_step_of_a_local_run_writes_null_metadata(tmp_path):
    # A regression model (no classes) pushed with no baseline and no URL, then one that is not
    # blessed (no version, no destination): every optional value a step can have is absent.
    common = ["run", "--local", "--registry", str(tmp_path / "registry"), "--epochs", "2"]
    common += ["--runs-dir", str(tmp_path / "runs"), "--label", "body_mass_g"]
    assert main(common) == 0
    assert main([*common, "--threshold", "rmse<=0.001"]) == 0
    outputs = glob.glob(str(tmp_path / "runs" / "*" / "*" / "*" / "executor_output.json"))
    steps = {os.path.basename(os.path.dirname(path)) for path in outputs}
    assert steps == set(LOCAL_STEPS) and len(outputs) == 2 * len(LOCAL_STEPS)
    found = []
    for path in outputs:
        with open(path) as handle:
            artifacts = json.load(handle).get("artifacts", {})
        for name, listed in artifacts.items():
            for artifact in listed["artifacts"]:
                found += [f"{path}:{name}{n}" for n in _nulls(artifact.get("metadata", {}))]
    assert found == []


@pytest.mark.parametrize("module", [training, cluster_training])
def test_pipeline_function_has_no_display_names(module):
    # Guards the builders themselves, not only the committed IR.
    with open(module.__file__) as handle:
        assert "set_display_name" not in handle.read()
