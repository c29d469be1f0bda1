"""The train step across nodes: a TFJob of Kubeflow's Training Operator v1, one worker per pod
under ``MultiWorkerMirroredStrategy``.

Why the Training Operator's TFJob and not Kubeflow Trainer v2's TrainJob: the operator writes
each worker's ``TF_CONFIG`` itself, while Trainer v2 ships no TensorFlow runtime (its PlainML
plugin gives every pod the same environment, so the cluster spec and task index would be ours
to assemble); README.md, "Training across nodes", has the evidence. The operator's behaviour
below is read at kubeflow/training-operator (now kubeflow/trainer) tag v1.9.3, the version
``make platform`` installs; paths are from that repository's root.

What the step does with ``workers`` > 1 (:func:`train_across_workers`):

1. Stages its inputs (the train and eval Parquet, the transform folder) in the object store
   under ``<staging root>/_training/<job>/``: the worker pods cannot see the step pod's files.
2. Creates the TFJob: ``workers`` Worker replicas, no Chief, so worker 0 is the chief
   (pkg/controller.v1/tensorflow/tfjob_controller.go:598-605, TensorFlow's own rule in
   :func:`components.train.core.is_chief`). The operator sets ``TF_CONFIG`` in the container
   named ``tensorflow`` of each pod (tfjob_controller.go:555-588; tensorflow.go:112-188); each
   pod runs :mod:`components.train.worker`, with the object-store keys from the Secret.
3. Waits for the ``Succeeded`` or ``Failed`` condition, at most ``job_timeout_minutes``. With
   Worker replicas only the operator declares success once worker 0 exits 0
   (tfjob_controller.go:463-481), and the chief exits 0 only after its model and then its
   result file are in the staging folder (:func:`components.train.worker.publish`).
4. Copies the chief's model into the step's output folder, whole (every file the chief listed,
   at its size) or not at all; on failure or timeout it names each failed worker, its
   container's reason, exit code and message and the end of its log, and writes nothing.
5. Deletes the TFJob once it was created (its pods and Services go with it: the TFJob owns
   them, pkg/controller.v1/common/job_controller.go:222-234), and the staging folder, whatever
   happened.
"""

import base64
import json
import logging
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pyarrow.fs as pa_fs

from components import images
from components.errors import (
    ConfigurationError,
    PipelineInputError,
    find_reported_error,
    kubernetes_message,
)
from components.train.config import TrainConfig

if TYPE_CHECKING:  # core imports TensorFlow (~4 s); only a step that trains here needs it.
    from components.train.core import TrainResult

logger = logging.getLogger(__name__)

GROUP, VERSION, PLURAL, KIND = "kubeflow.org", "v1", "tfjobs", "TFJob"
# The operator sets TF_CONFIG only in the container of this name, and reads its exit code
# (pkg/apis/kubeflow.org/v1/tensorflow_types.go:26; TF_CONFIG: tfjob_controller.go:575-585;
# the exit code: pkg/controller.v1/common/pod.go:339-348, tensorflow/util.go:50-59).
CONTAINER = "tensorflow"
# TensorFlow's gRPC port in the cluster spec: the container port of this name, else 2222
# (tensorflow_types.go:24 and :28; pkg/controller.v1/tensorflow/util.go:24-37).
PORT_NAME, PORT = "tfjob-port", 2222
WORKER = "Worker"
# Pod labels the operator sets (pkg/apis/kubeflow.org/v1/common_types.go:25-37;
# pkg/controller.v1/common/pod.go:402-408).
JOB_NAME_LABEL = "training.kubeflow.org/job-name"
REPLICA_INDEX_LABEL = "training.kubeflow.org/replica-index"
# Condition types (common_types.go:131-160).
SUCCEEDED, FAILED = "Succeeded", "Failed"
# The staging folder under the staging root; ``_`` cannot start a model name, so it never
# collides with the registry's models (components/registry.py).
STAGING_FOLDER = "_training"
TRAIN_DATA, EVAL_DATA, TRANSFORM, MODEL, RESULT = (
    "train.parquet",
    "eval.parquet",
    "transform",
    "model",
    "result.json",
)
WORKER_MODULE = "components.train.worker"
# The extended resource NVIDIA's device plugin advertises GPUs as.
GPU_RESOURCE = "nvidia.com/gpu"
# How much of a failed worker's log the step repeats.
LOG_TAIL_LINES = 20
# The operator's own deadline, after the step's: it fails a job the step no longer watches (its
# pod died) instead of leaving the workers to run on (pkg/controller.v1/common/job.go:211-212).
DEADLINE_GRACE_SECONDS = 300
# And deletes a finished job the step did not delete (job.go:420-450).
TTL_SECONDS_AFTER_FINISHED = 3600
_SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


