"""The whole training pipeline through ``kfp.local``, as ``mlops run --local`` runs it."""

import contextlib
import io
import json
import os

import numpy as np
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pytest
import tensorflow as tf
from google.protobuf import text_format

from components.features import load_spec, read_split
from components.lineage import recording, store
from components.lineage.mlmd import sqlite_store
from components.registry import ModelRegistry
from pipelines.cli import main

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _run(tmp_path, *extra) -> int:
    return main(
        [
            "run",
            "--local",
            "--registry",
            str(tmp_path / "registry"),
            "--runs-dir",
            str(tmp_path / "runs"),
            "--epochs",
            "20",
            *extra,
        ]
    )


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    """One full run on the bundled penguins, into a fresh registry."""
    folder = tmp_path_factory.mktemp("local-run")
    return folder, _run(folder)


def test_run_pushes_a_model_that_predicts_species(first_run, capsys, penguins_splits):
    folder, status = first_run
    assert status == 0
    registry = ModelRegistry(str(folder / "registry"))
    assert registry.versions("penguins") == [1]
    assert registry.metadata("penguins", 1)["metrics"]["accuracy"] > 0.9
    serve = tf.saved_model.load(registry.path("penguins", 1)).signatures["serving_default"]
    transform = next((folder / "runs").glob("*/*/transform/transform_graph"))
    features, labels = read_split(penguins_splits["eval"], load_spec(str(transform)))
    predicted = serve(**{name: tf.constant(values) for name, values in features.items()})["label"]
    assert np.mean(predicted.numpy().astype(str) == labels) > 0.9


def test_every_step_is_recorded_in_the_workspace_lineage_store(first_run):
    folder, _ = first_run
    lineage = sqlite_store(str(folder / "runs" / recording.STORE_FILE))
    run = min(path.name for path in (folder / "runs").iterdir() if path.is_dir())
    executions = {
        e.type_name.removeprefix("mlops."): e for e in lineage.executions(store.RUN_CONTEXT, run)
    }
    assert sorted(executions) == sorted(
        ["ingest", "validate", "transform", "train", "resolve-baseline", "evaluate", "deploy"]
    )
    assert not (folder / "runs" / run / "lineage-records").exists()  # all stored
    assert all((store.MODEL_CONTEXT, "penguins") in e.contexts for e in executions.values())
    assert all(e.state == store.COMPLETE for e in executions.values())
    model = executions["train"].outputs["model"]
    assert model.type_name == store.MODEL
    assert executions["deploy"].inputs["model"].id == model.id
    assert executions["train"].properties["epochs"] == 20
    assert executions["train"].properties[recording.CODE_VERSION] == recording.code_version()
    assert executions["deploy"].outputs["push_result"].type_name == store.PUSHED_MODEL
    assert executions["deploy"].outputs["push_result"].properties["version"] == 1


@pytest.fixture(scope="module")
def second_run(first_run):
    """A second run into the same registry and workspace, which does not beat the first."""
    folder, _ = first_run
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = _run(folder)
    return folder, status, out.getvalue()


def _lineage(folder, *args) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["lineage", *args, "--runs-dir", str(folder / "runs")]) == 0
    return out.getvalue()


def _run_names(folder) -> list[str]:
    return sorted(path.name for path in (folder / "runs").iterdir() if path.is_dir())


def test_second_run_that_is_not_better_is_not_pushed(second_run):
    folder, status, printed = second_run
    assert status == 0
    assert "blessed    no: accuracy" in printed
    assert "does not improve on the baseline" in printed
    assert "not pushed" in printed
    assert ModelRegistry(str(folder / "registry")).versions("penguins") == [1]


def test_summary_reports_each_step_and_the_outcome(tmp_path, capsys):
    assert _run(tmp_path, "--model-name", "summary-check") == 0
    printed = capsys.readouterr().out
    for step in (
        "ingest",
        "validate",
        "transform",
        "train",
        "resolve-baseline",
        "evaluate",
        "deploy",
    ):
        assert f"✓ {step}" in printed
    assert "344 rows: " in printed
    assert "anomalies  none" in printed
    assert "pushed as version 1" in printed
    assert f"lineage    mlops lineage summary-check:1 --runs-dir {tmp_path / 'runs'}" in printed
    assert "Traceback" not in printed


