"""Transform [TFX Transform]: fit the preprocessing on the train split and save it as a
TensorFlow SavedModel that maps raw features to model inputs.

Numbers are standardised with the train split's mean and standard deviation, missing numbers
are imputed with the mean and flagged; categories are looked up in the train split's
vocabulary, with OOV buckets for unseen values and id 0 for a missing value. The same saved
function runs inside ``tf.data`` for training and inside the exported serving model, so there is
one copy of the preprocessing.
"""

import logging
import os

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import tensorflow as tf
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from components import constants
from components.errors import ConfigurationError, DataError
from components.features import (
    MISSING_SUFFIX,
    CategoricalFeature,
    LabelSpec,
    NumericFeature,
    TransformSpec,
    label_values,
    raw_signature,
)
from components.transform.config import TransformConfig

logger = logging.getLogger(__name__)

# An integer label with at most this many distinct values is taken as classes by task=auto.
MAX_AUTO_CLASSES = 20


def resolve_task(task: str, column: pa.ChunkedArray, label: str) -> str:
    """Decides classification or regression for the label.

    ``auto`` picks classification for text and for integers with at most
    :data:`MAX_AUTO_CLASSES` distinct values, regression otherwise.

    Raises:
        ConfigurationError: ``task`` is unknown, or regression is asked for a text label.
    """
    if task not in constants.TASKS:
        raise ConfigurationError(f"task must be one of {', '.join(constants.TASKS)}; got {task!r}.")
    numeric = pa.types.is_integer(column.type) or pa.types.is_floating(column.type)
    if task == constants.REGRESSION and not numeric:
        raise ConfigurationError(
            f"The label {label!r} holds text ({column.type}); regression needs numbers. "
            "Use --task classification."
        )
    if task != constants.AUTO:
        return task
    if not numeric:
        return constants.CLASSIFICATION
    distinct = len(pc.unique(column.drop_null()))
    if pa.types.is_integer(column.type) and distinct <= MAX_AUTO_CLASSES:
        return constants.CLASSIFICATION
    return constants.REGRESSION


def fit_label(column: pa.ChunkedArray, label: str, task: str) -> LabelSpec:
    """Fits the label's encoding on the train split.

    Raises:
        DataError: The label has no values, a single class, or is constant.
        ConfigurationError: Classification of a label with fractional numbers.
    """
    present = column.drop_null()
    if len(present) == 0:
        raise DataError(f"The label {label!r} has no values in the train split.")
    task = resolve_task(task, column, label)
    if task == constants.REGRESSION:
        values = present.cast(pa.float64()).to_numpy()
        std = float(values.std())
        if std == 0.0:
            raise DataError(
                f"The label {label!r} has the same value ({values[0]}) in every train row; "
                "there is nothing to learn."
            )
        return LabelSpec(label, task, is_string=False, mean=float(values.mean()), std=std)
    is_string = not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type))
    if pa.types.is_floating(column.type):
        values = present.to_numpy()
        if not np.all(values == np.round(values)):
            raise ConfigurationError(
                f"The label {label!r} has fractional values; classification needs text or "
                "whole numbers. Use --task regression."
            )
    spec = LabelSpec(label, task, is_string=is_string)
    values = label_values(present, spec)
    classes, counts = np.unique(values, return_counts=True)
    if len(classes) < 2:
        raise DataError(
            f"The label {label!r} has a single class ({classes[0]!r}) in the train split; "
            "a classifier needs at least two. Check the label column or the data."
        )
    return LabelSpec(
        label,
        task,
        classes=[c.item() if hasattr(c, "item") else c for c in classes],
        is_string=is_string,
        majority_class=int(np.argmax(counts)),
    )


def _fit_numeric(name: str, column: pa.ChunkedArray) -> NumericFeature | None:
    values = column.drop_null().cast(pa.float64()).to_numpy()
    if len(values) == 0:
        logger.warning("Skipping feature %r: no values in the train split", name)
        return None
    std = float(values.std())
    # A constant feature carries no signal; std 1 keeps it finite rather than dividing by 0.
    return NumericFeature(name, float(values.mean()), std or 1.0, column.null_count > 0)


def _fit_categorical(
    name: str, column: pa.ChunkedArray, config: TransformConfig
) -> CategoricalFeature:
    counts = pc.value_counts(column.drop_null().cast(pa.string()))
    pairs = sorted(
        zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True),
        key=lambda pair: (-pair[1], pair[0]),
    )
    vocabulary = [value for value, _ in pairs[: config.max_vocab_size] if value != ""]
    if len(pairs) > config.max_vocab_size:
        logger.info(
            "Feature %r: kept the %d most frequent of %d values; the rest share %d OOV buckets",
            name,
            config.max_vocab_size,
            len(pairs),
            config.num_oov_buckets,
        )
    return CategoricalFeature(name, vocabulary, config.num_oov_buckets)


