"""Evaluate: metrics on known values, and the candidate and baseline scored on the same eval rows
(the blessing rules themselves are in test_blessing.py). The candidate is the golden model
(tests/testdata): evaluating needs a trained model, not this run's training."""

import numpy as np
import pytest

from components import constants
from components.errors import ConfigurationError
from components.evaluate import core
from components.features import LabelSpec, NumericFeature, TransformSpec, load_spec
from components.transform import core as transform_core
from tests import whole_split
from tests.conftest import MULTI_PROCESS_BEAM, export_untrained


def _evaluate(splits, model, transform, baseline=None, **config):
    return core.evaluate(
        splits["eval"], model, load_spec(transform), baseline, core.EvalConfig(**config)
    )


def test_first_model_is_blessed_when_it_beats_the_majority_class(
    penguins_splits, golden_model, golden_transform
):
    result = _evaluate(penguins_splits, golden_model, golden_transform)
    assert result.blessed
    assert result.metrics["accuracy"] > result.trivial_metrics["accuracy"]
    assert "no baseline" in result.reasons[0]
    assert len(result.confusion_matrix) == 3


def test_unmet_threshold_blocks_the_blessing(penguins_splits, golden_model, golden_transform):
    result = _evaluate(
        penguins_splits,
        golden_model,
        golden_transform,
        thresholds={"log_loss": {"upper_bound": 1e-9}},
    )
    assert not result.blessed
    assert any(
        "log_loss" in reason and "above the threshold" in reason for reason in result.reasons
    )


def test_baseline_is_scored_on_the_same_rows_and_an_equal_model_is_not_blessed(
    penguins_splits, golden_model, golden_transform
):
    baseline = core.Baseline(version=1, model_dir=golden_model)
    result = _evaluate(penguins_splits, golden_model, golden_transform, baseline)
    assert not result.blessed
    assert result.baseline_version == 1
    assert result.baseline_metrics["accuracy"] == pytest.approx(result.metrics["accuracy"])
    assert any("does not improve on the baseline" in reason for reason in result.reasons)


def _model_for_other_data(folder) -> str:
    """A model exported by train's code for data with one column, ``x``."""
    spec = TransformSpec(
        label=LabelSpec(name="y", task=constants.CLASSIFICATION, classes=[0, 1], is_string=False),
        numeric=[NumericFeature(name="x", mean=0.0, std=1.0, has_missing=False)],
        categorical=[],
    )
    transform_core.save(spec, str(folder / "transform"))
    return export_untrained(str(folder / "transform"), str(folder / "model"))


def test_a_baseline_that_cannot_read_this_data_blocks_the_blessing(
    tmp_path, penguins_splits, golden_model, golden_transform
):
    # A baseline made for other columns: its signature does not take these features.
    baseline = core.Baseline(version=4, model_dir=_model_for_other_data(tmp_path))
    result = _evaluate(penguins_splits, golden_model, golden_transform, baseline)
    assert not result.blessed
    assert "the baseline (version 4) cannot score this eval data" in result.reasons[-1]


def test_a_config_the_task_cannot_use_stops_the_evaluation(
    penguins_splits, golden_model, golden_transform
):
    with pytest.raises(ConfigurationError, match="rmse"):
        _evaluate(
            penguins_splits,
            golden_model,
            golden_transform,
            thresholds={"rmse": {"upper_bound": 1.0}},
        )


def test_report_shows_the_decision_and_the_confusion_matrix(
    penguins_splits, golden_model, golden_transform
):
    result = _evaluate(penguins_splits, golden_model, golden_transform)
    report = core.markdown_report(result)
    assert report.startswith("# Evaluation (classification)")
    assert "**Blessed**" in report
    assert "| **Gentoo** |" in report


def test_the_candidate_is_compared_with_the_serving_version_on_the_labelled_log_rows(
    tmp_path, penguins_splits, golden_model, golden_transform
):
    # The labelled log rows in eval, as ingest writes them: rows of the data's columns.
    untrained = export_untrained(golden_transform, str(tmp_path / "untrained"))
    spec, config = load_spec(golden_transform), core.EvalConfig(min_labelled_rows=10)
    better = core.evaluate(
        penguins_splits["eval"], golden_model, spec, core.Baseline(2, untrained), config,
        penguins_splits["train"],
    )  # fmt: skip
    assert better.blessed and better.labelled_rows > 200
    assert better.labelled_metrics["accuracy"] > better.labelled_baseline_metrics["accuracy"]
    assert better.reasons[1].startswith(f"on {better.labelled_rows} labelled rows")
    assert "serving version" in core.markdown_report(better)
    worse = core.evaluate(
        penguins_splits["eval"], untrained, spec, core.Baseline(2, golden_model), config,
        penguins_splits["train"],
    )  # fmt: skip
    assert not worse.blessed
    assert any("is worse than the serving version's" in reason for reason in worse.reasons)


