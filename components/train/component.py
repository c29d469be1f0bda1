"""KFP wrapper of :mod:`components.train.core`."""

from typing import List, Optional

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Markdown, Model, Output

from components.images import PIPELINE_GPU_IMAGE, PIPELINE_IMAGE


@dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)
def train(
    train_data: Input[Dataset],
    eval_data: Input[Dataset],
    transform_graph: Input[Artifact],
    model: Output[Model],
    training_report: Output[Markdown],
    hidden_units: List[int] = [64, 32],  # noqa: B006 - KFP reads the default, never mutates it.
    epochs: int = 50,
    batch_size: int = 32,
    learning_rate: float = 0.01,
    dropout: float = 0.1,
    embedding_dim: int = 8,
    early_stopping_patience: int = 5,
    seed: int = 42,
    cpu_devices: int = 1,
    workers: int = 1,
    job_timeout_minutes: int = 60,
    staging_root: Optional[str] = None,
    object_store_secret: Optional[str] = None,
    gpus_per_worker: int = 0,
) -> None:
    """Trains a Keras model on the transform and exports a raw-feature serving SavedModel.

    Args:
        train_data: The train split.
        eval_data: The eval split, for early stopping.
        transform_graph: The fitted transform.
        model: The exported SavedModel (a folder).
        training_report: Epochs, devices and the loss per epoch, for the KFP UI.
        hidden_units: Width of each hidden layer.
        epochs: Most epochs; early stopping may end sooner.
        batch_size: Global batch size.
        learning_rate: Adam's learning rate.
        dropout: Dropout after each hidden layer.
        embedding_dim: Embedding width of each categorical feature.
        early_stopping_patience: Epochs without a better eval loss before stopping.
        seed: Random seed (runs are repeatable).
        cpu_devices: Logical CPU devices to mirror across when there is no GPU.
        workers: Pods to train in, one worker each (a TFJob); 1 trains in this step's pod.
        job_timeout_minutes: With several workers, the longest the TFJob may take.
        staging_root: With several workers, the object store (URI) where the inputs and the
            chief's model are staged; the cluster pipeline passes its registry.
        object_store_secret: The Secret whose keys the workers get (the object store's).
        gpus_per_worker: GPUs per worker pod.
    """
    import dataclasses

    from components import constants
    from components.errors import step
    from components.lineage.recording import step as lineage_step
    from components.metadata import read, record
    from components.train import core, job

    with (
        lineage_step(
            "train",
            {},
            {"train_data": train_data, "eval_data": eval_data, "transform_graph": transform_graph},
            {"model": model, "training_report": training_report},
        ) as lineage,
        step("train"),
    ):
        config = core.TrainConfig(
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            hidden_units=tuple(int(units) for units in hidden_units),
            dropout=dropout,
            embedding_dim=embedding_dim,
            early_stopping_patience=early_stopping_patience,
            seed=seed,
            cpu_devices=cpu_devices,
            workers=workers,
            job_timeout_minutes=job_timeout_minutes,
        )
        lineage.parameters.update(dataclasses.asdict(config))
        result = job.train(
            train_data.path,
            eval_data.path,
            transform_graph.path,
            model.path,
            config,
            launch=lambda: job.from_pod(staging_root, object_store_secret, gpus_per_worker),
        )
        with open(training_report.path, "w") as f:
            f.write(core.markdown_report(result, config))
        record(
            model,
            {
                constants.TASK: read(transform_graph, constants.TASK),
                constants.CLASSES: read(transform_graph, constants.CLASSES),
                constants.EPOCHS_RUN: result.epochs_run,
                constants.REPLICAS: result.replicas,
                constants.STRATEGY: result.strategy,
            },
        )


# The same step in TensorFlow's GPU image, for pipelines compiled with GPUs.
train_gpu = dsl.component(base_image=PIPELINE_GPU_IMAGE, install_kfp_package=False)(
    train.python_func
)
