"""Rollout: serve the version deploy pushed with a KServe InferenceService, or take it back out.

The deploy step (TFX Pusher) writes a blessed model to the registry as its next version; this
step copies that version into a served folder of its own (:meth:`ModelRegistry.publish`) and
rolls the InferenceService out to it (:func:`inference_service.rollout`). A version that does
not come to serve is discarded from the registry again, with its served folder, so it never
becomes the next run's baseline; the previous InferenceService spec, pointing at the previous
served folder, keeps serving. When deploy pushed nothing (an unblessed model) this step does
nothing, so a pipeline needs no condition around it (``kfp.local`` has none).
"""

import dataclasses
import logging
import os
from dataclasses import dataclass
from typing import Any

from components.errors import ConfigurationError
from components.registry import MAX_MODEL_NAME, ModelRegistry
from components.rollout import blue_green, gates, inference_service, smoke
from components.rollout.shadow_gate import shadow_gate
from components.settings import check, same_as, setting
from serving.shadow import ShadowConfig

logger = logging.getLogger(__name__)

REPLACE, BLUE_GREEN, CANARY = "replace", "blue-green", "canary"
STRATEGIES = (REPLACE, BLUE_GREEN, CANARY)
# The strategies that serve a model from two InferenceServices behind an InferenceGraph.
TWO_COLOURS = (BLUE_GREEN, CANARY)
# The longest model name those strategies take: KServe labels a colour's predictor pods
# app=isvc.<model>-green-predictor, at most 63 characters (registry.MAX_MODEL_NAME says where).
MAX_COLOUR_MODEL_NAME = MAX_MODEL_NAME - len("-green")


def canary_percents(text: str) -> tuple[int, ...]:
    """``"10,50"`` → (10, 50); raises ValueError unless each is 1..99 and rising."""
    percents = tuple(int(part) for part in text.split(","))
    if not all(0 < p < 100 for p in percents) or list(percents) != sorted(set(percents)):
        raise ValueError(text)
    return percents


