"""The train step across workers (components/train/job.py, worker.py): the TFJob it creates,
the chief's model handed on whole, failures and timeouts, through the real kubernetes client
against the Training Operator stand-in (tests/operator_standin.py), with a file:// object store.

The stand-in's kubelet runs each worker pod's own command line through
:func:`components.train.worker.main`, with the ``TF_CONFIG`` the stand-in's operator put in the
pod; only the training inside is a stand-in (a copy of the golden model): training across
processes is tests/unit/test_train.py's two-worker test.
"""

import filecmp
import json
import os
import shutil
import threading

import pytest
from kubernetes import client

from components.errors import ERROR_MARKER, ConfigurationError
from components.train import core, job, worker
from components.train.config import TrainConfig
from tests.operator_standin import PodOutcome, TrainingOperatorStandin

NAMESPACE = "kubeflow"
_ENV_LOCK = threading.Lock()


def _env(pod: dict) -> dict[str, str]:
    (container,) = [c for c in pod["spec"]["containers"] if c["name"] == "tensorflow"]
    return {item["name"]: item["value"] for item in container.get("env", [])}


def _read(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


def _tree(folder: str) -> dict[str, bytes]:
    return {
        os.path.relpath(os.path.join(parent, name), folder): _read(os.path.join(parent, name))
        for parent, _, names in os.walk(folder)
        for name in names
    }


def _contents(path: str) -> bytes | dict[str, bytes]:
    """A split's bytes: one file's, or each shard's of a folder."""
    return _tree(path) if os.path.isdir(path) else _read(path)


def _index(pod: dict) -> int:
    return int(pod["metadata"]["labels"]["training.kubeflow.org/replica-index"])


class Workers:
    """The kubelet of the stand-in: runs each pod's worker command line, with a stand-in for
    training that copies the golden model and records what it was given."""

    def __init__(self, golden_model: str, fail: dict[int, PodOutcome] | None = None) -> None:
        self.golden_model = golden_model
        self.fail = fail or {}
        self.seen: dict[int, dict] = {}

    def __call__(self, pod: dict) -> PodOutcome | None:
        index = _index(pod)
        if index in self.fail:
            return self.fail[index]
        container = pod["spec"]["containers"][0]
        assert container["command"] == ["python", "-m", "components.train.worker"]

        def train(train_path, eval_path, transform_dir, model_dir, config):
            self.seen[index] = {
                "task": core.cluster_task()[:2],
                "inputs": (_contents(train_path), _contents(eval_path), _tree(transform_dir)),
                "config": config,
            }
            shutil.copytree(self.golden_model, model_dir)
            with open(os.path.join(model_dir, "worker.txt"), "w") as handle:
                handle.write(str(index))  # Which worker's model arrives.
            return core.TrainResult(3, 2, "MultiWorkerMirroredStrategy", {"loss": [3.0, 2.0, 1.0]})

        with _ENV_LOCK:
            before = os.environ.get("TF_CONFIG")
            os.environ["TF_CONFIG"] = _env(pod)["TF_CONFIG"]
            try:
                worker.main(container["args"], train=train)
            finally:
                if before is None:
                    os.environ.pop("TF_CONFIG")
                else:
                    os.environ["TF_CONFIG"] = before
        return PodOutcome(log="trained\n")


@pytest.fixture
def inputs(tmp_path, golden_transform):
    data = tmp_path / "in"
    data.mkdir()
    (data / "train").write_bytes(os.urandom(64))
    (data / "eval").write_bytes(os.urandom(32))
    return str(data / "train"), str(data / "eval"), golden_transform


def _launch(standin, tmp_path, **overrides) -> job.Launch:
    configuration = client.Configuration()
    configuration.host = standin.host
    values = {
        "staging_root": f"file://{tmp_path}/store",
        "namespace": NAMESPACE,
        "api_client": client.ApiClient(configuration),
        "object_store_secret": "mlops-s3-credentials",
        "poll_seconds": 0,
    }
    return job.Launch(**{**values, **overrides})


def _train(standin, tmp_path, inputs, config=TrainConfig(workers=2), **overrides):
    model_dir = str(tmp_path / "out" / "model")
    result = job.train(*inputs, model_dir, config, lambda: _launch(standin, tmp_path, **overrides))
    return result, model_dir


def test_the_tfjob_asks_for_one_worker_pod_per_worker_and_leaves_tf_config_to_the_operator(
    tmp_path, inputs, golden_model
):
    with TrainingOperatorStandin(Workers(golden_model)) as standin:
        _train(standin, tmp_path, inputs, TrainConfig(workers=3, job_timeout_minutes=7))
    (created,) = standin.created
    assert (created["apiVersion"], created["kind"]) == ("kubeflow.org/v1", "TFJob")
    assert created["metadata"]["namespace"] == NAMESPACE
    assert list(created["spec"]["tfReplicaSpecs"]) == ["Worker"]  # No Chief: worker 0 is.
    replicas = created["spec"]["tfReplicaSpecs"]["Worker"]
    assert (replicas["replicas"], replicas["restartPolicy"]) == (3, "Never")
    (container,) = replicas["template"]["spec"]["containers"]
    assert container["name"] == "tensorflow"
    assert container["image"] == job.images.PIPELINE_IMAGE
    assert container["command"] == ["python", "-m", "components.train.worker"]
    assert "env" not in container  # TF_CONFIG is the operator's to write.
    assert container["envFrom"] == [{"secretRef": {"name": "mlops-s3-credentials"}}]
    assert "resources" not in container
    args = dict(arg[2:].split("=", 1) for arg in container["args"])
    assert json.loads(args["config"])["epochs"] == TrainConfig().epochs
    staged = f"file://{tmp_path}/store/_training/{created['metadata']['name']}/"
    assert all(args[key].startswith(staged) for key in ("train-data", "model", "result"))
    run_policy = created["spec"]["runPolicy"]
    assert run_policy["cleanPodPolicy"] == "None"
    assert run_policy["activeDeadlineSeconds"] == 7 * 60 + job.DEADLINE_GRACE_SECONDS


def test_gpus_go_to_every_worker_pod_in_the_gpu_image(tmp_path, inputs, golden_model):
    with TrainingOperatorStandin(Workers(golden_model)) as standin:
        _train(standin, tmp_path, inputs, gpus=2, image=job.images.PIPELINE_GPU_IMAGE)
    spec = standin.created[0]["spec"]["tfReplicaSpecs"]["Worker"]["template"]["spec"]
    assert spec["containers"][0]["resources"] == {"limits": {"nvidia.com/gpu": 2}}
    assert spec["containers"][0]["image"] == job.images.PIPELINE_GPU_IMAGE
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec[
        "tolerations"
    ]


def test_each_worker_trains_on_the_staged_inputs_with_the_operators_tf_config(
    tmp_path, inputs, golden_model
):
    workers = Workers(golden_model)
    with TrainingOperatorStandin(workers) as standin:
        _train(standin, tmp_path, inputs)
    assert {index: seen["task"] for index, seen in workers.seen.items()} == {
        0: ("worker", 0),
        1: ("worker", 1),
    }
    for seen in workers.seen.values():
        assert seen["inputs"] == (_read(inputs[0]), _read(inputs[1]), _tree(inputs[2]))
        assert seen["config"] == TrainConfig(workers=2)


def test_the_chiefs_model_lands_in_the_output_whole(tmp_path, inputs, golden_model):
    with TrainingOperatorStandin(Workers(golden_model)) as standin:
        result, model_dir = _train(standin, tmp_path, inputs)
    with open(os.path.join(model_dir, "worker.txt")) as handle:
        assert handle.read() == "0"  # Worker 0's: the chief's.
    comparison = filecmp.dircmp(golden_model, model_dir)
    assert comparison.left_only == [] and comparison.diff_files == []
    assert filecmp.cmp(
        os.path.join(golden_model, "variables", "variables.index"),
        os.path.join(model_dir, "variables", "variables.index"),
        shallow=False,
    )
    assert result == core.TrainResult(
        3, 2, "MultiWorkerMirroredStrategy", {"loss": [3.0, 2.0, 1.0]}
    )
    assert os.listdir(tmp_path / "out") == ["model"]  # No partial copy beside it.


def test_the_job_and_the_staged_files_are_deleted_after_success(tmp_path, inputs, golden_model):
    with TrainingOperatorStandin(Workers(golden_model)) as standin:
        _train(standin, tmp_path, inputs)
    assert standin.jobs == {} and standin.pods == {}
    assert ("DELETE", "tfjobs") in standin.calls
    assert os.listdir(tmp_path / "store" / "_training") == []


def test_a_worker_that_dies_fails_the_step_with_its_reason_and_writes_nothing(
    tmp_path, inputs, golden_model
):
    oom = PodOutcome(
        exit_code=137, reason="OOMKilled", log="Epoch 1: loss 1.0\nepoch 2 starting\nKilled\n"
    )
    standin = TrainingOperatorStandin(Workers(golden_model, fail={1: oom}))
    with standin, pytest.raises(job.TrainingJobFailed) as failed:
        _train(standin, tmp_path, inputs)
    message = str(failed.value)
    name = standin.created[0]["metadata"]["name"]
    assert f"TFJob kubeflow/{name} has failed because 1 Worker replica(s) failed." in message
    assert f"worker 1 (pod {name}-worker-1): OOMKilled, exit code 137" in message
    assert "    Killed" in message
    assert "worker 0" not in message
    assert not os.path.exists(tmp_path / "out")
    assert standin.jobs == {} and standin.pods == {}
    assert os.listdir(tmp_path / "store" / "_training") == []


def test_what_a_worker_reported_is_in_the_steps_error(tmp_path, inputs, golden_model):
    reported = json.dumps({"step": "train", "message": "Column 'sex' has no values."})
    failure = PodOutcome(exit_code=1, reason="Error", log=f"Traceback\n{ERROR_MARKER}{reported}\n")
    standin = TrainingOperatorStandin(Workers(golden_model, fail={0: failure, 1: failure}))
    with standin, pytest.raises(job.TrainingJobFailed, match="2 Worker replica") as failed:
        _train(standin, tmp_path, inputs)
    assert "worker 0" in str(failed.value) and "worker 1" in str(failed.value)
    assert "Error, exit code 1; it reported: Column 'sex' has no values." in str(failed.value)


def test_a_job_that_does_not_end_in_time_is_deleted_and_says_where_it_was(tmp_path, inputs):
    now = [0.0]

    def sleep(seconds):
        now[0] += 20

    standin = TrainingOperatorStandin()  # The workers never end.
    with standin, pytest.raises(job.TrainingJobFailed) as failed:
        _train(
            standin,
            tmp_path,
            inputs,
            TrainConfig(workers=2, job_timeout_minutes=1),
            clock=lambda: now[0],
            sleep=sleep,
        )
    message = str(failed.value)
    assert "did not finish within 1 minute(s)" in message
    assert "Created, Running" in message and "worker 0 Running, worker 1 Running" in message
    assert "job_timeout_minutes" in message
    assert standin.jobs == {} and standin.pods == {}
    assert not os.path.exists(tmp_path / "out")


def test_a_refused_job_is_a_clear_error(tmp_path, inputs, monkeypatch):
    monkeypatch.setattr(job, "job_name", lambda: "mlops-train-taken")
    standin = TrainingOperatorStandin()
    other = job.TrainingJob("mlops-train-taken", NAMESPACE, 2, "someone/else:1", ())
    assert standin._create_job(NAMESPACE, other.manifest())[0] == 201
    with standin, pytest.raises(job.TrainingJobFailed) as failed:
        _train(standin, tmp_path, inputs)
    assert 'tfjobs.kubeflow.org "mlops-train-taken" already exists' in str(failed.value)
    assert "409" in str(failed.value)
    assert list(standin.jobs) == [(NAMESPACE, "mlops-train-taken")]  # Not ours to delete.
    assert ("DELETE", "tfjobs") not in standin.calls


def test_one_worker_trains_in_the_step_and_never_reaches_for_a_cluster(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(core, "train", lambda *args: calls.append(args) or "trained")

    def no_cluster():
        raise AssertionError("workers=1 asked for a cluster")

    config = TrainConfig(workers=1)
    assert job.train("t.pq", "e.pq", "tf", "m", config, no_cluster) == "trained"
    assert calls == [("t.pq", "e.pq", "tf", "m", config)]


def test_several_workers_without_a_cluster_is_a_configuration_error(tmp_path, inputs):
    with pytest.raises(ConfigurationError, match="mlops run --local"):
        job.train(
            *inputs,
            str(tmp_path / "m"),
            TrainConfig(workers=2),
            lambda: job.from_pod(None, None, 0),
        )


def test_several_workers_outside_a_pod_is_a_configuration_error(monkeypatch, tmp_path, inputs):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(ConfigurationError, match="not in one"):
        job.from_pod("s3://bucket/registry", None, 0)


def test_staging_in_a_local_folder_is_a_configuration_error():
    with pytest.raises(ConfigurationError, match="object store the worker pods"):
        job.Staging("model-registry", "mlops-train-x")


def test_staged_uris_keep_the_object_stores_options():
    staging = job.Staging(
        "s3://mlpipeline/model-registry?endpoint_override=minio-service.kubeflow:9000"
        "&scheme=http&region=us-east-1",
        "mlops-train-x",
    )
    assert staging.uri("model") == (
        "s3://mlpipeline/model-registry/_training/mlops-train-x/model"
        "?endpoint_override=minio-service.kubeflow:9000&scheme=http&region=us-east-1"
    )
    assert staging.path == "mlpipeline/model-registry/_training/mlops-train-x"


@pytest.mark.parametrize("workers", [0, -1])
def test_workers_must_be_at_least_one(workers):
    with pytest.raises(ConfigurationError, match="workers must be at least 1"):
        TrainConfig(workers=workers)


def test_splits_written_as_folders_of_shards_reach_every_worker(
    tmp_path, golden_transform, golden_model
):
    """Ingest on Beam writes each split as a folder of Parquet shards: the step stages the
    folders and each worker gets them whole (pyarrow's copy makes no destination folder of
    its own; a folder of files alone had nowhere to go)."""
    folders = []
    for name, shards in (("train", 3), ("eval", 2)):
        folder = tmp_path / "in" / name
        folder.mkdir(parents=True)
        for index in range(shards):
            (folder / f"part-{index:05d}.parquet").write_bytes(os.urandom(16 + index))
        folders.append(str(folder))
    workers = Workers(golden_model)
    with TrainingOperatorStandin(workers) as standin:
        _train(standin, tmp_path, (*folders, golden_transform))
    assert sorted(workers.seen) == [0, 1]
    for seen in workers.seen.values():
        assert seen["inputs"] == (_tree(folders[0]), _tree(folders[1]), _tree(golden_transform))
        assert len(seen["inputs"][0]) == 3


def test_a_job_deleted_by_someone_else_while_the_step_waits_is_a_clear_error(
    tmp_path, inputs, golden_model
):
    standin = TrainingOperatorStandin(Workers(golden_model))
    waits = []

    def someone_deletes_it(seconds: float) -> None:
        waits.append(seconds)
        for key in list(standin.jobs):
            standin.jobs.pop(key)

    with standin, pytest.raises(job.TrainingJobFailed, match="someone deleted it"):
        _train(standin, tmp_path, inputs, sleep=someone_deletes_it)
    assert waits and not os.path.exists(tmp_path / "out" / "model")
