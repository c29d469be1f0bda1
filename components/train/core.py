"""Train [TFX Trainer]: a Keras model on top of the fitted transform, exported as a SavedModel
whose ``serving_default`` signature takes the raw features.

Training reads the Parquet splits through ``tf.data`` and runs under ``MirroredStrategy`` over
every visible GPU, or over several logical CPU devices when asked (``cpu_devices``); with one
device it uses the default strategy.
"""

import json
import logging
import math
import os
import tempfile
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


def cluster_task() -> tuple[str, int, dict[str, Any]] | None:
    """This process's task in a multi-worker job, from ``TF_CONFIG`` (what a Kubeflow
    training operator sets in each worker's pod): its type, its index and the cluster; None for
    a process that trains alone.

    Raises:
        ConfigurationError: ``TF_CONFIG`` is not the cluster spec TensorFlow reads.
    """
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return None
    try:
        config = json.loads(raw)
        cluster = dict(config.get("cluster") or {})
        task = config["task"]
        kind, index = str(task["type"]), int(task["index"])
        tasks = sum(len(addresses) for addresses in cluster.values())
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise ConfigurationError(
            f"TF_CONFIG is not a TensorFlow cluster spec ({err}): give "
            '{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": 0}}.'
        ) from err
    return (kind, index, cluster) if tasks > 1 else None


def is_chief(task: tuple[str, int, dict[str, Any]] | None) -> bool:
    """Whether this process writes the model: the chief, or worker 0 of a cluster without one
    (TensorFlow's rule: tensorflow/python/distribute/multi_worker_util.py ``is_chief``)."""
    if task is None:
        return True
    kind, index, cluster = task
    return kind == "chief" or (kind == "worker" and index == 0 and "chief" not in cluster)


def choose_strategy(cpu_devices: int) -> tf.distribute.Strategy:
    """``MultiWorkerMirroredStrategy`` when ``TF_CONFIG`` names several tasks; else
    ``MirroredStrategy`` over all GPUs, or over ``cpu_devices`` logical CPUs; else default.

    Must run before TensorFlow initialises its devices (the first op) to split the CPU.
    """
    if cluster_task() is not None:
        return tf.distribute.MultiWorkerMirroredStrategy()
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
    """``MirroredStrategy``, ``MultiWorkerMirroredStrategy`` (whose class TensorFlow names
    CollectiveAllReduceStrategy), or ``default`` for the one-device default strategy."""
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return "MultiWorkerMirroredStrategy"
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


def fit_across_workers(
    model: keras.Model,
    strategy: tf.distribute.Strategy,
    train_data: tf.data.Dataset,
    eval_data: tf.data.Dataset,
    config: TrainConfig,
) -> dict[str, list[float]]:
    """What ``model.fit`` with early stopping does, as a loop of ``strategy.run`` steps.

    keras 3.6.0's fit cannot run under MultiWorkerMirroredStrategy: it reduces the first batch,
    a nest, with the strategy's reduce, which takes one tensor
    (keras/src/backend/tensorflow/trainer.py:640-655; tensorflow/python/distribute/
    cross_device_ops.py:124), and reduces each scalar log along an axis it does not have
    (trainer.py:780-788); keras 3.7.0 has the same code. Each worker reads its share of every
    global batch (tf.distribute's DATA auto-sharding); gradients are summed across all replicas
    before each update, as fit does.

    Returns:
        The history: ``loss`` and ``val_loss`` per epoch, and ``accuracy``/``val_accuracy`` for a
        classifier.
    """
    classifier = isinstance(model.loss, str) and "categorical" in model.loss
    per_example = keras.losses.get(model.loss)
    batches = strategy.experimental_distribute_dataset(train_data)
    evaluation = strategy.experimental_distribute_dataset(eval_data)

    def sums(features: Any, label: tf.Tensor, training: bool) -> tuple[tf.Tensor, ...]:
        predicted = model(features, training=training)
        losses = per_example(label, predicted)
        right = (
            tf.cast(tf.equal(tf.argmax(predicted, axis=1), label), tf.float32)
            if classifier
            else tf.zeros_like(losses)
        )
        count = tf.cast(tf.size(losses), tf.float32)
        return tf.reduce_sum(losses), tf.reduce_sum(right), count

    @tf.function
    def train_step(features: Any, label: tf.Tensor) -> tuple[tf.Tensor, ...]:
        with tf.GradientTape() as tape:
            loss_sum, right, count = sums(features, label, True)
            # The global batch's mean: each replica's sum over the whole batch's size.
            loss = loss_sum / config.batch_size
        gradients = tape.gradient(loss, model.trainable_variables)
        model.optimizer.apply_gradients(
            list(zip(gradients, model.trainable_variables, strict=True))
        )
        return loss_sum, right, count

    @tf.function
    def eval_step(features: Any, label: tf.Tensor) -> tuple[tf.Tensor, ...]:
        return sums(features, label, False)

    def epoch(data: Any, step: Any) -> tuple[float, float]:
        totals = [0.0, 0.0, 0.0]
        for features, label in data:
            found = strategy.run(step, args=(features, label))
            for i, value in enumerate(found):
                totals[i] += float(strategy.reduce("SUM", value, axis=None))
        return totals[0] / totals[2], totals[1] / totals[2]

    history: dict[str, list[float]] = {"loss": [], "val_loss": []}
    if classifier:
        history.update(accuracy=[], val_accuracy=[])
    best, best_weights, waited = math.inf, None, 0
    for number in range(config.epochs):
        loss, accuracy = epoch(batches, train_step)
        val_loss, val_accuracy = epoch(evaluation, eval_step)
        history["loss"].append(loss)
        history["val_loss"].append(val_loss)
        if classifier:
            history["accuracy"].append(accuracy)
            history["val_accuracy"].append(val_accuracy)
        logger.info("Epoch %d: loss %.4f, val_loss %.4f", number + 1, loss, val_loss)
        if val_loss < best:
            best, best_weights, waited = val_loss, model.get_weights(), 0
        else:
            waited += 1
            if waited >= config.early_stopping_patience:
                break
    if best_weights is not None:  # Early stopping's restore_best_weights.
        model.set_weights(best_weights)
    return history


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
    task = cluster_task()
    if task is not None:
        history = fit_across_workers(model, strategy, train_data, eval_data, config)
    else:
        stopper = keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=config.early_stopping_patience, restore_best_weights=True
        )
        history = model.fit(
            train_data,
            validation_data=eval_data,
            epochs=config.epochs,
            callbacks=[stopper],
            verbose=2,
        ).history
    if is_chief(task):
        export(spec, transform, model, model_dir)
        logger.info("Exported the serving model to %s", model_dir)
    else:
        # Saving reads every variable, which takes all workers: the others save aside.
        with tempfile.TemporaryDirectory() as aside:
            export(spec, transform, model, aside)
    return TrainResult(
        epochs_run=len(history["loss"]),
        replicas=strategy.num_replicas_in_sync,
        strategy=strategy_name(strategy),
        history={key: [float(v) for v in values] for key, values in history.items()},
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