def _is_categorical(feature: schema_pb2.Feature) -> bool:
    if feature.type == schema_pb2.BYTES:
        return True
    return feature.HasField("int_domain") and feature.int_domain.is_categorical


def fit(
    train_path: str,
    schema: schema_pb2.Schema,
    label: str,
    task: str = constants.AUTO,
    config: TransformConfig = TransformConfig(),
) -> TransformSpec:
    """Fits the preprocessing of every schema feature on the train split.

    Args:
        train_path: The train split (Parquet).
        schema: The validated schema; its types decide numeric or categorical.
        label: The label column.
        task: ``auto``, ``classification`` or ``regression``.
        config: Vocabulary and OOV settings.

    Returns:
        The fitted spec.
    """
    # One column in memory at a time (Parquet reads a column alone): each fit sees the same
    # values it would in the whole table, so the spec is the same; memory is one column's.
    split = pq.ParquetFile(train_path)
    names = split.schema_arrow.names

    def read(name: str) -> pa.ChunkedArray:
        return split.read(columns=[name]).column(name)

    if label not in names:
        raise DataError(f"The label {label!r} is not a column of {train_path!r}.")
    label_spec = fit_label(read(label), label, task)
    numeric: list[NumericFeature] = []
    categorical: list[CategoricalFeature] = []
    for feature in schema.feature:
        if feature.name == label:
            continue
        if feature.name not in names:
            raise DataError(f"The schema's feature {feature.name!r} is not a column of the data.")
        column = read(feature.name)
        if _is_categorical(feature):
            categorical.append(_fit_categorical(feature.name, column, config))
        elif (fitted := _fit_numeric(feature.name, column)) is not None:
            numeric.append(fitted)
    if not numeric and not categorical:
        raise DataError(f"The data has no feature besides the label {label!r}.")
    return TransformSpec(label_spec, numeric, categorical)


def read_schema(path: str) -> schema_pb2.Schema:
    """Reads a text-format schema, as the validate step writes it."""
    with open(path) as handle:
        return text_format.Parse(handle.read(), schema_pb2.Schema())


class TransformModule(tf.Module):
    """The fitted preprocessing as a TensorFlow module with one function,
    ``transform_features``, from a dict of raw features to a dict of model inputs."""

    def __init__(self, spec: TransformSpec) -> None:
        super().__init__(name="transform")
        self._numeric = spec.numeric
        self._categorical = spec.categorical
        self.tables = {
            f.name: tf.lookup.StaticVocabularyTable(
                tf.lookup.KeyValueTensorInitializer(
                    tf.constant(f.vocabulary or [""], tf.string),
                    tf.range(max(len(f.vocabulary), 1), dtype=tf.int64),
                ),
                num_oov_buckets=f.num_oov_buckets,
            )
            for f in spec.categorical
        }
        self.transform_features = tf.function(
            self._transform, input_signature=[raw_signature(spec)]
        )

    def _transform(self, features: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        outputs = {}
        for feature in self._numeric:
            value = features[feature.name]
            missing = tf.math.is_nan(value)
            value = tf.where(missing, tf.constant(feature.mean, tf.float32), value)
            outputs[feature.name] = (value - feature.mean) / feature.std
            if feature.has_missing:
                outputs[feature.name + MISSING_SUFFIX] = tf.cast(missing, tf.float32)
        for feature in self._categorical:
            value = features[feature.name]
            ids = self.tables[feature.name].lookup(value) + 1
            outputs[feature.name] = tf.where(value == "", tf.zeros_like(ids), ids)
        return outputs


def save(spec: TransformSpec, output_dir: str) -> None:
    """Writes the transform artifact: the SavedModel and the spec as JSON."""
    os.makedirs(output_dir, exist_ok=True)
    tf.saved_model.save(
        TransformModule(spec), os.path.join(output_dir, constants.TRANSFORM_SAVED_MODEL)
    )
    with open(os.path.join(output_dir, constants.TRANSFORM_SPEC_FILE), "w") as handle:
        handle.write(spec.to_json())


def transform(
    train_path: str,
    schema: schema_pb2.Schema,
    label: str,
    output_dir: str,
    task: str = constants.AUTO,
    config: TransformConfig = TransformConfig(),
) -> TransformSpec:
    """Fits the transform on the train split and writes it to ``output_dir``."""
    logger.info(
        "Fitting the transform on %s (label=%r, task=%s, %s)", train_path, label, task, config
    )
    spec = fit(train_path, schema, label, task, config)
    save(spec, output_dir)
    logger.info(
        "Transform: %d numeric and %d categorical features, task %s%s",
        len(spec.numeric),
        len(spec.categorical),
        spec.label.task,
        f", classes {spec.label.classes}" if spec.label.classes else "",
    )
    return spec
