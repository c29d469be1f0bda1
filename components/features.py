"""The fitted description of a dataset's features and label, shared by transform, train and
evaluate: the model interface (what a transform takes and emits, how its artifact is read) and
the reader that turns a Parquet split into raw feature arrays.

Raw features are what the exported model's ``serving_default`` signature takes: numbers as
float32 (NaN when missing) and categories as strings (empty when missing), named as the
data's columns.

TensorFlow is imported only by the functions that build TensorFlow objects (it takes ~4 s), so
reading a spec or a split stays cheap.
"""

import json
import math
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from components import constants, splits

if TYPE_CHECKING:
    import tensorflow as tf

Arrays = dict[str, np.ndarray]
# The transform's extra input flagging a numeric feature's missing values (when train had any).
MISSING_SUFFIX = "__missing"


@dataclass(frozen=True)
class NumericFeature:
    """A number, standardised with the train split's mean and standard deviation."""

    name: str
    mean: float
    std: float
    has_missing: bool


@dataclass(frozen=True)
class CategoricalFeature:
    """A category, looked up in the train split's vocabulary; unseen values hash to OOV ids."""

    name: str
    vocabulary: list[str]
    num_oov_buckets: int

    @property
    def cardinality(self) -> int:
        """Ids the transform emits: 0 for missing, then the vocabulary, then the OOV buckets."""
        return 1 + len(self.vocabulary) + self.num_oov_buckets


@dataclass(frozen=True)
class LabelSpec:
    """The label: its task and, for classification, its classes in a fixed order."""

    name: str
    task: str
    classes: list = field(default_factory=list)
    is_string: bool = True
    mean: float = 0.0
    std: float = 1.0
    majority_class: int = 0

    def encode(self, values: np.ndarray) -> np.ndarray:
        """Label values to training targets: class indices, or standardised numbers.

        Classification values outside ``classes`` become -1.
        """
        if self.task == constants.CLASSIFICATION:
            index = {value: i for i, value in enumerate(self.classes)}
            return np.array([index.get(value, -1) for value in values.tolist()], dtype=np.int64)
        return ((values.astype(np.float64) - self.mean) / self.std).astype(np.float32)


@dataclass(frozen=True)
class TransformSpec:
    """Everything the transform learned from the train split."""

    label: LabelSpec
    numeric: list[NumericFeature]
    categorical: list[CategoricalFeature]

    @property
    def feature_names(self) -> list[str]:
        """The raw input features, in a fixed order."""
        return [f.name for f in self.numeric] + [f.name for f in self.categorical]

    def to_json(self) -> str:
        """Serialises the spec."""
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> "TransformSpec":
        """Reads a spec written by :meth:`to_json`."""
        data = json.loads(text)
        return cls(
            label=LabelSpec(**data["label"]),
            numeric=[NumericFeature(**item) for item in data["numeric"]],
            categorical=[CategoricalFeature(**item) for item in data["categorical"]],
        )


def raw_signature(spec: TransformSpec) -> "dict[str, tf.TensorSpec]":
    """The raw features a transform (and the serving model) takes, by column name."""
    import tensorflow as tf

    signature = {f.name: tf.TensorSpec([None], tf.float32, name=f.name) for f in spec.numeric}
    signature.update(
        {f.name: tf.TensorSpec([None], tf.string, name=f.name) for f in spec.categorical}
    )
    return signature


def model_inputs(spec: TransformSpec) -> "dict[str, tuple[tf.DType, int]]":
    """What the transform emits: input name to (dtype, cardinality; 0 for a number)."""
    import tensorflow as tf

    inputs: dict[str, tuple[tf.DType, int]] = {}
    for feature in spec.numeric:
        inputs[feature.name] = (tf.float32, 0)
        if feature.has_missing:
            inputs[feature.name + MISSING_SUFFIX] = (tf.float32, 0)
    for feature in spec.categorical:
        inputs[feature.name] = (tf.int64, feature.cardinality)
    return inputs


def load_spec(transform_dir: str) -> TransformSpec:
    """Reads the spec of a transform artifact."""
    with open(os.path.join(transform_dir, constants.TRANSFORM_SPEC_FILE)) as handle:
        return TransformSpec.from_json(handle.read())


def load_transform(transform_dir: str) -> tuple[TransformSpec, Any]:
    """Loads a transform artifact: its spec and the module with ``transform_features``."""
    import tensorflow as tf

    return load_spec(transform_dir), tf.saved_model.load(
        os.path.join(transform_dir, constants.TRANSFORM_SAVED_MODEL)
    )


def _array(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column


def numeric_array(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A numeric column as float32, with NaN where a value is missing."""
    filled = pc.fill_null(_array(column).cast(pa.float64()), math.nan)
    return np.asarray(filled.to_numpy(), dtype=np.float32)


def string_array(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A column as strings (object array), with "" where a value is missing."""
    filled = pc.fill_null(_array(column).cast(pa.string()), "")
    return np.asarray(filled.to_numpy(zero_copy_only=False), dtype=object)


def label_values(column: pa.ChunkedArray | pa.Array, spec: LabelSpec) -> np.ndarray:
    """The label column as Python-comparable values (str, int or float)."""
    if spec.task == constants.CLASSIFICATION and spec.is_string:
        return string_array(column)
    if spec.task == constants.CLASSIFICATION:
        return np.asarray(_array(column).cast(pa.int64()).to_numpy(zero_copy_only=False))
    return np.asarray(_array(column).cast(pa.float64()).to_numpy(zero_copy_only=False))


def raw_features(table: pa.Table, spec: TransformSpec) -> Arrays:
    """The raw feature arrays of a table, as the serving signature takes them."""
    features: Arrays = {f.name: numeric_array(table.column(f.name)) for f in spec.numeric}
    features.update({f.name: string_array(table.column(f.name)) for f in spec.categorical})
    return features


def _with_label(table: pa.Table, label: str) -> pa.Table:
    return table.filter(pc.is_valid(table.column(label)))


def read_split(path: str, spec: TransformSpec) -> tuple[Arrays, np.ndarray]:
    """Reads a whole split: raw features and label values of the rows that have a label."""
    return split_values(pq.read_table(path, columns=[*spec.feature_names, spec.label.name]), spec)


def iter_split_values(
    path: str, spec: TransformSpec, batch_rows: int = 8192
) -> Iterator[tuple[Arrays, np.ndarray]]:
    """Streams a split in record batches: raw features and label values (as
    :func:`read_split` gives them), labelled rows only; never the whole split at once."""
    columns = [*spec.feature_names, spec.label.name]
    for batch in splits.batches(path, columns, batch_rows):
        features, values = split_values(pa.Table.from_batches([batch]), spec)
        if len(values):
            yield features, values


def split_values(table: pa.Table, spec: TransformSpec) -> tuple[Arrays, np.ndarray]:
    """Raw features and label values of a table's labelled rows (as :func:`read_split`)."""
    table = _with_label(table, spec.label.name)
    return raw_features(table, spec), label_values(table.column(spec.label.name), spec.label)


def iter_split(
    path: str, spec: TransformSpec, batch_rows: int = 8192
) -> Iterator[tuple[Arrays, np.ndarray]]:
    """Streams a split in record batches: raw features and encoded labels, labelled rows only."""
    for features, labels in iter_split_values(path, spec, batch_rows):
        yield features, spec.label.encode(labels)
