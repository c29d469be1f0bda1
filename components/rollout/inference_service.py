"""A KServe InferenceService: create or update it, wait for it, roll it back.

The InferenceService (``serving.kserve.io/v1beta1``) is built from :class:`InferenceServiceSpec`
in one place. :func:`rollout` applies it and waits until the new version serves; when it does
not in time, or its rollout fails, it puts the previous spec back (or deletes a service it
created) and raises :class:`RolloutFailed` with a reason a user can act on, so the previous
model keeps serving.

What "serves" means depends on KServe's deployment mode (read at kserve v0.15.2):

- Serverless (Knative): the InferenceService's ``Ready`` condition and ``observedGeneration``
  are copied from the Knative Service (pkg/apis/serving/v1beta1/inference_service_status.go:
  487-497 and :510), whose ``Ready`` describes its latest revision once Knative has observed the
  new spec. Every spec this module writes changes the predictor's annotations, which go into
  the revision template, so the Knative Service's generation moves with the InferenceService's
  as long as nothing else edits either; a Knative Service whose generation ran ahead (rewritten
  by KServe itself, e.g. after an upgrade) could let an old Ready through.
- RawDeployment: ``Ready`` follows the predictor Deployment's ``Available`` condition
  (inference_service_status.go:347-352) and ``observedGeneration`` is the Deployment's
  (:354). A rolling update keeps ``Available`` True while the old ReplicaSet serves, so both
  say nothing about the new version. This module watches the Deployment's rollout instead, as
  ``kubectl rollout status`` does (kubernetes/kubectl kubernetes-1.32.2
  pkg/polymorphichelpers/rollout_status.go:75-91), after checking that KServe has put the new
  spec into its pod template (the controller updates the Deployment after the InferenceService
  write, not with it).
"""

import copy
import dataclasses
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from components.errors import ConfigurationError, RolloutFailed

if TYPE_CHECKING:  # The kubernetes client costs ~1.5 s to import; only a rollout needs it.
    from kubernetes.client import ApiClient

logger = logging.getLogger(__name__)

GROUP, VERSION, PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"
DEPLOYMENT_MODE_ANNOTATION = "serving.kserve.io/deploymentMode"
# Set on the predictor: which registry version a revision was rolled out for. Changing it makes a
# new revision, whose storage initializer downloads the model folder again. KServe copies the
# predictor's annotations into the pod template of the predictor Deployment (kserve v0.15.2
# pkg/controller/v1beta1/inferenceservice/components/predictor.go:154-156 and :459-463, and
# reconcilers/deployment/deployment_reconciler.go:141 and :152-153).
MODEL_VERSION_ANNOTATION = "mlops-suite/model-version"
# What served before the current version, for `mlops rollout rollback`: set by each rollout that
# changes the version (the registry keeps that version's served folder, retire_served).
PREVIOUS_VERSION_ANNOTATION = "mlops-suite/previous-model-version"
PREVIOUS_STORAGE_ANNOTATION = "mlops-suite/previous-storage-uri"
PREVIOUS_ANNOTATIONS = (PREVIOUS_VERSION_ANNOTATION, PREVIOUS_STORAGE_ANNOTATION)
# Where KServe writes the storageUri into the pod template for the storage initializer
# (v0.15.2 pkg/constants/constants.go:116-117, components/predictor.go:264).
STORAGE_URI_ANNOTATION = "internal.serving.kserve.io/storage-initializer-sourceuri"
# Labels KServe puts on the predictor Deployment (v0.15.2 components/predictor.go:450-458;
# constants.go:50 and :329). Its name is ``<isvc>-predictor``, or ``<isvc>-predictor-default``
# for services created before 0.9 (predictor.go:426-442), so it is found by its labels.
ISVC_LABEL = "serving.kserve.io/inferenceservice"
COMPONENT_LABEL = "component"
# The Deployment condition reason when a rollout made no progress within
# spec.progressDeadlineSeconds (600 s as KServe sets it, deployment_reconciler.go:326-329;
# kubernetes/kubectl kubernetes-1.32.2 pkg/util/deployment/deployment.go:56).
PROGRESS_DEADLINE_EXCEEDED = "ProgressDeadlineExceeded"
# A container waits with these while it is being started, not because it failed.
_STARTING = frozenset({"ContainerCreating", "PodInitializing"})
# KServe's TensorFlow Serving runtime (image tensorflow/serving; V1 REST on 8080, gRPC 9000).
TF_SERVING_RUNTIME = "kserve-tensorflow-serving"
# This project's predictor (images/serving), registered as a ServingRuntime by the manifests.
PROJECT_RUNTIME = "mlops-predictor"
# Runtime → (protocol, image tag). KServe 0.15's TF Serving runtime ships tensorflow/serving
# 2.6.2, which cannot load what TF 2.16 saves (its graphs use ops such as DisableCopyOnRead,
# added after 2.6), so the matching TF Serving release is asked for with runtimeVersion.
RUNTIMES: dict[str, tuple[str, str | None]] = {
    TF_SERVING_RUNTIME: ("v1", "2.16.1"),
    PROJECT_RUNTIME: ("v2", None),
}


