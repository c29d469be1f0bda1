"""Deploy [TFX Pusher]: push a blessed model to the registry; do nothing for an unblessed one.

The registry is a local folder or an object store (:mod:`components.registry`); either way the
model goes in whole as the next version, with its metadata and schema. Serving that version on
a cluster is the rollout step's work (:mod:`components.rollout.core`).
"""

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from components import constants
from components.registry import ModelRegistry, check_model_name

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PushResult:
    """What deploy did: pushed or not, where to, and why."""

    pushed: bool
    reason: str
    version: int | None = None
    destination: str | None = None


def deploy(
    model_dir: str,
    blessed: bool,
    blessing_reasons: list[str],
    registry_root: str,
    model_name: str,
    metadata: dict[str, Any],
    schema_text: str,
    statistics_text: str | None = None,
) -> PushResult:
    """Pushes the model when it is blessed.

    Args:
        model_dir: The SavedModel to push.
        blessed: The evaluation's decision.
        blessing_reasons: Why it was (not) blessed; kept with the model and in the result.
        registry_root: The registry: a local path or a URI (``s3://``, ``gs://``).
        model_name: The model's name.
        metadata: Written beside the model (metrics, data fingerprint, task).
        schema_text: The TFDV schema (text format), written beside the model.
        statistics_text: The train split's TFDV statistics (text format), written beside the
            model for monitoring.

    Returns:
        Whether and where the model went.
    """
    logger.info(
        "Deploying %s as %r to %s (blessed=%s)", model_dir, model_name, registry_root, blessed
    )
    registry = ModelRegistry(registry_root)  # A registry URI it cannot open fails any run.
    check_model_name(model_name)
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
    files = {constants.REGISTRY_SCHEMA_FILE: schema_text}
    if statistics_text is not None:
        record["train_statistics"] = constants.REGISTRY_STATISTICS_FILE
        files[constants.REGISTRY_STATISTICS_FILE] = statistics_text
    version = registry.push(model_name, model_dir, record, files)
    result = PushResult(
        pushed=True,
        reason=f"pushed as version {version}",
        version=version,
        destination=registry.path(model_name, version),
    )
    logger.info("%s: %s", result.reason, result.destination)
    return result
