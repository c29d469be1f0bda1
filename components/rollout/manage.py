"""What a person does with a served model after the pipeline rolled it out: see who serves what
share (``status``), send all traffic to a canary (``promote``), and go back to the version that
served before (``rollback``). ``mlops rollout`` calls these with the user's kubeconfig.

A rollback is a rollout of the previous version (:func:`inference_service.rollout`): it waits
until that version serves, and puts the current spec back if it does not. The previous version
and its served folder are in the InferenceService's annotations, set by each rollout that
changed the version; the registry keeps that folder (``retire_served`` keeps the serving version
and the one before it). Rolling back twice goes forward again.
"""

import copy
import dataclasses
import urllib.parse
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
    mode = _mode(body)
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
    mode = _mode(body)
    if "canaryTrafficPercent" not in body["spec"]["predictor"]:
        raise ConfigurationError(
            f"{namespace}/{name} has no canary to promote: version "
            f"{isvc.model_version_of(body)} serves all its traffic"
            + (" (RawDeployment serves one version)" if mode == "RawDeployment" else "")
            + "."
        )
    isvc.promote(api_client, namespace, name)
    return f"version {isvc.model_version_of(body)} of {namespace}/{name} now takes all traffic"


def _mode(body: dict[str, Any]) -> str:
    # KServe keeps the mode a service was created in in its status (v0.15.2
    # pkg/controller/v1beta1/inferenceservice/utils/utils.go:176-191).
    return body.get("status", {}).get("deploymentMode") or _annotations(body).get(
        isvc.DEPLOYMENT_MODE_ANNOTATION, "Serverless"
    )


def _rolled_back(live: dict[str, Any], version: int, uri: str) -> dict[str, Any]:
    """The live object serving ``version`` from ``uri``: only the model's folder, its version
    annotation and the logger's version change, and a canary goes (all traffic to it); what
    KServe's webhook defaulted or an operator added stays."""
    body = copy.deepcopy(live)
    body.pop("status", None)
    predictor = body["spec"]["predictor"]
    predictor["model"]["storageUri"] = uri
    predictor.setdefault("annotations", {})[isvc.MODEL_VERSION_ANNOTATION] = str(version)
    predictor.pop("canaryTrafficPercent", None)
    if predictor.get("logger", {}).get("url"):
        parts = urllib.parse.urlsplit(predictor["logger"]["url"])
        query = dict(urllib.parse.parse_qsl(parts.query))
        if "version" in query:
            query["version"] = str(version)
            predictor["logger"]["url"] = urllib.parse.urlunsplit(
                parts._replace(query=urllib.parse.urlencode(query))
            )
    return body


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
    mode = _mode(body)
    if mode == "RawDeployment":
        # Reads the rollout needs, tried before anything is written: a user who may not read
        # Deployments would otherwise start the rollback and undo it at the first look.
        isvc.PredictorWorkloads(api_client, namespace).deployments(body)
    spec = isvc.InferenceServiceSpec(
        name=name, namespace=namespace, storage_uri=uri, model_version=version,
        runtime=body["spec"]["predictor"]["model"].get("runtime", isvc.TF_SERVING_RUNTIME),
        deployment_mode=mode,
    )  # fmt: skip
    rolled = _rolled_back(body, version, uri)
    return isvc.rollout(api_client, spec, timeout_seconds, poll_seconds, body=rolled)
