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
    statistics: Input[Artifact],
    registry: str,
    model_name: str,
    push_result: Output[Artifact],
) -> None:
    """Pushes a blessed model to the registry; pushes nothing for an unblessed one.

    Args:
        model: The SavedModel.
        blessing: The evaluate step's decision.
        train_data: The train split (its fingerprint is kept with the model).
        schema: The schema (kept with the model).
        statistics: The validate step's statistics (the train split's are kept with the model).
        registry: The registry: a local path, or a URI in an object store (s3://, gs://).
        model_name: The model's name.
        push_result: Whether and where the model went (metadata and JSON).
    """
    import dataclasses
    import json
    import os

    import tensorflow_data_validation as tfdv
    from google.protobuf import text_format

    from components import constants
    from components.deploy import core
    from components.errors import step
    from components.lineage.recording import reference
    from components.lineage.recording import step as lineage_step
    from components.metadata import read, record, without_nulls

    with (
        lineage_step(
            "deploy",
            {"registry": registry, "model_name": model_name},
            {
                "model": model,
                "blessing": blessing,
                "train_data": train_data,
                "schema": schema,
                "statistics": statistics,
            },
            {"push_result": push_result},
            model_name=model_name,
        ),
        step("deploy"),
    ):
        with open(schema.path) as f:
            schema_text = f.read()
        statistics_text = text_format.MessageToString(
            tfdv.load_stats_binary(
                os.path.join(
                    statistics.path, constants.STATS_FILE.format(split=constants.TRAIN_SPLIT)
                )
            )
        )
        result = core.deploy(
            model.path,
            bool(read(blessing, constants.BLESSED)),
            list(read(blessing, constants.REASONS)),
            registry,
            model_name,
            without_nulls(
                {
                    constants.METRICS: read(blessing, constants.METRICS, {}),
                    constants.DATA_FINGERPRINT: read(train_data, constants.FINGERPRINT),
                    constants.TASK: read(model, constants.TASK),
                    constants.CLASSES: read(model, constants.CLASSES),
                    constants.LINEAGE: reference(),
                }
            ),
            schema_text,
            statistics_text,
        )
        outcome = dataclasses.asdict(result)  # keys: constants.PUSHED, VERSION, DESTINATION, REASON
        with open(push_result.path, "w") as f:
            json.dump(outcome, f, indent=2)
        record(push_result, outcome)  # version and destination are None for an unpushed model
