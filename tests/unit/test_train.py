"""Train: the exported raw-feature signature, regression, and multi-device training."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pyarrow.parquet as pq
import pytest
import tensorflow as tf

from components import constants
from components.errors import ConfigurationError
from components.features import load_spec, read_split
from components.train import core
from components.transform import core as transform_core
from components.validate import core as validate_core
from tests.conftest import export_untrained, write_parquet


def _serve(model_dir, features):
    signature = tf.saved_model.load(model_dir).signatures[constants.SERVING_SIGNATURE]
    return {
        k: v.numpy()
        for k, v in signature(**{n: tf.constant(v) for n, v in features.items()}).items()
    }


def _train_tiny(tmp_path, columns: dict, train_rows: int, config: core.TrainConfig) -> dict:
    """Splits ``columns`` at ``train_rows``, then validates, transforms and trains into
    ``tmp_path/m``; returns the splits."""
    splits = {
        "train": write_parquet(tmp_path / "t.pq", {k: v[:train_rows] for k, v in columns.items()}),
        "eval": write_parquet(tmp_path / "e.pq", {k: v[train_rows:] for k, v in columns.items()}),
    }
    schema = validate_core.validate(splits, "y").schema
    transform_core.transform(splits["train"], schema, "y", str(tmp_path / "tf"))
    core.train(splits["train"], splits["eval"], str(tmp_path / "tf"), str(tmp_path / "m"), config)
    return splits


def test_signature_takes_the_raw_columns(tmp_path, golden_transform):
    # The signature is export's, whatever the weights: no need to train for it.
    model_dir = export_untrained(golden_transform, str(tmp_path / "model"))
    signature = tf.saved_model.load(model_dir).signatures[constants.SERVING_SIGNATURE]
    inputs = signature.structured_input_signature[1]
    assert set(inputs) == {
        "island",
        "bill_length_mm",
        "bill_depth_mm",
        "flipper_length_mm",
        "body_mass_g",
        "sex",
        "year",
    }
    assert inputs["island"].dtype == tf.string
    assert inputs["body_mass_g"].dtype == tf.float32
    assert set(signature.structured_outputs) == {"probabilities", "label", "classes"}


@pytest.mark.slow
def test_classifier_predicts_penguin_species(penguins_model, penguins_splits, penguins_transform):
    spec = load_spec(penguins_transform)
    features, labels = read_split(penguins_splits["eval"], spec)
    out = _serve(penguins_model, features)
    np.testing.assert_allclose(out["probabilities"].sum(axis=1), 1.0, rtol=1e-5)
    predicted = [label.decode() for label in out["label"]]
    assert set(predicted) <= {"Adelie", "Chinstrap", "Gentoo"}
    assert np.mean(np.array(predicted) == labels) > 0.9
    assert out["classes"][0].tolist() == [b"Adelie", b"Chinstrap", b"Gentoo"]


@pytest.mark.slow
def test_missing_values_are_served(penguins_model):
    out = _serve(
        penguins_model,
        {
            "island": np.array(["", "Biscoe"], dtype=object),
            "bill_length_mm": np.array([np.nan, 47.0], np.float32),
            "bill_depth_mm": np.array([np.nan, 15.0], np.float32),
            "flipper_length_mm": np.array([np.nan, 220.0], np.float32),
            "body_mass_g": np.array([np.nan, 5200.0], np.float32),
            "sex": np.array(["", "male"], dtype=object),
            "year": np.array([2008, 2008], np.float32),
        },
    )
    assert np.all(np.isfinite(out["probabilities"]))
    assert out["label"][1] == b"Gentoo"


@pytest.mark.slow
def test_regression_predicts_in_label_units(tmp_path):
    rng = np.random.default_rng(0)
    rows = 600
    x = rng.normal(10.0, 2.0, rows)
    group = rng.choice(["a", "b", "c"], rows)
    y = (
        3.0 * x
        + np.select([group == "a", group == "b"], [0.0, 20.0], -20.0)
        + rng.normal(0, 0.5, rows)
    )
    columns = {"x": x.tolist(), "group": group.tolist(), "y": y.tolist()}
    splits = _train_tiny(tmp_path, columns, 500, core.TrainConfig(epochs=60, hidden_units=(16,)))
    table = pq.read_table(splits["eval"])
    out = _serve(
        str(tmp_path / "m"),
        {
            "x": table.column("x").to_numpy().astype(np.float32),
            "group": np.array(table.column("group").to_pylist(), dtype=object),
        },
    )
    rmse = float(np.sqrt(np.mean((out["prediction"] - y[500:]) ** 2)))
    assert rmse < 0.2 * float(np.std(y))


@pytest.mark.slow
def test_mirrored_strategy_trains_across_logical_cpu_devices(
    tmp_path, penguins_splits, penguins_transform
):
    # Splitting the CPU must happen before TensorFlow initialises, so train in a fresh process.
    script = textwrap.dedent(
        f"""
        import json
        from components.train import core
        result = core.train({penguins_splits["train"]!r}, {penguins_splits["eval"]!r},
                            {penguins_transform!r}, {str(tmp_path / "model")!r},
                            core.TrainConfig(epochs=3, cpu_devices=2))
        print("RESULT " + json.dumps({{"replicas": result.replicas, "strategy": result.strategy}}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))
    assert json.loads(line[len("RESULT ") :]) == {"replicas": 2, "strategy": "MirroredStrategy"}
    assert os.path.isfile(tmp_path / "model" / "saved_model.pb")


