"""The training pipeline. Steps, in order (TFX names in brackets):

1. ingest [ExampleGen]: read CSV/Parquet, split train/eval by row hash, write Parquet.
2. validate [StatisticsGen + SchemaGen + ExampleValidator]: TFDV statistics, schema, anomalies.
3. transform [Transform]: fit the preprocessing on train, save it as a TensorFlow SavedModel.
4. train [Trainer]: Keras on the transform; export a SavedModel taking raw features.
5. evaluate [Evaluator]: metrics on eval; bless against thresholds and the registry's baseline.
6. deploy [Pusher]: push a blessed model to the registry; do nothing for an unblessed one.

Every step runs whether or not the model is blessed (``kfp.local`` has no ``dsl.If``); deploy
reads the blessing itself, as TFX's Pusher does.
"""

import importlib.resources
from dataclasses import dataclass
from typing import Dict, List, NamedTuple, Optional

from kfp import dsl, kubernetes
from kfp.dsl import Artifact, Dataset, Metrics, Model

from components.deploy.component import deploy
from components.evaluate.component import evaluate
from components.ingest.component import ingest
from components.train.component import train, train_gpu
from components.transform.component import transform
from components.validate.component import validate

PIPELINE_NAME = "mlops-training"
GPU_RESOURCE = "nvidia.com/gpu"
# Keys of the object-store Secret (manifests/base/pipeline-credentials.yaml), read by pyarrow.
OBJECT_STORE_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
OBJECT_STORE_SECRET = "mlops-s3-credentials"


@dataclass(frozen=True)
class RunDefaults:
    """The defaults of the parameters that say where a run reads and writes.

    KFP fills every parameter a run does not set with the compiled default (kubeflow/pipelines
    @2.5.0 backend/src/v2/compiler/argocompiler/argo.go:71-81), and runs started from the
    dashboard or on a schedule set only what a person types: so the package for a cluster
    carries the cluster's locations, and the local pipeline this machine's.
    """

    data_uri: str
    registry: str
    deploy_target: str


def bundled_penguins() -> str:
    """The Palmer penguins CSV that the ``palmerpenguins`` package ships."""
    return str(importlib.resources.files("palmerpenguins") / "data" / "penguins.csv")


def local_defaults() -> RunDefaults:
    """The bundled penguins, ``./model-registry``, the local registry target."""
    return RunDefaults(bundled_penguins(), "model-registry", "local")


# The bundled penguins inside the pipeline image, the registry in KFP's MinIO (its Service in
# the kubeflow namespace), served by KServe.
CLUSTER_DEFAULTS = RunDefaults(
    data_uri="/opt/venv/lib/python3.11/site-packages/palmerpenguins/data/penguins.csv",
    registry="s3://mlpipeline/model-registry?endpoint_override=minio-service.kubeflow:9000"
    "&scheme=http&region=us-east-1",
    deploy_target="kserve",
)


class TrainingOutputs(NamedTuple):
    """What a run hands back: enough for a summary without opening the pipeline root."""

    train_data: Dataset
    eval_data: Dataset
    anomalies: Artifact
    model: Model
    metrics: Metrics
    blessing: Artifact
    push_result: Artifact


