"""Resolve the baseline [TFX Resolver with LatestBlessedModelStrategy]: the registry's newest
version of the model, the one a candidate must improve on.

Every version in the registry was blessed when it was pushed, and a version whose rollout
failed was taken out again, so the newest one is the latest blessed (and, on a cluster, the
served) model. It is copied into this step's output, so the evaluate step reads it as an
ordinary input artifact: KFP records which model the blessing depended on, evaluate needs no
registry access (nor object-store keys), and a version discarded meanwhile does not matter.
"""

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field

from components import constants
from components.registry import CLAIM_PREFIX, ModelRegistry

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BaselineResult:
    """The baseline found, or that there is none yet.

    Attributes:
        found: Whether the registry has a version of the model.
        reason: What was found, in words.
        version: The baseline's version.
        registry_path: Where the version is in the registry.
        metrics: The metrics recorded when it was pushed (on that run's eval split).
    """

    found: bool
    reason: str
    version: int | None = None
    registry_path: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)


def resolve_baseline(
    registry_root: str, model_name: str, output_dir: str, served_only: bool = False
) -> BaselineResult:
    """Copies the registry's newest version of ``model_name`` into ``output_dir``.

    Args:
        registry_root: The registry: a local path or a URI (``s3://``, ``gs://``).
        model_name: The model's name.
        output_dir: Where the baseline SavedModel goes; made empty when there is none.
        served_only: Only versions a rollout served count (a cluster pipeline that serves):
            a version pushed by a run whose rollout never ran is not the model in service.

    Returns:
        The baseline's version, registry path and recorded metrics, or that there is none.
    """
    registry = ModelRegistry(registry_root)
    versions = registry.versions(model_name)
    if served_only:
        served = set(registry.served_versions(model_name))
        versions = [version for version in versions if version in served]
    version = versions[-1] if versions else None
    os.makedirs(output_dir, exist_ok=True)
    if version is None:
        which = "served" if served_only else "pushed"
        reason = f"no baseline: no version of {model_name!r} has been {which} yet"
        logger.info("%s (%s)", reason, registry_root)
        return BaselineResult(found=False, reason=reason)
    with tempfile.TemporaryDirectory() as scratch:
        shutil.copytree(
            registry.local_copy(model_name, version, scratch),
            output_dir,
            dirs_exist_ok=True,
            ignore=shutil.ignore_patterns(CLAIM_PREFIX + "*"),
        )
    path = registry.path(model_name, version)
    logger.info("Baseline: %s version %d from %s", model_name, version, path)
    return BaselineResult(
        found=True,
        reason=f"version {version} of {model_name!r}",
        version=version,
        registry_path=path,
        metrics=registry.metadata(model_name, version).get(constants.METRICS, {}),
    )