@pytest.mark.parametrize("batch", [16, 4096])
def test_streaming_the_eval_split_gives_the_metrics_of_the_whole_split(
    monkeypatch, tmp_path, penguins_splits, golden_model, golden_transform, batch
):
    """The split streams in record batches (16 rows: several batches and a remainder), its
    scores ranked in runs of 50 on disk; the metrics are scikit-learn's on the whole split
    scored at once, the baseline's too: counts to the bit, the sums within their rounding
    (scikit-learn averages the log loss in float32). The runs are gone afterwards."""
    import tempfile

    import pyarrow as pa
    import pyarrow.parquet as pq

    from components.evaluate import ranking

    monkeypatch.setattr(core, "_PREDICT_BATCH", batch)
    monkeypatch.setattr(ranking, "RUN_ROWS", 50)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    # A row of a class train never had is left out either way.
    table = pq.read_table(penguins_splits["eval"])
    odd = table.slice(0, 1).set_column(
        table.schema.get_field_index("species"), "species", [["Emperor"]]
    )
    path = str(tmp_path / "eval.parquet")
    pq.write_table(pa.concat_tables([table, odd]), path)
    spec = load_spec(golden_transform)
    baseline = core.Baseline(
        version=1, model_dir=export_untrained(golden_transform, str(tmp_path / "b"))
    )
    streamed = core.evaluate(path, golden_model, spec, baseline)
    whole = whole_split.metrics(spec, golden_model, path)
    _assert_same_metrics(streamed.metrics, whole["metrics"])
    assert streamed.confusion_matrix == whole["confusion_matrix"]
    assert streamed.per_class == whole["per_class"]
    _assert_same_metrics(
        streamed.baseline_metrics, whole_split.metrics(spec, baseline.model_dir, path)["metrics"]
    )
    _, y = whole_split.scored_rows(path, spec)
    assert streamed.trivial_metrics == {"accuracy": float(np.mean(y == spec.label.majority_class))}
    assert sum(map(sum, streamed.confusion_matrix)) == table.num_rows
    assert not list(scratch.iterdir())


def _assert_same_metrics(streamed: dict, whole: dict) -> None:
    assert streamed.keys() == whole.keys()
    for name, value in whole.items():
        assert streamed[name] == pytest.approx(value, rel=1e-6 if name == "log_loss" else 1e-14)


def test_scoring_on_beam_gives_the_metrics_of_scoring_in_process(
    monkeypatch, tmp_path, penguins_splits, golden_model, golden_transform
):
    """The eval split as a folder of shards (as ingest on Beam writes it), scored in units on
    the DirectRunner's worker processes with a baseline: the evaluation in-process, to the bit;
    a baseline that cannot read the data fails the same way."""
    import dataclasses

    import pyarrow.parquet as pq

    monkeypatch.setattr(core, "_PREDICT_BATCH", 4)  # units of 3 batches of 4 rows
    monkeypatch.setattr(core, "_BATCHES_PER_UNIT", 3)
    table = pq.read_table(penguins_splits["eval"])
    folder = tmp_path / "eval"
    folder.mkdir()
    for index, start in enumerate(range(0, table.num_rows, 30)):
        pq.write_table(table.slice(start, 30), folder / f"part-{index:05d}.parquet", 7)
    assert index >= 2
    spec = load_spec(golden_transform)
    for baseline_model in (
        export_untrained(golden_transform, str(tmp_path / "b")),
        _model_for_other_data(tmp_path),
    ):
        baseline = core.Baseline(version=1, model_dir=baseline_model)
        in_process = core.evaluate(str(folder), golden_model, spec, baseline)
        on_beam = core.evaluate(
            str(folder), golden_model, spec, baseline, beam_pipeline_args=MULTI_PROCESS_BEAM
        )
        assert dataclasses.asdict(on_beam) == dataclasses.asdict(in_process)
    assert in_process.baseline_metrics == {} and not in_process.blessed
    assert sum(map(sum, on_beam.confusion_matrix)) == table.num_rows


def test_an_eval_split_with_nothing_to_score_is_a_clear_error(
    tmp_path, penguins_splits, golden_model, golden_transform
):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from components.errors import DataError

    table = pq.read_table(penguins_splits["eval"]).slice(0, 5)
    index = table.schema.get_field_index("species")
    path = str(tmp_path / "eval.parquet")
    pq.write_table(table.set_column(index, "species", pa.array(["Emperor"] * 5)), path)
    with pytest.raises(DataError, match=r"has no rows to score .* raise eval_fraction"):
        core.evaluate(path, golden_model, load_spec(golden_transform))


def test_a_baseline_trained_on_fewer_classes_is_reported_not_a_crash(
    tmp_path, penguins_splits, golden_model, golden_transform
):
    """The registry's version was trained when train had two of the species: its
    probabilities have two columns for the eval data's three classes."""
    import dataclasses

    spec = load_spec(golden_transform)
    older = dataclasses.replace(
        spec, label=dataclasses.replace(spec.label, classes=spec.label.classes[:2])
    )
    transform_core.save(older, str(tmp_path / "transform"))
    model = export_untrained(str(tmp_path / "transform"), str(tmp_path / "model"))
    result = core.evaluate(penguins_splits["eval"], golden_model, spec, core.Baseline(3, model))
    assert not result.blessed and result.baseline_metrics == {}
    assert "the baseline (version 3) cannot score this eval data" in result.reasons[-1]
    assert "not one per class of the eval data (3)" in result.reasons[-1]


def test_a_candidate_giving_nan_is_a_clear_error(
    monkeypatch, penguins_splits, golden_model, golden_transform
):
    """A model whose training diverged answers NaN: the step says so, no traceback."""
    from components.errors import DataError

    real = core._output
    monkeypatch.setattr(core, "_output", lambda *args: real(*args) * np.nan)
    with pytest.raises(DataError, match=r"cannot be evaluated .* NaN or infinite in \d+ rows"):
        core.evaluate(penguins_splits["eval"], golden_model, load_spec(golden_transform))