@dataclass(frozen=True)
class Resources:
    """Requests and limits of the predictor container."""

    cpu: str = "500m"
    memory: str = "1Gi"
    cpu_limit: str = "1"
    memory_limit: str = "2Gi"

    @classmethod
    def scaled(cls, cpu: str, memory: str) -> "Resources":
        """Requests as given, limits at twice them (``500m`` → ``1000m``, ``1Gi`` → ``2Gi``)."""
        return cls(cpu, memory, _twice(cpu), _twice(memory))

    def to_body(self) -> dict[str, Any]:
        """The Kubernetes ``resources`` block."""
        return {
            "requests": {"cpu": self.cpu, "memory": self.memory},
            "limits": {"cpu": self.cpu_limit, "memory": self.memory_limit},
        }


def _twice(quantity: str) -> str:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([A-Za-z]*)", quantity)
    if not match:
        raise ConfigurationError(f"{quantity!r} is not a Kubernetes quantity such as 500m or 1Gi.")
    number, unit = match.groups()
    doubled = float(number) * 2
    return f"{doubled:g}{unit}"


# Pod-level settings of the restricted Pod Security profile that a ServingRuntime cannot set
# (its pod fields are volumes, node selection and pull secrets only: KServe 0.15.2
# pkg/controller/v1beta1/inferenceservice/utils/utils.go:233-239).
RESTRICTED_POD_SECURITY = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}


def check_options(runtime: str, deployment_mode: str, canary_traffic_percent: int | None) -> None:
    """Raises ConfigurationError for serving options KServe would reject or silently ignore."""
    if runtime not in RUNTIMES:
        raise ConfigurationError(
            f"Unknown serving runtime {runtime!r}; use one of {', '.join(RUNTIMES)}."
        )
    if deployment_mode not in ("RawDeployment", "Serverless"):
        raise ConfigurationError(
            f"Unknown deployment mode {deployment_mode!r}; use RawDeployment or Serverless."
        )
    if runtime == PROJECT_RUNTIME and deployment_mode == "Serverless":
        raise ConfigurationError(
            f"The {PROJECT_RUNTIME} runtime serves HTTP and gRPC on two ports, and Knative "
            "(Serverless) allows one; deploy it in RawDeployment mode, or use "
            f"{TF_SERVING_RUNTIME} in Serverless mode."
        )
    canary = canary_traffic_percent
    if canary is not None and not 0 <= canary <= 100:
        raise ConfigurationError(f"canary_traffic_percent must be 0..100, got {canary}.")
    if canary is not None and deployment_mode == "RawDeployment":
        raise ConfigurationError(
            "A canary needs KServe's Knative (Serverless) mode; RawDeployment ignores "
            "canaryTrafficPercent. Deploy without a canary or use Serverless mode."
        )


# The log sink of manifests/base/log-sink.yaml, for the serving namespace the manifests make.
LOG_SINK_URL = "http://mlops-log-sink.mlops-models.svc.cluster.local/log"
# A predictor pod's grace period with a logger: the agent's 30 s drain, and time to spare.
LOGGER_GRACE_SECONDS = 45


def gains_a_logger(previous: dict[str, Any] | None, body: dict[str, Any]) -> bool:
    """Whether ``body`` adds a payload logger to an InferenceService that had none. KServe then
    points the predictor Service at the agent's port 9081 at once (service_reconciler.go:173-178,
    :271-291), but only pods created from then on have the agent (the pod webhook acts on CREATE:
    config/webhook/manifests.yaml:33-53): until a new pod is ready, requests to the Service are
    refused."""
    if previous is None:
        return False
    had = previous.get("spec", {}).get("predictor", {}).get("logger")
    return not had and "logger" in body["spec"]["predictor"]


