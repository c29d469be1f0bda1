"""The blessing rules on metrics alone: no TensorFlow, no model."""

import subprocess
import sys

import pytest

from components.errors import ConfigurationError
from components.evaluate.blessing import BaselineMetrics, EvalConfig, LabelledRows, bless

CLASSIFICATION, REGRESSION = "classification", "regression"
TRIVIAL = {"accuracy": 0.40}


def _bless(metrics, baseline=None, trivial=TRIVIAL, task=CLASSIFICATION, labelled=None, **config):
    return bless(task, metrics, trivial, baseline, EvalConfig(**config), labelled)


def test_the_decision_imports_no_tensorflow():
    code = "import sys, components.evaluate.blessing; print('tensorflow' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_a_first_model_that_beats_the_trivial_model_is_blessed():
    blessing = _bless({"accuracy": 0.9})
    assert blessing.blessed
    assert blessing.reasons == [
        "accuracy 0.9000 beats the trivial model's 0.4000 and there is no baseline yet"
    ]


@pytest.mark.parametrize("accuracy", [0.40, 0.30])
def test_a_model_no_better_than_the_trivial_model_is_not_blessed(accuracy):
    blessing = _bless({"accuracy": accuracy})
    assert not blessing.blessed
    assert blessing.reasons == [
        f"accuracy {accuracy:.4f} does not beat the trivial model's 0.4000 (majority class)"
    ]


def test_a_lower_bound_not_met_blocks_the_blessing():
    blessing = _bless({"accuracy": 0.85}, thresholds={"accuracy": {"lower_bound": 0.9}})
    assert not blessing.blessed
    assert blessing.reasons == ["accuracy 0.8500 is below the threshold 0.9"]


def test_an_upper_bound_not_met_blocks_the_blessing():
    metrics = {"accuracy": 0.9, "log_loss": 0.5}
    blessing = _bless(metrics, thresholds={"log_loss": {"upper_bound": 0.3}})
    assert blessing.reasons == ["log_loss 0.5000 is above the threshold 0.3"]


def test_thresholds_met_on_both_bounds_bless():
    bounds = {"accuracy": {"lower_bound": 0.8, "upper_bound": 0.95}}
    assert _bless({"accuracy": 0.9}, thresholds=bounds).blessed


def test_a_threshold_on_a_metric_not_computed_cannot_be_met():
    # AUC is left out when a class is missing from the eval split.
    blessing = _bless({"accuracy": 0.9}, thresholds={"auc": {"lower_bound": 0.5}})
    assert blessing.reasons == ["auc was not computed, so its threshold cannot be met"]


def test_every_failure_is_given():
    blessing = _bless(
        {"accuracy": 0.3},
        BaselineMetrics(4, {"accuracy": 0.8}),
        thresholds={"accuracy": {"lower_bound": 0.9}},
    )
    assert len(blessing.reasons) == 3


def test_a_model_that_beats_the_baseline_by_more_than_the_minimum_is_blessed():
    blessing = _bless(
        {"accuracy": 0.95}, BaselineMetrics(3, {"accuracy": 0.90}), min_improvement=0.02
    )
    assert blessing.blessed
    assert blessing.reasons == [
        "accuracy 0.9500 beats the trivial model's 0.4000 and the baseline's 0.9000 (version 3)"
    ]


# Values exact in binary, so "by exactly the minimum" is exact too.
@pytest.mark.parametrize(
    ("accuracy", "min_improvement"), [(0.75, 0.0), (0.625, 0.0), (1.0, 0.25), (0.875, 0.25)]
)
def test_a_model_that_does_not_improve_on_the_baseline_enough_is_not_blessed(
    accuracy, min_improvement
):
    baseline = BaselineMetrics(3, {"accuracy": 0.75})
    blessing = _bless({"accuracy": accuracy}, baseline, min_improvement=min_improvement)
    assert not blessing.blessed
    assert blessing.reasons == [
        f"accuracy {accuracy:.4f} does not improve on the baseline's 0.7500 (version 3) by more "
        f"than {min_improvement}"
    ]


def test_a_baseline_that_cannot_score_the_data_blocks_the_blessing():
    baseline = BaselineMetrics(2, failure="KeyError: 'wingspan'")
    blessing = _bless({"accuracy": 0.95}, baseline)
    assert not blessing.blessed
    assert (
        "the baseline (version 2) cannot score this eval data (KeyError: 'wingspan')"
        in (blessing.reasons[0])
    )
    assert "push under a new model name" in blessing.reasons[0]