def _is_percents(text: str) -> bool:
    try:
        canary_percents(text)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class KServeSettings:
    """How a version is served (see :class:`inference_service.InferenceServiceSpec`).

    Checked by :func:`rollout`, after deploy pushed the version, so that a version these
    settings cannot serve is discarded like one that failed to roll out.
    """

    serving_namespace: str = setting("mlops-models", "the InferenceService's namespace")
    serving_runtime: str = setting(
        inference_service.TF_SERVING_RUNTIME,
        "the ServingRuntime: KServe's TensorFlow Serving (V1) or this project's predictor (V2)",
        lambda v: v in inference_service.RUNTIMES,
        "one of " + ", ".join(inference_service.RUNTIMES),
    )
    predictor_cpu: str = setting("500m", "the predictor's CPU request (the limit is twice it)")
    predictor_memory: str = setting("1Gi", "the predictor's memory request (the limit is twice it)")
    deployment_mode: str = setting(
        "RawDeployment",
        "KServe's deployment mode: RawDeployment, or Serverless (Knative)",
        lambda v: v in ("RawDeployment", "Serverless"),
        "RawDeployment or Serverless",
    )
    canary_traffic_percent: int = setting(
        100,
        "traffic for the new version; 100 rolls out fully, less needs Serverless mode",
        lambda v: 0 <= v <= 100,
        "0..100",
    )
    prediction_log_url: str = setting(
        inference_service.LOG_SINK_URL,
        "where KServe's payload logger sends each request and response (the log sink in "
        "manifests/); empty: no prediction log",
        lambda v: v == "" or v.startswith(("http://", "https://")),
        "an http:// or https:// URL, or empty",
    )
    rollout_strategy: str = setting(
        REPLACE,
        "replace: the InferenceService <model> moves to the new version; blue-green: the idle "
        "one of <model>-blue and <model>-green gets it, passes a smoke test, and the "
        "InferenceGraph <model> switches to it (RawDeployment); canary: as blue-green, with "
        "steps of live traffic gated on error rate and p99 before the switch (mlops-predictor)",
        lambda v: v in STRATEGIES,
        " or ".join(STRATEGIES),
    )
    routing_namespace: str = setting(
        "mlops-routing", "where blue-green's InferenceGraph runs (its router needs baseline)"
    )
    canary_steps: str = setting(
        "10,50",
        "canary: the candidate's percent of the traffic at each step before it takes all",
        _is_percents,
        "percents 1..99, rising, comma-separated",
    )
    canary_step_seconds: int = setting(
        300, "canary: how long each step's live traffic is watched", lambda v: v > 0, "above 0"
    )
    canary_min_requests: int = setting(
        20,
        "canary: fewest requests the candidate must answer in a step to be judged",
        lambda v: v >= 1,
        "at least 1",
    )
    canary_max_error_rate_increase: float = setting(
        0.01,
        "canary: how far the candidate's error rate may exceed the stable version's",
        lambda v: 0 <= v <= 1,
        "0..1",
    )
    canary_max_latency_ratio: float = setting(
        2.0,
        "canary: how many times the stable version's p99 latency the candidate's may be",
        lambda v: v >= 1,
        "1 or more",
    )
    shadow_log: str = setting(
        "",
        "the prediction log (s3://..., as the log sink writes it) whose last shadow_hours of "
        "requests the new version answers before it rolls out; it rolls out only if `mlops "
        "shadow report`'s rules say promote; empty: no shadow gate",
    )
    shadow_hours: int = setting(
        24, "how far back the shadow gate replays the log", lambda v: v > 0, "above 0"
    )
    shadow_min_rows: int = same_as(ShadowConfig, "min_rows", "shadow gate")
    shadow_min_agreement: float = same_as(ShadowConfig, "min_agreement", "shadow gate")
    rollout_timeout_seconds: int = setting(
        600,
        "how long the new version has to serve before it is rolled back",
        lambda v: v > 0,
        "above 0",
    )
    poll_seconds: float = 5.0

    @property
    def canary(self) -> int | None:
        """``canaryTrafficPercent``, or None for a full rollout (100)."""
        return None if self.canary_traffic_percent == 100 else self.canary_traffic_percent

    @property
    def resources(self) -> inference_service.Resources:
        """The predictor's requests, and limits at twice them."""
        return inference_service.Resources.scaled(self.predictor_cpu, self.predictor_memory)

    def check(self) -> None:
        """Raises ConfigurationError for settings KServe would reject or silently ignore."""
        check(self)
        inference_service.check_options(self.serving_runtime, self.deployment_mode, self.canary)
        _ = self.resources  # Quantities such as "500m" and "1Gi".
        if self.rollout_strategy in TWO_COLOURS and (
            self.deployment_mode != "RawDeployment" or self.canary is not None
        ):
            raise ConfigurationError(
                f"{self.rollout_strategy} moves traffic with an InferenceGraph in RawDeployment "
                "mode: use deployment_mode=RawDeployment and canary_traffic_percent=100 (got "
                f"{self.deployment_mode}, {self.canary_traffic_percent})."
            )
        if (
            self.rollout_strategy == CANARY
            and self.serving_runtime != inference_service.PROJECT_RUNTIME
        ):
            raise ConfigurationError(
                f"A canary's gates read each version's error rate and latency from the "
                f"predictor's /metrics, which the {inference_service.PROJECT_RUNTIME} runtime "
                f"serves and {self.serving_runtime} does not: roll out with "
                f"serving_runtime={inference_service.PROJECT_RUNTIME}, or use blue-green."
            )

    @property
    def canary_plan(self) -> blue_green.Canary | None:
        """The canary's steps and gate, when the strategy is canary."""
        if self.rollout_strategy != CANARY:
            return None
        return blue_green.Canary(
            canary_percents(self.canary_steps),
            self.canary_step_seconds,
            gates.CanaryGate(
                self.canary_min_requests,
                self.canary_max_error_rate_increase,
                self.canary_max_latency_ratio,
            ),
        )

    def spec(
        self, name: str, storage_uri: str, version: int, model: str | None = None
    ) -> inference_service.InferenceServiceSpec:
        """The InferenceService ``name`` serving ``version`` of the model at ``storage_uri``
        (``model``, when the service's name is not the model's)."""
        return inference_service.InferenceServiceSpec(
            name=name,
            model=model,
            namespace=self.serving_namespace,
            storage_uri=storage_uri,
            model_version=version,
            runtime=self.serving_runtime,
            resources=self.resources,
            deployment_mode=self.deployment_mode,
            canary_traffic_percent=self.canary,
            logger_url=self.prediction_log_url or None,
        )


@dataclass(frozen=True)
class RolloutResult:
    """What the rollout did: served the version or not, where, and what served before."""

    rolled_out: bool
    reason: str
    version: int | None = None
    served_uri: str | None = None
    url: str | None = None
    revision: str | None = None
    previous_version: int | None = None
    previous_destination: str | None = None
    inference_service: str | None = None
    namespace: str | None = None
    traffic_percent: int | None = None
    rollback_version: int | None = None
    strategy: str | None = None
    colour: str | None = None
    steps: list[dict[str, Any]] | None = None


