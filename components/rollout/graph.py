"""A model's front door for blue/green in RawDeployment mode: a KServe InferenceGraph whose
router sends every request to one colour's predictor.

What KServe 0.15.2 does with it (kserve/kserve at v0.15.2; paths from its root):

- A RawDeployment InferenceGraph becomes a Deployment and a Service named after the graph
  (port 80 to the router's 8080), running the router with the graph's spec as JSON in its
  arguments (pkg/controller/v1alpha1/inferencegraph/raw_ig.go:50-100, :150-185). The Deployment
  carries the graph's labels plus ``serving.kserve.io/inferencegraph: <graph>``
  (raw_ig.go:121) and ``app: isvc.<graph>``, its selector; its pod template carries the graph's
  annotations (pkg/controller/v1beta1/inferenceservice/reconcilers/deployment/
  deployment_reconciler.go:136-158). So a switch is a rolling update of the router: for a few
  seconds both routers answer, the old pods draining.
- The graph is Ready once its Deployment has an ``Available`` condition, whatever its status,
  and ``observedGeneration`` is the Deployment's (controller.go:190-207, raw_ig.go:195-213):
  neither says the switch happened, so :func:`switch` watches the router's rollout as
  :mod:`inference_service` watches a predictor's.
- The router container sets no seccomp profile and the graph has no pod security context
  (raw_ig.go:56-85), so the restricted Pod Security profile of the serving namespace refuses its
  pods: the graph lives in a namespace of its own (``mlops-routing``, baseline). Steps that name
  an InferenceService are looked up in the graph's namespace (controller.go:156-176), so each
  step gives the predictor's URL in the serving namespace instead (``serviceUrl``), as the
  controller would have resolved it (pkg/controller/v1beta1/inferenceservice/utils/utils.go
  ``GetPredictorEndpoint``: ``/v1/models/<isvc>:predict`` or ``/v2/models/<isvc>/infer``).
- The router posts the request body to the step's URL whatever the request's path, and answers
  with the step's status and body (cmd/router/main.go:96-170, :378-395). It forwards only the
  headers the ``router`` config lists under ``headers.propagate`` (main.go:127-146,
  raw_ig.go:88-97); ``make platform`` lists ``Ce-Id`` so a client's id reaches the prediction log.
- A ``Splitter`` node draws a number in [0, 100] and finds no step for 100 when the weights sum to
  100, as the webhook demands, so about one request in 101 kills its connection
  (main.go:172-187; inference_graph_validation.go:195-210; fixed after 0.15.2 by
  kserve/kserve#5489). A ``Sequence`` node of one step draws nothing: blue/green uses that.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from components.errors import RolloutFailed
from components.rollout import inference_service as isvc

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

logger = logging.getLogger(__name__)

GROUP, VERSION, PLURAL = "serving.kserve.io", "v1alpha1", "inferencegraphs"
GRAPH_LABEL = "serving.kserve.io/inferencegraph"
COLOURS = ("blue", "green")
# On the graph, and so in its router's pod template: which colour takes the traffic, and the
# registry version it serves; the colour that served before, for `mlops rollout rollback`.
LIVE_COLOUR_ANNOTATION = "mlops-suite/live-colour"
PREVIOUS_COLOUR_ANNOTATION = "mlops-suite/previous-colour"
# During a canary step: "<colour> <percent>", the candidate and its share.
CANARY_ANNOTATION = "mlops-suite/canary"
# The version the previous colour served when traffic left it: that colour is a warm rollback
# target only while it still serves that version (a canary that stopped short leaves it on
# its candidate instead).
PREVIOUS_VERSION_ANNOTATION = isvc.PREVIOUS_VERSION_ANNOTATION


def colour_service(model: str, colour: str) -> str:
    """The InferenceService of one colour of ``model``."""
    return f"{model}-{colour}"


def other(colour: str | None) -> str:
    """The colour that is not ``colour`` (blue when there is none yet)."""
    return "green" if colour == "blue" else "blue"


def predictor_url(service: str, namespace: str, protocol: str) -> str:
    """Where the router sends a request for the InferenceService ``service`` (raw mode: its
    predictor Service, port 80)."""
    base = f"http://{service}-predictor.{namespace}.svc.cluster.local"
    if protocol == "v1":
        return f"{base}/v1/models/{service}:predict"
    return f"{base}/v2/models/{service}/infer"


def graph_url(name: str, namespace: str) -> str:
    """The graph's Service in the cluster (the router ignores the path)."""
    return f"http://{name}.{namespace}.svc.cluster.local"


