"""components.lineage on a real ML Metadata SQLite store in tmp_path."""

import dataclasses
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


def _execution(**changes) -> store.Execution:
    return recording.execution(
        "ingest",
        {"data_uri": "data.csv", "sample": None},
        inputs={},
        outputs={"train_data": _examples("/runs/1/train")},
        started=1.0,
        ended=2.0,
        model_name="flights",
        **changes,
    )


def test_nothing_is_recorded_without_a_store_in_the_environment():
    assert recording.record(_execution(), {}) is None


def test_record_adds_code_version_times_run_and_model_contexts(tmp_path):
    path = str(tmp_path / "m.sqlite")
    assert recording.record(_execution(), {recording.STORE_ENV: path, recording.RUN_ENV: "run-1"})
    (execution,) = sqlite_store(path).executions(*RUN)
    assert execution.type_name == "mlops.ingest"
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
        assert recording.record(_execution(), {recording.STORE_ENV: path}) is None
    (message,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "mlops.ingest not recorded" in message and recording.STRICT_ENV in message
    assert "\n" not in message
    assert not os.path.exists(path)


def test_strict_recording_makes_a_failure_an_error(tmp_path):
    path = str(tmp_path / "missing-folder" / "m.sqlite")
    with pytest.raises(recording.LineageError, match="ingest"):
        recording.record(_execution(), {recording.STORE_ENV: path, recording.STRICT_ENV: "1"})


def test_code_version_names_the_package_version():
    assert recording.code_version().startswith("0.1.0")


def test_a_pushed_version_names_where_its_lineage_is():
    environ = {recording.STORE_ENV: "/w/runs/metadata.sqlite", recording.RUN_ENV: "run-1"}
    assert recording.reference(environ) == {"store": "/w/runs/metadata.sqlite", "run": "run-1"}
    assert recording.reference({}) is None


class _KfpArtifact:
    """What a KFP artifact gives a step: ``uri`` and ``metadata`` (kfp.dsl.Artifact)."""

    def __init__(self, uri: str, metadata: dict | None = None) -> None:
        self.uri, self.metadata = uri, metadata or {}


def test_a_step_records_its_outputs_metadata_as_written_when_it_ends(tmp_path):
    path = str(tmp_path / "m.sqlite")
    model = _KfpArtifact("/runs/1/model")
    environ = {recording.STORE_ENV: path, recording.RUN_ENV: "run-1"}
    with recording.step(
        "train",
        {"epochs": 2},
        {"train_data": _KfpArtifact("/runs/1/train")},
        {"model": model},
        environ=environ,
    ) as lineage:
        lineage.parameters["seed"] = 7
        model.metadata["epochs_run"] = 2
    (execution,) = sqlite_store(path).executions(*RUN)
    assert execution.state == store.COMPLETE
    assert execution.properties["seed"] == 7
    assert execution.outputs["model"].type_name == store.MODEL
    assert execution.outputs["model"].properties == {"display_name": "model", "epochs_run": 2}
    assert execution.inputs["train_data"].type_name == store.EXAMPLES


def test_a_failed_step_is_recorded_failed_with_its_error_and_the_error_propagates(tmp_path):
    path = str(tmp_path / "m.sqlite")
    environ = {recording.STORE_ENV: path, recording.RUN_ENV: "run-1"}
    with (
        pytest.raises(ValueError, match="no label column"),
        recording.step(
            "validate",
            {"label": "species"},
            {"train_data": _KfpArtifact("/runs/1/train")},
            {"schema": _KfpArtifact("/runs/1/schema")},
            model_name="penguins",
            environ=environ,
        ),
    ):
        raise ValueError("no label column")
    (execution,) = sqlite_store(path).executions(store.MODEL_CONTEXT, "penguins")
    assert execution.state == store.FAILED
    assert execution.properties[recording.ERROR] == "ValueError: no label column"
    assert execution.outputs == {}
    assert list(execution.inputs) == ["train_data"]


def test_spooled_records_are_stored_in_the_order_the_steps_started(tmp_path):
    spool = tmp_path / "spool"
    spool.mkdir()
    environ = {recording.SPOOL_ENV: str(spool), recording.STORE_ENV: "unused"}
    later = dataclasses.replace(_execution(), type_name="mlops.train")
    later.properties[recording.STARTED] = 5.0  # type: ignore[index]
    assert recording.record(later, environ) == str(spool)
    assert recording.record(_execution(), environ) == str(spool)
    (spool / "9.000000-mlops.half-1.json.partial").write_text("{")  # a step still writing
    path = str(tmp_path / "m.sqlite")
    assert recording.store_spooled(str(spool), path, "run-1") == 2
    executions = sqlite_store(path).executions(*RUN)
    assert [e.type_name for e in executions] == ["mlops.ingest", "mlops.train"]
    assert [p.name for p in spool.iterdir()] == ["9.000000-mlops.half-1.json.partial"]


def test_spooled_records_stay_when_the_store_fails(tmp_path):
    spool = tmp_path / "spool"
    spool.mkdir()
    recording.record(_execution(), {recording.SPOOL_ENV: str(spool)})
    with pytest.raises(Exception):  # noqa: B017 - whatever the store raises
        recording.store_spooled(str(spool), str(tmp_path / "missing" / "m.sqlite"), "run-1")
    assert len(list(spool.iterdir())) == 1
