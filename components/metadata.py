"""Output artifact metadata in the shape Kubeflow Pipelines' backend can store.

On a cluster, the KFP 2.5.0 launcher turns each output artifact's metadata into ML Metadata
custom properties after the step's work is done (kubeflow/pipelines@2.5.0
backend/src/v2/metadata/converter.go:120-127), and ``StructValueToMLMDValue`` has no case for a
null value: "unknown/unsupported value type" (converter.go:133-164, "TODO: support null" at 162).
A ``None`` in ``artifact.metadata`` thus fails a step that already did its work. The executor
output is JSON written by Python's ``json.dumps`` (kfp/dsl/executor.py:298), which writes a
non-finite float as a bare ``NaN``/``Infinity`` that no JSON parser on the backend side takes.
``kfp.local`` stores whatever it is given, so only a rule here keeps the two runners alike:
every wrapper writes its metadata through :func:`record`.
"""

import math
from collections.abc import Mapping
from typing import Any


def without_nulls(values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` with every ``None`` and non-finite float left out, in nested mappings too:
    an absent key means "none" to every reader (they use ``.get``).

    Raises:
        ValueError: Such a value inside a list, where leaving it out would shift positions.
    """
    return {key: _clean(value, key) for key, value in values.items() if not _absent(value)}


def _absent(value: Any) -> bool:
    return value is None or (isinstance(value, float) and not math.isfinite(value))


def _clean(value: Any, key: str) -> Any:
    if isinstance(value, Mapping):
        return without_nulls(value)
    if isinstance(value, list | tuple):
        if any(_absent(item) for item in value):
            raise ValueError(f"Metadata {key!r} holds a null or non-finite number: {value!r}")
        return [_clean(item, key) for item in value]
    return value


def record(artifact: Any, values: Mapping[str, Any]) -> None:
    """Adds ``values`` to ``artifact.metadata``, leaving out nulls (see :func:`without_nulls`)."""
    artifact.metadata.update(without_nulls(values))


# How the 2.5.0 backend hands a list or a dict to the step that consumes the artifact: stored
# in MLMD inside a one-key struct (converter.go:141-160) and read back as that struct
# (converter.go:182-204), so ``["a"]`` arrives as ``{"list": ["a"]}``. Booleans are stored as
# the integers 1 and 0. ``kfp.local`` passes values through unchanged.
_WRAPPERS = ("list", "struct")


def read(artifact: Any, key: str, default: Any = None) -> Any:
    """The value under ``key`` in an input artifact's metadata, as its producer recorded it,
    whichever runner passed it on (see :data:`_WRAPPERS`)."""
    value = artifact.metadata.get(key, default)
    if isinstance(value, Mapping) and len(value) == 1:
        ((wrapper, inner),) = value.items()
        if wrapper in _WRAPPERS:
            return inner
    return value
