"""The KServe deploy target: create or update an InferenceService, wait for it, roll back.

The InferenceService (``serving.kserve.io/v1beta1``) is built from :class:`InferenceServiceSpec`
in one place. :func:`rollout` applies it and waits for the ``Ready`` condition; when the new
revision does not become ready in time it puts the previous spec back (or deletes a service it
created) and raises :class:`RolloutFailed` with the reason from the conditions, so the previous
model keeps serving.
"""

import copy
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from components.errors import ConfigurationError, PipelineInputError

if TYPE_CHECKING:  # The kubernetes client costs ~1.5 s to import; only the kserve target needs it.
    from kubernetes.client import CustomObjectsApi

logger = logging.getLogger(__name__)

GROUP, VERSION, PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"
DEPLOYMENT_MODE_ANNOTATION = "serving.kserve.io/deploymentMode"
# Set on the predictor: which registry version a revision was rolled out for. Changing it makes a
# new revision, whose storage initializer downloads the model folder again.
MODEL_VERSION_ANNOTATION = "mlops-suite/model-version"
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


class RolloutFailed(PipelineInputError):
    """The new revision did not become ready; the previous spec was restored."""


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
    canary = canary_traffic_percent
    if canary is not None and not 0 <= canary <= 100:
        raise ConfigurationError(f"canary_traffic_percent must be 0..100, got {canary}.")
    if canary is not None and deployment_mode == "RawDeployment":
        raise ConfigurationError(
            "A canary needs KServe's Knative (Serverless) mode; RawDeployment ignores "
            "canaryTrafficPercent. Deploy without a canary or use Serverless mode."
        )


