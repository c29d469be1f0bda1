"""A model's metrics on a split, accumulated a batch at a time in memory that does not grow
with the split, and the same however its rows are batched or shared out between Beam workers:
counts, exact sums (:mod:`components.moments`) and scores ranked on disk
(:mod:`components.evaluate.ranking`).

Each metric is scikit-learn's, by its definition and on the same per-row values; where
scikit-learn sums floating-point numbers in an order of its own, these are summed exactly and
rounded once, so a value can differ from scikit-learn's in its last bits: float32's for the log
loss of a float32 model, which scikit-learn averages in float32.
"""

import math
from fractions import Fraction
from typing import Any

import numpy as np
from scipy import special

from components.evaluate.ranking import Ranking
from components.moments import Moments

# Probabilities are clipped to [CLIP, 1] and renormalized before the log loss.
_CLIP = 1e-7


class Confusion:
    """The confusion matrix of class indices (rows: true class; columns: predicted)."""

    def __init__(self, classes: int) -> None:
        self.matrix = np.zeros((classes, classes), np.int64)

    def add(self, y: np.ndarray, predicted: np.ndarray) -> None:
        classes = len(self.matrix)
        counts = np.bincount(y * classes + predicted, minlength=classes * classes)
        self.matrix += counts.reshape(classes, classes)

    def merge(self, other: "Confusion") -> "Confusion":
        self.matrix += other.matrix
        return self

    @property
    def rows(self) -> int:
        return int(self.matrix.sum())

    def accuracy(self) -> float:
        return int(np.trace(self.matrix)) / self.rows

    def result(self) -> dict[str, Any]:
        return {"metrics": {"accuracy": self.accuracy()}}


class Classification:
    """Accuracy, log loss, AUC (when every class occurs: of the positive class's probability
    for two classes, else the macro average of each class's against the rest), macro and
    per-class precision and recall, the confusion matrix and, for two classes, the ROC curve.
    """

    def __init__(self, classes: int, folder: str) -> None:
        self.confusion = Confusion(classes)
        self.loss = Moments()
        # Two classes: the positive class's scores; more: each class's against the rest.
        rankings = 1 if classes == 2 else classes
        self.rankings = [Ranking(folder, rankings) for _ in range(rankings)]
        self.not_finite = 0  # rows with a probability that is NaN or infinite
        self.not_summing_to_one = 0

    def add(self, y: np.ndarray, probabilities: np.ndarray) -> None:
        """Adds rows: class indices and the model's probabilities of each class (a
        ValueError for probabilities of other classes than the eval data's)."""
        if probabilities.ndim != 2 or probabilities.shape[1] != len(self.confusion.matrix):
            raise ValueError(
                f"the model gives probabilities of shape {probabilities.shape[1:]}, not one per "
                f"class of the eval data ({len(self.confusion.matrix)}): it was trained on "
                "other classes"
            )
        finite = np.isfinite(probabilities).all(axis=1)
        if not finite.all():
            self.not_finite += int((~finite).sum())
            y, probabilities = y[finite], probabilities[finite]
        self.confusion.add(y, probabilities.argmax(axis=1))
        self.loss.add(_row_losses(y, probabilities))
        sums = probabilities.sum(axis=1)
        # scikit-learn's test of a multi-class AUC's scores: np.allclose(1, sums).
        self.not_summing_to_one += int((~np.isclose(1, sums)).sum())
        if len(self.rankings) == 1:
            self.rankings[0].add(probabilities[:, 1], y == 1)
        else:
            for index, ranking in enumerate(self.rankings):
                ranking.add(probabilities[:, index], y == index)

    def merge(self, other: "Classification") -> "Classification":
        self.confusion.merge(other.confusion)
        self.loss.merge(other.loss)
        for mine, theirs in zip(self.rankings, other.rankings, strict=True):
            mine.merge(theirs)
        self.not_finite += other.not_finite
        self.not_summing_to_one += other.not_summing_to_one
        return self

    def result(self) -> dict[str, Any]:
        """The metrics (raises ValueError when the model's outputs are not probabilities)."""
        if self.not_finite:
            raise ValueError(
                f"the model's probabilities are NaN or infinite in {self.not_finite} rows"
            )
        matrix = self.confusion.matrix
        support = matrix.sum(axis=1)
        true_positives = np.diag(matrix)
        precision = _divided(true_positives, matrix.sum(axis=0))
        recall = _divided(true_positives, support)
        result: dict[str, Any] = {
            "metrics": {
                "accuracy": self.confusion.accuracy(),
                "log_loss": self.loss.mean(),
                "macro_precision": float(precision.mean()),
                "macro_recall": float(recall.mean()),
            },
            "per_class": {
                "precision": precision.tolist(),
                "recall": recall.tolist(),
                "support": support.tolist(),
            },
            "confusion_matrix": matrix.tolist(),
            "roc_curve": {},
        }
        if not support.all():
            return result  # the AUC needs every class (evaluate warns)
        if len(self.rankings) == 1:
            auc, curve = self.rankings[0].result(curve=True)
            result["roc_curve"] = {
                "fpr": curve.fpr,
                "tpr": curve.tpr,
                "thresholds": curve.thresholds,
            }
        else:
            if self.not_summing_to_one:
                raise ValueError(
                    "Target scores need to be probabilities for multiclass roc_auc, i.e. they "
                    f"should sum up to 1.0 over classes ({self.not_summing_to_one} rows do not)"
                )
            auc = sum((ranking.result()[0] for ranking in self.rankings), Fraction(0))
            auc /= len(self.rankings)
        result["metrics"]["auc"] = float(auc)
        return result