class TrainingJobFailed(PipelineInputError):
    """The TFJob failed or did not finish in time: the message names each failed worker and
    why. A :class:`PipelineInputError` so the step reports it on its one clean line
    (:data:`components.errors.REPORTED_ERRORS`): what to change (memory, GPUs, the timeout, the
    data) is the user's to decide."""


@dataclass(frozen=True)
class Launch:
    """Where and how the workers run.

    Attributes:
        staging_root: An object-store URI the step and the workers both reach (the cluster
            pipeline's registry); inputs and the chief's model are staged under it.
        namespace: Where the TFJob is created.
        api_client: A Kubernetes API client (``kubernetes.client.ApiClient``).
        image: The workers' image.
        gpus: ``nvidia.com/gpu`` per worker.
        object_store_secret: The Secret whose keys the workers get as environment variables
            (the object store's credentials); None gives them none.
        poll_seconds: Between two reads of the TFJob.
        clock: Seconds, for the timeout.
        sleep: Waits between reads.
    """

    staging_root: str
    namespace: str
    api_client: Any
    image: str = images.PIPELINE_IMAGE
    gpus: int = 0
    object_store_secret: str | None = None
    poll_seconds: float = 10.0
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep


def from_pod(staging_root: str | None, object_store_secret: str | None, gpus: int) -> Launch:
    """The launch of a step running in a pod: its service account, its namespace.

    Raises:
        ConfigurationError: No object store to stage in, or not in a Kubernetes pod (e.g.
            ``mlops run --local``).
    """
    if staging_root is None:
        raise ConfigurationError(
            "workers above 1 trains in a TFJob on a Kubernetes cluster, which this run does not "
            "have (mlops run --local trains in one process): set workers to 1, or run the "
            "cluster pipeline (mlops compile / mlops submit)."
        )
    from kubernetes import client, config

    try:
        config.load_incluster_config()
        with open(_SERVICE_ACCOUNT_NAMESPACE) as handle:
            namespace = handle.read().strip()
    except (config.ConfigException, OSError) as err:
        raise ConfigurationError(
            "workers above 1 starts a TFJob from inside a Kubernetes pod, with the pod's "
            f"service account, and this step is not in one ({err}): set workers to 1, or run "
            "the cluster pipeline."
        ) from err
    api_client = client.ApiClient()
    if object_store_secret:
        _use_object_store_keys(api_client, namespace, object_store_secret)
    image = images.PIPELINE_GPU_IMAGE if gpus else images.PIPELINE_IMAGE
    return Launch(
        staging_root=staging_root,
        namespace=namespace,
        api_client=api_client,
        image=image,
        gpus=gpus,
        object_store_secret=object_store_secret,
    )


def _use_object_store_keys(api_client: Any, namespace: str, secret: str) -> None:
    """Puts the Secret's keys (``AWS_ACCESS_KEY_ID``, ...) in this process's environment, where
    pyarrow reads them, unless they are set: the step gets the object store's keys only when it
    trains across workers, not as every run's environment.

    Raises:
        ConfigurationError: The Secret cannot be read.
    """
    from kubernetes.client import CoreV1Api
    from kubernetes.client.exceptions import ApiException

    try:
        found = CoreV1Api(api_client).read_namespaced_secret(secret, namespace)
    except ApiException as err:
        raise ConfigurationError(
            f"Cannot read the object-store Secret {namespace}/{secret} ({err.status} "
            f"{err.reason}): the workers and the step's staging need its keys. Apply the "
            "manifests (make platform), which create it and let pipeline-runner read it."
        ) from err
    for key, value in (found.data or {}).items():
        os.environ.setdefault(key, base64.b64decode(value).decode())


def copy(
    source_fs: pa_fs.FileSystem, source: str, destination_fs: pa_fs.FileSystem, destination: str
) -> None:
    """Copies a file, or a folder with what is in it, between filesystems. pyarrow 10's
    ``copy_files`` makes the folders inside a folder it copies but not the destination itself,
    so a folder of files alone (a split ingest wrote as shards) would have nowhere to go."""
    if source_fs.get_file_info(source).type == pa_fs.FileType.Directory:
        destination_fs.create_dir(destination, recursive=True)
    pa_fs.copy_files(
        source, destination, source_filesystem=source_fs, destination_filesystem=destination_fs
    )


