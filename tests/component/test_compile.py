"""The pipeline compiles with KFP's own compiler, and the committed IR is up to date."""

import os

import yaml
from kfp import compiler

from components.images import PIPELINE_IMAGE
from pipelines import training
from pipelines.cli import DEFAULT_OUTPUT, main

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STEPS = ["ingest", "validate", "transform", "train", "evaluate", "deploy"]


def _compile(tmp_path, pipeline=training.training_pipeline) -> dict:
    path = tmp_path / "training.yaml"
    compiler.Compiler().compile(pipeline, str(path))
    return yaml.safe_load(path.read_text()), path.read_text()


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
    assert set(tasks["deploy"]["dependentTasks"]) == {"evaluate", "ingest", "train", "validate"}


def test_curated_schema_is_built_into_the_pipeline(tmp_path):
    ir, _ = _compile(tmp_path, training.build_training_pipeline("gs://bucket/schema.pbtxt"))
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
    for step in ("exec-ingest", "exec-evaluate", "exec-deploy"):
        secret = executors[step]["secretAsEnv"][0]
        assert secret["secretName"] == "mlops-s3-credentials"
        keys = {item["secretKey"] for item in secret["keyToEnv"]}
        assert keys == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    assert "exec-train" not in executors
    assert not any(
        "SECRET" in name.upper() for name in ir["root"]["inputDefinitions"]["parameters"]
    )
