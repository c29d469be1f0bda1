"""The ML Metadata backend of :class:`~components.lineage.store.LineageStore`.

Locally it opens one SQLite file per workspace (:func:`sqlite_store`); on a cluster, KFP's
``metadata-grpc-service`` over gRPC (:func:`grpc_store`); :func:`open_store` takes either by URI.
Everything a step records goes into custom properties, so the types need no schema of their own
and a type TFX registered with declared properties, before or after, is shared as it is.
"""

import json
from collections.abc import Mapping
from typing import Any

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2 as mlmd

from components.lineage import store


def sqlite_store(path: str) -> "MlmdStore":
    """A store in the SQLite file at ``path``, created (with its schema) if absent."""
    config = mlmd.ConnectionConfig()
    config.sqlite.filename_uri = path
    config.sqlite.connection_mode = mlmd.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    return MlmdStore(config)


def grpc_store(host: str, port: int) -> "MlmdStore":
    """The store of the ML Metadata gRPC server at ``host:port`` (KFP's metadata-grpc-service)."""
    # A store that stops answering fails the call (one warning line) instead of hanging a step.
    config = mlmd.MetadataStoreClientConfig(host=host, port=port, client_timeout_sec=10)
    return MlmdStore(config)


def open_store(uri: str) -> "MlmdStore":
    """The store at ``uri``: ``grpc://HOST:PORT``, or a SQLite file's path.

    Raises:
        ValueError: A ``grpc://`` URI without a numeric port.
    """
    if uri.startswith("grpc://"):
        host, _, port = uri[len("grpc://") :].rstrip("/").rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"{uri!r} is not grpc://HOST:PORT")
        return grpc_store(host, int(port))
    return sqlite_store(uri)


def _to_value(value: object, target: mlmd.Value) -> None:
    # bool before int: bool is an int subclass.
    if isinstance(value, bool):
        target.bool_value = value
    elif isinstance(value, int):
        target.int_value = value
    elif isinstance(value, float):
        target.double_value = value
    elif isinstance(value, str):
        target.string_value = value
    else:
        target.string_value = json.dumps(value, sort_keys=True, default=str)


def _from_value(value: mlmd.Value) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


def _properties(message: Any) -> dict[str, Any]:
    return {key: _from_value(value) for key, value in message.custom_properties.items()}


def _fill(message: Any, properties: Mapping[str, object]) -> None:
    for key, value in properties.items():
        if value is not None:
            _to_value(value, message.custom_properties[key])


