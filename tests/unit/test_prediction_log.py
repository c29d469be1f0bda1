"""serving/prediction_log.py: the layout, the writer's windows, and what it does when it cannot
keep up or cannot write (pyarrow 10, as the pipeline environment reads the log)."""

import logging
import os
import time

import pandas as pd
import pyarrow.dataset as ds
import pytest

from serving import prediction_log as pl

KINDS = {"island": pl.STRING, "bill_length_mm": pl.NUMBER}


def _prediction(request_id: str, answered: float, version: int = 1, rows: int = 2):
    return pl.Prediction(
        model="penguins",
        version=version,
        request_id=request_id,
        answered=answered,
        latency_ms=1.25,
        features={"island": ["Biscoe", ""][:rows], "bill_length_mm": [47.0, float("nan")][:rows]},
        feature_kinds=KINDS,
        outputs={
            "label": [b"Gentoo", b"Adelie"][:rows],
            "probabilities": [[0.1, 0.0, 0.9], [0.8, 0.1, 0.1]][:rows],
        },
    )


def _wait(condition, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_window_is_one_parquet_file_per_model_and_hour_that_pandas_reads(tmp_path):
    log = pl.PredictionLog(str(tmp_path), window_seconds=3600)
    answered = 1_795_000_000.0  # 2026-11-18T11:06:40Z
    log.log(_prediction("a", answered))
    log.log(_prediction("b", answered + 1, version=2, rows=1))
    log.close()
    (folder,) = (tmp_path / "predictions" / "model=penguins").iterdir()
    assert folder.name == "hour=2026-11-18T11"
    assert len(list(folder.iterdir())) == 1
    frame = pd.read_parquet(tmp_path / "predictions")  # no code of ours
    assert list(frame["request_id"]) == ["a", "a", "b"]
    assert list(frame["row"]) == [0, 1, 0]
    assert list(frame["version"]) == [1, 1, 2]
    assert frame["island"].tolist() == ["Biscoe", None, "Biscoe"]  # "" (missing) is null
    assert frame["bill_length_mm"].isna().tolist() == [False, True, False]  # NaN too
    assert frame["label"].tolist() == ["Gentoo", "Adelie", "Gentoo"]
    gentoo, adelie = [0.1, 0.0, 0.9], [0.8, 0.1, 0.1]
    assert [list(p) for p in frame["probabilities"]] == [gentoo, adelie, gentoo]
    assert str(frame["time"].iloc[0]) == "2026-11-18 11:06:40+00:00"
    assert set(frame["model"]) == {"penguins"}


def test_a_window_is_written_when_it_is_old_enough_and_not_before(tmp_path):
    now = [1000.0]
    log = pl.PredictionLog(str(tmp_path), window_seconds=10, clock=lambda: now[0])
    log.log(_prediction("a", time.time()))
    time.sleep(1.5)
    assert log.counts.written == 0
    now[0] += 10
    _wait(lambda: log.counts.written == 2)
    log.close()


def test_a_window_is_written_when_it_is_full(tmp_path):
    log = pl.PredictionLog(str(tmp_path), window_seconds=3600, window_rows=4)
    for index in range(3):
        log.log(_prediction(str(index), time.time()))
    _wait(lambda: log.counts.written == 4)  # the second request filled the window
    time.sleep(1.5)
    assert log.counts.written == 4  # the third waits in a new window
    log.close()
    assert log.counts.written == 6


def test_files_being_written_are_hidden_from_readers(tmp_path):
    store = pl.LogStore(str(tmp_path))
    folder = tmp_path / "predictions" / "model=penguins" / "hour=2026-11-18T06"
    folder.mkdir(parents=True)
    (folder / ".1-x-1.parquet.partial").write_bytes(b"PAR1 half a file")
    store.write(
        pl.PREDICTIONS, "penguins", "2026-11-18T06", "2-x-2.parquet",
        pl.predictions_table([_prediction("a", 1_795_000_000.0)]),
    )  # fmt: skip
    table = ds.dataset(tmp_path / "predictions", partitioning="hive").to_table()
    assert table.num_rows == 2


def test_a_full_queue_drops_counts_and_says_so_once(tmp_path, caplog):
    # The writer takes the queue every hour here: it stays full after one request.
    log = pl.PredictionLog(str(tmp_path), queue_requests=1, check_seconds=3600)
    assert log.log(_prediction("held", time.time())) is True
    with caplog.at_level(logging.WARNING):
        assert log.log(_prediction("x", time.time())) is False
        assert log.log(_prediction("y", time.time())) is False
    assert log.counts.dropped == 4
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "queue full" in warnings[0]
    log.close()
    assert log.counts.written == 2  # what was queued is written on close


def test_a_store_that_fails_keeps_the_rows_and_writes_them_when_it_recovers(tmp_path, caplog):
    root = tmp_path / "log"
    root.write_text("a file where the log's folder should be")  # every write fails
    log = pl.PredictionLog(str(root), window_seconds=0.1)
    with caplog.at_level(logging.WARNING):
        log.log(_prediction("a", time.time()))
        log.log(_prediction("b", time.time()))
        _wait(lambda: sum(log.counts.failures.values()) >= 3)
    assert log.counts.written == 0 and log.counts.lost == 0
    warnings = [r for r in caplog.records if "cannot write" in r.getMessage()]
    assert len(warnings) == 1  # once, not per window or per retry
    os.remove(root)
    _wait(lambda: log.counts.written == 4)
    log.close()
    assert pl.read(str(root), pl.PREDICTIONS).num_rows == 4


def test_rows_past_the_retry_budget_are_lost_and_counted(tmp_path):
    root = tmp_path / "log"
    root.write_text("not a folder")
    log = pl.PredictionLog(str(root), window_seconds=0.05, pending_rows=2)
    for index in range(3):
        log.log(_prediction(str(index), time.time()))
        time.sleep(0.3)
    _wait(lambda: log.counts.lost == 4)  # two windows given up; the newest is kept
    assert log.counts.written == 0
    log.close()  # the store still fails: what is left is lost, and counted
    assert log.counts.lost == 6


def test_a_closed_log_takes_nothing_more_and_counts_it(tmp_path):
    log = pl.PredictionLog(str(tmp_path))
    log.close()
    assert log.log(_prediction("late", time.time())) is False
    assert log.counts.dropped == 2


def _two_requests_labelled_twice(folder: str) -> tuple:
    """Requests a (two rows) and b (one), labelled, then a's second row corrected and a label
    of a request never logged; the log's predictions and labels."""
    log = pl.PredictionLog(folder)
    log.log(_prediction("a", time.time()))
    log.log(_prediction("b", time.time(), rows=1))
    log.close()
    pl.write_labels(folder, "penguins", [("a", 1, "Chinstrap"), ("b", 0, "Adelie")])
    time.sleep(0.01)
    pl.write_labels(folder, "penguins", [("a", 1, "Adelie"), ("z", 0, "Gentoo")])
    return pl.read(folder, pl.PREDICTIONS, "penguins"), pl.read(folder, pl.LABELS, "penguins")


def test_late_labels_join_by_request_id_and_row_the_newest_winning(tmp_path):
    joined = pl.join_labels(*_two_requests_labelled_twice(str(tmp_path)))
    truth = {
        (row["request_id"], row["row"]): row["true_label"]
        for row in joined.select(["request_id", "row", "true_label"]).to_pylist()
    }
    assert truth == {("a", 0): None, ("a", 1): "Adelie", ("b", 0): "Adelie"}


def test_labelled_rows_are_the_predictions_with_a_label_the_newest_winning(tmp_path):
    found = pl.labelled(*_two_requests_labelled_twice(str(tmp_path)))
    rows = found.select(["request_id", "row", "label", "true_label"]).to_pylist()
    # In log order; the list column (probabilities) comes along; a label of nothing is not a row.
    assert rows == [
        {"request_id": "a", "row": 1, "label": "Adelie", "true_label": "Adelie"},
        {"request_id": "b", "row": 0, "label": "Gentoo", "true_label": "Adelie"},
    ]
    assert found.column("probabilities").to_pylist() == [[0.8, 0.1, 0.1], [0.1, 0.0, 0.9]]


def test_a_read_of_some_columns_reads_those_the_log_has(tmp_path):
    log = pl.PredictionLog(str(tmp_path))
    log.log(_prediction("a", time.time()))
    log.close()
    table = pl.read(str(tmp_path), pl.PREDICTIONS, "penguins", columns=["request_id", "prediction"])
    assert table.column_names == ["request_id"] and table.num_rows == 2


def test_files_of_versions_with_other_features_read_together(tmp_path):
    log = pl.PredictionLog(str(tmp_path), window_seconds=3600)
    log.log(_prediction("a", 1_795_000_000.0))
    newer = _prediction("b", 1_795_000_000.0 + 3600, version=2, rows=1)
    newer.features = {**newer.features, "year": [2009]}
    newer.feature_kinds = {**KINDS, "year": pl.NUMBER}
    log.log(newer)
    log.close()
    table = pl.read(str(tmp_path), pl.PREDICTIONS, "penguins")
    assert table.column("year").to_pylist() == [None, None, 2009.0]


def test_a_feature_named_like_a_log_column_is_stored_apart():
    assert pl.feature_column("time") == "feature.time"
    assert pl.feature_column("label") == "feature.label"
    assert pl.feature_column("island") == "island"


@pytest.mark.parametrize(
    ("given", "problem"),
    [
        ([{"label": "Adelie"}], "needs 'request_id' and 'label'"),
        ([{"request_id": "a"}], "needs 'request_id' and 'label'"),
        ([{"request_id": "a", "label": "x", "row": "two"}], "'row' 'two' is not a number"),
    ],
)
def test_bad_labels_say_which_and_why(given, problem):
    with pytest.raises(ValueError, match=problem):
        pl.rows_of(given)


def _cli(*args: str) -> int:
    from pipelines.cli import main

    return main(list(args))


def test_feedback_stores_labels_and_says_how_many_match(tmp_path, capsys):
    log = pl.PredictionLog(str(tmp_path / "log"))
    log.log(_prediction("a", time.time()))
    log.close()
    labels = tmp_path / "labels.csv"
    labels.write_text("request_id,row,label\na,0,Gentoo\na,1,Adelie\nnever-seen,0,Adelie\n")
    assert _cli("feedback", "--log", str(tmp_path / "log"), "--labels", str(labels)) == 0
    printed = capsys.readouterr().out
    assert "stored 3 labels of penguins" in printed
    assert "2 match a logged prediction now; 1 do not" in printed
    joined = pl.join_labels(
        pl.read(str(tmp_path / "log"), pl.PREDICTIONS, "penguins"),
        pl.read(str(tmp_path / "log"), pl.LABELS, "penguins"),
    )
    assert joined.column("true_label").to_pylist() == ["Gentoo", "Adelie"]


def test_feedback_with_numeric_ids_keeps_them_as_text(tmp_path, capsys):
    log = pl.PredictionLog(str(tmp_path / "log"))
    log.log(_prediction("0042", time.time(), rows=1))
    log.close()
    labels = tmp_path / "labels.csv"
    labels.write_text("request_id,label\n0042,1\n")
    assert _cli("feedback", "--log", str(tmp_path / "log"), "--labels", str(labels)) == 0
    assert "1 match a logged prediction now" in capsys.readouterr().out


def test_feedback_without_the_columns_says_which_it_needs(tmp_path, capsys):
    labels = tmp_path / "labels.csv"
    labels.write_text("id,truth\na,Gentoo\n")
    assert _cli("feedback", "--log", str(tmp_path / "log"), "--labels", str(labels)) == 1
    err = capsys.readouterr().err
    assert "needs 'request_id' and 'label'" in err and "Traceback" not in err


def test_feedback_to_a_log_of_two_models_needs_the_model(tmp_path, capsys):
    log = pl.PredictionLog(str(tmp_path / "log"))
    log.log(_prediction("a", time.time()))
    other = _prediction("b", time.time())
    other.model = "flights"
    log.log(other)
    log.close()
    labels = tmp_path / "labels.csv"
    labels.write_text("request_id,label\na,Gentoo\n")
    assert _cli("feedback", "--log", str(tmp_path / "log"), "--labels", str(labels)) == 1
    assert "say which with --model" in capsys.readouterr().err
    args = ("--log", str(tmp_path / "log"), "--labels", str(labels), "--model", "penguins")
    assert _cli("feedback", *args) == 0
