"""KFP wrapper of :mod:`components.resolve_baseline.core`."""

from kfp import dsl
from kfp.dsl import Model, Output

from components.images import PIPELINE_IMAGE


@dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)
def resolve_baseline(
    registry: str, model_name: str, baseline: Output[Model], served_only: bool = False
) -> None:
    """Copies the registry's newest version of the model, the baseline evaluate compares with.

    Args:
        registry: The model registry.
        model_name: The model's name in the registry.
        baseline: The baseline SavedModel (a folder, empty when there is none); metadata
            ``found`` and, when found, ``version``, ``registry_path``, ``metrics``.
        served_only: Only versions a rollout served count (the cluster pipeline, serving).
    """

    from components import constants
    from components.errors import step
    from components.lineage.recording import step as lineage_step
    from components.metadata import record
    from components.resolve_baseline import core

    with (
        lineage_step(
            "resolve-baseline",
            {"registry": registry, "model_name": model_name, "served_only": served_only},
            {},
            {"baseline": baseline},
            model_name=model_name,
        ),
        step("resolve-baseline"),
    ):
        result = core.resolve_baseline(registry, model_name, baseline.path, served_only)
        record(
            baseline,
            {
                constants.BASELINE_FOUND: result.found,
                constants.REASON: result.reason,
                constants.VERSION: result.version,  # None without a baseline: left out
                constants.REGISTRY_PATH: result.registry_path,
                constants.METRICS: result.metrics or None,
            },
        )
