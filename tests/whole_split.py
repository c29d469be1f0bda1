"""The eval split scored whole, as evaluate did before it streamed: every row's outputs in
memory and scikit-learn's metrics over them. The reference the streamed metrics are tested
against, and ``bench/scale.py``'s evaluate-whole."""

import math
from typing import Any

import numpy as np
import tensorflow as tf
from sklearn import metrics as sk

from components import constants
from components.evaluate.core import _as_scored
from components.features import Arrays, TransformSpec, read_split


def predict(model_dir: str, features: Arrays, batch: int = 4096) -> dict[str, np.ndarray]:
    """A SavedModel's serving signature over raw feature arrays, in batches."""
    signature = tf.saved_model.load(model_dir).signatures[constants.SERVING_SIGNATURE]
    rows = len(next(iter(features.values())))
    outputs: dict[str, list[np.ndarray]] = {}
    for start in range(0, rows, batch):
        inputs = {
            name: tf.constant(values[start : start + batch]) for name, values in features.items()
        }
        for name, value in signature(**inputs).items():
            outputs.setdefault(name, []).append(value.numpy())
    return {name: np.concatenate(parts) for name, parts in outputs.items()}


def scored_rows(path: str, spec: TransformSpec) -> tuple[Arrays, np.ndarray]:
    """A split's raw features and its labels as the metrics take them."""
    features, labels = read_split(path, spec)
    y, features, _ = _as_scored(spec, features, labels)
    return features, y


def classification_metrics(y: np.ndarray, probabilities: np.ndarray) -> dict[str, Any]:
    """scikit-learn's: accuracy, log loss, AUC (when every class is present), macro and
    per-class precision/recall, the confusion matrix and, for two classes, the ROC curve."""
    labels = list(range(probabilities.shape[1]))
    predicted = probabilities.argmax(axis=1)
    precision, recall, _, support = sk.precision_recall_fscore_support(
        y, predicted, labels=labels, zero_division=0
    )
    clipped = np.clip(probabilities, 1e-7, 1.0)
    clipped /= clipped.sum(axis=1, keepdims=True)
    result: dict[str, Any] = {
        "metrics": {
            "accuracy": float(sk.accuracy_score(y, predicted)),
            "log_loss": float(sk.log_loss(y, y_proba=clipped, labels=labels)),
            "macro_precision": float(precision.mean()),
            "macro_recall": float(recall.mean()),
        },
        "per_class": {
            "precision": precision.tolist(),
            "recall": recall.tolist(),
            "support": support.tolist(),
        },
        "confusion_matrix": sk.confusion_matrix(y, predicted, labels=labels).tolist(),
        "roc_curve": {},
    }
    if len(np.unique(y)) == len(labels):
        if len(labels) == 2:
            result["metrics"]["auc"] = float(sk.roc_auc_score(y, probabilities[:, 1]))
            fpr, tpr, thresholds = sk.roc_curve(y, probabilities[:, 1])
            finite = np.isfinite(thresholds)
            result["roc_curve"] = {
                "fpr": fpr[finite].tolist(),
                "tpr": tpr[finite].tolist(),
                "thresholds": thresholds[finite].tolist(),
            }
        else:
            result["metrics"]["auc"] = float(
                sk.roc_auc_score(y, probabilities, multi_class="ovr", labels=labels)
            )
    return result


def regression_metrics(y: np.ndarray, prediction: np.ndarray) -> dict[str, float]:
    """scikit-learn's RMSE, MAE and R²."""
    return {
        "rmse": float(math.sqrt(sk.mean_squared_error(y, prediction))),
        "mae": float(sk.mean_absolute_error(y, prediction)),
        "r2": float(sk.r2_score(y, prediction)),
    }


def metrics(spec: TransformSpec, model_dir: str, path: str) -> dict[str, Any]:
    """A model's metrics on a split, every row's outputs at once."""
    features, y = scored_rows(path, spec)
    if spec.label.task == constants.CLASSIFICATION:
        return classification_metrics(
            y, predict(model_dir, features)[constants.OUTPUT_PROBABILITIES]
        )
    return {
        "metrics": regression_metrics(
            y, predict(model_dir, features)[constants.OUTPUT_PREDICTION].ravel()
        )
    }
