"""Trigger: start a training run through the Kubeflow Pipelines API when a monitor decided to
retrain; do nothing otherwise, so no pipeline needs a condition around it.

From inside a step's pod it reaches KFP's API server at its in-cluster Service (KFP 2.5.0
manifests/kustomize/base/pipeline/ml-pipeline-apiserver-service.yaml: ``ml-pipeline`` port 8888)
with the pod's identity: in multi-user mode the projected service-account token KFP mounts at
``/var/run/secrets/kubeflow/pipelines/token`` (kfp.client.ServiceAccountTokenVolumeCredentials),
and none in single-user mode, which does not authenticate.
"""

import contextlib
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from components.errors import ConfigurationError, TriggerFailed

logger = logging.getLogger(__name__)

IN_CLUSTER_HOST = "http://ml-pipeline.kubeflow.svc.cluster.local:8888"
TOKEN_PATH = "/var/run/secrets/kubeflow/pipelines/token"


@dataclass(frozen=True)
class Triggered:
    """What the trigger did.

    Attributes:
        started: A retraining run was started.
        reason: What was done, or why nothing was.
        acted: A decision to retrain was acted on: a run started, or one is still running.
        run_id: The run started, or the one still running.
        pipeline_version_id: The training pipeline version it runs.
    """

    started: bool
    reason: str
    acted: bool = False
    run_id: str | None = None
    pipeline_version_id: str | None = None


def client_for(host: str) -> Any:
    """A ``kfp.Client`` for ``host`` with the pod's service-account token when KFP mounted one.

    Imported from ``kfp.client``: in a step KFP sets ``_KFP_RUNTIME`` (kfp/dsl/
    component_factory.py:510 in kfp 2.13), and ``import kfp`` then leaves out ``kfp.Client``
    (kfp/__init__.py:37-40).
    """
    from kfp.client import Client, ServiceAccountTokenVolumeCredentials

    credentials = None
    if os.path.exists(os.environ.get("KF_PIPELINES_SA_TOKEN_PATH", TOKEN_PATH)):
        credentials = ServiceAccountTokenVolumeCredentials()
    return Client(host=host, credentials=credentials)


def latest_version(client: Any, pipeline_name: str) -> tuple[str, str]:
    """The id of ``pipeline_name`` and of its newest version.

    Raises:
        ConfigurationError: The pipeline, or any version of it, is not uploaded.
    """
    pipeline_id = client.get_pipeline_id(pipeline_name)
    if pipeline_id is None:
        raise ConfigurationError(
            f"Pipeline {pipeline_name!r} is not uploaded to Kubeflow Pipelines: nothing to "
            "retrain with; run `mlops upload` first."
        )
    response = client.list_pipeline_versions(pipeline_id, page_size=1, sort_by="created_at desc")
    versions = list(response.pipeline_versions or [])
    if not versions:
        raise ConfigurationError(f"Pipeline {pipeline_name!r} has no version; upload one.")
    return pipeline_id, versions[0].pipeline_version_id


# Parameters a training pipeline uploaded before they existed may lack: left out, and said.
OPTIONAL_PARAMETERS = ("labelled_log",)


def _taken(client: Any, pipeline_id: str, version_id: str, params: dict[str, Any]) -> dict:
    """``params`` that the pipeline version declares: the API server refuses a run with any
    other (kubeflow/pipelines@2.5.0 backend/src/apiserver/template/v2_template.go:429-440).

    Raises:
        ConfigurationError: The version lacks a parameter that is not optional.
    """
    version = client.get_pipeline_version(pipeline_id, version_id)
    if not version.pipeline_spec:
        # The API answers the version's error instead when its spec does not convert
        # (server/api_converter.go:443-456).
        raise TriggerFailed(
            f"Kubeflow Pipelines gave no pipeline spec for the training pipeline's newest "
            f"version ({version_id}): {getattr(version, 'error', None) or 'no reason given'}."
        )
    # With a platform spec the API nests the pipeline spec (server/api_util.go:165-214).
    spec = version.pipeline_spec.get("pipeline_spec", version.pipeline_spec)
    declared = spec.get("root", {}).get("inputDefinitions", {}).get("parameters", {})
    missing = [name for name in params if name not in declared]
    if required := [name for name in missing if name not in OPTIONAL_PARAMETERS]:
        raise ConfigurationError(
            f"The uploaded training pipeline's newest version ({version_id}) takes no "
            f"{', '.join(required)}: upload this suite's training pipeline (`mlops upload`)."
        )
    for name in missing:
        logger.warning(
            "The training pipeline's newest version (%s) takes no %s (uploaded before it "
            "existed); retraining without it. Upload the pipeline again to use it.",
            version_id,
            name,
        )
    return {name: value for name, value in params.items() if name in declared}


