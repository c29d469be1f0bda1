"""What a person does with a served model after the pipeline rolled it out: see who serves what
share (``status``), send all traffic to a canary (``promote``), and go back to the version that
served before (``rollback``). ``mlops rollout`` calls these with the user's kubeconfig.

A rollback is a rollout of the previous version (:func:`inference_service.rollout`): it waits
until that version serves, and puts the current spec back if it does not. The previous version
and its served folder are in the InferenceService's annotations, set by each rollout that
changed the version; the registry keeps that folder (``retire_served`` keeps the serving version
and the one before it). Rolling back twice goes forward again.
"""

import dataclasses
from typing import Any

from components.errors import ConfigurationError
from components.rollout import inference_service as isvc


@dataclasses.dataclass(frozen=True)
class Share:
    """One version's part of the traffic."""

    version: int | None
    percent: int
    storage_uri: str | None
    role: str


@dataclasses.dataclass(frozen=True)
class Status:
    """Who serves what share of an InferenceService's traffic."""

    name: str
    namespace: str
    mode: str
    ready: str
    url: str | None
    shares: list[Share]
    revision: str | None
    rollback_to: int | None


def _current(api_client: Any, namespace: str, name: str) -> dict[str, Any]:
    found = isvc.InferenceServices(api_client, namespace).get(name)
    if found is None:
        raise ConfigurationError(
            f"No InferenceService {namespace}/{name}: nothing serves {name!r} there "
            "(`kubectl get inferenceservices -A` lists what does)."
        )
    return found


def _annotations(body: dict[str, Any]) -> dict[str, str]:
    return body["metadata"].get("annotations") or {}


def _previous(body: dict[str, Any]) -> tuple[int | None, str | None]:
    annotations = _annotations(body)
    version = annotations.get(isvc.PREVIOUS_VERSION_ANNOTATION)
    return (int(version) if version else None), annotations.get(isvc.PREVIOUS_STORAGE_ANNOTATION)


def status(api_client: Any, namespace: str, name: str) -> Status:
    """The InferenceService's versions and their shares of the traffic, and its readiness.

    In RawDeployment mode one version serves all traffic (KServe 0.15.2 ignores
    ``canaryTrafficPercent`` there); in Serverless mode a canary has its percent and the
    previous version the rest.
    """
    body = _current(api_client, namespace, name)
    predictor = body["spec"]["predictor"]
    mode = _annotations(body).get(isvc.DEPLOYMENT_MODE_ANNOTATION, "Serverless")
    version = isvc.model_version_of(body)
    uri = predictor["model"].get("storageUri")
    before, before_uri = _previous(body)
    canary = predictor.get("canaryTrafficPercent")
    if mode == "Serverless" and canary is not None and before is not None:
        shares = [
            Share(version, int(canary), uri, "canary"),
            Share(before, 100 - int(canary), before_uri, "stable"),
        ]
    else:
        shares = [Share(version, 100, uri, "serving")]
    state = body.get("status", {})
    ready = isvc.condition_of(state, "Ready")
    deployment = None
    if mode == "RawDeployment":
        found = isvc.PredictorWorkloads(api_client, namespace).deployments(body)
        deployment = found[0] if found else None
    return Status(
        name=name,
        namespace=namespace,
        mode=mode,
        ready=(
            "ready"
            if ready and ready.get("status") == "True"
            else isvc.describe_condition(ready)
            if ready
            else "no Ready condition yet"
        ),
        url=state.get("url"),
        shares=shares,
        revision=isvc.revision_of(deployment, state),
        rollback_to=before,
    )


def render(found: Status) -> str:
    """``found`` as the lines ``mlops rollout status`` prints."""
    lines = [f"{found.namespace}/{found.name} ({found.mode}): {found.ready}"]
    for share in found.shares:
        lines.append(
            f"  version {share.version}  {share.percent:>3} %  {share.role:<8} {share.storage_uri}"
        )
    lines.append(f"  revision   {found.revision or 'unknown'}")
    lines.append(f"  url        {found.url or 'none yet'}")
    lines.append(
        f"  rollback   to version {found.rollback_to}"
        if found.rollback_to is not None
        else "  rollback   nothing before this version"
    )
    return "\n".join(lines)


def promote(api_client: Any, namespace: str, name: str) -> str:
    """Sends all traffic to the canary; says what it did."""
    body = _current(api_client, namespace, name)
    mode = _annotations(body).get(isvc.DEPLOYMENT_MODE_ANNOTATION, "Serverless")
    if "canaryTrafficPercent" not in body["spec"]["predictor"]:
        raise ConfigurationError(
            f"{namespace}/{name} has no canary to promote: version "
            f"{isvc.model_version_of(body)} serves all its traffic"
            + (" (RawDeployment serves one version)" if mode == "RawDeployment" else "")
            + "."
        )
    isvc.promote(api_client, namespace, name)
    return f"version {isvc.model_version_of(body)} of {namespace}/{name} now takes all traffic"


def _spec_of(body: dict[str, Any]) -> isvc.InferenceServiceSpec:
    """The spec an InferenceService was rolled out with, read back from its object."""
    predictor = body["spec"]["predictor"]
    model = predictor["model"]
    resources = model.get("resources", {})
    logger = predictor.get("logger", {}).get("url")
    return isvc.InferenceServiceSpec(
        name=body["metadata"]["name"],
        namespace=body["metadata"]["namespace"],
        storage_uri=model["storageUri"],
        model_version=isvc.model_version_of(body),
        runtime=model.get("runtime", isvc.TF_SERVING_RUNTIME),
        service_account=predictor.get("serviceAccountName", "mlops-model-reader"),
        resources=isvc.Resources(
            resources.get("requests", {}).get("cpu", "500m"),
            resources.get("requests", {}).get("memory", "1Gi"),
            resources.get("limits", {}).get("cpu", "1"),
            resources.get("limits", {}).get("memory", "2Gi"),
        ),
        min_replicas=predictor.get("minReplicas", 1),
        max_replicas=predictor.get("maxReplicas", 1),
        deployment_mode=_annotations(body).get(isvc.DEPLOYMENT_MODE_ANNOTATION, "Serverless"),
        # The logger URL names the version: the base without it.
        logger_url=logger.split("?", 1)[0] if logger else None,
    )


def rollback(
    api_client: Any, namespace: str, name: str, timeout_seconds: float = 600.0,
    poll_seconds: float = 2.0,
) -> isvc.ServiceRollout:  # fmt: skip
    """Rolls the version that served before back out, and waits until it serves.

    Raises:
        ConfigurationError: There is no InferenceService, or no version before this one.
        RolloutFailed: The previous version did not serve in time; the current spec is back.
    """
    body = _current(api_client, namespace, name)
    version, uri = _previous(body)
    if version is None or not uri:
        raise ConfigurationError(
            f"{namespace}/{name} has no version to roll back to: version "
            f"{isvc.model_version_of(body)} is the first this suite rolled out there."
        )
    spec = dataclasses.replace(
        _spec_of(body), storage_uri=uri, model_version=version, canary_traffic_percent=None
    )
    return isvc.rollout(api_client, spec, timeout_seconds, poll_seconds)
