"""Where a step runs on a KFP 2.5.0 cluster: the run KFP's own ML Metadata store knows it by.

KFP's driver records every step as an execution of type ``system.ContainerExecution`` in the
run's context (type ``system.PipelineRun``, named by the run id: kubeflow/pipelines@2.5.0
backend/src/v2/metadata/client.go:306-319, :535-580). Its launcher, in the step's own container,
writes the pod's name into that execution before it starts the step's code (launcher_v2.go:206
then :227; client.go:670-686). The container gets the pod's name as ``KFP_POD_NAME`` and the
store's address from KFP's ``metadata-grpc-configmap`` (backend/src/v2/compiler/argocompiler/
common.go:22-40, container.go:437-438). So a step finds its run by its pod's name. The run's root
DAG execution, named ``run/<run id>``, holds the run's parameters as its ``inputs``
(driver.go:189-201, client.go:1238-1255), the model name among them, so steps that do not take
the model name still land in its context. (The ``image`` property the driver could set is never
filled in 2.5.0: nothing sets ExecutionConfig.Image; the code version comes from the image's
build instead, :data:`components.lineage.recording.CODE_VERSION_ENV`.)
"""

import dataclasses
from collections.abc import Mapping
from typing import Any

# The environment KFP 2.5.0 gives a step's container (see the module docstring).
HOST_ENV = "METADATA_GRPC_SERVICE_HOST"
PORT_ENV = "METADATA_GRPC_SERVICE_PORT"
POD_ENV = "KFP_POD_NAME"

# KFP's names in its store (backend/src/v2/metadata/client.go:49-60, 511-516).
RUN_CONTEXT = "system.PipelineRun"
CONTAINER_EXECUTION = "system.ContainerExecution"
DAG_EXECUTION = "system.DAGExecution"
POD_NAME = "pod_name"
INPUTS = "inputs"
MODEL_NAME = "model_name"

# What makes an execution in a run's context one of KFP's tasks. The driver lists every
# execution of the run context and takes each with a task_name for a task of the DAG (two with
# one name fail the run), skipping those with neither property (client.go:813-870); the UI draws
# executions by task_name and skips those without (frontend/src/lib/v2/DynamicFlow.ts:384-400).
# The project's executions must have neither.
TASK_PROPERTIES = ("task_name", "parent_dag_id")


@dataclasses.dataclass(frozen=True)
class StepInRun:
    """The run a step's pod belongs to, and the model name the run was given."""

    run_id: str
    model_name: str | None


def address(environ: Mapping[str, str]) -> str | None:
    """``grpc://HOST:PORT`` of KFP's store when the environment is a KFP step's, else ``None``."""
    host, pod = environ.get(HOST_ENV), environ.get(POD_ENV)
    if not host or not pod:
        return None
    return f"grpc://{host}:{environ.get(PORT_ENV) or '8080'}"


def check_not_a_task(properties: Mapping[str, object]) -> None:
    """Raises ``ValueError`` when ``properties`` would make an execution one of KFP's tasks."""
    taken = sorted(key for key in properties if key in TASK_PROPERTIES)
    if taken:
        raise ValueError(
            f"properties {taken} would make KFP take this execution for one of its tasks"
        )


def step_in_run(metadata_store: Any, pod_name: str) -> StepInRun:
    """The run of the KFP execution whose pod is ``pod_name``, and the run's model name.

    Args:
        metadata_store: An ``ml_metadata`` ``MetadataStore`` on KFP's store.
        pod_name: This pod's name (``KFP_POD_NAME``).

    Raises:
        LookupError: KFP recorded no execution for this pod, or none in a run.
    """
    from ml_metadata.metadata_store import metadata_store as mlmd_store

    if "'" in pod_name:
        raise LookupError(f"{pod_name!r} is not a pod name")
    query = (
        f"type = '{CONTAINER_EXECUTION}' AND "
        f"custom_properties.{POD_NAME}.string_value = '{pod_name}'"
    )
    found = metadata_store.get_executions(list_options=mlmd_store.ListOptions(filter_query=query))
    if not found:
        raise LookupError(f"KFP recorded no execution for pod {pod_name!r}")
    execution = max(found, key=lambda e: e.id)
    runs = [
        context.name
        for context in metadata_store.get_contexts_by_execution(execution.id)
        if context.type == RUN_CONTEXT
    ]
    if not runs:
        raise LookupError(f"KFP's execution {execution.id} for pod {pod_name!r} is in no run")
    root = metadata_store.get_execution_by_type_and_name(DAG_EXECUTION, f"run/{runs[0]}")
    model_name = None
    if root is not None and INPUTS in root.custom_properties:
        fields = root.custom_properties[INPUTS].struct_value.fields
        if MODEL_NAME in fields:
            model_name = fields[MODEL_NAME].string_value or None
    return StepInRun(run_id=runs[0], model_name=model_name)