class Staging:
    """The job's folder in the object store: ``<root>/_training/<job>/``.

    Args:
        root: An object-store URI pyarrow opens (``s3://bucket/prefix?endpoint_override=...``,
            ``gs://...``, ``file:///...``); its query options go into every URI handed on.
        job: The TFJob's name.

    Raises:
        ConfigurationError: ``root`` is a local path (the workers cannot see it) or a URI
            pyarrow cannot open.
    """

    def __init__(self, root: str, job: str) -> None:
        if "://" not in root:
            raise ConfigurationError(
                f"workers above 1 stages the step's data in an object store the worker pods "
                f"reach (s3://..., gs://...), not in the local path {root!r}."
            )
        try:
            self.fs, base = pa_fs.FileSystem.from_uri(root)
        except (ValueError, OSError) as err:
            raise ConfigurationError(f"Cannot open the staging root {root!r}: {err}") from err
        parts = urlsplit(root)
        self.path = f"{base.rstrip('/')}/{STAGING_FOLDER}/{job}"
        self._prefix = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"
        self._prefix += f"/{STAGING_FOLDER}/{job}"
        self._query = f"?{parts.query}" if parts.query else ""

    def uri(self, name: str) -> str:
        """The URI of ``name`` in the folder, for a worker (pyarrow options included)."""
        return f"{self._prefix}/{name}{self._query}"

    def upload(self, local: str, name: str) -> None:
        """Copies a local file or folder in as ``name``."""
        if isinstance(self.fs, pa_fs.LocalFileSystem):  # An object store has no folders.
            self.fs.create_dir(self.path, recursive=True)
        copy(pa_fs.LocalFileSystem(), local, self.fs, f"{self.path}/{name}")

    def download(self, name: str, local: str) -> None:
        """Copies ``name`` (a file or a folder) out to ``local``."""
        copy(self.fs, f"{self.path}/{name}", pa_fs.LocalFileSystem(), local)

    def read_text(self, name: str) -> str | None:
        """A file's text, or None when there is none."""
        try:
            with self.fs.open_input_stream(f"{self.path}/{name}") as stream:
                return stream.read().decode()
        except FileNotFoundError:
            return None

    def delete(self) -> None:
        """Removes the folder, if it is there."""
        if self.fs.get_file_info(self.path).type != pa_fs.FileType.NotFound:
            self.fs.delete_dir(self.path)


@dataclass(frozen=True)
class TrainingJob:
    """The TFJob the step creates.

    Attributes:
        name: The TFJob's name: a DNS-1035 label, as the operator's webhook requires
            (pkg/webhooks/tensorflow/tfjob_webhook.go:75-77).
        namespace: Where it runs.
        workers: Worker replicas, one pod each.
        image: The pods' image.
        args: The worker module's arguments.
        gpus: ``nvidia.com/gpu`` per worker.
        object_store_secret: The Secret every key of which each worker gets as an environment
            variable, or None.
        timeout_seconds: How long the step waits; the operator's own deadline is
            :data:`DEADLINE_GRACE_SECONDS` later.
    """

    name: str
    namespace: str
    workers: int
    image: str
    args: tuple[str, ...]
    gpus: int = 0
    object_store_secret: str | None = None
    timeout_seconds: int = 3600

    def manifest(self) -> dict[str, Any]:
        """The TFJob (``kubeflow.org/v1``). No ``TF_CONFIG``: the operator writes each pod's."""
        container: dict[str, Any] = {
            "name": CONTAINER,
            "image": self.image,
            "command": ["python", "-m", WORKER_MODULE],
            "args": list(self.args),
            "ports": [{"name": PORT_NAME, "containerPort": PORT}],
            "securityContext": {
                "allowPrivilegeEscalation": False,
                "capabilities": {"drop": ["ALL"]},
            },
        }
        if self.object_store_secret:
            container["envFrom"] = [{"secretRef": {"name": self.object_store_secret}}]
        pod: dict[str, Any] = {
            "containers": [container],
            "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        }
        if self.gpus:
            container["resources"] = {"limits": {GPU_RESOURCE: self.gpus}}
            pod["tolerations"] = [
                {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}
            ]
        return {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": KIND,
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "labels": {"app.kubernetes.io/part-of": "mlops-suite"},
            },
            "spec": {
                "runPolicy": {
                    # Keep finished pods until the step has read why they failed; the step
                    # deletes the job (common/job.go:43-51).
                    "cleanPodPolicy": "None",
                    "activeDeadlineSeconds": self.timeout_seconds + DEADLINE_GRACE_SECONDS,
                    "ttlSecondsAfterFinished": TTL_SECONDS_AFTER_FINISHED,
                },
                "tfReplicaSpecs": {
                    WORKER: {
                        "replicas": self.workers,
                        # A restarted worker would rejoin a collective the others have left:
                        # one failure fails the job (common/pod.go:349-374 restarts only for
                        # OnFailure, Always and ExitCode).
                        "restartPolicy": "Never",
                        "template": {
                            "metadata": {"labels": {"app.kubernetes.io/part-of": "mlops-suite"}},
                            "spec": pod,
                        },
                    }
                },
            },
        }


