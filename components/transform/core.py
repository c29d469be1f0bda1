"""Transform [TFX Transform]: fit the preprocessing on the train split and save it as a
TensorFlow SavedModel that maps raw features to model inputs.

Numbers are standardised with the train split's mean and standard deviation, missing numbers
are imputed with the mean and flagged; categories are looked up in the train split's
vocabulary, with OOV buckets for unseen values and id 0 for a missing value. The same saved
function runs inside ``tf.data`` for training and inside the exported serving model, so there is
one copy of the preprocessing.
"""

import collections
import functools
import logging
import os
from collections.abc import Iterable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import tensorflow as tf
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from components import beam, constants, splits
from components.errors import ConfigurationError, DataError
from components.features import (
    MISSING_SUFFIX,
    CategoricalFeature,
    LabelSpec,
    NumericFeature,
    TransformSpec,
    raw_signature,
)
from components.moments import Moments
from components.transform.config import TransformConfig

logger = logging.getLogger(__name__)

# An integer label with at most this many distinct values is taken as classes by task=auto.
MAX_AUTO_CLASSES = 20


# Distinct label values counted; a label with more is no classification target.
MAX_LABEL_VALUES = 100_000
# Rows per record batch read.
BATCH_ROWS = 65_536
NUMERIC, CATEGORICAL, LABEL = "numeric", "categorical", "label"


class ColumnSummary:
    """What fitting needs of one column of the train split, gathered a record batch at a time.
    Summaries of parts of the column merge, in any order, into the summary of the whole.

    Attributes:
        kind: ``numeric``, ``categorical`` or ``label``.
        type: The column's Arrow type.
        rows: Rows seen.
        nulls: Rows without a value.
        moments: Count, exact sum and sum of squares of the numbers (numeric columns, and a
            numeric label).
        counts: How often each value occurs (categorical columns, as text; the label, as it
            is), or None for a label with more than :data:`MAX_LABEL_VALUES` distinct values.
        fractional: Whether a number of the label is not whole.
    """

    def __init__(self, kind: str, kind_of_values: pa.DataType) -> None:
        self.kind, self.type = kind, kind_of_values
        self.rows = self.nulls = 0
        numeric = pa.types.is_integer(self.type) or pa.types.is_floating(self.type)
        self.moments = Moments() if kind == NUMERIC or (kind == LABEL and numeric) else None
        self.counts: collections.Counter | None = collections.Counter() if kind != NUMERIC else None
        self.fractional = False

    def add(self, column: pa.Array) -> "ColumnSummary":
        """Adds a batch's values of the column."""
        self.rows += len(column)
        self.nulls += column.null_count
        present = column.drop_null()
        if self.moments is not None:
            values = present.cast(pa.float64()).to_numpy(zero_copy_only=False)
            self.moments.add(values)
            if self.kind == LABEL:
                self.fractional |= bool(np.any(values != np.round(values)))
        if self.counts is not None:
            if self.kind == CATEGORICAL:
                present = present.cast(pa.string())
            counts = pc.value_counts(present)
            values, times = counts.field("values").to_pylist(), counts.field("counts").to_pylist()
            self.counts.update(dict(zip(values, times, strict=True)))
            self._cap()
        return self

    def merge(self, other: "ColumnSummary") -> "ColumnSummary":
        """Adds the summary of another part of the column."""
        self.rows += other.rows
        self.nulls += other.nulls
        if self.moments is not None:
            self.moments.merge(other.moments)
        self.fractional |= other.fractional
        if self.counts is not None:
            if other.counts is None:
                self.counts = None
            else:
                self.counts.update(other.counts)
                self._cap()
        return self

    def _cap(self) -> None:
        if self.kind == LABEL and len(self.counts) > MAX_LABEL_VALUES:
            self.counts = None