def build_training_pipeline(
    schema_uri: Optional[str] = None,
    gpus: int = 0,
    object_store_secret: Optional[str] = None,
    defaults: Optional[RunDefaults] = None,
):
    """Returns the training pipeline function.

    Args:
        schema_uri: A curated TFDV schema to validate against; inferred from train when None.
            It is fixed when the pipeline is built, as TFX's ImportSchemaGen does, because
            ``kfp.local`` cannot take an absent value for a run-time parameter.
        gpus: GPUs for the train step (on a cluster): its pod asks for that many
            ``nvidia.com/gpu``, runs TensorFlow's GPU image and tolerates GPU-node taints.
            0 trains on CPU.
        object_store_secret: On a cluster, the Kubernetes Secret whose ``AWS_ACCESS_KEY_ID``
            and ``AWS_SECRET_ACCESS_KEY`` the steps that read or write the object store
            (ingest, evaluate, deploy) get as environment variables; never pipeline parameters.
        defaults: Where runs read and write unless told otherwise: :data:`CLUSTER_DEFAULTS`
            for a package uploaded to a cluster; :func:`local_defaults` when None.
    """
    if gpus < 0:
        raise ValueError(f"gpus must be >= 0, got {gpus}")
    defaults = defaults or local_defaults()

    @dsl.pipeline(
        name=PIPELINE_NAME,
        description="Ingest, validate (TFDV), transform, train (Keras), evaluate and deploy.",
    )
    def training_pipeline(
        data_uri: str = defaults.data_uri,
        label: str = "species",
        model_name: str = "penguins",
        registry: str = defaults.registry,
        task: str = "auto",
        eval_fraction: float = 0.2,
        epochs: int = 50,
        batch_size: int = 32,
        learning_rate: float = 0.01,
        hidden_units: List[int] = [64, 32],  # noqa: B006 - KFP reads the default, never mutates it.
        dropout: float = 0.1,
        early_stopping_patience: int = 5,
        seed: int = 42,
        cpu_devices: int = 1,
        max_vocab_size: int = 1000,
        num_oov_buckets: int = 2,
        thresholds: Dict[str, Dict[str, float]] = {},  # noqa: B006 - as above.
        min_improvement: float = 0.0,
        deploy_target: str = defaults.deploy_target,
        beam_pipeline_args: List[str] = [],  # noqa: B006 - as above.
        serving_namespace: str = "mlops-models",
        serving_runtime: str = "kserve-tensorflow-serving",
        predictor_cpu: str = "500m",
        predictor_memory: str = "1Gi",
        deployment_mode: str = "RawDeployment",
        canary_traffic_percent: int = 100,
        rollout_timeout_seconds: int = 600,
    ) -> TrainingOutputs:
        ingest_task = ingest(data_uri=data_uri, eval_fraction=eval_fraction)
        # The cache key sees the URI string, not the data behind it.
        ingest_task.set_caching_options(False)
        train_data = ingest_task.outputs["train_data"]
        eval_data = ingest_task.outputs["eval_data"]

        validate_args = {"schema_uri": schema_uri} if schema_uri else {}
        validate_task = validate(
            train_data=train_data,
            eval_data=eval_data,
            label=label,
            beam_pipeline_args=beam_pipeline_args,
            **validate_args,
        )
        if schema_uri:
            # The curated schema is read from its URI, which the cache key cannot see into.
            validate_task.set_caching_options(False)

        transform_task = transform(
            train_data=train_data,
            schema=validate_task.outputs["schema"],
            label=label,
            task=task,
            max_vocab_size=max_vocab_size,
            num_oov_buckets=num_oov_buckets,
        )

        train_task = (train_gpu if gpus else train)(
            train_data=train_data,
            eval_data=eval_data,
            transform_graph=transform_task.outputs["transform_graph"],
            hidden_units=hidden_units,
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            dropout=dropout,
            early_stopping_patience=early_stopping_patience,
            seed=seed,
            cpu_devices=cpu_devices,
        )
        if gpus:
            train_task.set_accelerator_type(GPU_RESOURCE).set_accelerator_limit(gpus)
            kubernetes.add_toleration(
                train_task, key=GPU_RESOURCE, operator="Exists", effect="NoSchedule"
            )

        evaluate_task = evaluate(
            eval_data=eval_data,
            model=train_task.outputs["model"],
            transform_graph=transform_task.outputs["transform_graph"],
            registry=registry,
            model_name=model_name,
            thresholds=thresholds,
            min_improvement=min_improvement,
        )
        # The baseline is read from the registry, an input KFP cannot see.
        evaluate_task.set_caching_options(False)

        deploy_task = deploy(
            model=train_task.outputs["model"],
            blessing=evaluate_task.outputs["blessing"],
            train_data=train_data,
            schema=validate_task.outputs["schema"],
            registry=registry,
            model_name=model_name,
            target=deploy_target,
            serving_namespace=serving_namespace,
            serving_runtime=serving_runtime,
            predictor_cpu=predictor_cpu,
            predictor_memory=predictor_memory,
            deployment_mode=deployment_mode,
            canary_traffic_percent=canary_traffic_percent,
            rollout_timeout_seconds=rollout_timeout_seconds,
        )
        # Deploy changes the registry and the cluster: a cached push would deploy nothing.
        deploy_task.set_caching_options(False)

        if object_store_secret:
            for task in (ingest_task, evaluate_task, deploy_task):
                kubernetes.use_secret_as_env(
                    task,
                    secret_name=object_store_secret,
                    secret_key_to_env={key: key for key in OBJECT_STORE_KEYS},
                )

        return TrainingOutputs(
            train_data=train_data,
            eval_data=eval_data,
            anomalies=validate_task.outputs["anomalies"],
            model=train_task.outputs["model"],
            metrics=evaluate_task.outputs["metrics"],
            blessing=evaluate_task.outputs["blessing"],
            push_result=deploy_task.outputs["push_result"],
        )

    return training_pipeline


training_pipeline = build_training_pipeline()
