"""The training pipeline for a Kubeflow Pipelines cluster (what ``mlops compile`` writes). Steps,
in order (TFX names in brackets):

1-7. ingest, validate, transform, train, resolve-baseline, evaluate, deploy: the local
     pipeline's steps (:mod:`pipelines.training`), with the registry in the object store.
8. rollout [KServe]: serve the version deploy pushed with an InferenceService; roll back and
   discard the version when it does not serve; do nothing when nothing was pushed.

What only a cluster has: the cluster's defaults for the data and the registry, the object-store
keys from a Kubernetes Secret for the steps that read or write the object store, GPUs for the
train step (and its workers: with ``workers`` above 1 it trains in a TFJob of Kubeflow's
Training Operator, :mod:`components.train.job`), and the rollout's KServe parameters.
"""

import dataclasses
from dataclasses import dataclass
from typing import Any, Optional

from kfp import dsl, kubernetes

from components import settings
from components.errors import ConfigurationError
from components.rollout.component import rollout
from components.rollout.core import KServeSettings
from components.settings import setting
from components.train.component import train, train_gpu
from components.train.job import GPU_RESOURCE
from pipelines import parameters
from pipelines.training import add_training_steps

PIPELINE_NAME = "mlops-training"
# Keys of the object-store Secret (manifests/overlays/*/kustomization.yaml), read by pyarrow.
OBJECT_STORE_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
OBJECT_STORE_SECRET = "mlops-s3-credentials"

# The bundled penguins inside the pipeline image, the registry in KFP's MinIO (its Service in
# the kubeflow namespace). KFP fills every parameter a run does not set with the compiled
# default (kubeflow/pipelines@2.5.0 backend/src/v2/compiler/argocompiler/argo.go:71-81), and
# runs started from the dashboard or on a schedule set only what a person types: so the package
# for a cluster carries the cluster's locations.
CLUSTER_DEFAULTS = parameters.RunConfig(
    data_uri="/opt/venv/lib/python3.11/site-packages/palmerpenguins/data/penguins.csv",
    registry="s3://mlpipeline/model-registry?endpoint_override=minio-service.kubeflow:9000"
    "&scheme=http&region=us-east-1",
)


@dataclass(frozen=True)
class ServeConfig:
    """Whether the cluster pipeline serves what it pushes."""

    serve: bool = setting(
        True,
        "roll the pushed version out on KServe; false only pushes it to the registry",
    )


# The cluster pipeline's parameters: the training pipeline's, then the rollout's.
CLUSTER_CONFIGS = (*parameters.TRAINING_CONFIGS, ServeConfig, KServeSettings)


def build_cluster_training_pipeline(
    schema_uri: Optional[str] = None,
    gpus: int = 0,
    object_store_secret: Optional[str] = OBJECT_STORE_SECRET,
    defaults: parameters.RunConfig = CLUSTER_DEFAULTS,
):
    """Returns the cluster training pipeline, whose parameters are the settings of
    :data:`CLUSTER_CONFIGS`.

    Args:
        schema_uri: A curated TFDV schema to validate against; inferred from train when None.
        gpus: GPUs for the train step: its pod asks for that many ``nvidia.com/gpu``, runs
            TensorFlow's GPU image and tolerates GPU-node taints; with ``workers`` above 1 each
            worker pod does too (and the step's pod holds its GPUs idle while it waits).
            0 trains on CPU.
        object_store_secret: The Kubernetes Secret whose ``AWS_ACCESS_KEY_ID`` and
            ``AWS_SECRET_ACCESS_KEY`` the steps that read or write the object store (ingest,
            resolve-baseline, deploy, rollout) get as environment variables; never pipeline
            parameters. None gives them none. The train step reads it only when it trains
            across workers, from the cluster, and its workers get it as environment variables.
        defaults: Where runs read and write unless told otherwise.

    Raises:
        ConfigurationError: ``gpus`` is negative.
    """
    if gpus < 0:
        raise ConfigurationError(f"--gpus must be 0 or more, got {gpus}.")
    training_names = {
        name for config in parameters.TRAINING_CONFIGS for name in settings.defaults(config)
    }

    def steps(**values: Any) -> None:
        training = {name: value for name, value in values.items() if name in training_names}
        tasks = add_training_steps(
            schema_uri=schema_uri,
            train_step=train_gpu if gpus else train,
            served_only=values["serve"],
            # With workers above 1 the train step stages its inputs in the registry's object
            # store (with the Secret's keys, read then) and starts a TFJob whose pods get the
            # same Secret and GPUs.
            staging_root=values["registry"],
            object_store_secret=object_store_secret,
            gpus_per_worker=gpus,
            **training,
        )
        if gpus:
            tasks.train.set_accelerator_type(GPU_RESOURCE).set_accelerator_limit(gpus)
            kubernetes.add_toleration(
                tasks.train, key=GPU_RESOURCE, operator="Exists", effect="NoSchedule"
            )
        rollout_task = rollout(
            push_result=tasks.deploy.outputs["push_result"],
            registry=values["registry"],
            model_name=values["model_name"],
            **{name: values[name] for name in settings.defaults(ServeConfig)},
            **{name: values[name] for name in settings.defaults(KServeSettings)},
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

    function = parameters.pipeline_function(
        "cluster_training_pipeline",
        "The training pipeline on a Kubeflow Pipelines cluster, served by KServe.",
        CLUSTER_CONFIGS,
        steps,
        overrides=dataclasses.asdict(defaults),
    )
    return dsl.pipeline(
        name=PIPELINE_NAME,
        description="Ingest, validate (TFDV), transform, train (Keras), evaluate against the "
        "registry's newest version, deploy to the registry and roll out on KServe.",
    )(function)


cluster_training_pipeline = build_cluster_training_pipeline()
