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

from kfp import dsl, kubernetes

from components.monitor.component import monitor
from components.trigger.component import trigger
from pipelines.cluster_training import CLUSTER_DEFAULTS, OBJECT_STORE_KEYS, OBJECT_STORE_SECRET
from pipelines.cluster_training import PIPELINE_NAME as TRAINING_PIPELINE

PIPELINE_NAME = "mlops-monitoring"
# Where the log sink writes on kind (manifests/overlays/kind/kustomization.yaml).
PREDICTION_LOG = (
    "s3://mlpipeline/prediction-log?endpoint_override=minio-service.kubeflow:9000"
    "&scheme=http&region=us-east-1"
)


@dsl.pipeline(
    name=PIPELINE_NAME,
    description="Skew, drift and decay of the served traffic; retrain when the model is stale.",
)
def monitoring_pipeline(
    model_name: str = "penguins",
    prediction_log: str = PREDICTION_LOG,
    registry: str = CLUSTER_DEFAULTS.registry,
    data_uri: str = CLUSTER_DEFAULTS.data_uri,
    min_rows: int = 200,
    numeric_threshold: float = 0.15,
    categorical_threshold: float = 0.15,
    decay_tolerance: float = 0.05,
    windows_in_a_row: int = 2,
    label_lookback_hours: float = 72.0,
    settle_seconds: float = 90.0,
    training_pipeline: str = TRAINING_PIPELINE,
    experiment: str = "mlops",
    join_labelled_log: bool = True,
) -> None:
    """Monitor one window and retrain when the decision says so.

    Args:
        model_name: The served model.
        prediction_log: The prediction log the log sink writes.
        registry: The registry the served versions are in.
        data_uri: The fresh data a retraining run trains on.
        min_rows: Fewest rows in a window to decide on.
        numeric_threshold: Jensen-Shannon divergence above which a numeric feature moved.
        categorical_threshold: L-infinity distance above which a categorical feature moved.
        decay_tolerance: How far the primary metric on labelled rows may fall.
        windows_in_a_row: Windows that must say retrain in a row before it is acted on.
        label_lookback_hours: Labels arriving in a window are joined to predictions up to this
            long before them.
        settle_seconds: A window ends this long before now (rows reach the log late).
        training_pipeline: The uploaded training pipeline to run.
        experiment: The experiment retraining runs go in.
        join_labelled_log: Whether a retraining run also trains on the log's recent labelled
            rows (and must do as well as the serving version on those in its eval split).
    """
    watched = monitor(
        prediction_log=prediction_log,
        registry=registry,
        model_name=model_name,
        min_rows=min_rows,
        numeric_threshold=numeric_threshold,
        categorical_threshold=categorical_threshold,
        decay_tolerance=decay_tolerance,
        windows_in_a_row=windows_in_a_row,
        label_lookback_hours=label_lookback_hours,
        settle_seconds=settle_seconds,
    )
    started = trigger(
        decision=watched.outputs["decision"],
        prediction_log=prediction_log,
        data_uri=data_uri,
        registry=registry,
        model_name=model_name,
        training_pipeline=training_pipeline,
        experiment=experiment,
        join_labelled_log=join_labelled_log,
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
