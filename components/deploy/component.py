"""KFP wrapper of :mod:`components.deploy.core`."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Model, Output

from components.images import PIPELINE_IMAGE


@dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)
def deploy(
    model: Input[Model],
    blessing: Input[Artifact],
    train_data: Input[Dataset],
    schema: Input[Artifact],
    registry: str,
    model_name: str,
    push_result: Output[Artifact],
    target: str = "local",
) -> None:
    """Pushes a blessed model to the target; writes nothing for an unblessed one.

    Args:
        model: The SavedModel.
        blessing: The evaluate step's decision.
        train_data: The train split (its fingerprint is kept with the model).
        schema: The schema (kept with the model).
        registry: The registry's location.
        model_name: The model's name.
        push_result: Whether and where the model went (metadata and JSON).
        target: The deploy target; ``local`` is the filesystem registry.
    """
    import dataclasses
    import json

    from components import constants
    from components.deploy import core
    from components.errors import step

    with step("deploy"):
        with open(schema.path) as f:
            schema_text = f.read()
        result = core.deploy(
            model.path,
            bool(blessing.metadata[constants.BLESSED]),
            list(blessing.metadata[constants.REASONS]),
            target,
            registry,
            model_name,
            {
                "metrics": blessing.metadata.get("metrics", {}),
                "data_fingerprint": train_data.metadata.get(constants.FINGERPRINT),
                "task": model.metadata.get(constants.TASK),
                "classes": model.metadata.get(constants.CLASSES),
            },
            schema_text,
        )
    with open(push_result.path, "w") as f:
        json.dump(dataclasses.asdict(result), f, indent=2)
    push_result.metadata[constants.PUSHED] = result.pushed
    push_result.metadata[constants.REASON] = result.reason
    push_result.metadata[constants.VERSION] = result.version
    push_result.metadata[constants.DESTINATION] = result.destination
