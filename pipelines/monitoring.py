"""The monitoring pipeline for a Kubeflow Pipelines cluster, run on a schedule
(``mlops schedule``): monitor the served traffic since the last run, and start the training
pipeline on fresh data when the model went stale.

1. monitor: skew, drift and decay of the prediction log's new window, the decision
   (:mod:`components.monitor`).
2. trigger: when the decision is to retrain, a run of the uploaded training pipeline's newest
   version through the KFP API (:mod:`components.trigger`), on the fresh data joined with the
   log's labelled rows; nothing otherwise. What it did is kept beside the decision, so a
   decision that a failed trigger left undone stands for the next run.
"""

from dataclasses import dataclass
from typing import Any

from kfp import dsl, kubernetes

from components.monitor.component import monitor
from components.monitor.config import MonitorConfig
from components.settings import check, defaults, setting
from components.trigger.component import trigger
from pipelines.cluster_training import CLUSTER_DEFAULTS, OBJECT_STORE_KEYS, OBJECT_STORE_SECRET
from pipelines.cluster_training import PIPELINE_NAME as TRAINING_PIPELINE
from pipelines.parameters import RunConfig, pipeline_function

PIPELINE_NAME = "mlops-monitoring"
# Where the log sink writes on kind (manifests/overlays/kind/kustomization.yaml).
PREDICTION_LOG = (
    "s3://mlpipeline/prediction-log?endpoint_override=minio-service.kubeflow:9000"
    "&scheme=http&region=us-east-1"
)


@dataclass(frozen=True)
class MonitoringConfig:
    """Where the monitoring pipeline reads, and how it retrains."""

    prediction_log: str = setting(
        PREDICTION_LOG, "the prediction log the log sink writes", show="the log sink's on kind"
    )
    training_pipeline: str = setting(
        TRAINING_PIPELINE, "the uploaded training pipeline a retraining runs (its newest version)"
    )
    experiment: str = setting("mlops", "the experiment retraining runs go in")
    join_labelled_log: bool = setting(
        True,
        "whether a retraining run also trains on the log's recent labelled rows (and must do "
        "as well as the serving version on those in its eval split)",
    )

    def __post_init__(self) -> None:
        check(self)


# The monitor's settings a step takes: per-feature thresholds are the command line's only
# (a dict of floats has no KFP parameter type of its own here).
MONITOR_SETTINGS = [name for name in defaults(MonitorConfig) if name != "feature_thresholds"]
CONFIGS = (RunConfig, MonitoringConfig, MonitorConfig)


def _steps(**values: Any) -> None:
    """Monitor one window and retrain when the decision says so."""
    where = {name: values[name] for name in ("prediction_log", "registry", "model_name")}
    watched = monitor(**where, **{name: values[name] for name in MONITOR_SETTINGS})
    started = trigger(
        decision=watched.outputs["decision"],
        data_uri=values["data_uri"],
        training_pipeline=values["training_pipeline"],
        experiment=values["experiment"],
        join_labelled_log=values["join_labelled_log"],
        **where,
    )
    # Both read or change what changes between runs: a cached step would skip them.
    for task in (watched, started):
        task.set_caching_options(False)
    # Both read or write the log in the object store.
    for task in (watched, started):
        kubernetes.use_secret_as_env(
            task,
            secret_name=OBJECT_STORE_SECRET,
            secret_key_to_env={key: key for key in OBJECT_STORE_KEYS},
        )


monitoring_pipeline = dsl.pipeline(
    name=PIPELINE_NAME,
    description="Skew, drift and decay of the served traffic; retrain when the model is stale.",
)(
    pipeline_function(
        "monitoring_pipeline",
        "Monitor one window and retrain when the decision says so.",
        CONFIGS,
        _steps,
        overrides={"registry": CLUSTER_DEFAULTS.registry, "data_uri": CLUSTER_DEFAULTS.data_uri},
        only=["model_name", "registry", "data_uri", *defaults(MonitoringConfig),
              *MONITOR_SETTINGS],
    )
)  # fmt: skip