def logger_url(base: str, model: str, version: int | None) -> str:
    """The payload logger's URL for one version: the sink's, with the model and version as query
    parameters. KServe 0.15.2's agent posts to the URL as configured, query included
    (kserve/kserve@v0.15.2 pkg/logger/worker.go:86-88), and each version's pods keep their own
    URL, so the sink knows which version answered even while two versions serve."""
    separator = "&" if "?" in base else "?"
    query = urlencode({"model": model, **({"version": version} if version is not None else {})})
    return f"{base}{separator}{query}"


@dataclass(frozen=True)
class InferenceServiceSpec:
    """What to serve and how.

    Attributes:
        name: The InferenceService's name (the model name).
        namespace: The serving namespace.
        storage_uri: Where the storage initializer reads the model (``s3://``, ``gs://``): a
            folder of numeric version folders, as TensorFlow Serving's ``--model_base_path``
            wants, ending with ``/`` (the registry's served folder of one version,
            :meth:`components.registry.ModelRegistry.served_uri`).
        model_version: The registry version this rollout is for.
        runtime: :data:`TF_SERVING_RUNTIME` or :data:`PROJECT_RUNTIME`.
        service_account: Carries the object-store credentials for the storage initializer.
        resources: Predictor requests and limits.
        min_replicas: Fewest predictor pods.
        max_replicas: Most predictor pods.
        canary_traffic_percent: Share of traffic for the new revision (Knative mode only;
            RawDeployment ignores it).
        deployment_mode: ``RawDeployment`` or ``Serverless`` (Knative).
        logger_url: Where KServe's payload logger sends every request and response
            (``logger.mode: all``), or None for no logger. KServe's agent then sits in front of
            the model server on port 9081 (kserve/kserve@v0.15.2 pkg/webhook/admission/pod/
            agent_injector.go:329-334; the predictor Service targets it,
            service_reconciler.go:123-135).
        model: The model's name in the prediction log, when the service's differs (a colour
            of a blue/green pair, ``<model>-blue``).
    """

    name: str
    namespace: str
    storage_uri: str
    model_version: int | None = None
    runtime: str = TF_SERVING_RUNTIME
    service_account: str = "mlops-model-reader"
    resources: Resources = field(default_factory=Resources)
    min_replicas: int = 1
    max_replicas: int = 1
    canary_traffic_percent: int | None = None
    deployment_mode: str = "RawDeployment"
    logger_url: str | None = None
    model: str | None = None

    def __post_init__(self) -> None:
        check_options(self.runtime, self.deployment_mode, self.canary_traffic_percent)
        if not 1 <= self.min_replicas <= self.max_replicas:
            raise ConfigurationError(
                f"Replicas must satisfy 1 <= min ({self.min_replicas}) "
                f"<= max ({self.max_replicas})."
            )

    def to_body(self) -> dict[str, Any]:
        """The InferenceService object."""
        predictor: dict[str, Any] = {
            "serviceAccountName": self.service_account,
            "minReplicas": self.min_replicas,
            "maxReplicas": self.max_replicas,
            # The serving namespace enforces the restricted Pod Security profile; both runtimes'
            # containers set the rest of it (KServe 0.15.2 config/runtimes/
            # kserve-tensorflow-serving.yaml, manifests/base/serving-runtime.yaml), and
            # `make platform` gives the storage initializer the same.
            "securityContext": RESTRICTED_POD_SECURITY,
            "model": {
                "modelFormat": {"name": "tensorflow"},
                "runtime": self.runtime,
                "protocolVersion": RUNTIMES[self.runtime][0],
                "storageUri": self.storage_uri,
                "resources": self.resources.to_body(),
            },
        }
        if (runtime_version := RUNTIMES[self.runtime][1]) is not None:
            predictor["model"]["runtimeVersion"] = runtime_version
        if self.canary_traffic_percent is not None:
            predictor["canaryTrafficPercent"] = self.canary_traffic_percent
        if self.logger_url:
            # mode "all": the request, and the response when the model answered 200
            # (pkg/logger/handler.go:143, :177).
            predictor["logger"] = {
                "mode": "all",
                "url": logger_url(self.logger_url, self.model or self.name, self.model_version),
            }
            # The agent drains its queued events for 30 s when the pod stops
            # (cmd/agent/main.go:91, :233-236); KServe's default grace period is 30 s too
            # (deployment_reconciler.go:254-257), which kills it as it finishes.
            predictor["terminationGracePeriodSeconds"] = LOGGER_GRACE_SECONDS
        if self.model_version is not None:
            predictor["annotations"] = {MODEL_VERSION_ANNOTATION: str(self.model_version)}
        return {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "InferenceService",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "annotations": {DEPLOYMENT_MODE_ANNOTATION: self.deployment_mode},
                "labels": {"app.kubernetes.io/managed-by": "mlops-suite"},
            },
            "spec": {"predictor": predictor},
        }