def cluster_client() -> Any:
    """A Kubernetes API client: the pod's service account in a cluster, else the kubeconfig's."""
    from kubernetes import client, config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        # KUBECONFIG as it is now: the client reads it once, when it is imported.
        config.load_kube_config(config_file=os.environ.get("KUBECONFIG"))
    return client.ApiClient()


def _named_by_cluster(api: Any, namespace: str, model_name: str) -> set[int | None]:
    """The versions the model's InferenceServices name, whichever strategy made them (a model
    moved from replace to blue-green still has ``<model>`` serving until it is deleted)."""
    services = inference_service.InferenceServices(api, namespace)
    names = (model_name, *(f"{model_name}-{colour}" for colour in ("blue", "green")))
    return {inference_service.model_version_of(services.get(name)) for name in names}


def _retire_served(registry: ModelRegistry, model_name: str, keep: set[int | None]) -> None:
    # Served folders of versions no InferenceService spec names any more are copies that only
    # cost storage; failing to delete them must not fail a rollout that succeeded.
    try:
        retired = registry.retire_served(model_name, {v for v in keep if v is not None})
    except OSError as err:
        logger.warning("Could not retire old served folders of %s: %s", model_name, err)
        return
    if retired:
        logger.info("Retired the served folders of %s versions %s", model_name, retired)


def rollout(
    version: int | None,
    registry_root: str,
    model_name: str,
    settings: KServeSettings,
    serve: bool = True,
    api: Any = None,
    post: smoke.Post | None = None,
    canary: blue_green.Canary | None = None,
) -> RolloutResult:
    """Serves the pushed ``version`` with the InferenceService ``model_name``.

    Args:
        version: The version deploy pushed, or None when it pushed nothing.
        registry_root: The registry, in an object store KServe reads (``s3://``, ``gs://``).
        model_name: The model's name: also the InferenceService's.
        settings: How to serve it.
        serve: False leaves the pushed version in the registry, unserved.
        api: A Kubernetes API client; the pod's (or ``~/.kube/config``'s) when None.
        post: Sends blue-green's smoke requests (:func:`smoke.http_post` when None).
        canary: The canary's steps and gate instead of ``settings.canary_plan`` (tests read
            their predictors' metrics through it).

    Returns:
        Whether the version serves, where, and what served before.

    Raises:
        ConfigurationError: Settings KServe cannot use, a registry KServe cannot read, an
            InferenceService in the other deployment mode; the version was discarded.
        RolloutFailed: The version did not serve in time; the previous spec serves again and
            the version was discarded.
    """
    if version is None:
        return RolloutResult(rolled_out=False, reason="nothing to roll out: deploy pushed nothing")
    if not serve:
        reason = f"version {version} stays in the registry unserved (serve is false)"
        logger.info("%s", reason)
        return RolloutResult(rolled_out=False, reason=reason, version=version)
    registry = ModelRegistry(registry_root)
    logger.info(
        "Rolling out %s version %d from %s with %s", model_name, version, registry_root, settings
    )
    discarded = []

    def discard() -> None:
        # A version that never served must not become the baseline.
        if not discarded:
            registry.discard(model_name, version)
            discarded.append(version)

    if version not in registry.versions(model_name):
        # A retried rollout step: its first attempt failed and discarded the version.
        raise ConfigurationError(
            f"Version {version} of {model_name!r} is not in the registry (a failed rollout "
            "discarded it, or it was never complete): nothing to roll out. Run the pipeline "
            "again to train and push a new version."
        )
    try:
        settings.check()
        if registry.is_local:
            raise ConfigurationError(
                f"KServe needs the registry in an object store it can read (s3://..., gs://...), "
                f"not the local path {registry_root!r}."
            )
        if settings.rollout_strategy in TWO_COLOURS and len(model_name) > MAX_COLOUR_MODEL_NAME:
            raise ConfigurationError(
                f"{settings.rollout_strategy} serves {model_name!r} as {model_name}-blue and "
                f"{model_name}-green, too long for KServe's labels: name the model with at most "
                f"{MAX_COLOUR_MODEL_NAME} characters, or use rollout_strategy=replace."
            )
        gated = []
        if settings.shadow_log:
            gated.append(
                shadow_gate(
                    settings.shadow_log,
                    registry,
                    model_name,
                    version,
                    settings.shadow_hours,
                    settings.shadow_min_rows,
                    settings.shadow_min_agreement,
                )
            )
            if not gated[0].passed:
                discard()
                return RolloutResult(
                    rolled_out=False,
                    reason=f"version {version} was not rolled out: its shadow replay says not to "
                    f"promote it ({gated[0].detail})",
                    version=version,
                    strategy=settings.rollout_strategy,
                    steps=[dataclasses.asdict(gated[0])],
                )
        storage_uri = registry.publish(model_name, version)
        api = api if api is not None else cluster_client()
        if settings.rollout_strategy in TWO_COLOURS:
            outcome = blue_green.rollout(
                api,
                lambda name: settings.spec(name, storage_uri, version, model_name),
                model_name,
                settings.routing_namespace,
                smoke.version_row(registry, model_name, version),
                settings.rollout_timeout_seconds,
                settings.poll_seconds,
                post or smoke.http_post,
                canary or settings.canary_plan,
            )
        else:
            served = inference_service.rollout(
                api,
                settings.spec(model_name, storage_uri, version),
                settings.rollout_timeout_seconds,
                settings.poll_seconds,
                on_rollback=discard,
            )
    except blue_green.SwitchBackFailed:
        raise  # The new version may still take traffic: it stays in the registry.
    except BaseException:
        discard()
        raise
    if settings.rollout_strategy in TWO_COLOURS:
        return _blue_green_result(
            registry, model_name, version, storage_uri, settings, outcome, discard,
            _named_by_cluster(api, settings.serving_namespace, model_name), gated,
        )  # fmt: skip
    # The serving version, what served before it, and what a rollback goes to (they differ over
    # a canary that was never promoted, and when the same version is rolled out again).
    return _served(
        registry,
        {served.previous_model_version, served.rollback_version}
        | _named_by_cluster(api, settings.serving_namespace, model_name),
        reason=f"version {version} is serving at {served.url}",
        version=version,
        served_uri=storage_uri,
        url=served.url,
        revision=served.revision,
        previous_version=served.previous_model_version,
        inference_service=model_name,
        namespace=settings.serving_namespace,
        traffic_percent=settings.canary_traffic_percent,
        rollback_version=served.rollback_version,
        strategy=REPLACE,
        steps=[dataclasses.asdict(step) for step in gated] or None,
    )


