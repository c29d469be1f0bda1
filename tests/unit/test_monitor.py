"""components/monitor: skew, drift and decay of prediction-log windows, on penguins rows, with a
registry version that keeps the train split's real TFDV statistics."""

import os
import random
import re
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from google.protobuf import text_format

from components import constants
from components.monitor import core, report
from components.monitor.config import MonitorConfig
from components.registry import ModelRegistry
from components.validate import core as validate
from serving import prediction_log as pl

KINDS = {
    "island": pl.STRING, "sex": pl.STRING, "bill_length_mm": pl.NUMBER,
    "bill_depth_mm": pl.NUMBER, "flipper_length_mm": pl.NUMBER, "body_mass_g": pl.NUMBER,
    "year": pl.NUMBER,
}  # fmt: skip


@pytest.fixture(scope="module")
def rows(penguins_splits) -> list[dict]:
    """Every penguin, with its species."""
    return (
        pq.read_table(penguins_splits["train"]).to_pylist()
        + pq.read_table(penguins_splits["eval"]).to_pylist()
    )


@pytest.fixture
def registry(tmp_path, penguins_splits) -> str:
    """Version 1 of penguins: the train split's statistics and an evaluated accuracy of 0.95."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "saved_model.pb").write_bytes(b"not loaded by the monitor")
    statistics = validate.compute_statistics(penguins_splits["train"])
    root = str(tmp_path / "registry")
    ModelRegistry(root).push(
        "penguins",
        str(model),
        {constants.METRICS: {"accuracy": 0.95}},
        {constants.REGISTRY_STATISTICS_FILE: text_format.MessageToString(statistics)},
    )
    return root


def log_window(log: str, rows: list[dict], count: int, seed: int, shift: bool = False,
               wrong: bool = False) -> list[str]:  # fmt: skip
    """``count`` requests of one row sampled from ``rows``; shifted: body mass x1.4 and an
    island mix train never had; wrong: the model answers a species that is not the truth."""
    chooser = random.Random(seed)
    writer = pl.PredictionLog(log, window_seconds=3600)
    ids = []
    for index in range(count):
        row = dict(chooser.choice(rows))
        species = row.pop("species")
        if shift:
            row["body_mass_g"] = (row["body_mass_g"] or 4000.0) * 1.4
            row["island"] = chooser.choice(["Torgersen", "Torgersen", "Dream"])
        answer = "Adelie" if wrong and species != "Adelie" else species
        request_id = f"{seed}-{index}"
        outputs = {"label": [answer], "probabilities": [[0.2, 0.3, 0.5]]}
        features = {k: [v] for k, v in row.items()}
        writer.log(
            pl.Prediction("penguins", 1, request_id, time.time(), 1.0, features, KINDS, outputs)
        )
        ids.append((request_id, species))
    writer.close()
    return ids


def _monitor(log, registry, **settings):
    settings = {"settle_seconds": 0, **settings}  # rows were written before monitoring
    result, window, train, previous = core.monitor(
        log, registry, "penguins", MonitorConfig(**settings)
    )
    core.MonitorState(log, "penguins").save(result, window, {"report.md": report.markdown(result)})
    return result, window, train, previous


def _flagged(result) -> set[str]:
    return {c.feature for c in result.features if c.skewed or c.drifted}


def test_traffic_like_the_training_data_is_no_reason_to_retrain(tmp_path, registry, rows):
    log = str(tmp_path / "log")
    log_window(log, rows, 400, seed=1)
    result, *_ = _monitor(log, registry)
    assert not result.too_few and result.rows == 400
    assert _flagged(result) == set()
    assert {c.feature for c in result.features} == set(KINDS)  # not the label
    assert {c.comparator for c in result.features if c.feature == "island"} == {core.LINF}
    assert {c.comparator for c in result.features if c.feature == "year"} == {core.JSD}
    assert result.retrain is False
    assert result.reasons == ["no skew, drift or decay above the thresholds"]


def test_shifted_traffic_names_exactly_the_shifted_features_and_retrains_on_the_second_window(
    tmp_path, registry, rows
):
    log = str(tmp_path / "log")
    log_window(log, rows, 400, seed=1)
    _monitor(log, registry)
    log_window(log, rows, 400, seed=2, shift=True)
    first, *_ = _monitor(log, registry)
    assert _flagged(first) == {"body_mass_g", "island"}
    skewed = {c.feature for c in first.features if c.skewed}
    drifted = {c.feature for c in first.features if c.drifted}
    assert skewed == drifted == {"body_mass_g", "island"}  # against train and the last window
    assert first.retrain_signal and not first.retrain  # one window is not enough
    assert "window 1 of 2 in a row that says retrain" in first.reasons
    log_window(log, rows, 400, seed=3, shift=True)
    second, *_ = _monitor(log, registry)
    assert {c.feature for c in second.features if c.skewed} == {"body_mass_g", "island"}
    assert not any(c.drifted for c in second.features)  # the same as the window before
    assert second.retrain and second.windows_in_a_row == 2


def test_a_small_window_is_too_few_rows_to_decide(tmp_path, registry, rows):
    log = str(tmp_path / "log")
    log_window(log, rows, 50, seed=2, shift=True)
    result, *_ = _monitor(log, registry)
    assert result.too_few and not result.retrain_signal
    assert result.features == []
    assert result.reasons == ["too few rows to decide: 50 < 200"]


def test_labels_that_say_the_model_is_wrong_are_decay(tmp_path, registry, rows):
    log = str(tmp_path / "log")
    answered = log_window(log, rows, 300, seed=1, wrong=True)
    pl.write_labels(log, "penguins", [(request_id, 0, species) for request_id, species in answered])
    result, *_ = _monitor(log, registry, windows_in_a_row=1)
    assert result.labelled_rows == 300
    assert result.decay["metric"] == "accuracy" and result.decay["evaluated"] == 0.95
    assert result.decay["served"] == pytest.approx(sum(s == "Adelie" for _, s in answered) / 300)
    assert result.retrain
    assert any(re.match(r"accuracy 0\.\d+ on 300 labelled rows", r) for r in result.reasons)


def test_a_version_pushed_without_training_statistics_says_what_to_do(tmp_path, rows):
    model = tmp_path / "model"
    model.mkdir()
    (model / "saved_model.pb").write_bytes(b"x")
    registry = str(tmp_path / "registry")
    ModelRegistry(registry).push("penguins", str(model), {})
    log = str(tmp_path / "log")
    log_window(log, rows, 10, seed=1)
    with pytest.raises(core.DataError, match=r"no training statistics.*push a new version"):
        core.monitor(log, registry, "penguins", MonitorConfig(settle_seconds=0))


def test_categorical_counts_are_exact_beyond_tfdvs_1024_distinct_values():
    values = [f"id-{i % 3000}" for i in range(9000)] + ["common"] * 500
    table = pa.table({"customer": values})
    statistics = core.statistics_of(table, {"customer": "customer"})
    (feature,) = statistics.datasets[0].features
    buckets = feature.string_stats.rank_histogram.buckets
    assert len(buckets) == 3001 and sum(b.sample_count for b in buckets) == 9500
    assert (buckets[0].label, buckets[0].sample_count) == ("common", 500)
    assert all(b.sample_count == 3 for b in buckets[1:])


def test_the_html_report_is_self_contained_with_a_chart_per_flagged_feature(
    tmp_path, registry, rows
):
    log = str(tmp_path / "log")
    log_window(log, rows, 400, seed=2, shift=True)
    result, window, train, previous = _monitor(log, registry)
    page = report.html_page(result, window, train, previous)
    assert "<script" not in page and "<link" not in page
    assert re.findall(r"https?://[^\s\"']+", page) == ["http://www.w3.org/2000/svg"] * 2
    assert page.count("<svg") == 2  # island and body_mass_g
    assert "served (this window)" in page and "training" in page


def test_mlops_monitor_prints_the_decision_and_keeps_the_reports(tmp_path, registry, rows, capsys):
    from pipelines.cli import main

    log = str(tmp_path / "log")
    log_window(log, rows, 400, seed=2, shift=True)
    args = ["monitor", "--local", "--log", log, "--registry", registry, "--windows-in-a-row", "1",
            "--settle-seconds", "0"]  # fmt: skip
    assert main(args) == 0
    printed = capsys.readouterr().out
    flagged = re.search(r"drifted    (.*)", printed).group(1)
    assert sorted(flagged.split(", ")) == ["body_mass_g", "island"]
    assert "decision   retrain" in printed
    folder = re.search(r"report     (\S+)/report.html", printed).group(1)
    for name in ("report.html", "report.md", core.DECISION_FILE, core.STATISTICS_FILE):
        assert os.path.exists(f"{folder}/{name}")


def _outputs(tmp_path):
    from kfp import dsl

    return {
        "report": dsl.HTML(name="report", uri=str(tmp_path / "report.html")),
        "summary": dsl.Markdown(name="summary", uri=str(tmp_path / "summary.md")),
        "metrics": dsl.Metrics(name="metrics", uri=str(tmp_path / "metrics")),
        "decision": dsl.Artifact(name="decision", uri=str(tmp_path / "decision.json")),
    }


def test_the_monitor_step_records_its_decision_metrics_and_report(tmp_path, registry, rows):
    from components.monitor.component import monitor

    log = str(tmp_path / "log")
    log_window(log, rows, 400, seed=2, shift=True)
    out = _outputs(tmp_path)
    monitor.python_func(log, registry, "penguins", **out, windows_in_a_row=1, settle_seconds=0)
    decision = out["decision"].metadata
    assert decision["retrain"] is True and decision["rows"] == 400
    assert sorted(decision["features"]) == ["body_mass_g", "island"]
    assert out["metrics"].metadata["skew_body_mass_g"] > 0.15
    assert out["metrics"].metadata["skew_year"] < 0.15
    assert "<svg" in (tmp_path / "report.html").read_text()
    assert (tmp_path / "summary.md").read_text().startswith("# Monitor: penguins version 1")


def test_a_monitor_step_with_no_new_traffic_decides_nothing_and_does_not_fail(tmp_path, registry):
    from components.monitor.component import monitor

    out = _outputs(tmp_path)
    monitor.python_func(str(tmp_path / "empty-log"), registry, "penguins", **out)
    assert out["decision"].metadata["retrain"] is False
    assert "No predictions" in out["decision"].metadata["reasons"][0]


def test_the_step_and_the_pipeline_default_to_the_monitor_config():
    import inspect

    from components import settings
    from components.monitor.component import monitor
    from pipelines.monitoring import monitoring_pipeline

    expected = settings.defaults(MonitorConfig)
    del expected["feature_thresholds"]  # the command line's only: a dict has no KFP default here
    for function in (monitor.python_func, monitoring_pipeline.pipeline_func):
        defaults = {
            name: p.default
            for name, p in inspect.signature(function).parameters.items()
            if name in expected
        }
        assert defaults == expected, function.__name__


def test_a_window_left_without_its_decision_is_not_read(tmp_path, registry, rows):
    log = str(tmp_path / "log")
    log_window(log, rows, 400, seed=1)
    first, *_ = _monitor(log, registry)
    # A monitor stopped while saving: statistics written, the decision not.
    broken = tmp_path / "log" / "monitor" / "model=penguins" / str(int(time.time() * 1000) + 5000)
    broken.mkdir()
    (broken / core.STATISTICS_FILE).write_bytes(b"")
    log_window(log, rows, 400, seed=4)
    second, *_ = _monitor(log, registry)
    assert second.window_start == int(first.window_end * 1000) / 1000  # the last finished one
    assert second.rows == 400


def test_windows_in_a_row_count_for_one_version(tmp_path, registry, rows):
    import json

    log = str(tmp_path / "log")
    log_window(log, rows, 400, seed=2, shift=True)
    first, *_ = _monitor(log, registry)
    assert first.windows_in_a_row == 1
    # The last decision was about another version: the count starts again.
    state = core.MonitorState(log, "penguins")
    _, decision, _ = state.last()
    folder = tmp_path / "log" / "monitor" / "model=penguins"
    (latest,) = sorted(folder.iterdir())[-1:]
    (latest / core.DECISION_FILE).write_text(json.dumps({**decision, "version": 7}))
    log_window(log, rows, 400, seed=3, shift=True)
    second, *_ = _monitor(log, registry)
    assert second.windows_in_a_row == 1 and not second.retrain


def test_labels_that_arrive_after_their_window_are_decay_in_the_window_they_arrive(
    tmp_path, registry, rows
):
    log = str(tmp_path / "log")
    answered = log_window(log, rows, 300, seed=1, wrong=True)
    first, *_ = _monitor(log, registry, windows_in_a_row=1)
    assert first.decay is None and not first.retrain  # no label yet
    # The labels of the first window's rows come in while the second window is served.
    log_window(log, rows, 300, seed=2)
    pl.write_labels(log, "penguins", [(request_id, 0, species) for request_id, species in answered])
    second, *_ = _monitor(log, registry, windows_in_a_row=1)
    assert second.labelled_rows == 300 and second.rows == 300
    assert second.decay["served"] == pytest.approx(sum(s == "Adelie" for _, s in answered) / 300)
    assert second.retrain
    # Counted once: the next window has no new label.
    log_window(log, rows, 300, seed=3)
    third, *_ = _monitor(log, registry, windows_in_a_row=1)
    assert third.decay is None and third.labelled_rows == 0


def test_labels_older_than_the_lookback_are_not_joined(tmp_path, registry, rows):
    log = str(tmp_path / "log")
    answered = log_window(log, rows, 300, seed=1, wrong=True)
    time.sleep(0.05)
    pl.write_labels(log, "penguins", [(request_id, 0, species) for request_id, species in answered])
    # A lookback shorter than the time between the answers and their labels: none joined.
    result, *_ = _monitor(log, registry, label_lookback_hours=0.01 / 3600)
    assert result.decay is None


def test_decay_counts_only_the_rows_the_served_version_answered(tmp_path, registry, rows):
    log = str(tmp_path / "log")
    answered = log_window(log, rows, 300, seed=1)  # version 1, right
    writer = pl.PredictionLog(log, window_seconds=3600)
    for index in range(50):  # version 9 answered a few, wrongly
        row = dict(rows[index])
        species = row.pop("species")
        writer.log(
            pl.Prediction("penguins", 9, f"v9-{index}", time.time(), 1.0,
                          {k: [v] for k, v in row.items()}, KINDS,
                          {"label": ["Adelie" if species != "Adelie" else "Gentoo"]})
        )  # fmt: skip
        answered.append((f"v9-{index}", species))
    writer.close()
    pl.write_labels(log, "penguins", [(request_id, 0, species) for request_id, species in answered])
    result, *_ = _monitor(log, registry)
    assert result.version == 1
    assert result.labelled_rows == 300 and result.decay["served"] == 1.0


def _decide_to_retrain(log, registry, rows):
    """Two shifted windows: the second decides to retrain (windows_in_a_row 2)."""
    for seed in (2, 3):
        log_window(log, rows, 400, seed=seed, shift=True)
        result, *_ = _monitor(log, registry)
    assert result.retrain
    return result


def test_a_decision_to_retrain_that_was_not_acted_on_stands(tmp_path, registry, rows):
    log = str(tmp_path / "log")
    decided = _decide_to_retrain(log, registry, rows)
    core.MonitorState(log, "penguins").record_outcome(
        core.MonitorState.window(decided.window_end),
        {"acted": False, "reason": "the trigger failed: connection refused"},
    )
    log_window(log, rows, 400, seed=4, shift=True)
    again, *_ = _monitor(log, registry)
    # At once, not from window 1 of 2 again.
    assert again.retrain and again.windows_in_a_row == 3
    assert (
        "the last window's decision to retrain still stands: the trigger failed: connection "
        "refused" in again.reasons
    )


def test_a_decision_nothing_was_done_about_stands(tmp_path, registry, rows):
    log = str(tmp_path / "log")
    _decide_to_retrain(log, registry, rows)
    log_window(log, rows, 400, seed=4, shift=True)
    again, *_ = _monitor(log, registry)
    assert again.retrain
    assert "the last window's decision to retrain still stands: nothing was done about it" in (
        again.reasons
    )


def test_after_a_decision_that_was_acted_on_the_windows_count_again(tmp_path, registry, rows):
    log = str(tmp_path / "log")
    decided = _decide_to_retrain(log, registry, rows)
    core.MonitorState(log, "penguins").record_outcome(
        core.MonitorState.window(decided.window_end), {"acted": True, "reason": "started run 1"}
    )
    log_window(log, rows, 400, seed=4, shift=True)
    after, *_ = _monitor(log, registry)
    assert not after.retrain and after.windows_in_a_row == 1