REGRESSION_TRIVIAL = {"rmse": 10.0, "mae": 8.0, "r2": 0.0}


def test_regression_lower_rmse_beats_the_trivial_model():
    blessing = _bless({"rmse": 4.0}, trivial=REGRESSION_TRIVIAL, task=REGRESSION)
    assert blessing.blessed
    assert blessing.reasons[0].startswith("rmse 4.0000 beats the trivial model's 10.0000")


def test_regression_higher_rmse_than_the_trivial_model_is_not_blessed():
    blessing = _bless({"rmse": 12.0}, trivial=REGRESSION_TRIVIAL, task=REGRESSION)
    assert blessing.reasons == [
        "rmse 12.0000 does not beat the trivial model's 10.0000 (train mean)"
    ]


@pytest.mark.parametrize(("rmse", "blessed"), [(3.4, True), (3.6, False), (5.0, False)])
def test_regression_must_lower_the_baselines_rmse_by_more_than_the_minimum(rmse, blessed):
    baseline = BaselineMetrics(7, {"rmse": 4.0})
    blessing = _bless(
        {"rmse": rmse}, baseline, trivial=REGRESSION_TRIVIAL, task=REGRESSION, min_improvement=0.5
    )
    assert blessing.blessed is blessed


def test_a_threshold_on_a_metric_the_task_does_not_compute_is_rejected():
    with pytest.raises(ConfigurationError, match="rmse"):
        EvalConfig({"rmse": {"upper_bound": 1.0}}).check(CLASSIFICATION)


def test_a_threshold_without_bounds_is_rejected():
    with pytest.raises(ConfigurationError, match="lower_bound and/or upper_bound"):
        EvalConfig({"accuracy": {"minimum": 0.9}}).check(CLASSIFICATION)


def test_a_negative_min_improvement_is_rejected():
    with pytest.raises(ConfigurationError, match=r"min_improvement must be 0 or more, got -0\.1"):
        EvalConfig(min_improvement=-0.1)


SERVING = BaselineMetrics(3, {"accuracy": 0.85, "rmse": 2.0})


def test_a_candidate_worse_on_the_labelled_log_rows_is_not_blessed():
    blessing = _bless({"accuracy": 0.9}, SERVING, labelled=LabelledRows(120, 0.70, 0.80))
    assert not blessing.blessed
    assert blessing.reasons == [
        "on 120 labelled rows of the prediction log, accuracy 0.7000 is worse than the serving "
        "version's 0.8000 (version 3)"
    ]


@pytest.mark.parametrize(("candidate", "serving"), [(0.9, 0.8), (1.0, 1.0)])
def test_a_candidate_at_least_as_good_on_the_labelled_log_rows_is_blessed(candidate, serving):
    blessing = _bless({"accuracy": 0.9}, SERVING, labelled=LabelledRows(120, candidate, serving))
    assert blessing.blessed
    assert blessing.reasons[1] == (
        f"on 120 labelled rows of the prediction log, accuracy {candidate:.4f} against the "
        f"serving version's {serving:.4f}"
    )


def test_a_regressor_with_a_higher_rmse_on_the_labelled_log_rows_is_not_blessed():
    blessing = _bless({"rmse": 1.0}, SERVING, {"rmse": 5.0}, REGRESSION, LabelledRows(50, 2.5, 2.4))
    assert not blessing.blessed and "rmse 2.5000 is worse" in blessing.reasons[0]


def test_too_few_labelled_log_rows_are_not_compared_and_the_reasons_say_so():
    blessing = _bless(
        {"accuracy": 0.9}, SERVING, labelled=LabelledRows(12, 0.1, 0.9), min_labelled_rows=30
    )
    assert blessing.blessed
    assert blessing.reasons[1] == (
        "not compared on 12 labelled rows of the prediction log (fewer than 30)"
    )


def test_without_a_serving_version_the_labelled_log_rows_decide_nothing():
    blessing = _bless({"accuracy": 0.9}, labelled=LabelledRows(120, 0.1))
    assert blessing.blessed and len(blessing.reasons) == 1
