"""Evaluate: metrics on known values, and the candidate and baseline scored on the same eval rows
(the blessing rules themselves are in test_blessing.py)."""

import numpy as np
import pytest

from components.errors import ConfigurationError
from components.evaluate import core
from components.features import load_spec
from components.train import core as train_core
from components.transform import core as transform_core
from components.validate import core as validate_core
from tests.conftest import write_parquet


def test_classification_metrics_on_known_values():
    y = np.array([0, 0, 1, 1])
    probabilities = np.array([[0.9, 0.1], [0.4, 0.6], [0.2, 0.8], [0.3, 0.7]])
    result = core.classification_metrics(y, probabilities)
    assert result["metrics"]["accuracy"] == pytest.approx(0.75)
    assert result["confusion_matrix"] == [[1, 1], [0, 2]]
    assert result["per_class"]["precision"] == pytest.approx([1.0, 2 / 3])
    assert result["per_class"]["recall"] == pytest.approx([0.5, 1.0])
    assert result["metrics"]["auc"] == pytest.approx(1.0)
    expected_loss = -np.mean(np.log([0.9, 0.4, 0.8, 0.7]))
    assert result["metrics"]["log_loss"] == pytest.approx(expected_loss)
    assert result["roc_curve"]["fpr"][-1] == 1.0


def test_auc_is_skipped_when_a_class_is_absent():
    probabilities = np.array([[0.6, 0.3, 0.1], [0.2, 0.7, 0.1]])
    result = core.classification_metrics(np.array([0, 1]), probabilities)
    assert "auc" not in result["metrics"]


def test_regression_metrics_on_known_values():
    metrics = core.regression_metrics(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 5.0]))
    assert metrics["rmse"] == pytest.approx(np.sqrt(4 / 3))
    assert metrics["mae"] == pytest.approx(2 / 3)
    assert metrics["r2"] == pytest.approx(1 - 4 / 2)


def _evaluate(splits, model, transform, baseline=None, **config):
    return core.evaluate(
        splits["eval"], model, load_spec(transform), baseline, core.EvalConfig(**config)
    )


def test_first_model_is_blessed_when_it_beats_the_majority_class(
    penguins_splits, penguins_model, penguins_transform
):
    result = _evaluate(penguins_splits, penguins_model, penguins_transform)
    assert result.blessed
    assert result.metrics["accuracy"] > result.trivial_metrics["accuracy"]
    assert "no baseline" in result.reasons[0]
    assert len(result.confusion_matrix) == 3


def test_unmet_threshold_blocks_the_blessing(penguins_splits, penguins_model, penguins_transform):
    result = _evaluate(
        penguins_splits,
        penguins_model,
        penguins_transform,
        thresholds={"log_loss": {"upper_bound": 1e-9}},
    )
    assert not result.blessed
    assert any(
        "log_loss" in reason and "above the threshold" in reason for reason in result.reasons
    )


def test_baseline_is_scored_on_the_same_rows_and_an_equal_model_is_not_blessed(
    penguins_splits, penguins_model, penguins_transform
):
    baseline = core.Baseline(version=1, model_dir=penguins_model)
    result = _evaluate(penguins_splits, penguins_model, penguins_transform, baseline)
    assert not result.blessed
    assert result.baseline_version == 1
    assert result.baseline_metrics["accuracy"] == pytest.approx(result.metrics["accuracy"])
    assert any("does not improve on the baseline" in reason for reason in result.reasons)


def test_a_baseline_that_cannot_read_this_data_blocks_the_blessing(
    tmp_path, penguins_splits, penguins_model, penguins_transform
):
    # A baseline trained on other columns: its signature does not take these features.
    data = {"x": [1.0, 2.0, 3.0, 4.0] * 5, "y": [0, 1, 0, 1] * 5}
    splits = {name: write_parquet(tmp_path / f"{name}.parquet", data) for name in ("train", "eval")}
    schema = validate_core.validate(splits, "y").schema
    transform_core.transform(splits["train"], schema, "y", str(tmp_path / "transform"))
    train_core.train(
        splits["train"],
        splits["eval"],
        str(tmp_path / "transform"),
        str(tmp_path / "other"),
        train_core.TrainConfig(epochs=1),
    )
    baseline = core.Baseline(version=4, model_dir=str(tmp_path / "other"))
    result = _evaluate(penguins_splits, penguins_model, penguins_transform, baseline)
    assert not result.blessed
    assert "the baseline (version 4) cannot score this eval data" in result.reasons[-1]


def test_a_config_the_task_cannot_use_stops_the_evaluation(
    penguins_splits, penguins_model, penguins_transform
):
    with pytest.raises(ConfigurationError, match="rmse"):
        _evaluate(
            penguins_splits,
            penguins_model,
            penguins_transform,
            thresholds={"rmse": {"upper_bound": 1.0}},
        )


def test_report_shows_the_decision_and_the_confusion_matrix(
    penguins_splits, penguins_model, penguins_transform
):
    result = _evaluate(penguins_splits, penguins_model, penguins_transform)
    report = core.markdown_report(result)
    assert report.startswith("# Evaluation (classification)")
    assert "**Blessed**" in report
    assert "| **Gentoo** |" in report