@dataclass(frozen=True)
class ServiceRollout:
    """What an InferenceService serves after a rollout, what it served before, and what a
    rollback would go to (the last version that took all traffic before this one)."""

    url: str
    revision: str | None
    model_version: int | None
    previous_model_version: int | None
    rollback_version: int | None = None


def condition_of(status: dict[str, Any], kind: str) -> dict[str, Any] | None:
    return next((c for c in status.get("conditions", []) if c.get("type") == kind), None)


def model_version_of(body: dict[str, Any] | None) -> int | None:
    if body is None:
        return None
    version = body["spec"]["predictor"].get("annotations", {}).get(MODEL_VERSION_ANNOTATION)
    return int(version) if version else None


def rollback_version_of(body: dict[str, Any] | None) -> int | None:
    """The version a rollback of the InferenceService goes to (the last that took all its
    traffic before the current one), if any."""
    annotations = (body or {}).get("metadata", {}).get("annotations") or {}
    version = annotations.get(PREVIOUS_VERSION_ANNOTATION)
    return int(version) if version else None


def describe_condition(condition: dict[str, Any]) -> str:
    detail = condition.get("reason", "Unknown")
    if condition.get("message"):
        detail += f": {condition['message']}"
    return f"{condition.get('type')}={condition.get('status')} ({detail})"


