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
from components.rollout import graph
from components.rollout import inference_service as isvc

ROUTING_NAMESPACE = "mlops-routing"


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


def _front(api_client: Any, routing_namespace: str | None, name: str) -> dict[str, Any] | None:
    """The blue/green InferenceGraph of ``name``, if the model is served that way."""
    if routing_namespace is None:
        return None
    found = graph.InferenceGraphs(api_client, routing_namespace).get(name)
    return found if graph.live_colour(found) else None


def _colours(
    api_client: Any, namespace: str, name: str, front: dict[str, Any]
) -> tuple[str, dict[str, Any] | None, str, dict[str, Any] | None]:
    live = graph.live_colour(front) or ""
    services = isvc.InferenceServices(api_client, namespace)
    idle = graph.other(live)
    return (
        live,
        services.get(graph.colour_service(name, live)),
        idle,
        services.get(graph.colour_service(name, idle)),
    )


def _ready(body: dict[str, Any] | None) -> str:
    if body is None:
        return "not deployed"
    ready = isvc.condition_of(body.get("status", {}), "Ready")
    if ready and ready.get("status") == "True":
        return "ready"
    return isvc.describe_condition(ready) if ready else "no Ready condition yet"


def _blue_green_status(api_client: Any, namespace: str, name: str, front: dict[str, Any]) -> Status:
    live, live_body, idle, idle_body = _colours(api_client, namespace, name, front)
    split = graph.shares(front)
    shares = [
        Share(isvc.model_version_of(live_body), split.get(live, 0), _uri(live_body), live),
    ]
    if idle_body is not None:
        shares.append(
            Share(isvc.model_version_of(idle_body), split.get(idle, 0), _uri(idle_body), idle)
        )
    routers = graph.RouterWorkloads(api_client, front["metadata"]["namespace"]).deployments(front)
    warm = _warm(front, idle_body)
    return Status(
        name=name,
        namespace=front["metadata"]["namespace"],
        mode="blue-green" if len(split) == 1 else f"canary step: {idle} {split[idle]} %",
        ready=f"{live} {_ready(live_body)}; {idle} {_ready(idle_body)}",
        url=graph.graph_url(name, front["metadata"]["namespace"]),
        shares=shares,
        revision=isvc.revision_of(routers[0] if routers else None, {}),
        rollback_to=(
            isvc.model_version_of(live_body)
            if len(split) > 1
            else isvc.model_version_of(idle_body)
            if warm
            else None
        ),
    )


def _warm(front: dict[str, Any], idle_body: dict[str, Any] | None) -> bool:
    """Whether the idle colour is ready and still serves the version that took all traffic
    before the switch (a canary that stopped short leaves its candidate there instead)."""
    return (
        idle_body is not None
        and _ready(idle_body) == "ready"
        and isvc.model_version_of(idle_body) == graph.spec_of(front).previous_version
    )


def _uri(body: dict[str, Any] | None) -> str | None:
    return (body or {}).get("spec", {}).get("predictor", {}).get("model", {}).get("storageUri")


def status(
    api_client: Any, namespace: str, name: str, routing_namespace: str | None = ROUTING_NAMESPACE
) -> Status:
    """The model's versions and their shares of the traffic, and their readiness.

    Blue/green (an InferenceGraph ``name`` in ``routing_namespace``): the live colour takes all
    traffic, the other is warm for a rollback. One InferenceService: in RawDeployment mode one
    version serves all traffic (KServe 0.15.2 ignores ``canaryTrafficPercent`` there); in
    Serverless mode a canary has its percent and the previous version the rest.
    """
    front = _front(api_client, routing_namespace, name)
    if front is not None:
        return _blue_green_status(api_client, namespace, name, front)
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
    deployment = None
    if mode == "RawDeployment":
        found = isvc.PredictorWorkloads(api_client, namespace).deployments(body)
        deployment = found[0] if found else None
    return Status(
        name=name,
        namespace=namespace,
        mode=mode,
        ready=_ready(body),
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


def promote(
    api_client: Any, namespace: str, name: str, routing_namespace: str | None = ROUTING_NAMESPACE
) -> str:
    """Sends all traffic to the canary; says what it did."""
    front = _front(api_client, routing_namespace, name)
    if front is not None:
        if graph.spec_of(front).canary_percent:
            raise ConfigurationError(
                f"{name} is in a canary step ({graph.shares(front)}): the rollout step that "
                "runs it promotes the candidate when its gates pass; `mlops rollout rollback "
                f"{name}` ends it."
            )
        raise ConfigurationError(
            f"{name} is served blue/green: each rollout switches all traffic at once, so there "
            "is no canary to promote."
        )
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


def _switch_back(
    api_client: Any, namespace: str, name: str, front: dict[str, Any], timeout_seconds: float,
    poll_seconds: float,
) -> isvc.ServiceRollout:  # fmt: skip
    live, live_body, idle, idle_body = _colours(api_client, namespace, name, front)
    current = graph.spec_of(front)
    if current.canary_percent:
        # Mid-canary (its rollout step still running or killed): all traffic back to stable.
        stable = dataclasses.replace(current, canary_url=None, canary_percent=0)
        revision = graph.switch(api_client, stable, timeout_seconds, poll_seconds, put_back=False)
        version = isvc.model_version_of(live_body)
        return isvc.ServiceRollout(
            url=graph.graph_url(name, stable.namespace), revision=revision, model_version=version,
            previous_model_version=isvc.model_version_of(idle_body), rollback_version=None,
        )  # fmt: skip
    if not _warm(front, idle_body):
        state = _ready(idle_body)
        if state == "ready":
            state = (
                f"serving version {isvc.model_version_of(idle_body)}, which never took all "
                "traffic (a canary that stopped before its switch)"
            )
        raise ConfigurationError(
            f"{name} has no warm colour to switch back to: {graph.colour_service(name, idle)} "
            f"is {state}."
        )
    version = isvc.model_version_of(idle_body)
    service = graph.colour_service(name, idle)
    runtime = idle_body["spec"]["predictor"]["model"].get("runtime", isvc.TF_SERVING_RUNTIME)
    routing = front["metadata"]["namespace"]
    target = graph.GraphSpec(
        name=name, namespace=routing, colour=idle,
        url=graph.predictor_url(service, namespace, isvc.RUNTIMES[runtime][0]),
        model_version=version, previous_colour=live,
        previous_version=isvc.model_version_of(live_body),
    )  # fmt: skip
    revision = graph.switch(api_client, target, timeout_seconds, poll_seconds)
    before = isvc.model_version_of(live_body)
    return isvc.ServiceRollout(
        url=graph.graph_url(name, routing), revision=revision, model_version=version,
        previous_model_version=before, rollback_version=before,
    )  # fmt: skip


def rollback(
    api_client: Any, namespace: str, name: str, timeout_seconds: float = 600.0,
    poll_seconds: float = 2.0, routing_namespace: str | None = ROUTING_NAMESPACE,
) -> isvc.ServiceRollout:  # fmt: skip
    """Serves the version that served before again, and waits until it serves: blue/green
    switches the graph to the warm colour; one InferenceService rolls that version out again.

    Raises:
        ConfigurationError: There is no InferenceService, or no version before this one.
        RolloutFailed: The previous version did not serve in time; the current spec is back.
    """
    front = _front(api_client, routing_namespace, name)
    if front is not None:
        return _switch_back(api_client, namespace, name, front, timeout_seconds, poll_seconds)
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
