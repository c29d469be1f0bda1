"""Evaluate's metrics, accumulated a batch at a time with scores ranked on disk: scikit-learn's
on known values and on random data with ties, the same however the rows are batched and
merged, the AUC the exact Mann-Whitney statistic, and the ROC curve scikit-learn's points."""

import os
from fractions import Fraction
from itertools import pairwise

import numpy as np
import pytest
from sklearn import metrics as sk

from components.evaluate import metrics, ranking
from tests import whole_split


@pytest.fixture
def small_runs(monkeypatch):
    """Runs of 500 scores, merged 7 records of each at a time, 3 runs at once: thousands of
    rows go through runs, chunked merges and merges in rounds."""
    monkeypatch.setattr(ranking, "RUN_ROWS", 500)
    monkeypatch.setattr(ranking, "MERGE_CHUNK", 7)
    monkeypatch.setattr(ranking, "FAN_IN", 3)


def _classification(folder, y, probabilities, cuts=(), order=None) -> dict:
    """The metrics of rows added in batches cut at ``cuts``, the batches' accumulators merged
    in ``order`` (metrics are independent of both)."""
    bounds = [0, *cuts, len(y)]
    parts = []
    for start, end in pairwise(bounds):
        part = metrics.Classification(probabilities.shape[1], str(folder))
        part.add(y[start:end], probabilities[start:end])
        parts.append(part)
    total = metrics.Classification(probabilities.shape[1], str(folder))
    for index in order or range(len(parts)):
        total.merge(parts[index])
    return total.result()


