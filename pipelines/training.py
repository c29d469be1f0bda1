"""The training pipeline, run embedded on one machine (``mlops run --local``). Steps, in order
(TFX names in brackets):

1. ingest [ExampleGen]: read CSV/Parquet (and, given a prediction log, its recent labelled
   rows), split train/eval by row hash, write Parquet.
2. validate [StatisticsGen + SchemaGen + ExampleValidator]: TFDV statistics, schema, anomalies.
3. transform [Transform]: fit the preprocessing on train, save it as a TensorFlow SavedModel.
4. train [Trainer]: Keras on the transform; export a SavedModel taking raw features.
5. resolve-baseline [Resolver, LatestBlessedModelStrategy]: the registry's newest version of
   the model, copied as this run's baseline.
6. evaluate [Evaluator]: metrics on eval; bless against the trivial model, thresholds and the
   baseline (scored on the same rows, and on the log's labelled rows in eval).
7. deploy [Pusher]: push a blessed model to the registry; do nothing for an unblessed one.

Every step runs whether or not the model is blessed (``kfp.local`` has no ``dsl.If``); deploy
reads the blessing itself, as TFX's Pusher does. The cluster pipeline
(:mod:`pipelines.cluster_training`) adds these steps with :func:`add_training_steps` and rolls
the pushed version out on KServe; this one has no cluster parameter.
"""

from typing import Any, Dict, NamedTuple, Optional

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Metrics, Model, PipelineTask

from components.deploy.component import deploy
from components.evaluate.component import evaluate
from components.ingest.component import ingest
from components.resolve_baseline.component import resolve_baseline
from components.train.component import train
from components.transform.component import transform
from components.validate.component import validate
from pipelines import parameters

PIPELINE_NAME = "mlops-training-local"


class TrainingOutputs(NamedTuple):
    """What a run hands back: enough for a summary without opening the pipeline root."""

    train_data: Dataset
    eval_data: Dataset
    anomalies: Artifact
    model: Model
    metrics: Metrics
    blessing: Artifact
    push_result: Artifact


class TrainingTasks(NamedTuple):
    """The tasks :func:`add_training_steps` adds, for a pipeline to configure further."""

    ingest: PipelineTask
    validate: PipelineTask
    transform: PipelineTask
    train: PipelineTask
    resolve_baseline: PipelineTask
    evaluate: PipelineTask
    deploy: PipelineTask

    def outputs(self) -> TrainingOutputs:
        """The artifacts a run hands back."""
        return TrainingOutputs(
            train_data=self.ingest.outputs["train_data"],
            eval_data=self.ingest.outputs["eval_data"],
            anomalies=self.validate.outputs["anomalies"],
            model=self.train.outputs["model"],
            metrics=self.evaluate.outputs["metrics"],
            blessing=self.evaluate.outputs["blessing"],
            push_result=self.deploy.outputs["push_result"],
        )


def _read_and_validate(
    data_uri: Any,
    eval_fraction: Any,
    labelled: Dict[str, Any],
    label: Any,
    beam_pipeline_args: Any,
    schema_uri: Optional[str],
) -> tuple[PipelineTask, PipelineTask]:
    ingest_task = ingest(
        data_uri=data_uri,
        eval_fraction=eval_fraction,
        label=label,
        beam_pipeline_args=beam_pipeline_args,
        **labelled,
    )
    # The cache key sees the URIs, not the data (or the log) behind them.
    ingest_task.set_caching_options(False)
    validate_args = {"schema_uri": schema_uri} if schema_uri else {}
    validate_task = validate(
        train_data=ingest_task.outputs["train_data"],
        eval_data=ingest_task.outputs["eval_data"],
        label=label,
        beam_pipeline_args=beam_pipeline_args,
        **validate_args,
    )
    if schema_uri:
        # The curated schema is read from its URI, which the cache key cannot see into.
        validate_task.set_caching_options(False)
    return ingest_task, validate_task


def _fit(
    ingest_task: PipelineTask,
    validate_task: PipelineTask,
    label: Any,
    task: Any,
    max_vocab_size: Any,
    num_oov_buckets: Any,
    beam_pipeline_args: Any,
    train_step: Any,
    hyperparameters: Dict[str, Any],
) -> tuple[PipelineTask, PipelineTask]:
    transform_task = transform(
        train_data=ingest_task.outputs["train_data"],
        schema=validate_task.outputs["schema"],
        label=label,
        task=task,
        max_vocab_size=max_vocab_size,
        num_oov_buckets=num_oov_buckets,
        beam_pipeline_args=beam_pipeline_args,
    )
    train_task = train_step(
        train_data=ingest_task.outputs["train_data"],
        eval_data=ingest_task.outputs["eval_data"],
        transform_graph=transform_task.outputs["transform_graph"],
        **hyperparameters,
    )
    return transform_task, train_task