class SplitSummary:
    """Summaries of the columns to fit, as a combiner (Beam's ``CombineFn`` methods): the same
    code folds record batches in this process or on a Beam runner's workers."""

    def __init__(self, columns: dict[str, tuple[str, pa.DataType]]) -> None:
        self.columns = columns

    def create_accumulator(self) -> dict[str, ColumnSummary]:
        return {name: ColumnSummary(*kind) for name, kind in self.columns.items()}

    def add_input(
        self, summaries: dict[str, ColumnSummary], batch: pa.RecordBatch
    ) -> dict[str, ColumnSummary]:
        for name, summary in summaries.items():
            summary.add(batch.column(batch.schema.get_field_index(name)))
        return summaries

    def merge_accumulators(
        self, parts: Iterable[dict[str, ColumnSummary]]
    ) -> dict[str, ColumnSummary]:
        parts = iter(parts)
        merged = next(parts)
        for part in parts:
            for name, summary in merged.items():
                summary.merge(part[name])
        return merged

    def extract_output(self, summaries: dict[str, ColumnSummary]) -> dict[str, ColumnSummary]:
        return summaries


def resolve_task(task: str, summary: ColumnSummary, label: str) -> str:
    """Decides classification or regression for the label.

    ``auto`` picks classification for text and for integers with at most
    :data:`MAX_AUTO_CLASSES` distinct values, regression otherwise.

    Raises:
        ConfigurationError: ``task`` is unknown, or regression is asked for a text label.
    """
    if task not in constants.TASKS:
        raise ConfigurationError(f"task must be one of {', '.join(constants.TASKS)}; got {task!r}.")
    if task == constants.REGRESSION and summary.moments is None:
        raise ConfigurationError(
            f"The label {label!r} holds text ({summary.type}); regression needs numbers. "
            "Use --task classification."
        )
    if task != constants.AUTO:
        return task
    if summary.moments is None:
        return constants.CLASSIFICATION
    distinct = MAX_LABEL_VALUES + 1 if summary.counts is None else len(summary.counts)
    if pa.types.is_integer(summary.type) and distinct <= MAX_AUTO_CLASSES:
        return constants.CLASSIFICATION
    return constants.REGRESSION


def fit_label(summary: ColumnSummary, label: str, task: str) -> LabelSpec:
    """Fits the label's encoding on the train split.

    Raises:
        DataError: The label has no values, a single class, or is constant.
        ConfigurationError: Classification of a label with fractional numbers, or with more
            than :data:`MAX_LABEL_VALUES` classes.
    """
    if summary.rows == summary.nulls:
        raise DataError(f"The label {label!r} has no values in the train split.")
    task = resolve_task(task, summary, label)
    if task == constants.REGRESSION:
        std = summary.moments.std()
        if std == 0.0:
            raise DataError(
                f"The label {label!r} has the same value ({summary.moments.mean()}) in every "
                "train row; there is nothing to learn."
            )
        return LabelSpec(label, task, is_string=False, mean=summary.moments.mean(), std=std)
    is_string = summary.moments is None
    if summary.fractional:
        raise ConfigurationError(
            f"The label {label!r} has fractional values; classification needs text or "
            "whole numbers. Use --task regression."
        )
    if summary.counts is None:
        raise ConfigurationError(
            f"The label {label!r} has more than {MAX_LABEL_VALUES:,} distinct values; that is "
            "no classification target. Use --task regression."
        )
    counts: collections.Counter = collections.Counter()
    for value, count in summary.counts.items():
        counts[value if is_string else int(value)] += count
    classes = sorted(counts)
    if len(classes) < 2:
        raise DataError(
            f"The label {label!r} has a single class ({classes[0]!r}) in the train split; "
            "a classifier needs at least two. Check the label column or the data."
        )
    return LabelSpec(
        label,
        task,
        classes=classes,
        is_string=is_string,
        majority_class=max(range(len(classes)), key=lambda index: (counts[classes[index]], -index)),
    )


def _fit_numeric(name: str, summary: ColumnSummary) -> NumericFeature | None:
    moments = summary.moments
    if moments.non_finite:
        raise DataError(
            f"The feature {name!r} has {moments.non_finite} NaN or infinite values in the train "
            "split; write a missing value as null (empty in a CSV), or fix the data."
        )
    if moments.count == 0:
        logger.warning("Skipping feature %r: no values in the train split", name)
        return None
    # A constant feature carries no signal; std 1 keeps it finite rather than dividing by 0.
    return NumericFeature(name, moments.mean(), moments.std() or 1.0, summary.nulls > 0)