@dataclass(frozen=True)
class GraphSpec:
    """An InferenceGraph sending all traffic to one colour, or, during a canary step, a share
    to the other (a ``Splitter``: see the module docstring for what 0.15.2's costs).

    Attributes:
        name: The graph's name: the model's.
        namespace: Where the graph runs (not the serving namespace: see the module docstring).
        colour: The colour that takes the traffic.
        url: That colour's predictor URL (:func:`predictor_url`).
        model_version: The registry version that colour serves.
        previous_colour: The colour that took the traffic before, if any.
        previous_version: The version it served then.
        canary_url: The other colour's predictor URL, during a canary step.
        canary_percent: Its share of the traffic (0: no canary).
    """

    name: str
    namespace: str
    colour: str
    url: str
    model_version: int | None
    previous_colour: str | None = None
    previous_version: int | None = None
    canary_url: str | None = None
    canary_percent: int = 0

    @property
    def marker(self) -> dict[str, str]:
        """What identifies this spec in the router's pod template."""
        return {
            LIVE_COLOUR_ANNOTATION: self.colour,
            isvc.MODEL_VERSION_ANNOTATION: str(self.model_version),
            CANARY_ANNOTATION: f"{other(self.colour)} {self.canary_percent}",
        }

    @property
    def shares(self) -> dict[str, int]:
        """Colour → percent of the traffic."""
        if not self.canary_percent:
            return {self.colour: 100}
        return {self.colour: 100 - self.canary_percent, other(self.colour): self.canary_percent}

    def _steps(self) -> dict[str, Any]:
        live = {"name": self.colour, "serviceUrl": self.url, "dependency": "Hard"}
        if not self.canary_percent:
            return {"routerType": "Sequence", "steps": [live]}
        canary = {"name": other(self.colour), "serviceUrl": self.canary_url, "dependency": "Hard"}
        return {
            "routerType": "Splitter",
            "steps": [
                {**live, "weight": 100 - self.canary_percent},
                {**canary, "weight": self.canary_percent},
            ],
        }

    def to_body(self) -> dict[str, Any]:
        annotations = {isvc.DEPLOYMENT_MODE_ANNOTATION: "RawDeployment", **self.marker}
        if self.previous_colour:
            annotations[PREVIOUS_COLOUR_ANNOTATION] = self.previous_colour
        if self.previous_version is not None:
            annotations[PREVIOUS_VERSION_ANNOTATION] = str(self.previous_version)
        return {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "InferenceGraph",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "annotations": annotations,
                "labels": {"app.kubernetes.io/managed-by": "mlops-suite"},
            },
            "spec": {"nodes": {"root": self._steps()}},
        }


def live_colour(graph: dict[str, Any] | None) -> str | None:
    """The colour a graph sends traffic to, or None when there is no graph."""
    annotations = (graph or {}).get("metadata", {}).get("annotations") or {}
    return annotations.get(LIVE_COLOUR_ANNOTATION)


def spec_of(graph: dict[str, Any]) -> GraphSpec:
    """The spec a live graph was written from."""
    annotations = graph["metadata"].get("annotations") or {}
    steps = {step.get("name"): step for step in graph["spec"]["nodes"]["root"]["steps"]}
    colour = annotations[LIVE_COLOUR_ANNOTATION]
    canary = steps.get(other(colour))
    version = annotations.get(isvc.MODEL_VERSION_ANNOTATION)
    before = annotations.get(PREVIOUS_VERSION_ANNOTATION)
    return GraphSpec(
        name=graph["metadata"]["name"],
        namespace=graph["metadata"]["namespace"],
        colour=colour,
        url=steps[colour]["serviceUrl"],
        model_version=int(version) if version and version != "None" else None,
        previous_colour=annotations.get(PREVIOUS_COLOUR_ANNOTATION),
        previous_version=int(before) if before else None,
        canary_url=canary["serviceUrl"] if canary else None,
        canary_percent=int(canary.get("weight", 0)) if canary else 0,
    )


def _ours(graph: dict[str, Any]) -> tuple[Any, dict[str, str]]:
    """What this suite wrote into a graph: its nodes and its annotations."""
    annotations = graph["metadata"].get("annotations") or {}
    mine = {key: value for key, value in annotations.items() if key.startswith("mlops-suite/")}
    return graph["spec"].get("nodes"), mine


def shares(graph: dict[str, Any]) -> dict[str, int]:
    """Colour → percent of the traffic the graph sends it."""
    return spec_of(graph).shares


class InferenceGraphs(isvc.CustomObjects):
    """InferenceGraph calls through the Kubernetes API (get, create, update, delete)."""

    group, version, plural = GROUP, VERSION, PLURAL

    def write(self, spec: GraphSpec, live: dict[str, Any] | None) -> dict[str, Any]:
        """Creates the graph, or replaces the live one's nodes and mlops-suite annotations (what
        KServe or an operator added stays). KServe's controller writes the graph's status at
        each reconcile (raw_ig.go:195-213): a conflict with that is retried; one with a write
        of someone else's is not.

        Raises:
            RolloutFailed: Someone else changed the graph since ``live`` was read.
        """
        body = spec.to_body()
        if live is None:
            return self.create(body)
        basis = _ours(live)

        def edit(updated: dict[str, Any]) -> None:
            annotations = updated["metadata"].setdefault("annotations", {})
            for key in (PREVIOUS_COLOUR_ANNOTATION, PREVIOUS_VERSION_ANNOTATION):
                annotations.pop(key, None)
            annotations.update(body["metadata"]["annotations"])
            updated["spec"]["nodes"] = body["spec"]["nodes"]

        def on_conflict(fresh: dict[str, Any]) -> None:
            if _ours(fresh) != basis:
                raise RolloutFailed(
                    f"InferenceGraph {self.namespace}/{spec.name} was changed by someone else "
                    f"while this rollout wrote it (it now sends {shares(fresh)}); left as they "
                    "wrote it"
                )

        return self.replace(live, edit, on_conflict=on_conflict)


