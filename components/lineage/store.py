"""What a step records in lineage, and the interface every backend implements.

Type names follow TFX (``tfx/types/standard_artifacts.py``) where TFX has the concept, so TFX
tooling can read the store; executions are typed by the step's name.
"""

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Protocol

# TFX's artifact type names (tfx/types/standard_artifacts.py).
EXAMPLES = "Examples"
EXAMPLE_STATISTICS = "ExampleStatistics"
SCHEMA = "Schema"
EXAMPLE_ANOMALIES = "ExampleAnomalies"
TRANSFORM_GRAPH = "TransformGraph"
MODEL = "Model"
MODEL_EVALUATION = "ModelEvaluation"
MODEL_BLESSING = "ModelBlessing"
PUSHED_MODEL = "PushedModel"
# A pushed version serving on a cluster (InferenceService, namespace, revision, storageUri,
# traffic): TFX has no type for it.
DEPLOYMENT = "ModelDeployment"
# Artifacts TFX has no type for (a statistics view, a resolved baseline, ...).
GENERIC = "Artifact"

# Context types: one context per pipeline run, one per model name. The run's is KFP's own
# (kubeflow/pipelines@2.5.0 backend/src/v2/metadata/client.go:49), named by the run id on a
# cluster and by the run folder locally, so a query reads both stores the same way.
RUN_CONTEXT = "system.PipelineRun"
MODEL_CONTEXT = "ModelName"

# Execution states, as MLMD names them (metadata_store.proto, Execution.State).
COMPLETE = "COMPLETE"
FAILED = "FAILED"


@dataclasses.dataclass(frozen=True)
class Artifact:
    """An artifact a step read or wrote.

    Args:
        type_name: Its type, e.g. :data:`EXAMPLES`.
        uri: Where it lives; two records with the same type and URI are one artifact.
        properties: What users query (rows, fingerprint, metrics...); lists and mappings are
            stored as JSON text.
    """

    type_name: str
    uri: str
    properties: Mapping[str, object] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Execution:
    """One run of one step, with what it read and wrote.

    Args:
        type_name: The step's name.
        properties: Its parameters, code version, start and end.
        state: :data:`COMPLETE` or :data:`FAILED`.
        inputs: Artifacts read, by input name.
        outputs: Artifacts written, by output name.
        contexts: ``(context type, context name)`` pairs it belongs to.
    """

    type_name: str
    properties: Mapping[str, object]
    state: str
    inputs: Mapping[str, Artifact]
    outputs: Mapping[str, Artifact]
    contexts: Sequence[tuple[str, str]]


def with_context(execution: Execution, context: tuple[str, str]) -> Execution:
    """``execution`` in one more context."""
    return dataclasses.replace(execution, contexts=[context, *execution.contexts])


def to_json(execution: Execution) -> dict:
    """``execution`` as JSON data (for a record written now and stored later)."""
    return dataclasses.asdict(execution)


def from_json(data: Mapping) -> Execution:
    """The execution :func:`to_json` wrote."""

    def artifacts(found: Mapping) -> dict[str, Artifact]:
        return {name: Artifact(**artifact) for name, artifact in found.items()}

    return Execution(
        type_name=data["type_name"],
        properties=data["properties"],
        state=data["state"],
        inputs=artifacts(data["inputs"]),
        outputs=artifacts(data["outputs"]),
        contexts=[(kind, name) for kind, name in data["contexts"]],
    )


@dataclasses.dataclass(frozen=True)
class StoredArtifact:
    """An artifact as the store holds it."""

    id: int
    type_name: str
    uri: str
    properties: Mapping[str, object]


@dataclasses.dataclass(frozen=True)
class StoredExecution:
    """An execution as the store holds it, with its artifacts by event name."""

    id: int
    type_name: str
    state: str
    properties: Mapping[str, object]
    inputs: Mapping[str, StoredArtifact]
    outputs: Mapping[str, StoredArtifact]
    contexts: Sequence[tuple[str, str]]


@dataclasses.dataclass(frozen=True)
class Recorded:
    """The ids a recorded execution got: its own and its output artifacts' by name."""

    execution_id: int
    output_ids: Mapping[str, int]


class LineageStore(Protocol):
    """A lineage store: ML Metadata now; a later backend (KFP proposal #12147) implements it too."""

    def record(self, execution: Execution) -> Recorded:
        """Stores ``execution``, its artifacts (reusing one of the same type and URI) with
        INPUT/OUTPUT events, and its contexts (created on first use)."""
        ...

    def artifacts(self, type_name: str) -> list[StoredArtifact]:
        """Every artifact of a type, oldest first."""
        ...

    def producer(self, artifact_id: int) -> StoredExecution | None:
        """The execution that wrote an artifact, if recorded."""
        ...

    def consumers(self, artifact_id: int) -> list[StoredExecution]:
        """The executions that read an artifact, oldest first."""
        ...

    def executions(self, context_type: str, context_name: str) -> list[StoredExecution]:
        """The executions in a context, oldest first."""
        ...