# Run states that have not ended (kubeflow/pipelines@2.5.0 backend/api/v2beta1/run.proto:221-242).
UNFINISHED = ("PENDING", "RUNNING", "PAUSED", "CANCELING")


def _unfinished(client: Any, experiment_id: str, prefix: str) -> str | None:
    """The id of a retraining run of the experiment that has not ended, if any."""
    response = client.list_runs(
        experiment_id=experiment_id, page_size=50, sort_by="created_at desc"
    )
    for run in response.runs or []:
        if (run.display_name or "").startswith(prefix) and str(run.state) in UNFINISHED:
            return run.run_id
    return None


@contextlib.contextmanager
def _kfp_errors() -> Iterator[None]:
    """Turns what the KFP API or the way to it raised into :class:`TriggerFailed`."""
    import urllib3
    from kfp_server_api.exceptions import ApiException

    try:
        yield
    # kfp.Client raises TimeoutError when the API's health check keeps failing (kfp 2.13
    # kfp/client/client.py:401-419).
    except (urllib3.exceptions.HTTPError, ApiException, TimeoutError) as err:
        raise TriggerFailed(
            f"The Kubeflow Pipelines API did not start the retraining run: {_said(err)}. The "
            "decision to retrain stands: the next monitor run tries again."
        ) from err


def _said(err: Exception) -> str:
    """What the API said: its error message for a refusal (the body the API server answers
    with, ``{"error": ..., "code": ...}``), or what failed on the way."""
    import json

    from kfp_server_api.exceptions import ApiException

    if isinstance(err, ApiException):
        try:
            body = json.loads(err.body or "{}")
        except ValueError:
            body = {}
        message = body.get("error") or body.get("message") or err.reason
        return f"HTTP {err.status}: {message}"
    return str(err)


def trigger(
    retrain: bool,
    reasons: list[str],
    connect: Callable[[], Any],
    pipeline_name: str,
    experiment: str,
    params: dict[str, Any],
) -> Triggered:
    """Starts ``pipeline_name``'s newest version with ``params`` when ``retrain``; connects
    (``connect()``) only then.

    Raises:
        TriggerFailed: The KFP API did not answer, or refused the run.
        ConfigurationError: The training pipeline is not uploaded, or takes other parameters.
    """
    if not retrain:
        return Triggered(False, "the monitor did not decide to retrain")
    with _kfp_errors():
        client = connect()
        pipeline_id, version_id = latest_version(client, pipeline_name)
        try:
            experiment_id = client.get_experiment(experiment_name=experiment).experiment_id
        except ValueError:
            experiment_id = client.create_experiment(experiment).experiment_id
        prefix = f"{pipeline_name} retraining:"
        busy = _unfinished(client, experiment_id, prefix)
        if busy is not None:
            # The monitor keeps saying retrain until a new version serves; one run at a time.
            return Triggered(False, f"retraining run {busy} is still running", True, busy)
        run = client.run_pipeline(
            experiment_id=experiment_id,
            job_name=f"{prefix} {'; '.join(reasons)[:200]}",
            params=_taken(client, pipeline_id, version_id, params),
            pipeline_id=pipeline_id,
            version_id=version_id,
        )
        logger.info("Started retraining run %s of %s", run.run_id, pipeline_name)
        return Triggered(True, f"started run {run.run_id}", True, run.run_id, version_id)