@dataclass(frozen=True)
class InferenceServiceSpec:
    """What to serve and how.

    Attributes:
        name: The InferenceService's name (the model name).
        namespace: The serving namespace.
        storage_uri: Where the storage initializer reads the model (``s3://``, ``gs://``): the
            registry's folder of the model, holding its numeric versions, as TensorFlow
            Serving's ``--model_base_path`` wants; the runtime serves the newest.
        model_version: The registry version this rollout is for.
        runtime: :data:`TF_SERVING_RUNTIME` or :data:`PROJECT_RUNTIME`.
        service_account: Carries the object-store credentials for the storage initializer.
        resources: Predictor requests and limits.
        min_replicas: Fewest predictor pods.
        max_replicas: Most predictor pods.
        canary_traffic_percent: Share of traffic for the new revision (Knative mode only;
            RawDeployment ignores it).
        deployment_mode: ``RawDeployment`` or ``Serverless`` (Knative).
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
class RolloutResult:
    """The outcome of a rollout."""

    url: str
    revision: str | None
    model_version: int | None
    previous_model_version: int | None


def _condition(status: dict[str, Any], kind: str) -> dict[str, Any] | None:
    return next((c for c in status.get("conditions", []) if c.get("type") == kind), None)


def _model_version(body: dict[str, Any] | None) -> int | None:
    if body is None:
        return None
    version = body["spec"]["predictor"].get("annotations", {}).get(MODEL_VERSION_ANNOTATION)
    return int(version) if version else None


class InferenceServices:
    """The InferenceService calls this target makes, through the Kubernetes API."""

    def __init__(self, api: "CustomObjectsApi", namespace: str) -> None:
        self.api, self.namespace = api, namespace

    def get(self, name: str) -> dict[str, Any] | None:
        """The object, or None when there is none."""
        from kubernetes.client.exceptions import ApiException

        try:
            return self.api.get_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, name
            )
        except ApiException as err:
            if err.status == 404:
                return None
            raise

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        """Creates it."""
        return self.api.create_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, body
        )

    def replace_spec(
        self, current: dict[str, Any], spec: dict[str, Any], annotations: dict
    ) -> dict:
        """Puts ``spec`` in place of the current one (optimistic concurrency on resourceVersion)."""
        body = copy.deepcopy(current)
        body["spec"] = spec
        body["metadata"].setdefault("annotations", {}).update(annotations)
        body.pop("status", None)
        name = current["metadata"]["name"]
        return self.api.replace_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, name, body
        )

    def delete(self, name: str) -> None:
        """Deletes it."""
        self.api.delete_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name)


def wait_ready(
    services: InferenceServices,
    name: str,
    generation: int,
    timeout_seconds: float,
    poll_seconds: float = 2.0,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[bool, dict[str, Any]]:
    """Polls until the status describes ``generation`` and says Ready, or the timeout passes.

    Returns:
        Whether it became ready, and the last object seen.
    """
    deadline = clock() + timeout_seconds
    while True:
        current = services.get(name) or {}
        status = current.get("status", {})
        ready = _condition(status, "Ready")
        current_generation = status.get("observedGeneration", 0) >= generation
        if current_generation and ready and ready.get("status") == "True":
            return True, current
        if clock() >= deadline:
            return False, current
        time.sleep(poll_seconds)


def _reason(current: dict[str, Any]) -> str:
    conditions = current.get("status", {}).get("conditions", [])
    failing = [c for c in conditions if c.get("status") != "True"]
    if not failing:
        return "no Ready condition was reported"
    return "; ".join(
        f"{c.get('type')}: {c.get('reason', 'Unknown')}"
        + (f" ({c['message']})" if c.get("message") else "")
        for c in failing
    )


def rollout(
    api: "CustomObjectsApi",
    spec: InferenceServiceSpec,
    timeout_seconds: float = 600.0,
    poll_seconds: float = 2.0,
    before_rollback: Callable[[], None] | None = None,
) -> RolloutResult:
    """Creates or updates the InferenceService and waits for it; rolls back if it fails.

    Args:
        api: The Kubernetes custom-objects API.
        spec: What to serve.
        timeout_seconds: How long the new revision has to become ready.
        poll_seconds: How often to read its status.
        before_rollback: Called when the revision failed, before the previous spec goes back
            (e.g. to take the failed version out of the registry the runtime downloads).

    Raises:
        RolloutFailed: The new revision was not ready in time; the previous spec is back.
    """
    services = InferenceServices(api, spec.namespace)
    body = spec.to_body()
    previous = services.get(spec.name)
    annotations = body["metadata"]["annotations"]
    logger.info(
        "Rolling out %s/%s: %s version %s (previous version: %s)",
        spec.namespace,
        spec.name,
        spec.storage_uri,
        spec.model_version,
        _model_version(previous) or "none",
    )
    if previous is None:
        applied = services.create(body)
    else:
        applied = services.replace_spec(previous, body["spec"], annotations)
    generation = applied["metadata"].get("generation", 1)
    ready, current = wait_ready(services, spec.name, generation, timeout_seconds, poll_seconds)
    if not ready:
        reason = _reason(current)
        if before_rollback is not None:
            before_rollback()
        if previous is None:
            services.delete(spec.name)
            restored = "the new InferenceService was deleted"
        else:
            services.replace_spec(services.get(spec.name) or previous, previous["spec"], {})
            restored = f"the previous spec (version {_model_version(previous)}) was restored"
        raise RolloutFailed(
            f"InferenceService {spec.namespace}/{spec.name} did not become ready within "
            f"{timeout_seconds:.0f} s: {reason}; {restored}."
        )
    status = current.get("status", {})
    predictor = status.get("components", {}).get("predictor", {})
    return RolloutResult(
        url=status.get("url", ""),
        revision=predictor.get("latestReadyRevision"),
        model_version=spec.model_version,
        previous_model_version=_model_version(previous),
    )


def promote(api: "CustomObjectsApi", namespace: str, name: str) -> dict[str, Any]:
    """Sends all traffic to the canary revision (removes ``canaryTrafficPercent``)."""
    services = InferenceServices(api, namespace)
    current = services.get(name)
    if current is None:
        raise ConfigurationError(f"No InferenceService {namespace}/{name} to promote.")
    spec = copy.deepcopy(current["spec"])
    spec["predictor"].pop("canaryTrafficPercent", None)
    return services.replace_spec(current, spec, {})
