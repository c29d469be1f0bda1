"""components.lineage on a real ML Metadata SQLite store in tmp_path."""

import logging
import os

import pytest

from components.lineage import recording, store
from components.lineage.mlmd import sqlite_store

RUN = (store.RUN_CONTEXT, "run-1")


def _examples(uri: str) -> store.Artifact:
    return store.Artifact(store.EXAMPLES, uri, {"fingerprint": "abc", "rows": 10, "split": "train"})


def _ingest_then_train(path: str) -> tuple[store.Recorded, store.Recorded]:
    lineage = sqlite_store(path)
    ingested = lineage.record(
        store.Execution(
            "ingest",
            {"data_uri": "data.csv", "seed": 7},
            store.COMPLETE,
            inputs={},
            outputs={"train_data": _examples("/runs/1/train")},
            contexts=[RUN],
        )
    )
    trained = lineage.record(
        store.Execution(
            "train",
            {"epochs": 2, "learning_rate": 0.01, "shuffle": True},
            store.COMPLETE,
            inputs={"train_data": _examples("/runs/1/train")},
            outputs={"model": store.Artifact(store.MODEL, "/runs/1/model", {"layers": [8, 4]})},
            contexts=[RUN, (store.MODEL_CONTEXT, "flights")],
        )
    )
    return ingested, trained


def test_an_input_is_the_artifact_an_earlier_step_wrote(tmp_path):
    ingested, trained = _ingest_then_train(str(tmp_path / "m.sqlite"))
    lineage = sqlite_store(str(tmp_path / "m.sqlite"))
    (consumer,) = lineage.consumers(ingested.output_ids["train_data"])
    assert consumer.id == trained.execution_id
    assert consumer.inputs["train_data"].id == ingested.output_ids["train_data"]


def test_the_producer_of_a_model_has_its_parameters_and_contexts(tmp_path):
    _, trained = _ingest_then_train(str(tmp_path / "m.sqlite"))
    producer = sqlite_store(str(tmp_path / "m.sqlite")).producer(trained.output_ids["model"])
    assert producer.type_name == "train"
    assert producer.state == store.COMPLETE
    assert producer.properties == {"epochs": 2, "learning_rate": 0.01, "shuffle": True}
    assert sorted(producer.contexts) == sorted([RUN, (store.MODEL_CONTEXT, "flights")])
    assert producer.outputs["model"].properties == {"layers": "[8, 4]"}


def test_artifacts_are_listed_by_their_tfx_type(tmp_path):
    _ingest_then_train(str(tmp_path / "m.sqlite"))
    (examples,) = sqlite_store(str(tmp_path / "m.sqlite")).artifacts(store.EXAMPLES)
    assert (examples.type_name, examples.uri) == (store.EXAMPLES, "/runs/1/train")
    assert examples.properties == {"fingerprint": "abc", "rows": 10, "split": "train"}


def test_a_run_context_lists_its_executions_in_order(tmp_path):
    _ingest_then_train(str(tmp_path / "m.sqlite"))
    executions = sqlite_store(str(tmp_path / "m.sqlite")).executions(*RUN)
    assert [e.type_name for e in executions] == ["ingest", "train"]


def test_an_unknown_context_has_no_executions(tmp_path):
    _ingest_then_train(str(tmp_path / "m.sqlite"))
    assert sqlite_store(str(tmp_path / "m.sqlite")).executions(store.RUN_CONTEXT, "nope") == []


def _record(environ):
    return recording.record(
        "ingest",
        {"data_uri": "data.csv", "sample": None},
        inputs={},
        outputs={"train_data": _examples("/runs/1/train")},
        started=1.0,
        ended=2.0,
        model_name="flights",
        environ=environ,
    )


def test_nothing_is_recorded_without_a_store_in_the_environment():
    assert _record({}) is None


def test_record_adds_code_version_times_run_and_model_contexts(tmp_path):
    path = str(tmp_path / "m.sqlite")
    recorded = _record({recording.STORE_ENV: path, recording.RUN_ENV: "run-1"})
    (execution,) = sqlite_store(path).executions(*RUN)
    assert execution.id == recorded.execution_id
    assert execution.properties["data_uri"] == "data.csv"
    assert "sample" not in execution.properties
    assert execution.properties[recording.CODE_VERSION] == recording.code_version()
    assert (execution.properties[recording.STARTED], execution.properties[recording.ENDED]) == (
        1.0,
        2.0,
    )
    assert (store.MODEL_CONTEXT, "flights") in execution.contexts


def test_a_store_that_cannot_be_opened_is_one_warning_line(tmp_path, caplog):
    path = str(tmp_path / "missing-folder" / "m.sqlite")
    with caplog.at_level(logging.WARNING):
        assert _record({recording.STORE_ENV: path}) is None
    (message,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "not recorded" in message and recording.STRICT_ENV in message
    assert "\n" not in message
    assert not os.path.exists(path)


def test_strict_recording_makes_a_failure_an_error(tmp_path):
    path = str(tmp_path / "missing-folder" / "m.sqlite")
    with pytest.raises(recording.LineageError, match="ingest"):
        _record({recording.STORE_ENV: path, recording.STRICT_ENV: "1"})


def test_code_version_names_the_package_version():
    assert recording.code_version().startswith("0.1.0")


def test_a_pushed_version_names_where_its_lineage_is():
    environ = {recording.STORE_ENV: "/w/runs/metadata.sqlite", recording.RUN_ENV: "run-1"}
    assert recording.reference(environ) == {"store": "/w/runs/metadata.sqlite", "run": "run-1"}
    assert recording.reference({}) is None
