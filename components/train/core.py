"""Train [TFX Trainer]: a Keras model on top of the fitted transform, exported as a SavedModel
whose ``serving_default`` signature takes the raw features.

Training reads the Parquet splits through ``tf.data`` and runs under ``MirroredStrategy`` over
every visible GPU, or over several logical CPU devices when asked (``cpu_devices``); with one
device it uses the default strategy.
"""

import logging
import math
from dataclasses import asdict, dataclass
from typing import Any

import keras
import pyarrow.parquet as pq
import tensorflow as tf

from components import constants
from components.errors import ConfigurationError
from components.features import (
    TransformSpec,
    iter_split,
    load_transform,
    model_inputs,
    raw_signature,
)
from components.train.config import TrainConfig

logger = logging.getLogger(__name__)

_SHUFFLE_BUFFER = 10_000


@dataclass(frozen=True)
class TrainResult:
    """What training did."""

    epochs_run: int
    replicas: int
    strategy: str
    history: dict[str, list[float]]


def choose_strategy(cpu_devices: int) -> tf.distribute.Strategy:
    """``MirroredStrategy`` over all GPUs, or over ``cpu_devices`` logical CPUs; else default.

    Must run before TensorFlow initialises its devices (the first op) to split the CPU.
    """
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        return tf.distribute.MirroredStrategy()
    if cpu_devices > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        try:
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration()] * cpu_devices
            )
        except RuntimeError as err:
            if len(tf.config.list_logical_devices("CPU")) < cpu_devices:
                raise ConfigurationError(
                    f"Cannot split the CPU into {cpu_devices} devices: TensorFlow has already "
                    "initialised its devices in this process. Train in a fresh process."
                ) from err
        devices = [device.name for device in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=devices[:cpu_devices])
    return tf.distribute.get_strategy()


def strategy_name(strategy: tf.distribute.Strategy) -> str:
    """``MirroredStrategy``, or ``default`` for the one-device default strategy."""
    name = type(strategy).__name__
    return "default" if name.startswith("_Default") else name


def make_dataset(
    path: str,
    spec: TransformSpec,
    transform: Any,
    batch_size: int,
    shuffle_seed: int | None = None,
) -> tf.data.Dataset:
    """Streams a Parquet split through the transform: (model inputs, encoded label) batches."""
    signature = raw_signature(spec)
    label_dtype = tf.int64 if spec.label.task == constants.CLASSIFICATION else tf.float32
    dataset = tf.data.Dataset.from_generator(
        lambda: iter_split(path, spec),
        output_signature=(signature, tf.TensorSpec([None], label_dtype)),
    ).unbatch()
    if shuffle_seed is not None:
        dataset = dataset.shuffle(_SHUFFLE_BUFFER, seed=shuffle_seed, reshuffle_each_iteration=True)
    # Known batch counts let Keras size its epochs instead of running a generator dry.
    labels = pq.read_table(path, columns=[spec.label.name]).column(spec.label.name)
    batches = math.ceil((len(labels) - labels.null_count) / batch_size)
    dataset = dataset.batch(batch_size).apply(tf.data.experimental.assert_cardinality(batches))
    return dataset.map(
        lambda features, label: (transform.transform_features(features), label),
        num_parallel_calls=tf.data.AUTOTUNE,
    ).prefetch(tf.data.AUTOTUNE)


def build_model(spec: TransformSpec, config: TrainConfig) -> keras.Model:
    """A feed-forward network over the transform's outputs."""
    inputs: dict[str, keras.KerasTensor] = {}
    parts = []
    for name, (dtype, cardinality) in model_inputs(spec).items():
        if cardinality:
            inputs[name] = keras.Input(shape=(), dtype="int64", name=name)
            parts.append(
                keras.layers.Embedding(cardinality, config.embedding_dim, name=f"{name}_embedding")(
                    inputs[name]
                )
            )
        else:
            inputs[name] = keras.Input(shape=(), dtype=dtype.name, name=name)
            parts.append(keras.layers.Reshape((1,))(inputs[name]))
    x = keras.layers.Concatenate()(parts) if len(parts) > 1 else parts[0]
    for units in config.hidden_units:
        x = keras.layers.Dense(units, activation="relu")(x)
        if config.dropout:
            x = keras.layers.Dropout(config.dropout, seed=config.seed)(x)
    if spec.label.task == constants.CLASSIFICATION:
        outputs = keras.layers.Dense(len(spec.label.classes), activation="softmax")(x)
        loss, metrics = "sparse_categorical_crossentropy", ["accuracy"]
    else:
        outputs = keras.layers.Dense(1)(x)
        loss, metrics = "mean_squared_error", []
    model = keras.Model(inputs=inputs, outputs=outputs)
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss=loss, metrics=metrics)
    return model


