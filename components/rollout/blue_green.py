"""Blue/green in RawDeployment mode: two InferenceServices per model, one InferenceGraph in front.

``<model>-blue`` and ``<model>-green`` each serve one version; the graph ``<model>``
(:mod:`graph`) sends all traffic to one of them. A rollout:

1. rolls the new version out to the idle colour and waits until it serves
   (:func:`inference_service.rollout`, which puts the idle colour's previous spec back when the
   new one does not serve);
2. smoke-tests the idle colour's predictor directly with a typical row (:mod:`smoke`);
3. switches the graph to it and waits until every router pod has switched;
4. smoke-tests the model through the graph, as clients reach it.

A step that fails ends the rollout where the old version still takes all traffic: the graph
goes back (or, on a first rollout, away), the idle colour gets its previous spec back, and the
new version is not served. The colour that served before stays up, warm, so a rollback
(``mlops rollout rollback``) is one switch of the graph. Each step, its values and its outcome
are kept in :class:`Step`; they go into the rollout step's artifact and into lineage.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from components.errors import RolloutFailed
from components.rollout import graph, smoke
from components.rollout import inference_service as isvc

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Step:
    """One step of a rollout: what it did, what it measured, whether it passed, and where the
    traffic was when it ended (colour → percent)."""

    name: str
    passed: bool
    detail: str
    traffic: dict[str, int]
    values: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    """Where a blue/green rollout ended."""

    rolled_out: bool
    reason: str
    colour: str
    previous_colour: str | None
    previous_version: int | None
    steps: list[Step]
    url: str | None = None
    revision: str | None = None


def _smoke_step(name: str, result: smoke.SmokeResult, traffic: dict[str, int]) -> Step:
    values = {"status": result.status, "latency_ms": round(result.seconds * 1000, 1)}
    return Step(name, result.passed, result.detail, traffic, values)


def rollout(
    api_client: "ApiClient",
    spec_for: Callable[[str], isvc.InferenceServiceSpec],
    model: str,
    routing_namespace: str,
    row: dict[str, Any],
    timeout_seconds: float,
    poll_seconds: float,
    post: smoke.Post = smoke.http_post,
) -> Outcome:
    """Rolls the version ``spec_for`` describes out to the idle colour and switches to it.

    Args:
        api_client: A Kubernetes API client.
        spec_for: The InferenceService spec of the new version, given the colour's service name.
        model: The model's name: the graph's, and the prefix of both colours.
        routing_namespace: Where the graph runs.
        row: A typical row of the version's features (:func:`smoke.version_row`).
        timeout_seconds: How long each wait (the new colour, the router) may take.
        poll_seconds: How often to look.
        post: Sends the smoke requests.

    Returns:
        What was done; ``rolled_out`` is False when a step failed and the old version serves.

    Raises:
        ConfigurationError: A colour's InferenceService exists in another deployment mode.
        ApiException: The cluster refused a read or a write that the rollout could not undo.
    """
    graphs = graph.InferenceGraphs(api_client, routing_namespace)
    front = graphs.get(model)
    live = graph.live_colour(front)
    live_version = graph.spec_of(front).model_version if front else None
    idle = graph.other(live)
    idle_name = graph.colour_service(model, idle)
    spec = spec_for(idle_name)
    protocol = isvc.RUNTIMES[spec.runtime][0]
    before = {live: 100} if live else {}
    steps: list[Step] = []
    services = isvc.InferenceServices(api_client, spec.namespace)
    idle_before = services.get(idle_name)

    def ended(reason: str, undo_idle: bool = True) -> Outcome:
        if undo_idle:
            isvc._restore(services, spec, idle_before)
        logger.warning("Rollout of %s version %s stopped: %s", model, spec.model_version, reason)
        return Outcome(False, reason, idle, live, live_version, steps)

    try:
        served = isvc.rollout(api_client, spec, timeout_seconds, poll_seconds)
    except RolloutFailed as err:
        steps.append(Step(f"roll out {idle}", False, str(err), before))
        return ended(f"the {idle} colour did not serve version {spec.model_version}", False)
    steps.append(
        Step(f"roll out {idle}", True, f"{idle_name} serves version {spec.model_version}", before,
             {"revision": served.revision})
    )  # fmt: skip
    direct = smoke.smoke_test(
        graph.predictor_url(idle_name, spec.namespace, "v1"), smoke.request_body(row, "v1"), post
    )
    steps.append(_smoke_step(f"smoke test {idle}", direct, before))
    if not direct.passed:
        return ended(f"the smoke test of {idle} failed: {direct.detail}")
    target = graph.GraphSpec(
        name=model,
        namespace=routing_namespace,
        colour=idle,
        url=graph.predictor_url(idle_name, spec.namespace, protocol),
        model_version=spec.model_version,
        previous_colour=live,
    )
    try:
        revision = graph.switch(api_client, target, timeout_seconds, poll_seconds)
    except RolloutFailed as err:
        steps.append(Step(f"switch to {idle}", False, str(err), before))
        return ended(f"the graph did not switch to {idle}")
    steps.append(Step(f"switch to {idle}", True, f"router {revision}", {idle: 100}))
    url = graph.graph_url(model, routing_namespace)
    through = smoke.smoke_test(url, smoke.request_body(row, protocol), post)
    steps.append(_smoke_step("smoke test through the graph", through, {idle: 100}))
    if not through.passed:
        if front is None:
            graphs.delete(model)
            back = "the graph was deleted"
        else:
            graph.switch(api_client, graph.spec_of(front), timeout_seconds, poll_seconds)
            back = f"switched back to {live}"
        steps.append(Step(f"switch back to {live or 'nothing'}", True, back, before))
        return ended(f"the smoke test through the graph failed: {through.detail}")
    return Outcome(True, f"{idle} serves version {spec.model_version}", idle, live,
                   live_version, steps, url=url, revision=revision)  # fmt: skip
