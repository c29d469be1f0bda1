"""Both pipelines compile with KFP's own compiler, and the committed IR is up to date."""

import os

import yaml
from kfp import compiler

from components.images import PIPELINE_IMAGE
from pipelines import cluster_training, training
from pipelines.cli import DEFAULT_OUTPUT, main

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LOCAL_STEPS = ["ingest", "validate", "transform", "train", "resolve-baseline", "evaluate", "deploy"]
STEPS = [*LOCAL_STEPS, "rollout"]
ROLLOUT_PARAMETERS = {
    "serve",
    "serving_namespace",
    "serving_runtime",
    "predictor_cpu",
    "predictor_memory",
    "deployment_mode",
    "canary_traffic_percent",
    "prediction_log_url",
    "rollout_strategy",
    "routing_namespace",
    "canary_steps",
    "canary_step_seconds",
    "canary_min_requests",
    "canary_max_error_rate_increase",
    "canary_max_latency_ratio",
    "shadow_log",
    "shadow_hours",
    "shadow_min_rows",
    "shadow_min_agreement",
    "rollout_timeout_seconds",
}


def _compile(tmp_path, pipeline=cluster_training.cluster_training_pipeline) -> dict:
    path = tmp_path / "training.yaml"
    compiler.Compiler().compile(pipeline, str(path))
    # The cluster pipeline's second document is its Kubernetes platform spec.
    return next(yaml.safe_load_all(path.read_text())), path.read_text()


def test_committed_ir_is_up_to_date(tmp_path):
    assert main(["compile", "--output", str(tmp_path / "training.yaml")]) == 0
    text = (tmp_path / "training.yaml").read_text()
    with open(os.path.join(ROOT, DEFAULT_OUTPUT)) as committed:
        assert committed.read() == text, (
            "pipelines/compiled/training.yaml is stale: run make compile"
        )


def test_every_task_runs_in_the_project_image(tmp_path):
    ir, _ = _compile(tmp_path)
    assert sorted(ir["root"]["dag"]["tasks"]) == sorted(STEPS)
    executors = ir["deploymentSpec"]["executors"]
    assert {executor["container"]["image"] for executor in executors.values()} == {PIPELINE_IMAGE}


def test_steps_run_in_order(tmp_path):
    ir, _ = _compile(tmp_path)
    tasks = ir["root"]["dag"]["tasks"]
    assert tasks["validate"]["dependentTasks"] == ["ingest"]
    # The baseline is resolved once the candidate is trained, and evaluate takes it as an input.
    assert tasks["resolve-baseline"]["dependentTasks"] == ["train"]
    assert set(tasks["evaluate"]["dependentTasks"]) == {
        "ingest",
        "resolve-baseline",
        "train",
        "transform",
    }
    assert "registry" not in tasks["evaluate"]["inputs"].get("parameters", {})
    assert set(tasks["deploy"]["dependentTasks"]) == {"evaluate", "ingest", "train", "validate"}
    assert tasks["rollout"]["dependentTasks"] == ["deploy"]


def _parameters(ir: dict) -> dict:
    parameters = ir["root"]["inputDefinitions"]["parameters"]
    return {name: spec.get("defaultValue") for name, spec in parameters.items()}


def test_local_pipeline_has_the_training_steps_and_no_cluster_parameter(tmp_path):
    ir, _ = _compile(tmp_path, training.training_pipeline)
    assert sorted(ir["root"]["dag"]["tasks"]) == sorted(LOCAL_STEPS)
    assert not ROLLOUT_PARAMETERS & set(_parameters(ir))


def test_cluster_pipeline_takes_the_local_parameters_and_the_rollouts(tmp_path):
    (tmp_path / "local").mkdir()
    local, _ = _compile(tmp_path / "local", training.training_pipeline)
    cluster, _ = _compile(tmp_path)
    local_parameters, cluster_parameters = _parameters(local), _parameters(cluster)
    assert set(cluster_parameters) == set(local_parameters) | ROLLOUT_PARAMETERS
    # The same defaults, but where a run reads and writes.
    different = {
        name for name, value in local_parameters.items() if cluster_parameters[name] != value
    }
    assert different == {"data_uri", "registry"}


def test_curated_schema_is_built_into_the_pipeline(tmp_path):
    for pipeline in (
        training.build_training_pipeline("gs://bucket/schema.pbtxt"),
        cluster_training.build_cluster_training_pipeline("gs://bucket/schema.pbtxt"),
    ):
        ir, _ = _compile(tmp_path, pipeline)
        validate = ir["root"]["dag"]["tasks"]["validate"]["inputs"]["parameters"]
        assert validate["schema_uri"]["runtimeValue"]["constant"] == "gs://bucket/schema.pbtxt"


def test_gpu_pipeline_asks_for_gpus_in_the_gpu_image_with_a_toleration(tmp_path):
    from components.images import PIPELINE_GPU_IMAGE

    path = tmp_path / "gpu.yaml"
    assert main(["compile", "--gpus", "2", "--output", str(path)]) == 0
    documents = list(yaml.safe_load_all(path.read_text()))
    ir, platform = documents[0], documents[1]
    executor = ir["deploymentSpec"]["executors"]["exec-train"]["container"]
    assert executor["image"] == PIPELINE_GPU_IMAGE
    accelerator = executor["resources"]["accelerator"]
    assert accelerator["resourceType"] == "nvidia.com/gpu"
    assert accelerator["resourceCount"] == "2"
    others = {
        e["container"]["image"]
        for n, e in ir["deploymentSpec"]["executors"].items()
        if n != "exec-train"
    }
    assert others == {PIPELINE_IMAGE}
    tolerations = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-train"][
        "tolerations"
    ]
    assert tolerations == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]


def test_object_store_keys_come_from_a_secret_not_parameters(tmp_path):
    path = tmp_path / "cluster.yaml"
    assert main(["compile", "--output", str(path)]) == 0
    ir, platform = list(yaml.safe_load_all(path.read_text()))
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    for step in ("exec-ingest", "exec-resolve-baseline", "exec-deploy", "exec-rollout"):
        secret = executors[step]["secretAsEnv"][0]
        assert secret["secretName"] == "mlops-s3-credentials"
        keys = {item["secretKey"] for item in secret["keyToEnv"]}
        assert keys == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    # Evaluate reads the baseline resolve-baseline copied: no object-store access.
    assert sorted(executors) == [
        "exec-deploy",
        "exec-ingest",
        "exec-resolve-baseline",
        "exec-rollout",
    ]
    assert not any(
        "SECRET" in name.upper() for name in ir["root"]["inputDefinitions"]["parameters"]
    )
