"""Upload the compiled pipeline to Kubeflow Pipelines and start runs, with the KFP client.

Each version is named after the content of the compiled IR (``v-<sha256 prefix>``), so a changed
IR is a new version, the same IR is not repeated, and ``submit`` starts exactly the version that
matches the local package. What KFP 2.5.0's API does, and the code relies on:

- ``POST /apis/v2beta1/pipelines`` creates a pipeline without a version
  (backend/src/apiserver/server/pipeline_server.go:204-206), whereas the upload endpoint names
  the first version after the pipeline (pipeline_upload_server.go:128-131), which would leave a
  version whose name says nothing of its content.
- Versions filter on ``display_name`` (the ``Name`` column) and sort on ``created_at``, which is
  stored in whole seconds (backend/src/apiserver/model/pipeline_version.go:71-72): "newest"
  cannot tell apart two uploads in the same second, so versions are found by name only.
"""

import contextlib
import hashlib
import io
import json
import logging
from dataclasses import dataclass
from typing import Any

from components.errors import ConfigurationError, PipelineInputError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Uploaded:
    """The pipeline and version a package went to."""

    pipeline_id: str
    version_id: str
    version_name: str
    created: bool


def version_name_for(package_path: str) -> str:
    """``v-<first 12 hex digits of the IR's sha256>``: the same IR, the same version."""
    with open(package_path, "rb") as handle:
        return "v-" + hashlib.sha256(handle.read()).hexdigest()[:12]


def connect(host: str, ui_host: str | None = None) -> Any:
    """A ``kfp.Client`` for the KFP API at ``host`` (e.g. http://localhost:8888); links it
    makes point at the dashboard ``ui_host``."""
    import kfp

    return kfp.Client(host=host, ui_host=ui_host)


def reach(host: str, ui_host: str | None = None) -> Any:
    """:func:`connect`, once the KFP API at ``host`` answers its health check.

    Raises:
        PipelineInputError: Nothing answers there; the message says how to reach it on kind.
    """
    import requests

    # The KFP client retries an unreachable server for 25 s before it says so; ask once first.
    try:
        requests.get(f"{host.rstrip('/')}/apis/v2beta1/healthz", timeout=5).raise_for_status()
    except requests.RequestException as err:
        raise PipelineInputError(
            f"Cannot reach the Kubeflow Pipelines API at {host} ({type(err).__name__}). On kind: "
            "kubectl port-forward -n kubeflow svc/ml-pipeline 8888:8888, or pass --host."
        ) from err
    return connect(host, ui_host)


