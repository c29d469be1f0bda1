"""KFP wrapper of :mod:`components.transform.core`."""

from typing import List, Optional

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Output

from components.images import PIPELINE_IMAGE


@dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)
def transform(
    train_data: Input[Dataset],
    schema: Input[Artifact],
    label: str,
    transform_graph: Output[Artifact],
    task: str = "auto",
    max_vocab_size: int = 1000,
    num_oov_buckets: int = 2,
    beam_pipeline_args: Optional[List[str]] = None,
) -> None:
    """Fits the preprocessing on the train split and saves it as a TensorFlow SavedModel.

    Args:
        train_data: The train split.
        schema: The validated schema (text format).
        label: The label column.
        transform_graph: A folder with the transform SavedModel and its spec (JSON).
        task: auto, classification or regression.
        max_vocab_size: Most frequent values kept per categorical feature.
        num_oov_buckets: Hash buckets for values outside the vocabulary.
        beam_pipeline_args: Beam options to fit on a Beam runner.
    """

    from components import constants
    from components.errors import step
    from components.lineage.recording import step as lineage_step
    from components.metadata import record
    from components.transform import core

    with (
        lineage_step(
            "transform",
            {
                "label": label,
                "task": task,
                "max_vocab_size": max_vocab_size,
                "num_oov_buckets": num_oov_buckets,
                "beam_pipeline_args": beam_pipeline_args,
            },
            {"train_data": train_data, "schema": schema},
            {"transform_graph": transform_graph},
        ),
        step("transform"),
    ):
        spec = core.transform(
            train_data.path,
            core.read_schema(schema.path),
            label,
            transform_graph.path,
            task,
            core.TransformConfig(
                task=task, max_vocab_size=max_vocab_size, num_oov_buckets=num_oov_buckets
            ),
            beam_pipeline_args or (),
        )
        record(
            transform_graph,
            {
                constants.LABEL: label,
                constants.TASK: spec.label.task,
                constants.CLASSES: spec.label.classes,  # None for regression
            },
        )
