"""KFP wrapper of :mod:`components.trigger.core`."""

from kfp import dsl
from kfp.dsl import Artifact, Input, Output

from components.images import PIPELINE_IMAGE


@dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)
def trigger(
    decision: Input[Artifact],
    prediction_log: str,
    data_uri: str,
    registry: str,
    model_name: str,
    triggered: Output[Artifact],
    training_pipeline: str = "mlops-training",
    experiment: str = "mlops",
    kfp_host: str = "http://ml-pipeline.kubeflow.svc.cluster.local:8888",
    join_labelled_log: bool = True,
) -> None:
    """Starts the training pipeline on fresh data when the monitor decided to retrain, and keeps
    what it did beside the decision in the log: a decision that was not acted on (the KFP API
    failed) stands for the next monitor run.

    Args:
        decision: The monitor's decision (``retrain``, ``reasons``, ``window``: its folder).
        prediction_log: The prediction log the monitor read (its decisions are kept there).
        data_uri: The fresh data to train on.
        registry: The registry the training run pushes to.
        model_name: The model to retrain.
        triggered: ``started``, ``acted``, ``reason``, ``run_id`` (metadata and JSON).
        training_pipeline: The uploaded training pipeline; its newest version runs.
        experiment: The experiment the run goes in.
        kfp_host: The KFP API from inside the cluster.
        join_labelled_log: Whether the run also trains on the log's labelled rows (and gates
            the candidate on those of them in its eval split).
    """
    import dataclasses
    import json
    import logging

    from components.errors import step
    from components.metadata import read, record
    from components.monitor.core import MonitorState
    from components.trigger import core

    retrain = bool(read(decision, "retrain"))
    window = read(decision, "window", None)

    def keep(outcome: dict) -> None:
        if retrain and window:
            MonitorState(prediction_log, model_name).record_outcome(str(window), outcome)

    with step("trigger"):
        params = {"data_uri": data_uri, "registry": registry, "model_name": model_name}
        if join_labelled_log:
            params["labelled_log"] = prediction_log
        try:
            result = core.trigger(
                retrain,
                list(read(decision, "reasons", [])),
                lambda: core.client_for(kfp_host),
                training_pipeline,
                experiment,
                params,
            )
        except Exception as err:
            try:
                keep({"acted": False, "reason": f"the trigger failed: {err}"})
            except Exception as lost:  # the failure to report is the trigger's, not this one
                logging.getLogger(__name__).warning("Could not keep the outcome: %s", lost)
            raise
        outcome = dataclasses.asdict(result)
        keep(outcome)
        with open(triggered.path, "w") as f:
            json.dump(outcome, f, indent=2)
        record(triggered, outcome)
