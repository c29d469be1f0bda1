"""Requests to feature columns, and predictions to responses, checked against the model's
signature. Plain Python and NumPy: no server here, so every rule is testable on its own.

A request names every feature the model takes (``null`` for a missing value); numbers go to
numeric features and strings to categorical ones. Anything else is a :class:`BadRequest` whose
message names the feature and the problem.
"""

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from components import constants

NUMBER = "number"
STRING = "string"
# Open Inference Protocol datatypes accepted for each kind of feature.
V2_DATATYPES = {NUMBER: ("FP32", "FP64", "INT64", "INT32"), STRING: ("BYTES",)}


class BadRequest(ValueError):
    """The request does not fit the model; the message says how."""


@dataclass(frozen=True)
class Feature:
    """One input of the serving signature."""

    name: str
    kind: str

    @property
    def v2_datatype(self) -> str:
        """The datatype model metadata advertises."""
        return "FP32" if self.kind == NUMBER else "BYTES"


Columns = dict[str, np.ndarray]


def _value(feature: Feature, value: Any, where: str) -> Any:
    if feature.kind == NUMBER:
        if value is None:
            return math.nan
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise BadRequest(
                f"{where}: feature {feature.name!r} takes a number (or null), "
                f"got {type(value).__name__} {value!r}"
            )
        return value
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadRequest(
            f"{where}: feature {feature.name!r} takes a string (or null), "
            f"got {type(value).__name__} {value!r}"
        )
    return value


def _check_names(given: set[str], features: dict[str, Feature], where: str) -> None:
    unknown = sorted(given - features.keys())
    if unknown:
        raise BadRequest(
            f"{where}: unknown feature(s) {', '.join(unknown)}; "
            f"the model takes {', '.join(sorted(features))}"
        )
    missing = sorted(features.keys() - given)
    if missing:
        raise BadRequest(
            f"{where}: missing feature(s) {', '.join(missing)}; send null for a missing value"
        )


def columns_from_instances(body: Any, features: dict[str, Feature], max_rows: int) -> Columns:
    """V1 ``{"instances": [{feature: value, ...}, ...]}`` to one array per feature.

    Raises:
        BadRequest: The body is not that shape, is empty or too long, or a value does not fit.
    """
    if not isinstance(body, dict) or "instances" not in body:
        raise BadRequest('The body must be a JSON object with "instances": [{feature: value}, ...]')
    instances = body["instances"]
    if not isinstance(instances, list):
        raise BadRequest('"instances" must be a list of objects')
    if not instances:
        raise BadRequest('"instances" is empty; send at least one row')
    if len(instances) > max_rows:
        raise BadRequest(f'"instances" has {len(instances)} rows; at most {max_rows} per request')
    values: dict[str, list] = {name: [] for name in features}
    for row, instance in enumerate(instances):
        where = f"instances[{row}]"
        if not isinstance(instance, dict):
            raise BadRequest(f"{where} must be an object of feature values, got {instance!r}")
        _check_names(set(instance), features, where)
        for name, feature in features.items():
            values[name].append(_value(feature, instance[name], where))
    return {name: _array(features[name], column) for name, column in values.items()}


def _array(feature: Feature, values: list) -> np.ndarray:
    if feature.kind == NUMBER:
        return np.asarray(values, dtype=np.float32)
    return np.asarray(values, dtype=object)


def columns_from_tensors(
    tensors: list[tuple[str, str, list[int], np.ndarray]],
    features: dict[str, Feature],
    max_rows: int,
) -> Columns:
    """V2 input tensors ``(name, datatype, shape, data)`` to one array per feature.

    Each tensor has shape ``[N]`` or ``[N, 1]``; every tensor has the same ``N``.

    Raises:
        BadRequest: A tensor is unknown, missing, of the wrong datatype or shape.
    """
    if not tensors:
        raise BadRequest("The request has no inputs; send one input tensor per feature")
    names = [name for name, *_ in tensors]
    if len(set(names)) != len(names):
        raise BadRequest(f"An input is given twice: {sorted(names)}")
    _check_names(set(names), features, "inputs")
    columns: Columns = {}
    rows: set[int] = set()
    for name, datatype, shape, data in tensors:
        feature = features[name]
        if datatype not in V2_DATATYPES[feature.kind]:
            raise BadRequest(
                f"input {name!r}: datatype {datatype} does not fit a {feature.kind} feature; "
                f"use {' or '.join(V2_DATATYPES[feature.kind])}"
            )
        if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)) or shape[0] < 1:
            raise BadRequest(f"input {name!r}: shape {list(shape)} must be [N] or [N, 1], N >= 1")
        flat = np.asarray(data).reshape(-1)
        if flat.shape[0] != shape[0]:
            raise BadRequest(f"input {name!r}: {flat.shape[0]} values for shape {list(shape)}")
        rows.add(shape[0])
        if feature.kind == NUMBER:
            columns[name] = flat.astype(np.float32)
        else:
            columns[name] = np.array(
                [v.decode() if isinstance(v, bytes) else str(v) for v in flat], dtype=object
            )
    if len(rows) > 1:
        raise BadRequest(f"inputs have different numbers of rows: {sorted(rows)}")
    if rows.pop() > max_rows:
        raise BadRequest(f"the request has more than {max_rows} rows")
    return columns


def _plain(value: Any) -> Any:
    return value.decode() if isinstance(value, bytes) else value.item()


def v1_predictions(outputs: dict[str, np.ndarray]) -> list:
    """Signature outputs to V1 predictions: ``{"label", "probabilities": {class: p}}`` per row
    for a classifier, a number per row for a regressor.

    The keys of a prediction are the signature's output names (:mod:`components.constants`).
    """
    if constants.OUTPUT_PREDICTION in outputs:
        return [float(value) for value in outputs[constants.OUTPUT_PREDICTION]]
    names = [str(_plain(name)) for name in outputs[constants.OUTPUT_CLASSES][0]]
    labels = outputs[constants.OUTPUT_LABEL]
    probabilities = outputs[constants.OUTPUT_PROBABILITIES]
    return [
        {
            constants.OUTPUT_LABEL: _plain(label),
            constants.OUTPUT_PROBABILITIES: dict(zip(names, map(float, probs), strict=True)),
        }
        for label, probs in zip(labels, probabilities, strict=True)
    ]
