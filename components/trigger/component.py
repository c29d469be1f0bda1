"""KFP wrapper of :mod:`components.trigger.core`."""

from kfp import dsl
from kfp.dsl import Artifact, Input, Output

from components.images import PIPELINE_IMAGE


@dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)
def trigger(
    decision: Input[Artifact],
    data_uri: str,
    registry: str,
    model_name: str,
    triggered: Output[Artifact],
    training_pipeline: str = "mlops-training",
    experiment: str = "mlops",
    kfp_host: str = "http://ml-pipeline.kubeflow.svc.cluster.local:8888",
) -> None:
    """Starts the training pipeline on fresh data when the monitor decided to retrain.

    Args:
        decision: The monitor's decision (``retrain``, ``reasons``).
        data_uri: The fresh data to train on.
        registry: The registry the training run pushes to.
        model_name: The model to retrain.
        triggered: ``started``, ``reason``, ``run_id`` (metadata and JSON).
        training_pipeline: The uploaded training pipeline; its newest version runs.
        experiment: The experiment the run goes in.
        kfp_host: The KFP API from inside the cluster.
    """
    import dataclasses
    import json

    from components.errors import step
    from components.metadata import read, record
    from components.trigger import core

    with step("trigger"):
        result = core.trigger(
            bool(read(decision, "retrain")),
            list(read(decision, "reasons", [])),
            lambda: core.client_for(kfp_host),
            training_pipeline,
            experiment,
            {"data_uri": data_uri, "registry": registry, "model_name": model_name},
        )
        outcome = dataclasses.asdict(result)
        with open(triggered.path, "w") as f:
            json.dump(outcome, f, indent=2)
        record(triggered, outcome)