class ServingModule(tf.Module):
    """The exported model: the transform and the trained network behind one signature that
    takes raw features and returns predictions in the label's own terms."""

    def __init__(self, spec: TransformSpec, transform: Any, model: keras.Model) -> None:
        super().__init__(name="serving")
        self.transform = transform
        self.model = model
        self._label = spec.label
        if spec.label.task == constants.CLASSIFICATION:
            dtype = tf.string if spec.label.is_string else tf.int64
            self.class_values = tf.Variable(
                tf.constant(spec.label.classes, dtype), trainable=False, name="classes"
            )
        self.serve = tf.function(self._serve, input_signature=[raw_signature(spec)])

    def _serve(self, features: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        outputs = self.model(self.transform.transform_features(features), training=False)
        if self._label.task == constants.CLASSIFICATION:
            rows = tf.shape(outputs)[0]
            return {
                constants.OUTPUT_PROBABILITIES: outputs,
                constants.OUTPUT_LABEL: tf.gather(self.class_values, tf.argmax(outputs, axis=1)),
                constants.OUTPUT_CLASSES: tf.tile(self.class_values[tf.newaxis, :], [rows, 1]),
            }
        prediction = outputs[:, 0] * self._label.std + self._label.mean
        return {constants.OUTPUT_PREDICTION: prediction}


def export(spec: TransformSpec, transform: Any, model: keras.Model, output_dir: str) -> None:
    """Saves the serving model with its ``serving_default`` signature."""
    module = ServingModule(spec, transform, model)
    tf.saved_model.save(module, output_dir, signatures={constants.SERVING_SIGNATURE: module.serve})


def train(
    train_path: str,
    eval_path: str,
    transform_dir: str,
    model_dir: str,
    config: TrainConfig = TrainConfig(),
) -> TrainResult:
    """Trains on the train split with early stopping on eval, and exports the serving model.

    Args:
        train_path: The train split (Parquet).
        eval_path: The eval split (Parquet), for early stopping.
        transform_dir: The transform artifact.
        model_dir: Where to write the SavedModel.
        config: Hyperparameters.

    Returns:
        Epochs run, replicas, the strategy used and the loss history.
    """
    logger.info("Training on %s (eval %s) with %s", train_path, eval_path, asdict(config))
    strategy = choose_strategy(config.cpu_devices)
    keras.utils.set_random_seed(config.seed)
    tf.config.experimental.enable_op_determinism()
    spec, transform = load_transform(transform_dir)
    train_data = make_dataset(train_path, spec, transform, config.batch_size, config.seed)
    eval_data = make_dataset(eval_path, spec, transform, config.batch_size)
    with strategy.scope():
        model = build_model(spec, config)
    logger.info(
        "Strategy %s with %d replica(s)", strategy_name(strategy), strategy.num_replicas_in_sync
    )
    stopper = keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=config.early_stopping_patience, restore_best_weights=True
    )
    history = model.fit(
        train_data, validation_data=eval_data, epochs=config.epochs, callbacks=[stopper], verbose=2
    )
    export(spec, transform, model, model_dir)
    logger.info("Exported the serving model to %s", model_dir)
    return TrainResult(
        epochs_run=len(history.history["loss"]),
        replicas=strategy.num_replicas_in_sync,
        strategy=strategy_name(strategy),
        history={key: [float(v) for v in values] for key, values in history.history.items()},
    )


def markdown_report(result: TrainResult, config: TrainConfig) -> str:
    """A Markdown page for the KFP UI: devices, epochs and the losses of each epoch."""
    keys = sorted(result.history)
    lines = [
        "# Training",
        "",
        f"{result.epochs_run} of {config.epochs} epochs (early stopping patience "
        f"{config.early_stopping_patience}) under {result.strategy} with "
        f"{result.replicas} replica(s).",
        "",
        "| epoch | " + " | ".join(keys) + " |",
        "|---" * (len(keys) + 1) + "|",
    ]
    for epoch in range(result.epochs_run):
        values = " | ".join(f"{result.history[key][epoch]:.4f}" for key in keys)
        lines.append(f"| {epoch + 1} | {values} |")
    return "\n".join(lines) + "\n"