class RouterWorkloads(isvc.PredictorWorkloads):
    """The router Deployment KServe made for a graph (and its pods, to explain a failure)."""

    def deployments(self, service: dict[str, Any]) -> list[dict[str, Any]]:
        return self.owned(service, f"{GRAPH_LABEL}={service['metadata']['name']}")


def switch(
    api_client: "ApiClient",
    spec: GraphSpec,
    timeout_seconds: float,
    poll_seconds: float,
    put_back: bool = True,
) -> str:
    """Points the graph at ``spec`` and waits until every router pod does.

    Args:
        put_back: On a failure, write the graph as it was and wait (up to the same timeout)
            until the routers follow, before raising. False leaves it as ``spec`` says (for a
            switch that is itself a way back).

    Returns:
        The router's revision (``<deployment> revision <n>``).

    Raises:
        RolloutFailed: The router did not roll out in time.
    """
    graphs = InferenceGraphs(api_client, spec.namespace)
    workloads = RouterWorkloads(api_client, spec.namespace)
    live = graphs.get(spec.name)
    logger.info(
        "Switching %s/%s to %s (version %s%s; was %s)",
        spec.namespace,
        spec.name,
        spec.colour,
        spec.model_version,
        f", {other(spec.colour)} {spec.canary_percent} %" if spec.canary_percent else "",
        live_colour(live) or "none",
    )
    graphs.write(spec, live)
    try:
        progress = isvc._poll(_router_look(graphs, workloads, spec), timeout_seconds, poll_seconds)
    except BaseException:
        if put_back:
            _put_back(graphs, workloads, spec, live, timeout_seconds, poll_seconds)
        raise
    if not progress.done:
        reason = (
            isvc._explain_raw(workloads, progress, spec.marker)
            if progress.deployment is not None
            else progress.detail
        )
        restored = (
            _put_back(graphs, workloads, spec, live, timeout_seconds, poll_seconds)
            if put_back
            else "the graph was left as written"
        )
        raise RolloutFailed(
            f"InferenceGraph {spec.namespace}/{spec.name} did not switch to {spec.colour} "
            f"within {timeout_seconds:g} s: {reason}; {restored}."
        )
    return isvc.revision_of(progress.deployment, {}) or spec.name


def _router_look(
    graphs: InferenceGraphs, workloads: RouterWorkloads, spec: GraphSpec
) -> Callable[[], "isvc._Progress"]:
    def look() -> isvc._Progress:
        current = graphs.get(spec.name) or {}
        deployments = workloads.deployments(current) if current else []
        if not deployments:
            return isvc._Progress(
                detail="KServe has not created the router Deployment yet", service=current
            )
        progress = isvc._deployment_progress(deployments[0], spec.marker)
        if progress.done:
            # A terminating router is out of the Deployment's counts but serves its open
            # connections for its drain (cmd/router/main.go:471-488): wait until it is gone.
            old = [
                pod["metadata"]["name"]
                for pod in workloads.pods(deployments[0])
                if not isvc._carries(pod["metadata"], spec.marker)
                # A pod that ended (evicted, failed) routes nothing.
                and (pod.get("status") or {}).get("phase") not in ("Failed", "Succeeded")
            ]
            if old:
                return isvc._Progress(
                    detail=f"router pod(s) {', '.join(old)} still route the previous way",
                    deployment=deployments[0],
                    service=current,
                )
        return isvc._Progress(
            done=progress.done,
            failed=progress.failed,
            detail=progress.detail,
            deployment=deployments[0],
            service=current,
        )

    return look


def _put_back(
    graphs: InferenceGraphs,
    workloads: RouterWorkloads,
    spec: GraphSpec,
    before: dict[str, Any] | None,
    timeout_seconds: float,
    poll_seconds: float,
) -> str:
    if before is None:
        graphs.delete(spec.name)
        return "the new InferenceGraph was deleted"
    previous = spec_of(before)
    current = graphs.get(spec.name)
    if current is not None and _ours(current) != _ours(
        {"metadata": spec.to_body()["metadata"], "spec": spec.to_body()["spec"]}
    ):
        return f"the graph was changed by someone else meanwhile (it sends {shares(current)})"
    graphs.write(previous, current or before)
    progress = isvc._poll(_router_look(graphs, workloads, previous), timeout_seconds, poll_seconds)
    if not progress.done:
        return (
            f"the graph was written back to {live_colour(before)} but its routers have not all "
            f"followed yet ({progress.detail})"
        )
    return f"the graph sends traffic to {live_colour(before)} again"
