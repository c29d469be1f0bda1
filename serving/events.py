"""KServe's inference events to prediction log rows: the bodies the payload logger forwards,
read as V1 or V2 (Open Inference Protocol) requests and responses. Plain Python: no server here.

KServe 0.15.2's agent forwards the request's and the response's bytes unchanged
(kserve/kserve@v0.15.2 pkg/logger/handler.go:122, :46-57 and :171-172), so a body is whatever the
client sent and the model server answered: V1 ``{"instances": [...]}`` (or TF Serving's columnar
``{"inputs": {name: values}}``) and ``{"predictions": [...]}``; V2 ``{"inputs": [tensors]}`` and
``{"outputs": [tensors], "model_version": ...}``. Requests that are not predictions (metadata
GETs, which the agent logs too, with empty bodies) are :class:`NotAPrediction`.
"""

import json
from typing import Any

from serving.prediction_log import NUMBER, STRING

# The outputs of the exported models the log keeps (serving.prediction_log.OUTPUT_TYPES).
OUTPUTS = ("label", "probabilities", "prediction")


class NotAPrediction(ValueError):
    """The body is not a prediction request or response (the message says what it is)."""


def _json(body: bytes) -> Any:
    if not body:
        raise NotAPrediction("an empty body")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as err:
        raise NotAPrediction(f"not JSON ({str(err)[:80]})") from err


def _kind(values: list) -> str | None:
    """The feature kind of JSON values; None when every value is null."""
    for value in values:
        if isinstance(value, str):
            return STRING
        if isinstance(value, int | float) and not isinstance(value, bool):
            return NUMBER
    return None


def _rows(tensor: dict) -> int:
    shape = tensor.get("shape") or [len(tensor.get("data") or [])]
    return int(shape[0]) if shape else 1


def _per_row(tensor: dict) -> list:
    """A V2 tensor's data, one item per row (a list per row when it has more dimensions)."""
    data = tensor.get("data") or []
    rows = _rows(tensor)
    if rows == 0:
        return []
    width = len(data) // rows
    return data if width == 1 else [data[i * width : (i + 1) * width] for i in range(rows)]


def read_request(body: bytes) -> tuple[dict[str, list], dict[str, str]]:
    """The features of a request body, by name, and each one's kind (features whose values are
    all null have no kind and are left to the kinds seen before).

    Raises:
        NotAPrediction: It is not a V1 or V2 prediction request with named features.
    """
    payload = _json(body)
    if not isinstance(payload, dict):
        raise NotAPrediction("not a JSON object")
    columns: dict[str, list] = {}
    kinds: dict[str, str] = {}
    if isinstance(payload.get("instances"), list):
        instances = payload["instances"]
        if not all(isinstance(row, dict) for row in instances):
            raise NotAPrediction("V1 instances without feature names (a list per row)")
        names = sorted({name for row in instances for name in row})
        columns = {name: [row.get(name) for row in instances] for name in names}
    elif isinstance(payload.get("inputs"), dict):  # TF Serving's columnar V1 format
        columns = {
            name: values if isinstance(values, list) else [values]
            for name, values in payload["inputs"].items()
        }
    elif isinstance(payload.get("inputs"), list):
        for tensor in payload["inputs"]:
            if not isinstance(tensor, dict) or "name" not in tensor:
                raise NotAPrediction("V2 inputs without names")
            columns[tensor["name"]] = _per_row(tensor)
            if tensor.get("datatype"):
                kinds[tensor["name"]] = STRING if tensor["datatype"] == "BYTES" else NUMBER
    else:
        raise NotAPrediction("neither V1 instances nor V2 inputs")
    for name, values in columns.items():
        if name not in kinds and (kind := _kind(values)) is not None:
            kinds[name] = kind
    return columns, kinds


def read_response(body: bytes) -> tuple[dict[str, list], int | None]:
    """The outputs of a response body (``label``, ``probabilities``, ``prediction``, one value
    per row) and the version a V2 response names.

    Raises:
        NotAPrediction: It is not a V1 or V2 prediction response.
    """
    payload = _json(body)
    if not isinstance(payload, dict):
        raise NotAPrediction("not a JSON object")
    if isinstance(payload.get("predictions"), list):
        predictions = payload["predictions"]
        outputs: dict[str, list] = {}
        if predictions and all(isinstance(row, dict) for row in predictions):
            for name in OUTPUTS:
                if any(name in row for row in predictions):
                    outputs[name] = [_plain_output(row.get(name)) for row in predictions]
        else:
            outputs["prediction"] = [
                row[0] if isinstance(row, list) and len(row) == 1 else row for row in predictions
            ]
        return outputs, None
    if isinstance(payload.get("outputs"), list):
        outputs = {
            tensor["name"]: _per_row(tensor)
            for tensor in payload["outputs"]
            if isinstance(tensor, dict)
            and tensor.get("name") in ("label", "probabilities", "prediction")
        }
        version = payload.get("model_version")
        try:
            return outputs, int(version) if version not in (None, "") else None
        except (TypeError, ValueError):
            return outputs, None
    raise NotAPrediction("neither V1 predictions nor V2 outputs")


def _plain_output(value: Any) -> Any:
    # This project's predictor answers probabilities as {class: p}; TF Serving as a list.
    if isinstance(value, dict):
        return list(value.values())
    return value
