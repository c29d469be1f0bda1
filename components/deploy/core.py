"""Deploy [TFX Pusher]: push a blessed model to a deploy target; do nothing for an unblessed one.

Targets share one interface, :class:`DeployTarget`: ``local`` writes to the filesystem model
registry; ``kserve`` writes to a registry in the object store, copies the version into a served
folder of its own and rolls an InferenceService out to serve it (:mod:`components.deploy.kserve`).
"""

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from components import constants
from components.deploy import kserve
from components.errors import ConfigurationError
from components.registry import ModelRegistry

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PushResult:
    """What deploy did: pushed or not, where to, and why."""

    pushed: bool
    reason: str
    version: int | None = None
    destination: str | None = None
    url: str | None = None
    revision: str | None = None
    previous_destination: str | None = None


class DeployTarget(Protocol):
    """Somewhere a blessed model goes."""

    def push(
        self, model_dir: str, model_name: str, metadata: dict[str, Any], schema_text: str
    ) -> PushResult:
        """Pushes the whole model, with its metadata and schema, or nothing."""
        ...


class LocalRegistryTarget:
    """The filesystem registry in TensorFlow Serving's layout (see :mod:`components.registry`)."""

    def __init__(self, registry_root: str) -> None:
        self.registry = ModelRegistry(registry_root)

    def push(
        self, model_dir: str, model_name: str, metadata: dict[str, Any], schema_text: str
    ) -> PushResult:
        """Writes the model as the next version of ``model_name``."""
        version = self.registry.push(
            model_name, model_dir, metadata, {constants.REGISTRY_SCHEMA_FILE: schema_text}
        )
        return PushResult(
            pushed=True,
            reason=f"pushed as version {version}",
            version=version,
            destination=self.registry.path(model_name, version),
        )


@dataclass(frozen=True)
class KServeSettings:
    """How the ``kserve`` target serves a version (see :class:`kserve.InferenceServiceSpec`)."""

    namespace: str = "mlops-models"
    runtime: str = kserve.TF_SERVING_RUNTIME
    resources: kserve.Resources = field(default_factory=kserve.Resources)
    deployment_mode: str = "RawDeployment"
    canary_traffic_percent: int = 100
    timeout_seconds: float = 600.0
    poll_seconds: float = 5.0

    def __post_init__(self) -> None:
        kserve.check_options(self.runtime, self.deployment_mode, self.canary)

    @property
    def canary(self) -> int | None:
        """``canaryTrafficPercent``, or None for a full rollout (100)."""
        return None if self.canary_traffic_percent == 100 else self.canary_traffic_percent

    def spec(self, name: str, storage_uri: str, version: int) -> kserve.InferenceServiceSpec:
        """The InferenceService serving ``version`` of the model at ``storage_uri``."""
        return kserve.InferenceServiceSpec(
            name=name,
            namespace=self.namespace,
            storage_uri=storage_uri,
            model_version=version,
            runtime=self.runtime,
            resources=self.resources,
            deployment_mode=self.deployment_mode,
            canary_traffic_percent=self.canary,
        )


class KServeTarget:
    """A registry version in the object store, served by a KServe InferenceService.

    The InferenceService reads the version's served folder (:meth:`ModelRegistry.publish`),
    which holds that version alone and never changes, so the predictor serves exactly what went
    through this rollout, also after a pod restart. A version whose rollout fails is discarded
    from the registry again, with its served folder, so it never becomes the baseline; the
    previous InferenceService spec, pointing at the previous served folder, keeps serving.
    """

    def __init__(self, registry_root: str, settings: KServeSettings, api: Any = None) -> None:
        self.registry = ModelRegistry(registry_root)
        if self.registry.is_local:
            raise ConfigurationError(
                f"The kserve target needs the registry in an object store KServe can read "
                f"(s3://..., gs://...), not the local path {registry_root!r}."
            )
        self.settings = settings
        self._api = api

    def _api_client(self) -> Any:
        if self._api is None:
            from kubernetes import client, config

            try:
                config.load_incluster_config()
            except config.ConfigException:
                config.load_kube_config()
            self._api = client.ApiClient()
        return self._api

    def _retire_served(self, model_name: str, keep: set[int | None]) -> None:
        # Served folders of versions no InferenceService spec names any more are copies that
        # only cost storage; failing to delete them must not fail a rollout that succeeded.
        try:
            retired = self.registry.retire_served(model_name, {v for v in keep if v is not None})
        except OSError as err:
            logger.warning("Could not retire old served folders of %s: %s", model_name, err)
            return
        if retired:
            logger.info("Retired the served folders of %s versions %s", model_name, retired)

    def push(
        self, model_dir: str, model_name: str, metadata: dict[str, Any], schema_text: str
    ) -> PushResult:
        """Pushes the next version, publishes it and rolls the InferenceService out to it."""
        settings = self.settings
        version = self.registry.push(
            model_name, model_dir, metadata, {constants.REGISTRY_SCHEMA_FILE: schema_text}
        )
        discarded = []

        def discard() -> None:
            # A version that never served must not become the baseline.
            if not discarded:
                self.registry.discard(model_name, version)
                discarded.append(version)

        try:
            storage_uri = self.registry.publish(model_name, version)
            result = kserve.rollout(
                self._api_client(),
                settings.spec(model_name, storage_uri, version),
                settings.timeout_seconds,
                settings.poll_seconds,
                on_rollback=discard,
            )
        except BaseException:
            discard()
            raise
        self._retire_served(model_name, {version, result.previous_model_version})
        return PushResult(
            pushed=True,
            reason=f"version {version} is serving at {result.url}",
            version=version,
            destination=self.registry.path(model_name, version),
            url=result.url,
            revision=result.revision,
            previous_destination=(
                None
                if result.previous_model_version is None
                else self.registry.path(model_name, result.previous_model_version)
            ),
        )


def deploy(
    model_dir: str,
    blessed: bool,
    blessing_reasons: list[str],
    target: DeployTarget,
    model_name: str,
    metadata: dict[str, Any],
    schema_text: str,
) -> PushResult:
    """Pushes the model when it is blessed.

    Args:
        model_dir: The SavedModel to push.
        blessed: The evaluation's decision.
        blessing_reasons: Why it was (not) blessed; kept with the model and in the result.
        target: Where a blessed model goes (:func:`make_target`).
        model_name: The model's name.
        metadata: Written beside the model (metrics, data fingerprint, task).
        schema_text: The TFDV schema (text format), written beside the model.

    Returns:
        Whether and where the model went.
    """
    logger.info("Deploying %s as %r to %s (blessed=%s)", model_dir, model_name, target, blessed)
    if not blessed:
        reason = "not pushed: the model was not blessed (" + "; ".join(blessing_reasons) + ")"
        logger.info("%s", reason)
        return PushResult(pushed=False, reason=reason)
    record = {
        **metadata,
        "model_name": model_name,
        "blessing": blessing_reasons,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "schema": constants.REGISTRY_SCHEMA_FILE,
    }
    result = target.push(model_dir, model_name, record, schema_text)
    logger.info("%s: %s", result.reason, result.destination)
    return result


TARGETS = ("local", "kserve")


def make_target(name: str, registry_root: str, settings: KServeSettings) -> DeployTarget:
    """The deploy target called ``name``; checks its settings before anything is pushed.

    Raises:
        ConfigurationError: An unknown target, or settings the target cannot use.
    """
    if name == "local":
        return LocalRegistryTarget(registry_root)
    if name == "kserve":
        return KServeTarget(registry_root, settings)
    raise ConfigurationError(f"Unknown deploy target {name!r}; known: {', '.join(TARGETS)}.")