def job_name() -> str:
    """A fresh TFJob name: a DNS-1035 label, short enough for ``<name>-worker-<i>``."""
    return f"mlops-train-{uuid.uuid4().hex[:10]}"


def _true_conditions(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        c["type"]: c
        for c in (body.get("status") or {}).get("conditions") or []
        if c.get("status") == "True"
    }


def _pods(core_api: Any, job: TrainingJob) -> list[Any]:
    listed = core_api.list_namespaced_pod(
        job.namespace, label_selector=f"{JOB_NAME_LABEL}={job.name}"
    )
    return sorted(listed.items, key=lambda pod: int(pod.metadata.labels[REPLICA_INDEX_LABEL]))


def _container_status(pod: Any) -> Any:
    for status in pod.status.container_statuses or []:
        if status.name == CONTAINER:
            return status
    return None


def _log_tail(core_api: Any, pod: Any) -> str:
    from kubernetes.client.exceptions import ApiException

    try:
        return core_api.read_namespaced_pod_log(
            pod.metadata.name,
            pod.metadata.namespace,
            container=CONTAINER,
            tail_lines=LOG_TAIL_LINES,
        )
    except ApiException as err:
        return f"(its log could not be read: {err.status} {err.reason})"


def _worker_failure(core_api: Any, pod: Any) -> str | None:
    """Why a worker's pod failed, or None when it did not."""
    status = _container_status(pod)
    terminated = status.state.terminated if status and status.state else None
    if pod.status.phase != "Failed" and not (terminated and terminated.exit_code):
        return None
    index = pod.metadata.labels[REPLICA_INDEX_LABEL]
    if terminated is None:
        why = f"{pod.status.reason or 'Failed'}: {pod.status.message or 'no message'}"
    else:
        why = f"{terminated.reason or 'terminated'}, exit code {terminated.exit_code}"
        if terminated.message:
            why += f": {terminated.message.strip()}"
    log = _log_tail(core_api, pod)
    reported = find_reported_error(log)
    if reported:
        why += f"; it reported: {reported['message']}"
    tail = "\n".join("    " + line for line in log.rstrip().splitlines())
    return f"worker {index} (pod {pod.metadata.name}): {why}\n  last log lines:\n{tail}"


def _pod_states(pods: list[Any]) -> str:
    states = []
    for pod in pods:
        status = _container_status(pod)
        waiting = status.state.waiting if status and status.state else None
        state = pod.status.phase or "Unknown"
        if waiting and waiting.reason:
            state += f" ({waiting.reason})"
        for condition in pod.status.conditions or []:
            if condition.type == "PodScheduled" and condition.status == "False":
                state += f" (unscheduled: {condition.message or condition.reason})"
        states.append(f"worker {pod.metadata.labels[REPLICA_INDEX_LABEL]} {state}")
    return ", ".join(states) or "no pods yet"


def create(job: TrainingJob, launch: Launch) -> None:
    """Creates the TFJob.

    Raises:
        TrainingJobFailed: The cluster refused it (no operator, no right, a name taken).
    """
    from kubernetes.client import CustomObjectsApi
    from kubernetes.client.exceptions import ApiException

    try:
        CustomObjectsApi(launch.api_client).create_namespaced_custom_object(
            GROUP, VERSION, job.namespace, PLURAL, job.manifest()
        )
    except ApiException as err:
        raise TrainingJobFailed(
            f"The cluster refused the TFJob {job.namespace}/{job.name} ({err.status} "
            f"{err.reason}: {kubernetes_message(err)}). Is Kubeflow's Training Operator installed "
            "(make platform) and may the run's service account create tfjobs there?"
        ) from err
    logger.info("Created TFJob %s/%s with %d workers", job.namespace, job.name, job.workers)