def _bless_and_push(
    ingest_task: PipelineTask,
    validate_task: PipelineTask,
    transform_task: PipelineTask,
    train_task: PipelineTask,
    registry: Any,
    model_name: Any,
    thresholds: Any,
    min_improvement: Any,
    min_labelled_rows: Any,
    beam_pipeline_args: Any,
    served_only: Any,
) -> tuple[PipelineTask, PipelineTask, PipelineTask]:
    # After train: the baseline is the registry's newest version when the candidate is ready,
    # not when the run started (training takes minutes, and other runs push meanwhile).
    baseline_task = resolve_baseline(
        registry=registry, model_name=model_name, served_only=served_only
    ).after(train_task)
    # The registry is an input the cache key cannot see.
    baseline_task.set_caching_options(False)
    # Everything evaluate reads is an input artifact or parameter, so it may come from the cache.
    evaluate_task = evaluate(
        eval_data=ingest_task.outputs["eval_data"],
        model=train_task.outputs["model"],
        transform_graph=transform_task.outputs["transform_graph"],
        baseline=baseline_task.outputs["baseline"],
        labelled_eval=ingest_task.outputs["labelled_eval"],
        thresholds=thresholds,
        min_improvement=min_improvement,
        min_labelled_rows=min_labelled_rows,
        beam_pipeline_args=beam_pipeline_args,
    )
    deploy_task = deploy(
        model=train_task.outputs["model"],
        blessing=evaluate_task.outputs["blessing"],
        train_data=ingest_task.outputs["train_data"],
        schema=validate_task.outputs["schema"],
        statistics=validate_task.outputs["statistics"],
        registry=registry,
        model_name=model_name,
    )
    # Deploy changes the registry: a cached push would push nothing.
    deploy_task.set_caching_options(False)
    return baseline_task, evaluate_task, deploy_task


def add_training_steps(
    *,
    data_uri: Any,
    label: Any,
    model_name: Any,
    registry: Any,
    task: Any,
    eval_fraction: Any,
    labelled_log: Any,
    labelled_hours: Any,
    max_vocab_size: Any,
    num_oov_buckets: Any,
    thresholds: Any,
    min_improvement: Any,
    min_labelled_rows: Any,
    beam_pipeline_args: Any,
    schema_uri: Optional[str] = None,
    train_step: Any = train,
    served_only: Any = False,
    **hyperparameters: Any,
) -> TrainingTasks:
    """Adds ingest → validate → transform → train → resolve-baseline → evaluate → deploy to the
    pipeline being defined; the arguments are its parameters (channels), named as the
    pipeline's.

    Args:
        schema_uri: A curated TFDV schema to validate against, fixed when the pipeline is built.
        train_step: The train component (:data:`components.train.component.train_gpu` for GPUs).
        served_only: Whether only versions a rollout served are the baseline (a cluster
            pipeline that serves).
        hyperparameters: The train step's parameters (epochs, batch_size, ...).
    """
    labelled = {
        "labelled_log": labelled_log,
        "labelled_hours": labelled_hours,
        "model_name": model_name,
    }
    ingest_task, validate_task = _read_and_validate(
        data_uri, eval_fraction, labelled, label, beam_pipeline_args, schema_uri
    )
    transform_task, train_task = _fit(
        ingest_task,
        validate_task,
        label,
        task,
        max_vocab_size,
        num_oov_buckets,
        beam_pipeline_args,
        train_step,
        hyperparameters,
    )
    baseline_task, evaluate_task, deploy_task = _bless_and_push(
        ingest_task,
        validate_task,
        transform_task,
        train_task,
        registry,
        model_name,
        thresholds,
        min_improvement,
        min_labelled_rows,
        beam_pipeline_args,
        served_only,
    )
    return TrainingTasks(
        ingest_task,
        validate_task,
        transform_task,
        train_task,
        baseline_task,
        evaluate_task,
        deploy_task,
    )


def build_training_pipeline(schema_uri: Optional[str] = None):
    """Returns the local training pipeline, whose parameters are the settings of
    :data:`pipelines.parameters.TRAINING_CONFIGS`.

    Args:
        schema_uri: A curated TFDV schema to validate against; inferred from train when None.
            It is fixed when the pipeline is built, as TFX's ImportSchemaGen does, because
            ``kfp.local`` cannot take an absent value for a run-time parameter.
    """

    def steps(**parameters: Any) -> TrainingOutputs:
        return add_training_steps(schema_uri=schema_uri, **parameters).outputs()

    function = parameters.pipeline_function(
        "training_pipeline",
        "The training pipeline, on one machine.",
        parameters.TRAINING_CONFIGS,
        steps,
        returns=TrainingOutputs,
    )
    return dsl.pipeline(
        name=PIPELINE_NAME,
        description="Ingest, validate (TFDV), transform, train (Keras), evaluate against the "
        "registry's newest version and deploy to the registry, on one machine.",
    )(function)


training_pipeline = build_training_pipeline()