@pytest.mark.parametrize(
    "overrides",
    [
        {"epochs": 0},
        {"batch_size": 0},
        {"learning_rate": 0.0},
        {"hidden_units": ()},
        {"dropout": 1.0},
        {"cpu_devices": 0},
    ],
)
def test_invalid_hyperparameters_are_rejected(overrides):
    with pytest.raises(ConfigurationError, match=next(iter(overrides))):
        core.TrainConfig(**overrides)


@pytest.mark.slow
def test_integer_labels_are_served_as_integers(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(0.0, 1.0, 300)
    columns = {"x": x.tolist(), "y": (x > 0).astype(int).tolist()}
    _train_tiny(tmp_path, columns, 240, core.TrainConfig(epochs=30, hidden_units=(8,)))
    out = _serve(str(tmp_path / "m"), {"x": np.array([-2.0, 2.0], np.float32)})
    assert out["label"].dtype == np.int64
    assert out["label"].tolist() == [0, 1]
    assert out["classes"][0].tolist() == [0, 1]


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_two_workers_on_loopback_train_a_model_as_good_as_one(
    tmp_path, penguins_splits, penguins_transform, penguins_model
):
    """Two processes with TF_CONFIG, as a Kubeflow training operator starts two worker pods,
    train one model under MultiWorkerMirroredStrategy; worker 0 exports it."""
    workers = [f"127.0.0.1:{_free_port()}" for _ in range(2)]
    script = textwrap.dedent(
        f"""
        import json, sys
        from components.train import core
        result = core.train({penguins_splits["train"]!r}, {penguins_splits["eval"]!r},
                            {penguins_transform!r}, sys.argv[1], core.TrainConfig(epochs=15))
        print("RESULT " + json.dumps({{"replicas": result.replicas,
                                       "strategy": result.strategy,
                                       "loss": result.history["loss"]}}))
        """
    )
    processes = []
    for index in range(2):
        config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        processes.append(
            subprocess.Popen(
                [sys.executable, "-c", script, str(tmp_path / f"model-{index}")],
                env={**os.environ, "TF_CONFIG": json.dumps(config), "TF_CPP_MIN_LOG_LEVEL": "2"},
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    results = []
    for process in processes:
        out, err = process.communicate(timeout=900)
        assert process.returncode == 0, err[-3000:]
        line = next(line for line in out.splitlines() if line.startswith("RESULT "))
        results.append(json.loads(line[len("RESULT ") :]))
    assert [r["strategy"] for r in results] == ["MultiWorkerMirroredStrategy"] * 2
    assert [r["replicas"] for r in results] == [2, 2]
    # One model: both workers saw the same losses, step for step.
    assert results[0]["loss"] == results[1]["loss"]
    assert (tmp_path / "model-0" / "saved_model.pb").is_file()
    assert not (tmp_path / "model-1").exists()  # Only worker 0 writes the model.
    spec = load_spec(penguins_transform)
    features, labels = read_split(penguins_splits["eval"], spec)
    accuracies = []
    for model_dir in (str(tmp_path / "model-0"), penguins_model):
        predicted = _serve(model_dir, features)["label"].astype(str)
        accuracies.append(float(np.mean(predicted == np.asarray(labels).astype(str))))
    two_workers, one_worker = accuracies
    assert two_workers >= one_worker - 0.03, accuracies


def test_tf_config_that_is_not_a_cluster_spec_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["a:1", "b:2"]}}')
    with pytest.raises(ConfigurationError, match="TF_CONFIG is not a TensorFlow cluster spec"):
        core.cluster_task()


@pytest.mark.parametrize(
    ("task", "cluster", "chief"),
    [
        (("worker", 0), {"worker": ["a:1", "b:2"]}, True),
        (("worker", 1), {"worker": ["a:1", "b:2"]}, False),
        (("worker", 0), {"chief": ["c:0"], "worker": ["a:1"]}, False),
        (("chief", 0), {"chief": ["c:0"], "worker": ["a:1"]}, True),
    ],
)
def test_the_chief_writes_the_model(monkeypatch, task, cluster, chief):
    config = {"cluster": cluster, "task": {"type": task[0], "index": task[1]}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(config))
    assert core.is_chief(core.cluster_task()) is chief
