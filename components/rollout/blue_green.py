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

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from components.errors import ConfigurationError, RolloutFailed
from components.rollout import gates, graph, smoke
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


@dataclass(frozen=True)
class _Colours:
    """The two colours as a rollout finds them: which takes the traffic (with which version)
    and which is idle, from the graph as it was before the rollout (``front``)."""

    model: str
    front: dict[str, Any] | None

    @property
    def live(self) -> str | None:
        return graph.live_colour(self.front)

    @property
    def live_version(self) -> int | None:
        return graph.spec_of(self.front).model_version if self.front else None

    @property
    def idle(self) -> str:
        return graph.other(self.live)

    @property
    def idle_service(self) -> str:
        return graph.colour_service(self.model, self.idle)

    @property
    def before(self) -> dict[str, int]:
        """Where the traffic was: all to the live colour, or nowhere yet."""
        return {self.live: 100} if self.live else {}


@dataclass(frozen=True)
class Canary:
    """A stepped canary before the switch: the candidate's shares of the traffic, in order
    (each below 100), how long each step lasts, and the gate each must pass.

    Attributes:
        percents: The candidate's share at each step, e.g. (10, 50); then it takes all.
        step_seconds: How long each step's live traffic is watched.
        gate: What the candidate must show against the stable version.
        get: Reads a pod's ``/metrics``.
        wait: Waits out a step.
    """

    percents: tuple[int, ...]
    step_seconds: float
    gate: gates.CanaryGate
    get: gates.Get = gates.http_get
    wait: Callable[[float], None] = time.sleep


@dataclass(frozen=True)
class _PodFigures:
    """What one predictor pod has answered so far, and how often its containers restarted."""

    traffic: gates.Traffic
    restarts: int


def _pod_figures(
    api_client: "ApiClient", namespace: str, service: str, version: int | None, get: gates.Get
) -> dict[str, _PodFigures]:
    """Each serving pod of one colour: its ``/metrics`` (port 8080, the model server's own,
    beside KServe's agent when the logger is on), read straight from the pod."""
    body = isvc.InferenceServices(api_client, namespace).get(service)
    workloads = isvc.PredictorWorkloads(api_client, namespace)
    found = {}
    for deployment in workloads.deployments(body) if body else []:
        for pod in workloads.pods(deployment):
            status = pod.get("status") or {}
            ready = isvc.condition_of(status, "Ready") or {}
            ip = status.get("podIP")
            if not ip or ready.get("status") != "True" or pod["metadata"].get("deletionTimestamp"):
                continue  # Not serving (yet, or any more): it takes no traffic.
            host = f"[{ip}]" if ":" in ip else ip
            text = get(f"http://{host}:8080/metrics", 10.0)
            restarts = sum(c.get("restartCount", 0) for c in status.get("containerStatuses", []))
            found[pod["metadata"]["name"]] = _PodFigures(
                gates.parse(text, service, version), restarts
            )
    return found


def _step_traffic(before: dict[str, _PodFigures], after: dict[str, _PodFigures]) -> gates.Traffic:
    total = gates.Traffic()
    for pod, now in after.items():
        earlier = before.get(pod)
        total = total + now.traffic.since(earlier.traffic if earlier else gates.Traffic())
    return total


def _unsteady(before: dict[str, _PodFigures], after: dict[str, _PodFigures]) -> list[str]:
    """Candidate pods that restarted or stopped serving during the step: failures its own
    figures cannot show (a crash loses them), so each fails the step."""
    found = []
    for pod, earlier in before.items():
        now = after.get(pod)
        if now is None:
            found.append(f"pod {pod} stopped serving")
        elif now.restarts > earlier.restarts:
            found.append(f"pod {pod} restarted {now.restarts - earlier.restarts} time(s)")
    return found


