"""Request checking and response shaping, without a server."""

import numpy as np
import pytest

from serving.payload import (
    NUMBER,
    STRING,
    BadRequest,
    Feature,
    columns_from_instances,
    columns_from_tensors,
    v1_predictions,
)

FEATURES = {"mass": Feature("mass", NUMBER), "island": Feature("island", STRING)}


def test_instances_become_columns_with_missing_values():
    body = {"instances": [{"mass": 3.5, "island": "Dream"}, {"mass": None, "island": None}]}
    columns = columns_from_instances(body, FEATURES, 10)
    assert columns["mass"].dtype == np.float32
    assert np.isnan(columns["mass"][1])
    assert columns["island"].tolist() == ["Dream", ""]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([1, 2], "JSON object"),
        ({"instances": {"mass": 1}}, "must be a list"),
        ({"instances": []}, "is empty"),
        ({"instances": [[1, "a"]]}, "instances[0] must be an object"),
        ({"instances": [{"mass": 1}]}, "missing feature(s) island"),
        ({"instances": [{"mass": 1, "island": "a", "beak": 2}]}, "unknown feature(s) beak"),
        ({"instances": [{"mass": "heavy", "island": "a"}]}, "'mass' takes a number"),
        ({"instances": [{"mass": True, "island": "a"}]}, "'mass' takes a number"),
        ({"instances": [{"mass": 1, "island": 7}]}, "'island' takes a string"),
        ({"instances": [{"mass": 1, "island": "a"}] * 11}, "at most 10"),
    ],
)
def test_bad_instances_name_the_problem(body, message):
    with pytest.raises(BadRequest) as err:
        columns_from_instances(body, FEATURES, 10)
    assert message in str(err.value)


def test_tensors_become_columns():
    columns = columns_from_tensors(
        [
            ("mass", "INT64", [2, 1], np.array([[3], [4]])),
            ("island", "BYTES", [2], np.array([b"a", b"b"])),
        ],
        FEATURES,
        10,
    )
    assert columns["mass"].tolist() == [3.0, 4.0]
    assert columns["island"].tolist() == ["a", "b"]


@pytest.mark.parametrize(
    ("tensors", "message"),
    [
        (
            [("mass", "BYTES", [1], np.array([b"x"])), ("island", "BYTES", [1], np.array([b"a"]))],
            "datatype BYTES",
        ),
        ([("mass", "FP32", [1], np.array([1.0]))], "missing feature(s) island"),
        (
            [
                ("mass", "FP32", [1, 2], np.array([[1.0, 2.0]])),
                ("island", "BYTES", [1], np.array([b"a"])),
            ],
            "shape",
        ),
        (
            [
                ("mass", "FP32", [2], np.array([1.0, 2.0])),
                ("island", "BYTES", [1], np.array([b"a"])),
            ],
            "different numbers of rows",
        ),
        ([], "no inputs"),
    ],
)
def test_bad_tensors_name_the_problem(tensors, message):
    with pytest.raises(BadRequest) as err:
        columns_from_tensors(tensors, FEATURES, 10)
    assert message in str(err.value)


def test_classifier_predictions_carry_label_and_named_probabilities():
    outputs = {
        "label": np.array([b"b"], dtype=object),
        "probabilities": np.array([[0.25, 0.75]], np.float32),
        "classes": np.array([[b"a", b"b"]], dtype=object),
    }
    assert v1_predictions(outputs) == [{"label": "b", "probabilities": {"a": 0.25, "b": 0.75}}]


def test_regressor_predictions_are_numbers():
    assert v1_predictions({"prediction": np.array([1.5, 2.0], np.float32)}) == [1.5, 2.0]