class MlmdStore:
    """:class:`~components.lineage.store.LineageStore` on an ML Metadata store.

    Args:
        config: A ``ConnectionConfig`` (SQLite, MySQL) or a ``MetadataStoreClientConfig`` (gRPC).
    """

    def __init__(self, config: Any) -> None:
        self._store = metadata_store.MetadataStore(config)
        self._type_ids: dict[tuple[str, str], int] = {}

    @property
    def metadata_store(self) -> metadata_store.MetadataStore:
        """The ``ml_metadata`` client, for what only ML Metadata stores hold (KFP's runs)."""
        return self._store

    def _type_id(self, kind: str, name: str) -> int:
        key = (kind, name)
        if key not in self._type_ids:
            message = {
                "artifact": mlmd.ArtifactType,
                "execution": mlmd.ExecutionType,
                "context": mlmd.ContextType,
            }[kind](name=name)
            put = getattr(self._store, f"put_{kind}_type")
            # A type someone registered with declared properties (TFX declares span, version,
            # split_names on Examples...) is used as it is: MLMD refuses a put that omits them
            # unless can_omit_fields (ml-metadata v1.14.0 metadata_store.cc:76-96, :228-233).
            self._type_ids[key] = put(message, can_add_fields=True, can_omit_fields=True)
        return self._type_ids[key]

    def _artifact(self, record: store.Artifact) -> mlmd.Artifact:
        type_id = self._type_id("artifact", record.type_name)
        for existing in self._store.get_artifacts_by_uri(record.uri):
            if existing.type_id == type_id:
                return existing
        artifact = mlmd.Artifact(type_id=type_id, uri=record.uri, state=mlmd.Artifact.LIVE)
        _fill(artifact, record.properties)
        return artifact

    def record(self, execution: store.Execution) -> store.Recorded:
        message = mlmd.Execution(
            type_id=self._type_id("execution", execution.type_name),
            last_known_state=mlmd.Execution.State.Value(execution.state),
        )
        _fill(message, execution.properties)
        pairs = []
        for kind, artifacts in (
            (mlmd.Event.INPUT, execution.inputs),
            (mlmd.Event.OUTPUT, execution.outputs),
        ):
            for name, record in artifacts.items():
                event = mlmd.Event(type=kind)
                event.path.steps.add().key = name
                pairs.append((self._artifact(record), event))
        contexts = []
        for type_name, name in execution.contexts:
            found = self._store.get_context_by_type_and_name(type_name, name)
            contexts.append(
                found or mlmd.Context(type_id=self._type_id("context", type_name), name=name)
            )
        execution_id, artifact_ids, _ = self._store.put_execution(
            message, pairs, contexts, reuse_context_if_already_exist=True
        )
        output_names = [name for name in execution.inputs] + [name for name in execution.outputs]
        outputs = dict(zip(output_names, artifact_ids, strict=True))
        return store.Recorded(
            execution_id=execution_id,
            output_ids={name: outputs[name] for name in execution.outputs},
        )

    def _stored_artifacts(self, messages: list[mlmd.Artifact]) -> list[store.StoredArtifact]:
        names = {t.id: t.name for t in self._store.get_artifact_types()}
        return [
            store.StoredArtifact(a.id, names[a.type_id], a.uri, _properties(a)) for a in messages
        ]

    def _stored_executions(self, messages: list[mlmd.Execution]) -> list[store.StoredExecution]:
        if not messages:
            return []
        names = {t.id: t.name for t in self._store.get_execution_types()}
        events = self._store.get_events_by_execution_ids([e.id for e in messages])
        artifacts = {
            a.id: a
            for a in self._stored_artifacts(
                self._store.get_artifacts_by_id(sorted({e.artifact_id for e in events}))
            )
        }
        context_types = {t.id: t.name for t in self._store.get_context_types()}
        result = []
        for execution in messages:
            inputs, outputs = {}, {}
            for event in events:
                if event.execution_id != execution.id:
                    continue
                target = inputs if event.type == mlmd.Event.INPUT else outputs
                target[event.path.steps[0].key] = artifacts[event.artifact_id]
            contexts = [
                (context_types[c.type_id], c.name)
                for c in self._store.get_contexts_by_execution(execution.id)
            ]
            result.append(
                store.StoredExecution(
                    id=execution.id,
                    type_name=names[execution.type_id],
                    state=mlmd.Execution.State.Name(execution.last_known_state),
                    properties=_properties(execution),
                    inputs=inputs,
                    outputs=outputs,
                    contexts=contexts,
                )
            )
        return sorted(result, key=lambda e: e.id)

    def artifacts(self, type_name: str) -> list[store.StoredArtifact]:
        found = self._store.get_artifacts_by_type(type_name)
        return sorted(self._stored_artifacts(found), key=lambda a: a.id)

    def _executions_with_event(self, artifact_id: int, kind: int) -> list[store.StoredExecution]:
        ids = [
            e.execution_id
            for e in self._store.get_events_by_artifact_ids([artifact_id])
            if e.type == kind
        ]
        return self._stored_executions(self._store.get_executions_by_id(ids)) if ids else []

    def producer(self, artifact_id: int) -> store.StoredExecution | None:
        found = self._executions_with_event(artifact_id, mlmd.Event.OUTPUT)
        return found[-1] if found else None

    def consumers(self, artifact_id: int) -> list[store.StoredExecution]:
        return self._executions_with_event(artifact_id, mlmd.Event.INPUT)

    def executions(self, context_type: str, context_name: str) -> list[store.StoredExecution]:
        context = self._store.get_context_by_type_and_name(context_type, context_name)
        if context is None:
            return []
        return self._stored_executions(self._store.get_executions_by_context(context.id))
