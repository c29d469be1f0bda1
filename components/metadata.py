"""Output artifact metadata in the shape Kubeflow Pipelines' backend can store.

On a cluster, the KFP 2.5.0 launcher turns each output artifact's metadata into ML Metadata
custom properties after the step's work is done, and rejects a null value: a ``None`` in
``artifact.metadata`` fails a step that already did its work (see :data:`KFP_NULL_REJECTION`).
``kfp.local`` stores whatever it is given, so only a rule here keeps the two runners alike:
every wrapper writes its metadata through :func:`record`.
"""

from collections.abc import Mapping
from typing import Any

KFP_NULL_REJECTION = "kubeflow/pipelines@2.5.0 backend/src/v2/metadata/converter.go"


def without_nulls(values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` with every ``None`` left out, in nested mappings too: an absent key means
    "none" to every reader (they use ``.get``).

    Raises:
        ValueError: A ``None`` inside a list, where leaving it out would shift positions.
    """
    return {key: _clean(value, key) for key, value in values.items() if value is not None}


def _clean(value: Any, key: str) -> Any:
    if isinstance(value, Mapping):
        return without_nulls(value)
    if isinstance(value, list | tuple):
        if any(item is None for item in value):
            raise ValueError(f"Metadata {key!r} holds a null in a list: {value!r}")
        return [_clean(item, key) for item in value]
    return value


def record(artifact: Any, values: Mapping[str, Any]) -> None:
    """Adds ``values`` to ``artifact.metadata``, leaving out nulls (see :func:`without_nulls`)."""
    artifact.metadata.update(without_nulls(values))
