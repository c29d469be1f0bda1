"""Deploy [TFX Pusher]: push a blessed model to a deploy target; do nothing for an unblessed one.

Targets share one interface, :class:`DeployTarget`; ``local`` writes to the filesystem model
registry. A cluster target (KServe) slots in beside it in :data:`TARGETS`.
"""

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from components import constants
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


TARGETS = {"local": LocalRegistryTarget}


def deploy(
    model_dir: str,
    blessed: bool,
    blessing_reasons: list[str],
    target: str,
    registry_root: str,
    model_name: str,
    metadata: dict[str, Any],
    schema_text: str,
) -> PushResult:
    """Pushes the model when it is blessed.

    Args:
        model_dir: The SavedModel to push.
        blessed: The evaluation's decision.
        blessing_reasons: Why it was (not) blessed; kept with the model and in the result.
        target: A key of :data:`TARGETS`.
        registry_root: The registry's location.
        model_name: The model's name.
        metadata: Written beside the model (metrics, data fingerprint, task).
        schema_text: The TFDV schema (text format), written beside the model.

    Returns:
        Whether and where the model went.
    """
    logger.info(
        "Deploying %s as %r to %s %s (blessed=%s)",
        model_dir,
        model_name,
        target,
        registry_root,
        blessed,
    )
    if target not in TARGETS:
        raise ConfigurationError(f"Unknown deploy target {target!r}; known: {', '.join(TARGETS)}.")
    destination = TARGETS[target](registry_root)
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
    result = destination.push(model_dir, model_name, record, schema_text)
    logger.info("%s: %s", result.reason, result.destination)
    return result
