"""Upload the compiled pipeline to Kubeflow Pipelines and start runs, with the KFP client.

The first upload creates the pipeline (KFP names its first version after the pipeline). Later
uploads add a version named after the content of the compiled IR (``v-<sha256 prefix>``) unless
a version of that name exists, so a changed IR is a new version and the same IR is not repeated.
"""

import hashlib
import logging
from dataclasses import dataclass
from typing import Any

from components.errors import ConfigurationError

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


def connect(host: str) -> Any:
    """A ``kfp.Client`` for the KFP API at ``host`` (e.g. http://localhost:8888)."""
    import kfp

    return kfp.Client(host=host)


def _versions(client: Any, pipeline_id: str) -> list[Any]:
    response = client.list_pipeline_versions(pipeline_id, page_size=100, sort_by="created_at desc")
    return list(response.pipeline_versions or [])


def upload(client: Any, package_path: str, pipeline_name: str) -> Uploaded:
    """Uploads ``package_path`` as ``pipeline_name``, or as a new version of it.

    Returns:
        Where the package went, and whether anything was created.
    """
    version_name = version_name_for(package_path)
    pipeline_id = client.get_pipeline_id(pipeline_name)
    if pipeline_id is None:
        pipeline = client.upload_pipeline(package_path, pipeline_name=pipeline_name)
        version = _versions(client, pipeline.pipeline_id)[0]
        return Uploaded(
            pipeline.pipeline_id, version.pipeline_version_id, version.display_name, True
        )
    for version in _versions(client, pipeline_id):
        if version.display_name == version_name:
            return Uploaded(pipeline_id, version.pipeline_version_id, version_name, False)
    version = client.upload_pipeline_version(
        package_path, pipeline_version_name=version_name, pipeline_id=pipeline_id
    )
    return Uploaded(pipeline_id, version.pipeline_version_id, version_name, True)


def submit(
    client: Any,
    pipeline_name: str,
    experiment: str,
    params: dict[str, Any],
    ui_host: str,
    service_account: str | None = None,
) -> tuple[str, str]:
    """Starts a run of the newest version of ``pipeline_name`` in ``experiment``.

    Returns:
        The run's id and its dashboard URL.

    Raises:
        ConfigurationError: The pipeline has not been uploaded.
    """
    pipeline_id = client.get_pipeline_id(pipeline_name)
    if pipeline_id is None:
        raise ConfigurationError(
            f"No pipeline {pipeline_name!r} on the KFP server; run `mlops upload` first."
        )
    version = _versions(client, pipeline_id)[0]
    try:
        experiment_id = client.get_experiment(experiment_name=experiment).experiment_id
    except ValueError:
        experiment_id = client.create_experiment(experiment).experiment_id
    run = client.run_pipeline(
        experiment_id=experiment_id,
        job_name=f"{pipeline_name} {version.display_name}",
        params=params,
        pipeline_id=pipeline_id,
        version_id=version.pipeline_version_id,
        service_account=service_account,
    )
    url = f"{ui_host.rstrip('/')}/#/runs/details/{run.run_id}"
    logger.info("Started run %s: %s", run.run_id, url)
    return run.run_id, url
