"""KFP wrapper of :mod:`components.deploy.core`."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Model, Output

from components.images import PIPELINE_IMAGE


@dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)
def deploy(
    model: Input[Model],
    blessing: Input[Artifact],
    train_data: Input[Dataset],
    schema: Input[Artifact],
    registry: str,
    model_name: str,
    push_result: Output[Artifact],
    target: str = "local",
    serving_namespace: str = "mlops-models",
    serving_runtime: str = "kserve-tensorflow-serving",
    predictor_cpu: str = "500m",
    predictor_memory: str = "1Gi",
    deployment_mode: str = "RawDeployment",
    canary_traffic_percent: int = 100,
    rollout_timeout_seconds: int = 600,
) -> None:
    """Pushes a blessed model to the target; writes nothing for an unblessed one.

    Args:
        model: The SavedModel.
        blessing: The evaluate step's decision.
        train_data: The train split (its fingerprint is kept with the model).
        schema: The schema (kept with the model).
        registry: The registry's location.
        model_name: The model's name.
        push_result: Whether and where the model went (metadata and JSON).
        target: ``local`` (the filesystem registry) or ``kserve`` (a registry in the object
            store, served by an InferenceService).
        serving_namespace: kserve: the InferenceService's namespace.
        serving_runtime: kserve: ``kserve-tensorflow-serving`` or ``mlops-predictor``.
        predictor_cpu: kserve: the predictor's CPU request (the limit is twice it).
        predictor_memory: kserve: the predictor's memory request (the limit is twice it).
        deployment_mode: kserve: ``RawDeployment`` or ``Serverless`` (Knative).
        canary_traffic_percent: kserve: traffic for the new revision; 100 rolls out fully,
            less needs Serverless mode.
        rollout_timeout_seconds: kserve: how long to wait for Ready before rolling back.
    """
    import dataclasses
    import json

    from components import constants
    from components.deploy import core, kserve
    from components.errors import step
    from components.metadata import read, record, without_nulls

    with step("deploy"):
        with open(schema.path) as f:
            schema_text = f.read()
        settings = core.KServeSettings(
            namespace=serving_namespace,
            runtime=serving_runtime,
            resources=kserve.Resources.scaled(predictor_cpu, predictor_memory),
            deployment_mode=deployment_mode,
            canary_traffic_percent=canary_traffic_percent,
            timeout_seconds=rollout_timeout_seconds,
        )
        result = core.deploy(
            model.path,
            bool(read(blessing, constants.BLESSED)),
            list(read(blessing, constants.REASONS)),
            core.make_target(target, registry, settings),
            model_name,
            without_nulls(
                {
                    constants.METRICS: read(blessing, constants.METRICS, {}),
                    "data_fingerprint": read(train_data, constants.FINGERPRINT),
                    "task": read(model, constants.TASK),
                    "classes": read(model, constants.CLASSES),
                }
            ),
            schema_text,
        )
    outcome = dataclasses.asdict(result)  # keys: constants.PUSHED, VERSION, DESTINATION, ...
    with open(push_result.path, "w") as f:
        json.dump(outcome, f, indent=2)
    record(push_result, outcome)  # url, revision, ... are None for an unpushed model