def _canary_step(
    api_client: "ApiClient",
    canary: Canary,
    split: graph.GraphSpec,
    namespace: str,
    versions: dict[str, int | None],
    timeout_seconds: float,
    poll_seconds: float,
) -> Step:
    """Sends ``split.canary_percent`` of the traffic to the candidate, watches the step's
    traffic, and judges it."""
    live, idle = split.colour, graph.other(split.colour)
    name = f"canary {split.canary_percent} %"
    traffic = split.shares
    graphs = graph.InferenceGraphs(api_client, split.namespace)
    try:
        revision = graph.switch(api_client, split, timeout_seconds, poll_seconds)
    except RolloutFailed as err:
        now = graphs.get(split.name)
        return Step(name, False, str(err), graph.shares(now) if now else {live: 100})
    services = {colour: graph.colour_service(split.name, colour) for colour in (live, idle)}

    def read() -> dict[str, dict[str, _PodFigures]]:
        return {
            colour: _pod_figures(
                api_client, namespace, services[colour], versions[colour], canary.get
            )
            for colour in (live, idle)
        }

    try:
        before = read()
        canary.wait(canary.step_seconds)
        after = read()
    except Exception as err:  # No figures is no evidence: the step cannot pass.
        return Step(name, False, f"could not read the predictors' /metrics: {err}", traffic,
                    {"router": revision})  # fmt: skip
    now = graphs.get(split.name)
    if now is None or graph.spec_of(now) != split:
        changed = "the InferenceGraph was changed while the step ran (rolled back by hand?)"
        return Step(name, False, changed, graph.shares(now) if now else {})
    stable, candidate = (_step_traffic(before[c], after[c]) for c in (live, idle))
    verdict = canary.gate.judge(stable, candidate)
    reasons = [*_unsteady(before[idle], after[idle]), *verdict.reasons]
    expected = candidate.total * (100 - split.canary_percent) / split.canary_percent
    if stable.total == 0 and expected >= 20:
        # The stable version had its share of the traffic, yet counted none: its predictor does
        # not count requests (an image before 0.3.0): nothing to compare the candidate with.
        reasons.append(
            f"the stable version {versions[live]} reported no requests in the step: its "
            "predictor does not count them (roll it out again with the current image)"
        )
    detail = "; ".join(reasons) or f"gates passed over {canary.step_seconds:g} s of traffic"
    return Step(name, not reasons, detail, traffic, verdict.values)


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
    canary: Canary | None = None,
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
        canary: Steps of live traffic the candidate must pass before the switch; None
            switches at once (blue/green). On a first rollout there is nothing to compare with
            and the switch is at once either way.

    Returns:
        What was done; ``rolled_out`` is False when a step failed and the old version serves.

    Raises:
        ConfigurationError: A colour's InferenceService exists in another deployment mode.
        ApiException: The cluster refused a read or a write that the rollout could not undo.
    """
    graphs = graph.InferenceGraphs(api_client, routing_namespace)
    front = graphs.get(model)
    steps: list[Step] = []
    if front is not None and graph.spec_of(front).canary_percent:
        # A canary whose rollout step was stopped (a run terminated from the dashboard kills
        # the step without unwinding): the idle colour still takes a share. All traffic goes
        # back to the stable colour before anything else moves.
        left = graph.shares(front)
        done = _return_traffic(api_client, graphs, front, model, timeout_seconds, poll_seconds)
        steps.append(Step("end a canary left running", True, f"it sent {left}; {done}",
                          {graph.live_colour(front) or "": 100}))  # fmt: skip
        front = graphs.get(model)
    colours = _Colours(model, front)
    live, live_version, idle, before = (
        colours.live,
        colours.live_version,
        colours.idle,
        colours.before,
    )
    spec = spec_for(colours.idle_service)
    services = isvc.InferenceServices(api_client, spec.namespace)
    idle_before = services.get(colours.idle_service)
    if canary is not None and front is not None:
        stable = services.get(graph.colour_service(model, live or ""))
        runtime = (stable or {}).get("spec", {}).get("predictor", {}).get("model", {})
        if runtime.get("runtime") != isvc.PROJECT_RUNTIME:
            raise ConfigurationError(
                f"A canary compares the candidate with version {live_version}, which {live} "
                f"serves with the {runtime.get('runtime')} runtime: it counts no requests. Roll "
                f"out once with rollout_strategy=blue-green and serving_runtime="
                f"{isvc.PROJECT_RUNTIME}; later canaries can compare."
            )

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
        Step(f"roll out {idle}", True,
             f"{colours.idle_service} serves version {spec.model_version}", before,
             {"revision": served.revision})
    )  # fmt: skip
    try:
        return _gate_and_switch(
            api_client, spec, colours, routing_namespace, row, steps, ended,
            timeout_seconds, poll_seconds, post, canary,
        )  # fmt: skip
    except SwitchBackFailed:
        raise
    except BaseException:
        # Whatever broke (the API refused a write, the step was stopped): traffic goes back to
        # what served before and the idle colour gets its previous spec, before the error goes on.
        _return_traffic(api_client, graphs, front, model, timeout_seconds, poll_seconds)
        isvc._restore(services, spec, idle_before)
        raise


def _gate_and_switch(
    api_client: "ApiClient",
    spec: isvc.InferenceServiceSpec,
    colours: _Colours,
    routing_namespace: str,
    row: dict[str, Any],
    steps: list[Step],
    ended: Callable[[str], Outcome],
    timeout_seconds: float,
    poll_seconds: float,
    post: smoke.Post,
    canary: "Canary | None",
) -> Outcome:
    """The idle colour serves the new version: smoke-test it, step the canary, switch."""
    graphs = graph.InferenceGraphs(api_client, routing_namespace)
    model, front, live, live_version = (
        colours.model,
        colours.front,
        colours.live,
        colours.live_version,
    )
    idle, idle_name, before = colours.idle, colours.idle_service, colours.before
    protocol = isvc.RUNTIMES[spec.runtime][0]

    def back(reason: str) -> Outcome:
        done = _return_traffic(api_client, graphs, front, model, timeout_seconds, poll_seconds)
        steps.append(Step(f"switch back to {live or 'nothing'}", True, done, before))
        return ended(reason)

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
        previous_version=live_version,
    )
    if canary is not None and front is not None:
        stable = dataclasses.replace(graph.spec_of(front), canary_url=None, canary_percent=0)
        versions = {live: live_version, idle: spec.model_version}
        for percent in canary.percents:
            split = dataclasses.replace(stable, canary_url=target.url, canary_percent=percent)
            step = _canary_step(
                api_client, canary, split, spec.namespace, versions, timeout_seconds, poll_seconds
            )
            steps.append(step)
            if not step.passed:
                return back(f"the canary at {percent} % failed its gate: {step.detail}")
    try:
        revision = graph.switch(api_client, target, timeout_seconds, poll_seconds)
    except RolloutFailed as err:
        steps.append(Step(f"switch to {idle}", False, str(err), before))
        if canary is not None and front is not None:
            return back(f"the graph did not switch to {idle}")
        return ended(f"the graph did not switch to {idle}")
    steps.append(Step(f"switch to {idle}", True, f"router {revision}", {idle: 100}))
    url = graph.graph_url(model, routing_namespace)
    through = smoke.smoke_test(url, smoke.request_body(row, protocol), post)
    steps.append(_smoke_step("smoke test through the graph", through, {idle: 100}))
    if not through.passed:
        return back(f"the smoke test through the graph failed: {through.detail}")
    return Outcome(True, f"{idle} serves version {spec.model_version}", idle, live,
                   live_version, steps, url=url, revision=revision)  # fmt: skip


class SwitchBackFailed(RolloutFailed):
    """Traffic could not be sent back to the colour that served before: the new version may
    still take some, so it is not discarded. The message says where the graph stands."""


def _return_traffic(
    api_client: "ApiClient",
    graphs: graph.InferenceGraphs,
    front: dict[str, Any] | None,
    model: str,
    timeout_seconds: float,
    poll_seconds: float,
) -> str:
    """Sends all traffic back where it went before the rollout (or deletes a graph the rollout
    made), and waits until the routers do.

    Raises:
        SwitchBackFailed: It could not.
    """
    try:
        if front is None:
            if graphs.get(model) is not None:
                graphs.delete(model)
            return "the new graph was deleted"
        stable = dataclasses.replace(graph.spec_of(front), canary_url=None, canary_percent=0)
        graph.switch(api_client, stable, timeout_seconds, poll_seconds, put_back=False)
    except Exception as err:  # Refused, unreachable (urllib3's errors), timed out: all alike.
        raise SwitchBackFailed(
            f"Could not send the traffic of {model} back to what served before: {err}. The new "
            "version stays in the registry while it may serve; see `mlops rollout status "
            f"{model}` and run `mlops rollout rollback {model}` once the cluster answers."
        ) from err
    return f"all traffic to {stable.colour} (version {stable.model_version}) again"