@contextlib.contextmanager
def _quiet_client():
    """The KFP client prints its own "details" links; the commands print theirs, once."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        yield
    if printed.getvalue().strip():
        logger.debug("kfp client: %s", printed.getvalue().strip())


def _find_version(client: Any, pipeline_id: str, name: str) -> Any | None:
    predicate = {"operation": "EQUALS", "key": "display_name", "stringValue": name}
    response = client.list_pipeline_versions(
        pipeline_id, page_size=1, filter=json.dumps({"predicates": [predicate]})
    )
    versions = list(response.pipeline_versions or [])
    return versions[0] if versions else None


def _create_pipeline(client: Any, pipeline_name: str) -> str:
    import kfp_server_api

    # kfp.Client has no call for a pipeline without a version; its generated API has.
    body = kfp_server_api.V2beta1Pipeline(display_name=pipeline_name)
    return client._pipelines_api.pipeline_service_create_pipeline(body=body).pipeline_id


def upload(client: Any, package_path: str, pipeline_name: str) -> Uploaded:
    """Uploads ``package_path`` as the version of ``pipeline_name`` named after its content,
    creating the pipeline when there is none.

    Returns:
        Where the package went, and whether anything was created.
    """
    version_name = version_name_for(package_path)
    pipeline_id = client.get_pipeline_id(pipeline_name)
    if pipeline_id is None:
        pipeline_id = _create_pipeline(client, pipeline_name)
    elif (version := _find_version(client, pipeline_id, version_name)) is not None:
        return Uploaded(pipeline_id, version.pipeline_version_id, version_name, False)
    with _quiet_client():
        version = client.upload_pipeline_version(
            package_path, pipeline_version_name=version_name, pipeline_id=pipeline_id
        )
    return Uploaded(pipeline_id, version.pipeline_version_id, version_name, True)


def _experiment_id(client: Any, experiment: str) -> str:
    """The id of ``experiment``, created when there is none."""
    try:
        return client.get_experiment(experiment_name=experiment).experiment_id
    except ValueError:
        with _quiet_client():
            return client.create_experiment(experiment).experiment_id


def submit(
    client: Any,
    pipeline_name: str,
    package_path: str,
    experiment: str,
    params: dict[str, Any],
    ui_host: str,
    service_account: str | None = None,
) -> tuple[str, str]:
    """Starts a run, in ``experiment``, of the uploaded version matching ``package_path``.

    Returns:
        The run's id and its dashboard URL.

    Raises:
        ConfigurationError: The pipeline, or this package's version of it, is not uploaded.
    """
    version_name = version_name_for(package_path)
    pipeline_id = client.get_pipeline_id(pipeline_name)
    version = None if pipeline_id is None else _find_version(client, pipeline_id, version_name)
    if version is None:
        raise ConfigurationError(
            f"Pipeline {pipeline_name!r} has no version {version_name} (the content of "
            f"{package_path}) on the KFP server; run `mlops upload` (or `make upload`) first."
        )
    experiment_id = _experiment_id(client, experiment)
    with _quiet_client():
        run = client.run_pipeline(
            experiment_id=experiment_id,
            job_name=f"{pipeline_name} {version_name}",
            params=params,
            pipeline_id=pipeline_id,
            version_id=version.pipeline_version_id,
            service_account=service_account,
        )
    url = f"{ui_host.rstrip('/')}/#/runs/details/{run.run_id}"
    logger.info("Started run %s: %s", run.run_id, url)
    return run.run_id, url


def check_cron(cron: str) -> str:
    """``cron`` when it is KFP's six-field form (seconds first).

    KFP 2.5.0 parses schedules with robfig/cron v1 (backend/src/apiserver/server/
    api_converter.go:1922-1926), whose fields are second, minute, hour, day of month, month and
    an optional day of week: a usual five-field line would be taken with seconds first and run
    at the wrong times, so only six fields are taken.

    Raises:
        ConfigurationError: Not six fields (nor a descriptor such as ``@hourly``).
    """
    if cron.startswith("@"):  # robfig/cron's descriptors: @hourly, @daily, @every 30m, ...
        return cron
    if len(cron.split()) != 6:
        raise ConfigurationError(
            f"{cron!r} is not KFP's six-field cron (seconds first): '0 0 * * * *' runs at the "
            "top of every hour, '0 */15 * * * *' every 15 minutes."
        )
    return cron


def schedule(
    client: Any,
    pipeline_name: str,
    package_path: str,
    experiment: str,
    cron: str,
    params: dict[str, Any],
    ui_host: str,
) -> tuple[str, str]:
    """Uploads ``package_path`` (as :func:`upload`) and creates a recurring run of that version:
    at most one run at a time (``max_concurrency`` 1), and no catch-up of the runs a paused
    schedule missed (``no_catchup``).

    Returns:
        The recurring run's id and its dashboard URL.
    """
    check_cron(cron)
    experiment_id = _experiment_id(client, experiment)
    # Two schedules of the monitor would both read the same last window and both retrain:
    # max_concurrency holds per recurring run only.
    existing = client.list_recurring_runs(experiment_id=experiment_id, page_size=100)
    for recurring in existing.recurring_runs or []:
        if (recurring.display_name or "").startswith(f"{pipeline_name} ") and str(
            recurring.status
        ).upper() != "DISABLED":
            raise ConfigurationError(
                f"{pipeline_name} already runs on a schedule in experiment {experiment!r} "
                f"({recurring.display_name}, id {recurring.recurring_run_id}): disable or "
                "delete it on the dashboard's Recurring Runs page first."
            )
    uploaded = upload(client, package_path, pipeline_name)
    with _quiet_client():
        recurring = client.create_recurring_run(
            experiment_id=experiment_id,
            job_name=f"{pipeline_name} {uploaded.version_name}",
            cron_expression=cron,
            max_concurrency=1,
            no_catchup=True,
            params=params,
            pipeline_id=uploaded.pipeline_id,
            version_id=uploaded.version_id,
        )
    url = f"{ui_host.rstrip('/')}/#/recurringrun/details/{recurring.recurring_run_id}"
    return recurring.recurring_run_id, url