def test_lineage_of_a_pushed_model_is_what_happened(second_run):
    folder, _, _ = second_run
    first, second = _run_names(folder)
    tree = json.loads(_lineage(folder, "penguins:1", "--json"))
    registry = ModelRegistry(str(folder / "registry")).metadata("penguins", 1)
    assert (tree["model"], tree["version"], tree["run"]) == ("penguins", 1, first)
    assert tree["code_version"] == recording.code_version()
    assert registry["lineage"] == {
        "store": str(folder / "runs" / recording.STORE_FILE),
        "run": first,
        "model": "penguins",
    }
    assert tree["data"]["uri"].endswith(".csv")
    splits = tree["data"]["splits"]
    assert splits["train"]["rows"] + splits["eval"]["rows"] == 344
    assert splits["train"]["fingerprint"] == registry["data_fingerprint"]
    assert tree["anomalies"] == []
    assert tree["parameters"]["epochs"] == 20
    assert tree["metrics"] == registry["metrics"]
    assert tree["blessing"]["blessed"] is True
    assert tree["blessing"]["baseline_version"] is None
    (unblessed,) = tree["not_pushed"]
    assert unblessed["run"] == second
    assert unblessed["baseline_version"] == 1
    assert any("does not improve on the baseline" in reason for reason in unblessed["reasons"])


def test_lineage_tree_reads_as_text(second_run):
    folder, _, _ = second_run
    printed = _lineage(folder, "penguins")
    assert printed.startswith("penguins:1 ")
    assert "├─ blessed       no baseline:" in printed
    assert "├─ deployed      never rolled out to a cluster" in printed
    assert "└─ not pushed    1 other run(s) of penguins" in printed
    assert "│  └─ eval " in printed and "│  ├─ train " in printed


def test_lineage_over_grpc_reads_what_the_local_store_holds(second_run):
    """The same store behind ML Metadata's gRPC service, as KFP serves its own."""
    from tests.mlmd_server import MetadataServer

    folder, _, _ = second_run
    local = _lineage(folder, "penguins:1", "--json")
    with MetadataServer(str(folder / "runs" / recording.STORE_FILE)) as server:
        remote = _lineage(folder, "penguins:1", "--json", "--store", server.uri)
    assert json.loads(remote) == json.loads(local)


def test_lineage_of_a_dataset_lists_both_runs(second_run):
    folder, _, _ = second_run
    first, second = _run_names(folder)
    fingerprint = ModelRegistry(str(folder / "registry")).metadata("penguins", 1)[
        "data_fingerprint"
    ]
    users = json.loads(_lineage(folder, "--dataset", fingerprint, "--json"))
    assert [(u["run"], u["model"], u["pushed"], u["version"]) for u in users] == [
        (first, "penguins", True, 1),
        (second, "penguins", False, None),
    ]


def test_data_failing_validation_stops_the_run_with_nothing_pushed(
    tmp_path, capsys, penguins_schema
):
    curated = type(penguins_schema)()
    curated.CopyFrom(penguins_schema)
    curated.feature.add(name="ring_id", type=penguins_schema.feature[0].type).presence.min_count = 1
    schema = tmp_path / "schema.pbtxt"
    schema.write_text(text_format.MessageToString(curated))
    assert _run(tmp_path, "--schema", str(schema)) == 1
    err = capsys.readouterr().err
    assert "The validate step stopped: The data failed validation" in err
    assert "ring_id" in err
    assert "Traceback" not in err
    assert not os.path.exists(tmp_path / "registry")
    lineage = sqlite_store(str(tmp_path / "runs" / recording.STORE_FILE))
    (failed,) = [
        e for e in lineage.executions(store.MODEL_CONTEXT, "penguins") if e.state == "FAILED"
    ]
    assert failed.type_name == "mlops.validate"
    assert "ring_id" in failed.properties[recording.ERROR]


def test_missing_label_stops_the_run_with_a_clear_message(tmp_path, capsys):
    assert _run(tmp_path, "--label", "wingspan") == 1
    err = capsys.readouterr().err
    assert "The label 'wingspan' is not a column of the data" in err
    assert "Traceback" not in err
    assert not os.path.exists(tmp_path / "registry")


def test_single_class_label_stops_the_run(tmp_path, capsys, penguins_csv):
    table = pa_csv.read_csv(penguins_csv)
    data = tmp_path / "one-class.csv"
    pa_csv.write_csv(table.filter(pc.equal(table.column("species"), "Adelie")), str(data))
    assert _run(tmp_path, "--data", str(data)) == 1
    err = capsys.readouterr().err
    assert "single class ('Adelie')" in err
    assert not os.path.exists(tmp_path / "registry")


def test_bad_path_fails_before_the_pipeline_starts(tmp_path, capsys):
    assert _run(tmp_path, "--data", str(tmp_path / "nope.csv")) == 1
    assert "No data at" in capsys.readouterr().err
