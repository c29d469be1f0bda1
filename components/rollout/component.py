"""KFP wrapper of :mod:`components.rollout.core`."""

from kfp import dsl
from kfp.dsl import Artifact, Input, Output

from components.images import PIPELINE_IMAGE


@dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)
def rollout(
    push_result: Input[Artifact],
    registry: str,
    model_name: str,
    rollout_result: Output[Artifact],
    serve: bool = True,
    serving_namespace: str = "mlops-models",
    serving_runtime: str = "kserve-tensorflow-serving",
    predictor_cpu: str = "500m",
    predictor_memory: str = "1Gi",
    deployment_mode: str = "RawDeployment",
    canary_traffic_percent: int = 100,
    prediction_log_url: str = "http://mlops-log-sink.mlops-models.svc.cluster.local/log",
    rollout_strategy: str = "replace",
    routing_namespace: str = "mlops-routing",
    canary_steps: str = "10,50",
    canary_step_seconds: int = 300,
    canary_min_requests: int = 20,
    canary_max_error_rate_increase: float = 0.01,
    canary_max_latency_ratio: float = 2.0,
    shadow_log: str = "",
    shadow_hours: int = 24,
    shadow_min_rows: int = 200,
    shadow_min_agreement: float = 0.8,
    rollout_timeout_seconds: int = 600,
) -> None:
    """Serves the version deploy pushed with a KServe InferenceService; does nothing when it
    pushed none. A version that does not serve is rolled back and discarded from the registry.

    Args:
        push_result: The deploy step's outcome (``pushed``, ``version``).
        registry: The registry deploy pushed to, in an object store KServe reads.
        model_name: The model's name, also the InferenceService's.
        rollout_result: Whether the version serves, its URL and revision, what served before,
            and for blue-green each step with its values and outcome (metadata and JSON).
        serve: False leaves the pushed version in the registry, unserved.
        serving_namespace: The InferenceService's namespace.
        serving_runtime: ``kserve-tensorflow-serving`` or ``mlops-predictor``.
        predictor_cpu: The predictor's CPU request (the limit is twice it).
        predictor_memory: The predictor's memory request (the limit is twice it).
        deployment_mode: ``RawDeployment`` or ``Serverless`` (Knative).
        canary_traffic_percent: Traffic for the new version; 100 rolls out fully, less needs
            Serverless mode.
        prediction_log_url: Where KServe's payload logger sends each request and response
            (the log sink in manifests/); empty: no prediction log.
        rollout_strategy: ``replace`` (one InferenceService moves to the new version),
            ``blue-green`` (two InferenceServices and an InferenceGraph that switches between
            them after a smoke test; RawDeployment) or ``canary`` (as blue-green, with gated
            steps of live traffic before the switch; the mlops-predictor runtime).
        routing_namespace: Where blue-green's InferenceGraph runs.
        canary_steps: The candidate's percent of the traffic at each canary step.
        canary_step_seconds: How long each canary step's live traffic is watched.
        canary_min_requests: Fewest requests the candidate must answer in a step.
        canary_max_error_rate_increase: How far its error rate may exceed the stable's.
        canary_max_latency_ratio: How many times the stable's p99 its p99 may be.
        shadow_log: The prediction log whose last ``shadow_hours`` of requests the version
            answers before it rolls out (``mlops shadow report``'s rules); empty: no gate.
        shadow_hours: How far back the shadow gate replays the log.
        shadow_min_rows: Fewest logged rows the shadow gate compares.
        shadow_min_agreement: Smallest share of rows where it answers the served label.
        rollout_timeout_seconds: How long the new version has to serve before it is rolled back.
    """
    import dataclasses
    import json
    import signal
    import sys

    from components import constants
    from components.errors import step
    from components.lineage.recording import step as lineage_step
    from components.metadata import read, record
    from components.rollout import core

    # A run terminated from the dashboard has its pods stopped with SIGTERM (KFP 2.5.0 sets
    # the workflow's activeDeadlineSeconds to 0: backend/src/apiserver/resource/
    # resource_manager.go:802). Python would die without unwinding; exiting through SystemExit
    # lets the rollout put the previous spec back and discard the version first.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with (
        lineage_step(
            "rollout",
            {
                "registry": registry,
                "model_name": model_name,
                "serve": serve,
                "serving_namespace": serving_namespace,
                "serving_runtime": serving_runtime,
                "deployment_mode": deployment_mode,
                "canary_traffic_percent": canary_traffic_percent,
                "prediction_log_url": prediction_log_url,
                "rollout_strategy": rollout_strategy,
                "routing_namespace": routing_namespace,
                "canary_steps": canary_steps,
                "canary_step_seconds": canary_step_seconds,
                "shadow_log": shadow_log,
            },
            {"push_result": push_result},
            {"rollout_result": rollout_result},
            model_name=model_name,
        ),
        step("rollout"),
    ):
        pushed = bool(read(push_result, constants.PUSHED))
        result = core.rollout(
            int(read(push_result, constants.VERSION)) if pushed else None,
            registry,
            model_name,
            core.KServeSettings(
                serving_namespace=serving_namespace,
                serving_runtime=serving_runtime,
                predictor_cpu=predictor_cpu,
                predictor_memory=predictor_memory,
                deployment_mode=deployment_mode,
                canary_traffic_percent=canary_traffic_percent,
                prediction_log_url=prediction_log_url,
                rollout_strategy=rollout_strategy,
                routing_namespace=routing_namespace,
                canary_steps=canary_steps,
                canary_step_seconds=canary_step_seconds,
                canary_min_requests=canary_min_requests,
                canary_max_error_rate_increase=canary_max_error_rate_increase,
                canary_max_latency_ratio=canary_max_latency_ratio,
                shadow_log=shadow_log,
                shadow_hours=shadow_hours,
                shadow_min_rows=shadow_min_rows,
                shadow_min_agreement=shadow_min_agreement,
                rollout_timeout_seconds=rollout_timeout_seconds,
            ),
            serve,
        )
        outcome = dataclasses.asdict(result)
        with open(rollout_result.path, "w") as f:
            json.dump(outcome, f, indent=2)
        record(rollout_result, outcome)  # url, revision, ... are None when nothing was rolled out