def _row_losses(y: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """Each row's log loss as scikit-learn's ``log_loss`` computes it (in the probabilities'
    own precision), after clipping to [1e-7, 1] and renormalizing."""
    clipped = np.clip(probabilities, _CLIP, 1.0)
    clipped /= clipped.sum(axis=1, keepdims=True)
    eps = np.finfo(clipped.dtype).eps
    clipped = np.clip(clipped, eps, 1 - eps)
    one_hot = np.zeros_like(clipped)
    one_hot[np.arange(len(y)), y] = 1
    return (-special.xlogy(one_hot, clipped).sum(axis=1)).astype(np.float64)


def _divided(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, 0 where the denominator is (scikit-learn's zero_division=0)."""
    result = np.zeros(len(numerator))
    np.divide(numerator, denominator, out=result, where=denominator != 0)
    return result


class Regression:
    """RMSE, MAE and R²."""

    def __init__(self) -> None:
        self.labels = Moments()
        self.errors = Moments()
        self.absolute_errors = Moments()

    @property
    def rows(self) -> int:
        return self.errors.count + self.errors.non_finite

    def add(self, y: np.ndarray, prediction: np.ndarray) -> None:
        """Adds rows: labels and the model's predictions."""
        errors = y - np.asarray(prediction).reshape(len(y))
        self.labels.add(y)
        self.errors.add(errors)
        self.absolute_errors.add(np.abs(errors))

    def merge(self, other: "Regression") -> "Regression":
        self.labels.merge(other.labels)
        self.errors.merge(other.errors)
        self.absolute_errors.merge(other.absolute_errors)
        return self

    def result(self) -> dict[str, Any]:
        """The metrics (raises ValueError when a prediction is NaN or infinite)."""
        if self.errors.non_finite:
            raise ValueError(
                f"the model's predictions are NaN or infinite in {self.errors.non_finite} rows"
            )
        rows = self.errors.count
        squared = self.errors.total_of_squares()
        spread = self.labels.total_of_squares() - self.labels.total() ** 2 / rows
        # No spread in the labels: 1 for exact predictions, else 0, as scikit-learn's.
        r2 = float(1 - squared / spread) if spread else float(not squared)
        return {
            "metrics": {
                "rmse": math.sqrt(float(squared / rows)),
                "mae": float(self.absolute_errors.total() / rows),
                "r2": r2,
            }
        }