def _random(rows: int, classes: int, seed: int = 0, decimals: int | None = 2):
    """Labels and float32 probabilities that carry some signal, rounded so that scores tie."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, rows)
    logits = rng.normal(size=(rows, classes)) + 1.5 * np.eye(classes)[y]
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    if decimals is not None:
        probabilities = probabilities.round(decimals)
        probabilities[:, -1] = 1 - probabilities[:, :-1].sum(axis=1)
    return y, probabilities.astype(np.float32)


def test_classification_metrics_on_known_values(tmp_path):
    y = np.array([0, 0, 1, 1])
    probabilities = np.array([[0.9, 0.1], [0.4, 0.6], [0.2, 0.8], [0.3, 0.7]], np.float32)
    result = _classification(tmp_path, y, probabilities)
    assert result["metrics"]["accuracy"] == 0.75
    assert result["confusion_matrix"] == [[1, 1], [0, 2]]
    assert result["per_class"]["precision"] == pytest.approx([1.0, 2 / 3])
    assert result["per_class"]["recall"] == [0.5, 1.0]
    assert result["metrics"]["auc"] == 1.0
    expected_loss = -np.mean(np.log([0.9, 0.4, 0.8, 0.7]))
    assert result["metrics"]["log_loss"] == pytest.approx(expected_loss, rel=1e-6)
    # The point at 0.6 lies on the line from 0.7's to 0.1's: scikit-learn drops it.
    assert result["roc_curve"] == {
        "fpr": [0.0, 0.0, 1.0],
        "tpr": [0.5, 1.0, 1.0],
        "thresholds": [float(np.float32(t)) for t in (0.8, 0.7, 0.1)],
    }


def test_auc_is_skipped_when_a_class_is_absent(tmp_path):
    probabilities = np.array([[0.6, 0.3, 0.1], [0.2, 0.7, 0.1]], np.float32)
    result = _classification(tmp_path, np.array([0, 1]), probabilities)
    assert "auc" not in result["metrics"] and result["metrics"]["accuracy"] == 1.0


@pytest.mark.parametrize("classes", [2, 3])
def test_classification_metrics_are_scikit_learns_however_the_rows_are_batched(
    tmp_path, small_runs, classes
):
    y, probabilities = _random(6_000, classes)
    whole = _classification(tmp_path, y, probabilities)
    cuts = (1, 999, 1000, *range(1250, 5999, 250), 5999)
    order = np.random.default_rng(5).permutation(len(cuts) + 1).tolist()
    batched = _classification(tmp_path, y, probabilities, cuts, order)
    assert batched == whole  # to the bit
    rankings = 1 if classes == 2 else classes
    assert len(os.listdir(tmp_path)) > 12 * rankings  # runs written, then merged in rounds
    expected = whole_split.classification_metrics(y, probabilities)
    for key in ("per_class", "confusion_matrix"):
        assert whole[key] == expected[key]
    for name in ("accuracy", "macro_precision", "macro_recall"):
        assert whole["metrics"][name] == expected["metrics"][name]
    assert whole["metrics"]["auc"] == pytest.approx(expected["metrics"]["auc"], rel=1e-15)
    # scikit-learn averages float32 losses in float32; these are summed exactly.
    assert whole["metrics"]["log_loss"] == pytest.approx(expected["metrics"]["log_loss"], rel=1e-6)
    if classes == 2:
        assert whole["roc_curve"]["fpr"][-1] == 1.0


def _mann_whitney(scores: np.ndarray, positive: np.ndarray) -> Fraction:
    """The AUC by its definition: of all (positive, negative) pairs, the share in which the
    positive scores higher, a tie counting half."""
    pos, neg = scores[positive], scores[~positive]
    wins = sum(int((p > neg).sum()) * 2 + int((p == neg).sum()) for p in pos)
    return Fraction(wins, 2 * len(pos) * len(neg))


def test_the_auc_is_the_mann_whitney_statistic_rounded_once(tmp_path, small_runs):
    rng = np.random.default_rng(1)
    scores = (rng.integers(0, 40, 3_000) / 40).astype(np.float32)  # many ties
    positive = rng.random(3_000) < 0.2 + 0.6 * scores
    ranked = ranking.Ranking(str(tmp_path))
    for start in range(0, 3_000, 128):
        ranked.add(scores[start : start + 128], positive[start : start + 128])
    auc, _ = ranked.result()
    assert auc == _mann_whitney(scores, positive)
    assert float(auc) == pytest.approx(sk.roc_auc_score(positive, scores), rel=1e-15)


@pytest.mark.parametrize("decimals", [None, 3])
def test_the_roc_curve_is_scikit_learns(tmp_path, monkeypatch, small_runs, decimals):
    """Point for point when thinning keeps every point; thinned, a few of scikit-learn's points
    (its first and last among them), at most two per step of the grid."""
    y, probabilities = _random(20_000, 2, seed=2, decimals=decimals)
    fpr, tpr, thresholds = sk.roc_curve(y, probabilities[:, 1])
    finite = np.isfinite(thresholds)
    points = list(zip(fpr[finite], tpr[finite], thresholds[finite], strict=True))
    assert len(points) > 600 or decimals == 3

    monkeypatch.setattr(ranking, "CURVE_STEPS", 10**12)
    curve = _classification(tmp_path, y, probabilities, cuts=(777,))["roc_curve"]
    assert curve == {
        "fpr": fpr[finite].tolist(),
        "tpr": tpr[finite].tolist(),
        "thresholds": thresholds[finite].tolist(),
    }
    monkeypatch.setattr(ranking, "CURVE_STEPS", 100)
    thinned = _classification(tmp_path, y, probabilities, cuts=(777,))["roc_curve"]
    kept = list(zip(thinned["fpr"], thinned["tpr"], thinned["thresholds"], strict=True))
    assert set(kept) <= set(points)
    assert kept[0] == points[0] and kept[-1] == points[-1] == (1.0, 1.0, kept[-1][2])
    assert len(kept) <= 2 * 100 + 2
    cells = {(int(f * 100), int(t * 100)) for f, t, _ in kept}
    assert len(cells) >= len(kept) - 1  # one point per cell of the grid (and the last)


def test_scores_past_the_memory_held_are_written_as_runs_and_cleared(tmp_path, small_runs):
    ranked = ranking.Ranking(str(tmp_path))
    rng = np.random.default_rng(3)
    for _ in range(30):
        ranked.add(rng.random(100), rng.random(100) < 0.5)
        assert ranked.held < ranking.RUN_ROWS
    assert (
        len(ranked.runs) == 6 and sum(run.positives + run.negatives for run in ranked.runs) == 3000
    )
    assert sorted(os.listdir(tmp_path)) == sorted(os.path.basename(r.path) for r in ranked.runs)


def test_outputs_that_are_not_probabilities_are_a_value_error(tmp_path):
    y = np.array([0, 1, 2])
    scores = metrics.Classification(3, str(tmp_path))
    scores.add(y, np.array([[0.5, 0.5, 0.5], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6]], np.float32))
    with pytest.raises(ValueError, match=r"should sum up to 1.0 over classes \(1 rows do not\)"):
        scores.result()
    scores = metrics.Classification(2, str(tmp_path))
    scores.add(np.array([0, 1]), np.array([[np.nan, 0.5], [0.1, 0.9]], np.float32))
    with pytest.raises(ValueError, match="NaN or infinite in 1 rows"):
        scores.result()
    regression = metrics.Regression()
    regression.add(np.array([1.0, 2.0]), np.array([np.inf, 2.0]))
    with pytest.raises(ValueError, match="predictions are NaN or infinite in 1 rows"):
        regression.result()


def _regression(y, prediction, cuts=()) -> dict:
    total = metrics.Regression()
    for start, end in pairwise([0, *cuts, len(y)]):
        part = metrics.Regression()
        part.add(y[start:end], prediction[start:end])
        total = part.merge(total)
    return total.result()["metrics"]


def test_regression_metrics_on_known_values():
    result = _regression(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 5.0], np.float32))
    assert result == {"rmse": pytest.approx(np.sqrt(4 / 3)), "mae": 2 / 3, "r2": 1 - 4 / 2}
    assert _regression(np.ones(3), np.ones(3))["r2"] == 1.0  # constant labels: scikit-learn's
    assert _regression(np.ones(3), np.array([1.0, 1.0, 2.0]))["r2"] == 0.0


def test_regression_metrics_are_scikit_learns_however_the_rows_are_batched():
    rng = np.random.default_rng(4)
    y = rng.normal(50, 20, 5_000)
    prediction = (y + rng.normal(0, 5, 5_000)).astype(np.float32)
    whole = _regression(y, prediction)
    assert _regression(y, prediction, cuts=(3, 2000, 4999)) == whole
    expected = whole_split.regression_metrics(y, prediction)
    assert whole == {name: pytest.approx(value, rel=1e-13) for name, value in expected.items()}


def test_the_rankings_of_a_classs_scores_share_the_memory_held(tmp_path, small_runs):
    """Five classes rank five columns of scores: together they hold about RUN_ROWS."""
    y, probabilities = _random(2_000, 5)
    scores = metrics.Classification(5, str(tmp_path))
    for start in range(0, 2_000, 50):
        scores.add(y[start : start + 50], probabilities[start : start + 50])
        assert sum(r.held for r in scores.rankings) < ranking.RUN_ROWS + 5 * 50
    assert all(len(r.runs) >= 10 for r in scores.rankings)
    expected = whole_split.classification_metrics(y, probabilities)["metrics"]["auc"]
    assert scores.result()["metrics"]["auc"] == pytest.approx(expected, rel=1e-15)


def test_a_score_of_minus_zero_is_zero_whatever_the_order(tmp_path):
    y = np.array([0, 1, 0, 1])
    probabilities = np.array([[1, -0.0], [0.5, 0.5], [1, 0.0], [0.2, 0.8]], np.float32)
    first = _classification(tmp_path, y, probabilities, cuts=(1, 2, 3))
    second = _classification(tmp_path, y, probabilities, cuts=(1, 2, 3), order=[2, 1, 3, 0])
    assert first == second
    assert np.copysign(1, first["roc_curve"]["thresholds"][-1]) == 1.0
