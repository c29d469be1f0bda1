"""The training pipeline for a Kubeflow Pipelines cluster (what ``mlops compile`` writes). Steps,
in order (TFX names in brackets):

1-7. ingest, validate, transform, train, resolve-baseline, evaluate, deploy: the local
     pipeline's steps (:mod:`pipelines.training`), with the registry in the object store.
8. rollout [KServe]: serve the version deploy pushed with an InferenceService; roll back and
   discard the version when it does not serve; do nothing when nothing was pushed.

What only a cluster has: the cluster's defaults for the data and the registry, the object-store
keys from a Kubernetes Secret for the steps that read or write the object store, GPUs for the
train step, and the rollout's KServe parameters.
"""

from typing import Dict, List, Optional

from kfp import dsl, kubernetes

from components.rollout.component import rollout
from components.train.component import train, train_gpu
from pipelines.training import RunDefaults, add_training_steps

PIPELINE_NAME = "mlops-training"
GPU_RESOURCE = "nvidia.com/gpu"
# Keys of the object-store Secret (manifests/overlays/*/kustomization.yaml), read by pyarrow.
OBJECT_STORE_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
OBJECT_STORE_SECRET = "mlops-s3-credentials"

# The bundled penguins inside the pipeline image, the registry in KFP's MinIO (its Service in
# the kubeflow namespace).
CLUSTER_DEFAULTS = RunDefaults(
    data_uri="/opt/venv/lib/python3.11/site-packages/palmerpenguins/data/penguins.csv",
    registry="s3://mlpipeline/model-registry?endpoint_override=minio-service.kubeflow:9000"
    "&scheme=http&region=us-east-1",
)


def build_cluster_training_pipeline(
    schema_uri: Optional[str] = None,
    gpus: int = 0,
    object_store_secret: Optional[str] = OBJECT_STORE_SECRET,
    defaults: RunDefaults = CLUSTER_DEFAULTS,
):
    """Returns the cluster training pipeline function.

    Args:
        schema_uri: A curated TFDV schema to validate against; inferred from train when None.
        gpus: GPUs for the train step: its pod asks for that many ``nvidia.com/gpu``, runs
            TensorFlow's GPU image and tolerates GPU-node taints. 0 trains on CPU.
        object_store_secret: The Kubernetes Secret whose ``AWS_ACCESS_KEY_ID`` and
            ``AWS_SECRET_ACCESS_KEY`` the steps that read or write the object store (ingest,
            resolve-baseline, deploy, rollout) get as environment variables; never pipeline
            parameters.
            None gives them none.
        defaults: Where runs read and write unless told otherwise.

    Raises:
        ValueError: ``gpus`` is negative.
    """
    if gpus < 0:
        raise ValueError(f"gpus must be >= 0, got {gpus}")

    @dsl.pipeline(
        name=PIPELINE_NAME,
        description="Ingest, validate (TFDV), transform, train (Keras), evaluate against the "
        "registry's newest version, deploy to the registry and roll out on KServe.",
    )
    def cluster_training_pipeline(
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
        beam_pipeline_args: List[str] = [],  # noqa: B006 - as above.
        serve: bool = True,
        serving_namespace: str = "mlops-models",
        serving_runtime: str = "kserve-tensorflow-serving",
        predictor_cpu: str = "500m",
        predictor_memory: str = "1Gi",
        deployment_mode: str = "RawDeployment",
        canary_traffic_percent: int = 100,
        rollout_timeout_seconds: int = 600,
    ) -> None:
        tasks = add_training_steps(
            data_uri=data_uri,
            label=label,
            model_name=model_name,
            registry=registry,
            task=task,
            eval_fraction=eval_fraction,
            max_vocab_size=max_vocab_size,
            num_oov_buckets=num_oov_buckets,
            thresholds=thresholds,
            min_improvement=min_improvement,
            beam_pipeline_args=beam_pipeline_args,
            schema_uri=schema_uri,
            train_step=train_gpu if gpus else train,
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            hidden_units=hidden_units,
            dropout=dropout,
            early_stopping_patience=early_stopping_patience,
            seed=seed,
            cpu_devices=cpu_devices,
        )
        if gpus:
            tasks.train.set_accelerator_type(GPU_RESOURCE).set_accelerator_limit(gpus)
            kubernetes.add_toleration(
                tasks.train, key=GPU_RESOURCE, operator="Exists", effect="NoSchedule"
            )
        rollout_task = rollout(
            push_result=tasks.deploy.outputs["push_result"],
            registry=registry,
            model_name=model_name,
            serve=serve,
            serving_namespace=serving_namespace,
            serving_runtime=serving_runtime,
            predictor_cpu=predictor_cpu,
            predictor_memory=predictor_memory,
            deployment_mode=deployment_mode,
            canary_traffic_percent=canary_traffic_percent,
            rollout_timeout_seconds=rollout_timeout_seconds,
        )
        # Rollout changes the cluster and the registry: a cached rollout would serve nothing.
        rollout_task.set_caching_options(False)
        if object_store_secret:
            for step in (tasks.ingest, tasks.resolve_baseline, tasks.deploy, rollout_task):
                kubernetes.use_secret_as_env(
                    step,
                    secret_name=object_store_secret,
                    secret_key_to_env={key: key for key in OBJECT_STORE_KEYS},
                )

    return cluster_training_pipeline


cluster_training_pipeline = build_cluster_training_pipeline()