def wait(job: TrainingJob, launch: Launch) -> None:
    """Waits until the TFJob succeeds.

    Raises:
        TrainingJobFailed: It failed (each failed worker named, with its reason) or did not
            succeed within ``job.timeout_seconds``.
    """
    from kubernetes.client import CoreV1Api, CustomObjectsApi

    custom, core_api = CustomObjectsApi(launch.api_client), CoreV1Api(launch.api_client)
    deadline = launch.clock() + job.timeout_seconds
    seen: set[str] = set()
    while True:
        body = _read_job(custom, job)
        if body is None:  # The API did not answer this time; the deadline still holds.
            if launch.clock() >= deadline:
                raise TrainingJobFailed(
                    f"The TFJob {job.namespace}/{job.name} could not be read before the "
                    f"{job.timeout_seconds // 60}-minute timeout: the Kubernetes API did not "
                    "answer (see the warnings above)."
                )
            launch.sleep(launch.poll_seconds)
            continue
        conditions = _true_conditions(body)
        for kind in sorted(set(conditions) - seen):
            logger.info("TFJob %s: %s: %s", job.name, kind, conditions[kind].get("message"))
        seen |= set(conditions)
        # Both can be true: the operator marks success on worker 0 and failure on any failed
        # worker in one pass (tfjob_controller.go:463-509). A failure wins.
        if FAILED in conditions:
            failures = [
                found for pod in _pods(core_api, job) if (found := _worker_failure(core_api, pod))
            ]
            raise TrainingJobFailed(
                f"Training across {job.workers} workers failed: "
                f"{conditions[FAILED].get('message') or conditions[FAILED].get('reason')}\n"
                + ("\n".join(failures) or "No worker pod says why (the operator removed them).")
            )
        if SUCCEEDED in conditions:
            return
        if launch.clock() >= deadline:
            raise TrainingJobFailed(
                f"The TFJob {job.namespace}/{job.name} did not finish within "
                f"{job.timeout_seconds // 60} minute(s) (conditions: "
                f"{', '.join(sorted(conditions)) or 'none yet'}; "
                f"{_pod_states(_pods(core_api, job))}). Raise job_timeout_minutes, or look at "
                "why the workers did not get scheduled or did not end."
            )
        launch.sleep(launch.poll_seconds)


def _read_job(custom: Any, job: TrainingJob) -> dict[str, Any] | None:
    """The TFJob as the API has it, or None when the API did not answer this time (a restart
    of the API server, a dropped connection: the next poll tries again).

    Raises:
        TrainingJobFailed: The TFJob is gone (someone deleted it), or the API refuses to show it.
    """
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    try:
        return custom.get_namespaced_custom_object(GROUP, VERSION, job.namespace, PLURAL, job.name)
    except ApiException as err:
        if err.status in (404, 401, 403):
            raise TrainingJobFailed(
                f"The TFJob {job.namespace}/{job.name} cannot be read while the step waits for "
                f"it ({err.status} {err.reason}: {kubernetes_message(err)}); "
                + ("someone deleted it." if err.status == 404 else "the run's account may not.")
            ) from err
        logger.warning(
            "Reading TFJob %s failed (%s %s); trying again", job.name, err.status, err.reason
        )
    except HTTPError as err:
        logger.warning("Reading TFJob %s failed (%s); trying again", job.name, err)
    return None


def delete(job: TrainingJob, launch: Launch) -> None:
    """Deletes the TFJob; its pods and Services go with it. Never raises: the step's outcome
    is decided, and a job left behind is deleted by the operator
    (:data:`TTL_SECONDS_AFTER_FINISHED`, the deadline)."""
    from kubernetes.client import CustomObjectsApi
    from kubernetes.client.exceptions import ApiException

    try:
        CustomObjectsApi(launch.api_client).delete_namespaced_custom_object(
            GROUP, VERSION, job.namespace, PLURAL, job.name, propagation_policy="Background"
        )
        logger.info("Deleted TFJob %s/%s", job.namespace, job.name)
    except ApiException as err:
        if err.status != 404:
            logger.warning("Could not delete TFJob %s/%s: %s", job.namespace, job.name, err)