def _fit_categorical(
    name: str, summary: ColumnSummary, config: TransformConfig
) -> CategoricalFeature:
    pairs = sorted(summary.counts.items(), key=lambda pair: (-pair[1], pair[0]))
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


def summarize(
    train_path: str,
    columns: dict[str, tuple[str, pa.DataType]],
    beam_pipeline_args: Sequence[str] = (),
) -> dict[str, ColumnSummary]:
    """Summarizes ``columns`` of the train split in record batches: in this process, or on a
    Beam runner given pipeline options. The summaries are the same either way."""
    combiner = SplitSummary(columns)
    if beam_pipeline_args:
        units = splits.units(train_path, BATCH_ROWS, 1)
        summarize_unit = functools.partial(_summarize_unit, combiner)
        return beam.run(units, summarize_unit, beam_pipeline_args, combiner)
    summaries = combiner.create_accumulator()
    for batch in splits.batches(train_path, list(columns), BATCH_ROWS):
        combiner.add_input(summaries, batch)
    return summaries


def _summarize_unit(combiner: SplitSummary, unit: splits.Unit) -> dict[str, ColumnSummary]:
    summaries = combiner.create_accumulator()
    for rows in splits.unit_batches(unit, list(combiner.columns)):
        for batch in rows.to_batches():
            combiner.add_input(summaries, batch)
    return summaries


def fit(
    train_path: str,
    schema: schema_pb2.Schema,
    label: str,
    task: str = constants.AUTO,
    config: TransformConfig = TransformConfig(),
    beam_pipeline_args: Sequence[str] = (),
) -> TransformSpec:
    """Fits the preprocessing of every schema feature on the train split, a record batch at a
    time: memory holds a batch, the vocabularies' counts and a few numbers per column.
    Means and standard deviations are exact (correctly rounded), so batching, row order and
    Beam's sharding never change a bit of the spec.

    Args:
        train_path: The train split (Parquet).
        schema: The validated schema; its types decide numeric or categorical.
        label: The label column.
        task: ``auto``, ``classification`` or ``regression``.
        config: Vocabulary and OOV settings.
        beam_pipeline_args: Beam options to fit on a Beam runner; empty for in-process.

    Returns:
        The fitted spec.
    """
    types = splits.schema(train_path)
    if label not in types.names:
        raise DataError(f"The label {label!r} is not a column of {train_path!r}.")
    columns = {label: (LABEL, types.field(label).type)}
    for feature in schema.feature:
        if feature.name == label:
            continue
        if feature.name not in types.names:
            raise DataError(f"The schema's feature {feature.name!r} is not a column of the data.")
        kind = CATEGORICAL if _is_categorical(feature) else NUMERIC
        columns[feature.name] = (kind, types.field(feature.name).type)
    summaries = summarize(train_path, columns, beam_pipeline_args)
    label_spec = fit_label(summaries.pop(label), label, task)
    numeric: list[NumericFeature] = []
    categorical: list[CategoricalFeature] = []
    for name, summary in summaries.items():
        if summary.kind == CATEGORICAL:
            categorical.append(_fit_categorical(name, summary, config))
        elif (fitted := _fit_numeric(name, summary)) is not None:
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
    beam_pipeline_args: Sequence[str] = (),
) -> TransformSpec:
    """Fits the transform on the train split (on a Beam runner, given its options) and writes
    it to ``output_dir``."""
    logger.info(
        "Fitting the transform on %s (label=%r, task=%s, %s)", train_path, label, task, config
    )
    spec = fit(train_path, schema, label, task, config, beam_pipeline_args)
    save(spec, output_dir)
    logger.info(
        "Transform: %d numeric and %d categorical features, task %s%s",
        len(spec.numeric),
        len(spec.categorical),
        spec.label.task,
        f", classes {spec.label.classes}" if spec.label.classes else "",
    )
    return spec