def _shorten(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class CustomObjects:
    """Reads of one kind of custom object in a namespace, through the Kubernetes API."""

    group, version, plural = GROUP, VERSION, PLURAL

    def __init__(self, api_client: "ApiClient", namespace: str) -> None:
        from kubernetes.client import CustomObjectsApi

        self.api, self.namespace = CustomObjectsApi(api_client), namespace

    def get(self, name: str) -> dict[str, Any] | None:
        """The object, or None when there is none."""
        from kubernetes.client.exceptions import ApiException

        try:
            return self.api.get_namespaced_custom_object(
                self.group, self.version, self.namespace, self.plural, name
            )
        except ApiException as err:
            if err.status == 404:
                return None
            raise

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        """Creates it."""
        return self.api.create_namespaced_custom_object(
            self.group, self.version, self.namespace, self.plural, body
        )

    def delete(self, name: str) -> None:
        """Deletes it."""
        self.api.delete_namespaced_custom_object(
            self.group, self.version, self.namespace, self.plural, name
        )

    def replace(
        self,
        current: dict[str, Any],
        edit: Callable[[dict[str, Any]], None],
        attempts: int = 5,
        on_conflict: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Writes ``current`` as ``edit`` changes it (its status left out).

        The write carries the resourceVersion read; KServe's controllers write the status all
        along, which changes it, so on a 409 Conflict the object is read again and the write
        retried, after ``on_conflict(fresh)``, which raises when the fresh object may not be
        written over.
        """
        from kubernetes.client.exceptions import ApiException

        name = current["metadata"]["name"]
        for attempt in range(1, attempts + 1):
            body = copy.deepcopy(current)
            body.pop("status", None)
            edit(body)
            try:
                return self.api.replace_namespaced_custom_object(
                    self.group, self.version, self.namespace, self.plural, name, body
                )
            except ApiException as err:
                fresh = self.get(name) if err.status == 409 and attempt < attempts else None
                if fresh is None:
                    raise
                if on_conflict is not None:
                    on_conflict(fresh)
                current = fresh
        raise AssertionError("unreachable")


class InferenceServices(CustomObjects):
    """The InferenceService calls a rollout makes, through the Kubernetes API."""

    def replace_spec(
        self, current: dict[str, Any], spec: dict[str, Any], annotations: dict, attempts: int = 5
    ) -> dict:
        """Puts ``spec`` in place of the current one, with ``annotations`` (a None value
        removes that one); retried on a 409 Conflict (:meth:`CustomObjects.replace`)."""

        def edit(body: dict[str, Any]) -> None:
            body["spec"] = spec
            kept = body["metadata"].setdefault("annotations", {})
            for key, value in annotations.items():
                if value is None:
                    kept.pop(key, None)
                else:
                    kept[key] = value

        return self.replace(current, edit, attempts)


class PredictorWorkloads:
    """What KServe runs for a predictor in RawDeployment mode, read through the Kubernetes API:
    its Deployment (``apps/v1 deployments``, list) and, to explain a failure, its pods
    (``v1 pods``, list). Nothing here writes."""

    def __init__(self, api_client: "ApiClient", namespace: str) -> None:
        from kubernetes.client import AppsV1Api, CoreV1Api

        self.apps, self.core, self.namespace = (
            AppsV1Api(api_client),
            CoreV1Api(api_client),
            namespace,
        )

    def deployments(self, service: dict[str, Any]) -> list[dict[str, Any]]:
        """The predictor Deployments KServe made for ``service``: by KServe's labels, and owned
        by this very InferenceService (KServe sets itself as controller, predictor.go:695-698),
        so a leftover of a deleted namesake never counts."""
        name = service["metadata"]["name"]
        return self.owned(service, f"{ISVC_LABEL}={name},{COMPONENT_LABEL}=predictor")

    def owned(self, owner: dict[str, Any], selector: str) -> list[dict[str, Any]]:
        """The Deployments ``selector`` matches whose controlling owner is ``owner``."""
        uid = owner["metadata"].get("uid")
        response = self.apps.list_namespaced_deployment(
            self.namespace, label_selector=selector, _preload_content=False
        )
        return [
            deployment
            for deployment in json.loads(response.data).get("items", [])
            if uid is None
            or any(
                reference.get("uid") == uid and reference.get("controller")
                for reference in deployment["metadata"].get("ownerReferences", [])
            )
        ]

    def pods(self, deployment: dict[str, Any]) -> list[dict[str, Any]]:
        """The pods the Deployment's selector matches, old and new."""
        match = deployment["spec"]["selector"].get("matchLabels", {})
        response = self.core.list_namespaced_pod(
            self.namespace,
            label_selector=",".join(f"{key}={value}" for key, value in sorted(match.items())),
            _preload_content=False,
        )
        return json.loads(response.data).get("items", [])


@dataclass(frozen=True)
class _Progress:
    """One look at a rollout: done, failed for good, or still going (and why)."""

    done: bool = False
    failed: bool = False
    detail: str = ""
    deployment: dict[str, Any] | None = None
    service: dict[str, Any] = field(default_factory=dict)


def _template_marker(spec: InferenceServiceSpec) -> dict[str, str]:
    # What identifies the new spec in the predictor's pod template (and in its pods).
    if spec.model_version is not None:
        return {MODEL_VERSION_ANNOTATION: str(spec.model_version)}
    return {STORAGE_URI_ANNOTATION: spec.storage_uri}


def _carries(metadata: dict[str, Any], marker: dict[str, str]) -> bool:
    annotations = metadata.get("annotations") or {}
    return all(annotations.get(key) == value for key, value in marker.items())


def _deployment_progress(deployment: dict[str, Any], marker: dict[str, str]) -> _Progress:
    """Whether a predictor Deployment has rolled out the pod template carrying ``marker``.

    Done when KServe has put the new spec into the template, the Deployment controller has
    observed that generation, every desired replica runs the new template, no old one is left
    and every new one is available (kubectl's rule, rollout_status.go:75-91). Failed when the
    ``Progressing`` condition says ``ProgressDeadlineExceeded``.
    """
    name = deployment["metadata"]["name"]
    if not _carries(deployment["spec"]["template"].get("metadata", {}), marker):
        return _Progress(
            detail=f"KServe has not put the new spec into Deployment {name} yet",
            deployment=deployment,
        )
    status = deployment.get("status") or {}
    generation = deployment["metadata"].get("generation", 0)
    if status.get("observedGeneration", 0) < generation:
        return _Progress(
            detail=f"Deployment {name} generation {generation} is not observed yet",
            deployment=deployment,
        )
    progressing = condition_of(status, "Progressing")
    if progressing and progressing.get("reason") == PROGRESS_DEADLINE_EXCEEDED:
        deadline = deployment["spec"].get("progressDeadlineSeconds", 600)
        return _Progress(
            failed=True,
            detail=f"Deployment {name} made no progress within its {deadline} s progress deadline",
            deployment=deployment,
        )
    desired = deployment["spec"].get("replicas", 1)
    updated = status.get("updatedReplicas", 0)
    replicas = status.get("replicas", 0)
    available = status.get("availableReplicas", 0)
    if updated >= desired and replicas <= updated and available >= updated:
        return _Progress(done=True, deployment=deployment)
    return _Progress(
        detail=f"Deployment {name} has {updated} of {desired} replica(s) on the new version, "
        f"{available} of {replicas} pod(s) available, {max(replicas - updated, 0)} old pod(s) "
        "left",
        deployment=deployment,
    )


def _pod_problems(pods: list[dict[str, Any]], marker: dict[str, str], limit: int = 3) -> list[str]:
    """Why the new pods (those carrying ``marker``) do not run: unschedulable, or a container
    (the storage initializer or the model server) waiting in a failure state such as
    ``CrashLoopBackOff`` or ``ImagePullBackOff``, with its last exit. KServe reads the same
    fields to report a model that failed to load (inference_service_status.go:602-631, :649-663).
    """
    problems = []
    for pod in pods:
        if not _carries(pod["metadata"], marker):
            continue  # A pod of the previous version.
        status = pod.get("status") or {}
        found = [
            f"not scheduled ({describe_condition(condition)})"
            for condition in status.get("conditions", [])
            if condition.get("type") == "PodScheduled" and condition.get("status") == "False"
        ]
        containers = status.get("initContainerStatuses", []) + status.get("containerStatuses", [])
        for container in containers:
            state = container.get("state") or {}
            waiting, terminated = state.get("waiting"), state.get("terminated")
            if waiting and waiting.get("reason") not in _STARTING:
                text = f"container {container['name']} {waiting.get('reason')}"
                if waiting.get("message"):
                    text += f": {_shorten(waiting['message'])}"
            elif terminated and terminated.get("exitCode", 0) != 0:
                text = f"container {container['name']} exited {terminated['exitCode']}"
                text += f" ({terminated.get('reason', 'Error')})"
                if terminated.get("message"):
                    text += f": {_shorten(terminated['message'])}"
            else:
                continue
            last = (container.get("lastState") or {}).get("terminated")
            if last and not terminated:
                text += f"; last exit {last.get('exitCode')} ({last.get('reason', 'Error')})"
                if last.get("message"):
                    text += f": {_shorten(last['message'])}"
            found.append(text)
        if found:
            problems.append(f"pod {pod['metadata']['name']}: " + ", ".join(found))
    return problems[:limit]


def _poll(
    look: Callable[[], _Progress],
    timeout_seconds: float,
    poll_seconds: float,
    clock: Callable[[], float] = time.monotonic,
) -> _Progress:
    deadline = clock() + timeout_seconds
    while True:
        progress = look()
        if progress.done or progress.failed or clock() >= deadline:
            return progress
        time.sleep(poll_seconds)


def _serverless_look(
    services: InferenceServices, name: str, generation: int
) -> Callable[[], _Progress]:
    def look() -> _Progress:
        current = services.get(name) or {}
        status = current.get("status", {})
        if status.get("observedGeneration", 0) < generation:
            detail = f"KServe has not reported on generation {generation} yet"
            return _Progress(detail=detail, service=current)
        ready = condition_of(status, "Ready")
        if ready and ready.get("status") == "True":
            return _Progress(done=True, service=current)
        return _Progress(detail=_service_conditions(current), service=current)

    return look


def _raw_look(
    services: InferenceServices,
    workloads: PredictorWorkloads,
    name: str,
    marker: dict[str, str],
) -> Callable[[], _Progress]:
    def look() -> _Progress:
        current = services.get(name) or {}
        deployments = workloads.deployments(current) if current else []
        if not deployments:
            return _Progress(
                detail="KServe has not created the predictor Deployment ("
                + _service_conditions(current)
                + ")",
                service=current,
            )
        for deployment in deployments:
            progress = _deployment_progress(deployment, marker)
            if not progress.done:
                return dataclasses.replace(progress, service=current)
        # Rolled out; Ready now also says whether KServe made the ingress.
        ready = condition_of(current.get("status", {}), "Ready")
        if ready and ready.get("status") == "True":
            return _Progress(done=True, deployment=deployments[0], service=current)
        return _Progress(
            detail="the predictor rolled out but the InferenceService is not Ready ("
            + _service_conditions(current)
            + ")",
            deployment=deployments[0],
            service=current,
        )

    return look


def _service_conditions(current: dict[str, Any]) -> str:
    conditions = current.get("status", {}).get("conditions", [])
    failing = [c for c in conditions if c.get("status") != "True"]
    if not failing:
        return "no failing condition was reported"
    return "; ".join(describe_condition(c) for c in failing)


def _explain_raw(workloads: PredictorWorkloads, progress: _Progress, marker: dict[str, str]) -> str:
    from kubernetes.client.exceptions import ApiException

    deployment = progress.deployment
    if deployment is None:
        return progress.detail
    name = deployment["metadata"]["name"]
    conditions = (deployment.get("status") or {}).get("conditions", [])
    parts = [progress.detail]
    if conditions:
        parts.append(f"Deployment {name}: " + "; ".join(describe_condition(c) for c in conditions))
    try:
        problems = _pod_problems(workloads.pods(deployment), marker)
    except ApiException as err:  # The rollout failed either way; say why pods are not shown.
        problems = [f"the new pods could not be read ({err.status} {err.reason})"]
    parts.extend(problems or ["no new pod reports a failure"])
    parts.append(
        f"look at `kubectl -n {workloads.namespace} describe deployment {name}` and the logs "
        "of its newest pods"
    )
    return "; ".join(parts)


def revision_of(deployment: dict[str, Any] | None, status: dict[str, Any]) -> str | None:
    if deployment is not None:
        revision = (
            deployment["metadata"].get("annotations", {}).get("deployment.kubernetes.io/revision")
        )
        name = deployment["metadata"]["name"]
        return f"{name} revision {revision}" if revision else name
    return status.get("components", {}).get("predictor", {}).get("latestReadyRevision")


def rollout(
    api_client: "ApiClient",
    spec: InferenceServiceSpec,
    timeout_seconds: float = 600.0,
    poll_seconds: float = 2.0,
    on_rollback: Callable[[], None] | None = None,
    body: dict[str, Any] | None = None,
) -> ServiceRollout:
    """Creates or updates the InferenceService, waits until the new version serves, rolls back
    if it does not.

    Args:
        api_client: A Kubernetes API client. Calls made: InferenceServices get, create, update
            (and delete, to undo a create); in RawDeployment mode also apps/v1 Deployments list
            and, once, when a rollout failed, v1 pods list, in ``spec.namespace``.
        spec: What to serve.
        timeout_seconds: How long the new version has to serve.
        poll_seconds: How often to look.
        on_rollback: Called when the rollout failed, once the previous spec is back (e.g. to
            take the failed version out of the registry).
        body: The object to apply instead of ``spec.to_body()`` (a rollback changes the live
            object only where it must); ``spec`` still names it, its mode and its version.

    Raises:
        ConfigurationError: The InferenceService exists in the other deployment mode.
        RolloutFailed: The new version did not serve in time, or its rollout failed; the
            previous spec is back.
    """
    services = InferenceServices(api_client, spec.namespace)
    workloads = PredictorWorkloads(api_client, spec.namespace)
    body = copy.deepcopy(body) if body is not None else spec.to_body()
    previous = services.get(spec.name)
    _check_mode(previous, spec)
    annotations = body["metadata"]["annotations"]
    before = model_version_of(previous)
    # What a rollback goes to is the last version that took all traffic: KServe's own "prev"
    # target in Serverless mode is the latest rolled-out revision, which a canary that was never
    # promoted did not replace (v0.15.2 pkg/controller/v1beta1/inferenceservice/reconcilers/
    # knative/ksvc_reconciler.go:106-134, pkg/apis/serving/v1beta1/inference_service_status.go:
    # 457-465). Over such a canary, or for the same version again, it stays what it was.
    unpromoted = previous is not None and "canaryTrafficPercent" in previous["spec"]["predictor"]
    if before is not None and before != spec.model_version and not unpromoted:
        annotations[PREVIOUS_VERSION_ANNOTATION] = str(before)
        annotations[PREVIOUS_STORAGE_ANNOTATION] = previous["spec"]["predictor"]["model"][
            "storageUri"
        ]
    logger.info(
        "Rolling out %s/%s (%s): %s version %s (previous version: %s)",
        spec.namespace,
        spec.name,
        spec.deployment_mode,
        spec.storage_uri,
        spec.model_version,
        model_version_of(previous) or "none",
    )
    if gains_a_logger(previous, body):
        logger.warning(
            "%s/%s gets a payload logger now: its predictor Service moves to KServe's agent at "
            "once, and the running pods have none, so requests are refused until the new pod is "
            "ready (once; later rollouts keep the logger). Roll out with prediction_log_url='' "
            "to keep serving without a prediction log.",
            spec.namespace,
            spec.name,
        )
    if previous is None:
        applied = services.create(body)
    else:
        applied = services.replace_spec(previous, body["spec"], annotations)
    marker = _template_marker(spec)
    if spec.deployment_mode == "RawDeployment":
        look = _raw_look(services, workloads, spec.name, marker)
    else:
        look = _serverless_look(services, spec.name, applied["metadata"].get("generation", 1))
    try:
        progress = _poll(look, timeout_seconds, poll_seconds)
        if not progress.done and spec.deployment_mode == "RawDeployment":
            reason = _explain_raw(workloads, progress, marker)
        else:
            reason = progress.detail
    except BaseException:
        # The rollout cannot be watched (e.g. the API refused a read): do not leave it half done.
        _restore(services, spec, previous)
        raise
    if not progress.done:
        restored = _restore(services, spec, previous)
        if on_rollback is not None:
            on_rollback()
        outcome = (
            "failed to roll out"
            if progress.failed
            else f"did not serve within {timeout_seconds:g} s"
        )
        raise RolloutFailed(
            f"InferenceService {spec.namespace}/{spec.name} {outcome} version "
            f"{spec.model_version}: {reason}; {restored}."
        )
    status = progress.service.get("status", {})
    return ServiceRollout(
        url=status.get("url", ""),
        revision=revision_of(progress.deployment, status),
        model_version=spec.model_version,
        previous_model_version=model_version_of(previous),
        rollback_version=rollback_version_of(progress.service or services.get(spec.name)),
    )


def _check_mode(previous: dict[str, Any] | None, spec: InferenceServiceSpec) -> None:
    # KServe keeps the mode an InferenceService was created in (status.deploymentMode wins,
    # v0.15.2 pkg/controller/v1beta1/inferenceservice/utils/utils.go:176-180) and its webhook
    # rejects a change (pkg/apis/serving/v1beta1/inference_service_validation.go:447-457).
    mode = (previous or {}).get("status", {}).get("deploymentMode")
    if mode and mode != spec.deployment_mode:
        raise ConfigurationError(
            f"InferenceService {spec.namespace}/{spec.name} runs in {mode} mode; KServe does "
            f"not switch it to {spec.deployment_mode}. Deploy with deployment_mode={mode}, or "
            "delete the InferenceService first."
        )


def _restore(
    services: InferenceServices, spec: InferenceServiceSpec, previous: dict[str, Any] | None
) -> str:
    if previous is None:
        services.delete(spec.name)
        return "the new InferenceService was deleted"
    # What served before, and what it would roll back to, as they were.
    before = previous["metadata"].get("annotations") or {}
    annotations = {key: before.get(key) for key in PREVIOUS_ANNOTATIONS}
    services.replace_spec(services.get(spec.name) or previous, previous["spec"], annotations)
    return f"the previous spec (version {model_version_of(previous)}) was restored"


def promote(api_client: "ApiClient", namespace: str, name: str) -> dict[str, Any]:
    """Sends all traffic to the canary revision (removes ``canaryTrafficPercent``)."""
    services = InferenceServices(api_client, namespace)
    current = services.get(name)
    if current is None:
        raise ConfigurationError(f"No InferenceService {namespace}/{name} to promote.")
    spec = copy.deepcopy(current["spec"])
    spec["predictor"].pop("canaryTrafficPercent", None)
    return services.replace_spec(current, spec, {})
