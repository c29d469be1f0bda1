"""A smoke test of a version before it takes traffic: one typical row, answered with 200 and a
prediction.

The row is made from what the registry keeps beside each version: the features of the schema's
SERVING environment (the label is not in it, components/validate/core.py), each at its
training data's most common value (categorical) or mean (numeric, rounded for integers).
"""

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from google.protobuf import text_format

from components import constants
from components.registry import ModelRegistry

# Posts a JSON body to a URL; returns the status and the response text. The cluster's is
# :func:`http_post`; tests pass their own to reach loopback servers.
Post = Callable[[str, dict[str, Any], float], tuple[int, str]]


@dataclass(frozen=True)
class SmokeResult:
    """What the smoke request got back."""

    passed: bool
    status: int | None
    seconds: float
    detail: str


def typical_row(schema_text: str, statistics_text: str) -> dict[str, Any]:
    """One row of the features the model is served, at their training data's typical values."""
    from tensorflow_metadata.proto.v0 import schema_pb2, statistics_pb2

    schema = text_format.Parse(schema_text, schema_pb2.Schema())
    stats = text_format.Parse(statistics_text, statistics_pb2.DatasetFeatureStatisticsList())
    by_name = {f.path.step[0] if f.path.step else f.name: f for f in stats.datasets[0].features}
    row: dict[str, Any] = {}
    for feature in schema.feature:
        if constants.SERVING_ENV in feature.not_in_environment:
            continue
        found = by_name.get(feature.name)
        if feature.type == schema_pb2.BYTES:
            top = found.string_stats.top_values if found is not None else []
            row[feature.name] = top[0].value if top else ""
        else:
            mean = found.num_stats.mean if found is not None else 0.0
            row[feature.name] = round(mean) if feature.type == schema_pb2.INT else float(mean)
    return row


def request_body(row: dict[str, Any], protocol: str) -> dict[str, Any]:
    """``row`` as a V1 (``instances``) or V2 (Open Inference Protocol) request."""
    if protocol == "v1":
        return {"instances": [row]}
    return {
        "inputs": [
            {
                "name": name,
                "shape": [1],
                "datatype": "BYTES" if isinstance(value, str) else "FP32",
                "data": [value],
            }
            for name, value in row.items()
        ]
    }


def version_row(registry: ModelRegistry, model: str, version: int) -> dict[str, Any]:
    """The typical row of ``version`` (:func:`typical_row`) from its registry files."""
    return typical_row(
        registry.read_text(model, version, constants.REGISTRY_SCHEMA_FILE),
        registry.read_text(model, version, constants.REGISTRY_STATISTICS_FILE),
    )


def http_post(url: str, body: dict[str, Any], timeout: float) -> tuple[int, str]:
    """POSTs ``body`` with a ``Ce-Id`` marking it a smoke request: KServe's agent keeps a
    client's Ce-Id as the event id (pkg/logger/handler.go:140), the router forwards it
    (``make platform`` lists it), and the log sink leaves such events out of the log."""
    import requests

    headers = {"Ce-Id": f"{constants.SMOKE_REQUEST_ID_PREFIX}{uuid.uuid4().hex}"}
    reply = requests.post(url, json=body, headers=headers, timeout=timeout)
    return reply.status_code, reply.text


def smoke_test(
    url: str, body: dict[str, Any], post: Post = http_post, timeout: float = 30.0
) -> SmokeResult:
    """Sends ``body`` to ``url``; passes on a 200 whose JSON holds predictions (V1) or outputs
    (V2)."""
    start = time.monotonic()
    try:
        status, text = post(url, body, timeout)
    except Exception as err:  # Refused, reset, timed out: all mean the version does not answer.
        seconds = time.monotonic() - start
        return SmokeResult(False, None, seconds, f"no answer from {url}: {err}")
    seconds = time.monotonic() - start
    if status != 200:
        return SmokeResult(False, status, seconds, f"{url} answered {status}: {text[:300]}")
    try:
        answer = json.loads(text)
    except ValueError:
        return SmokeResult(False, status, seconds, f"{url} answered 200 without JSON: {text[:300]}")
    if not isinstance(answer, dict) or not (answer.get("predictions") or answer.get("outputs")):
        return SmokeResult(False, status, seconds, f"{url} answered no prediction: {text[:300]}")
    return SmokeResult(True, status, seconds, f"{url} answered 200 in {seconds * 1000:.0f} ms")