def _copy_model_whole(staging: Staging, result: dict[str, Any], model_dir: str) -> None:
    """Copies the staged model into ``model_dir`` through a sibling folder renamed into place,
    after checking every file the chief listed arrived at its size."""
    parent = os.path.dirname(os.path.abspath(model_dir))
    os.makedirs(parent, exist_ok=True)
    partial = tempfile.mkdtemp(prefix=".model-", dir=parent)
    try:
        staging.download(MODEL, partial)
        for name, size in result["files"].items():
            path = os.path.join(partial, name)
            if not os.path.isfile(path) or os.path.getsize(path) != size:
                raise TrainingJobFailed(
                    f"The chief's model in {staging.uri(MODEL)} is not whole: {name} is "
                    "missing or not the size the chief wrote. Run the step again."
                )
        if os.path.isdir(model_dir) and not os.listdir(model_dir):
            os.rmdir(model_dir)
        os.replace(partial, model_dir)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


def train_across_workers(
    train_path: str,
    eval_path: str,
    transform_dir: str,
    model_dir: str,
    config: TrainConfig,
    launch: Launch,
) -> dict[str, Any]:
    """Trains in a TFJob of ``config.workers`` pods and puts the chief's model in ``model_dir``.

    Returns:
        What the chief reported: ``epochs_run``, ``replicas``, ``strategy``, ``history``.

    Raises:
        TrainingJobFailed: A worker failed, the job did not finish in time, or the chief's
            model did not arrive whole; ``model_dir`` is not written.
        ConfigurationError: The staging root is not an object store pyarrow opens.
    """
    name = job_name()
    staging = Staging(launch.staging_root, name)
    job = TrainingJob(
        name=name,
        namespace=launch.namespace,
        workers=config.workers,
        image=launch.image,
        args=(
            f"--train-data={staging.uri(TRAIN_DATA)}",
            f"--eval-data={staging.uri(EVAL_DATA)}",
            f"--transform-graph={staging.uri(TRANSFORM)}",
            f"--model={staging.uri(MODEL)}",
            f"--result={staging.uri(RESULT)}",
            f"--config={json.dumps(_config_json(config))}",
        ),
        gpus=launch.gpus,
        object_store_secret=launch.object_store_secret,
        timeout_seconds=config.job_timeout_minutes * 60,
    )
    logger.info("Training across %d workers in TFJob %s/%s", job.workers, job.namespace, name)
    try:
        staging.upload(train_path, TRAIN_DATA)
        staging.upload(eval_path, EVAL_DATA)
        staging.upload(transform_dir, TRANSFORM)
        create(job, launch)
        try:
            wait(job, launch)
        finally:
            delete(job, launch)
        text = staging.read_text(RESULT)
        if text is None:
            raise TrainingJobFailed(
                f"The TFJob {job.namespace}/{name} succeeded but its chief left no result in "
                f"{staging.uri(RESULT)}, so its model may not be whole. Run the step again."
            )
        result = json.loads(text)
        _copy_model_whole(staging, result, model_dir)
    finally:
        try:
            staging.delete()
        except OSError as err:  # The step's outcome is decided; say what is left behind.
            logger.warning("Could not delete the staging folder %s: %s", staging.path, err)
    logger.info("The chief's model of TFJob %s is in %s", name, model_dir)
    return {key: result[key] for key in ("epochs_run", "replicas", "strategy", "history")}


def _config_json(config: TrainConfig) -> dict[str, Any]:
    from dataclasses import asdict

    values = asdict(config)
    values["hidden_units"] = list(values["hidden_units"])
    return values


def train(
    train_path: str,
    eval_path: str,
    transform_dir: str,
    model_dir: str,
    config: TrainConfig,
    launch: Callable[[], Launch],
) -> "TrainResult":
    """The train step: in this process when ``config.workers`` is 1 (``launch`` is never
    called, nothing talks to a cluster), else across a TFJob's workers.

    Args:
        train_path: The train split (Parquet).
        eval_path: The eval split (Parquet).
        transform_dir: The transform artifact.
        model_dir: Where the SavedModel goes.
        config: Hyperparameters and the device layout.
        launch: Where and how the workers run (:func:`from_pod` in a pipeline's pod).

    Raises:
        TrainingJobFailed: The TFJob failed or timed out; ``model_dir`` is not written.
        ConfigurationError: Several workers asked for where there is no cluster.
    """
    from components.train import core

    if config.workers == 1:
        return core.train(train_path, eval_path, transform_dir, model_dir, config)
    found = train_across_workers(train_path, eval_path, transform_dir, model_dir, config, launch())
    return core.TrainResult(**found)