def _served(registry: ModelRegistry, keep: set[int | None], **result: Any) -> RolloutResult:
    """Marks the version served, retires the served folders of versions not in ``keep`` (nor
    the version itself), and says what serves."""
    model_name, version, previous = (
        result["inference_service"],
        result["version"],
        result["previous_version"],
    )
    registry.mark_served(model_name, version)
    _retire_served(registry, model_name, {version, *keep})
    return RolloutResult(
        rolled_out=True,
        previous_destination=None if previous is None else registry.path(model_name, previous),
        **result,
    )


def _blue_green_result(
    registry: ModelRegistry,
    model_name: str,
    version: int,
    storage_uri: str,
    settings: KServeSettings,
    outcome: blue_green.Outcome,
    discard: Any,
    named: set[int | None],
    gated: list[blue_green.Step],
) -> RolloutResult:
    for step in outcome.steps:
        logger.info("%s: %s (%s)", step.name, "passed" if step.passed else "FAILED", step.detail)
    steps = [dataclasses.asdict(step) for step in [*gated, *outcome.steps]]
    if not outcome.rolled_out:
        discard()
        previous = outcome.previous_version
        return RolloutResult(
            rolled_out=False,
            reason=f"version {version} was rolled back: {outcome.reason}"
            + (f"; version {previous} still serves" if previous is not None else ""),
            version=version,
            inference_service=model_name,
            namespace=settings.routing_namespace,
            strategy=settings.rollout_strategy,
            colour=outcome.previous_colour,
            steps=steps,
        )
    previous = outcome.previous_version
    # The new colour's version and the warm colour's, which a rollback switches back to.
    return _served(
        registry,
        {previous} | named,
        reason=f"version {version} is serving at {outcome.url} ({outcome.reason})",
        version=version,
        served_uri=storage_uri,
        url=outcome.url,
        revision=outcome.revision,
        previous_version=previous,
        inference_service=model_name,
        namespace=settings.routing_namespace,
        traffic_percent=100,
        rollback_version=previous,
        strategy=settings.rollout_strategy,
        colour=outcome.colour,
        steps=steps,
    )
