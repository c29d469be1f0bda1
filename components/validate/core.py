"""Validate [TFX StatisticsGen + SchemaGen + ExampleValidator] with TensorFlow Data Validation.

Statistics are computed in-process on Arrow record batches by default, streamed through TFDV's
in-memory generators without Beam's per-element overhead (see bench/validate.py). The numbers
are the same as Beam's (means and standard deviations to the last bits of floating-point
addition, which depend on how rows are batched); top values of a feature with more than 1,024
distinct values are Misra-Gries estimates there, where Beam counts them exactly (the counts
rank by rank do not depend on the batches; the order of tied values may).
Given Beam pipeline options, the same statistics are computed by a Beam pipeline instead, so a
big table can go to Dataflow, Flink or Spark.
"""

import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field

import pyarrow as pa
import tensorflow_data_validation as tfdv
from tensorflow_data_validation.statistics import stats_impl
from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2, statistics_pb2
from tfx_bsl.arrow import table_util

from components import beam as beam_options
from components import constants, splits, statistics_view
from components.errors import DataError, ValidationFailed

logger = logging.getLogger(__name__)

# An inferred schema keeps each categorical's values from the train split; eval may hold a few
# values train never saw (the transform maps them to OOV buckets), so only a large share of
# unseen values is an anomaly.
INFERRED_MIN_DOMAIN_MASS = 0.9
# Rows per record batch of in-process statistics.
STATISTICS_BATCH_ROWS = 65_536


@dataclass(frozen=True)
class Anomaly:
    """One anomaly TFDV found in a split."""

    split: str
    feature: str
    short_description: str
    description: str

    def __str__(self) -> str:
        return f"{self.split}: {self.feature}: {self.short_description} ({self.description})"


@dataclass(frozen=True)
class ValidationResult:
    """What the validate step found."""

    statistics: dict[str, statistics_pb2.DatasetFeatureStatisticsList]
    schema: schema_pb2.Schema
    anomalies: dict[str, anomalies_pb2.Anomalies]
    found: list[Anomaly] = field(default_factory=list)


def to_tfdv_batch(table: pa.Table) -> pa.RecordBatch:
    """Turns a table of one value per cell into the list-per-cell batch TFDV reads."""
    arrays = [column.combine_chunks() for column in table.columns]
    batch = pa.RecordBatch.from_arrays(arrays, names=table.column_names)
    return table_util.CanonicalizeRecordBatch(batch)


def _statistics_in_process(parquet_path: str) -> statistics_pb2.DatasetFeatureStatisticsList:
    # TFDV's generators are combiners: each batch goes into one accumulator per generator, so
    # memory holds a batch and the sketches, never the split.
    generators = stats_impl.get_generators(tfdv.StatsOptions(), in_memory=True)
    accumulators = [generator.create_accumulator() for generator in generators]
    for batch in splits.batches(parquet_path, None, STATISTICS_BATCH_ROWS):
        rows = to_tfdv_batch(pa.Table.from_batches([batch]))
        accumulators = [
            generator.add_input(accumulator, rows)
            for generator, accumulator in zip(generators, accumulators, strict=True)
        ]
    return stats_impl.extract_statistics_output(accumulators, generators)


def _statistics_with_beam(
    parquet_path: str, beam_pipeline_args: Sequence[str]
) -> statistics_pb2.DatasetFeatureStatisticsList:
    import apache_beam as beam

    with tempfile.TemporaryDirectory() as scratch:
        output = os.path.join(scratch, "stats.pb")
        with beam.Pipeline(options=beam_options.pipeline_options(beam_pipeline_args)) as pipeline:
            _ = (
                pipeline
                | "ReadParquet" >> beam.io.ReadFromParquetBatched(splits.pattern(parquet_path))
                | "ToTfdvBatches" >> beam.Map(to_tfdv_batch)
                | "GenerateStatistics" >> tfdv.GenerateStatistics(tfdv.StatsOptions())
                | "WriteStatistics" >> tfdv.WriteStatisticsToBinaryFile(output)
            )
        return tfdv.load_stats_binary(output)


def compute_statistics(
    parquet_path: str, beam_pipeline_args: Sequence[str] = ()
) -> statistics_pb2.DatasetFeatureStatisticsList:
    """Computes TFDV statistics of a Parquet file.

    Args:
        parquet_path: The split to describe.
        beam_pipeline_args: Beam pipeline options (``--runner=...``); empty for in-process.

    Returns:
        The statistics of the one dataset in the file.
    """
    if beam_pipeline_args:
        return _statistics_with_beam(parquet_path, beam_pipeline_args)
    return _statistics_in_process(parquet_path)


def _feature_names(statistics: statistics_pb2.DatasetFeatureStatisticsList) -> list[str]:
    return [feature.path.step[0] for feature in statistics.datasets[0].features]


def infer_schema(
    train_statistics: statistics_pb2.DatasetFeatureStatisticsList,
) -> schema_pb2.Schema:
    """Infers a schema from the train split, loosened to what a random split can differ by.

    A feature's shape and share of present values are left open (the model handles missing
    values) and categorical domains tolerate a few unseen values.
    """
    schema = tfdv.infer_schema(train_statistics, infer_feature_shape=False)
    for feature in schema.feature:
        feature.presence.ClearField("min_fraction")
        if feature.HasField("domain") or feature.HasField("string_domain"):
            feature.distribution_constraints.min_domain_mass = INFERRED_MIN_DOMAIN_MASS
    return schema


def load_schema(uri: str) -> schema_pb2.Schema:
    """Loads a curated schema in text format (``schema.pbtxt``).

    Raises:
        DataError: The file is missing or is not a text-format TFDV schema.
    """
    try:
        return tfdv.load_schema_text(uri)
    except Exception as err:  # TF's file layer and protobuf's parser raise many kinds.
        raise DataError(
            f"Cannot load the schema {uri!r}: {err}. Give a text-format TFDV schema, "
            "such as the schema.pbtxt a previous run wrote."
        ) from err


def add_environments(schema: schema_pb2.Schema, label: str) -> None:
    """Declares TRAINING and SERVING environments; the label is absent at serving time."""
    for environment in (constants.TRAINING_ENV, constants.SERVING_ENV):
        if environment not in schema.default_environment:
            schema.default_environment.append(environment)
    label_feature = tfdv.get_feature(schema, label)
    if constants.SERVING_ENV not in label_feature.not_in_environment:
        label_feature.not_in_environment.append(constants.SERVING_ENV)


def list_anomalies(split: str, anomalies: anomalies_pb2.Anomalies) -> list[Anomaly]:
    """Flattens an Anomalies proto into one :class:`Anomaly` per feature (or dataset)."""
    found = [
        Anomaly(split, feature, info.short_description, info.description)
        for feature, info in sorted(anomalies.anomaly_info.items())
    ]
    if anomalies.HasField("dataset_anomaly_info"):
        info = anomalies.dataset_anomaly_info
        found.append(Anomaly(split, "<dataset>", info.short_description, info.description))
    return found


def statistics_html(statistics: dict[str, statistics_pb2.DatasetFeatureStatisticsList]) -> str:
    """A self-contained page comparing the train and eval statistics (no script or style from
    the internet: it renders offline and in an air-gapped cluster)."""
    return statistics_view.statistics_html(
        {split: statistics[split] for split in (constants.TRAIN_SPLIT, constants.EVAL_SPLIT)},
        "Statistics: train against eval",
    )


def validate(
    splits: dict[str, str],
    label: str,
    schema_uri: str | None = None,
    beam_pipeline_args: Sequence[str] = (),
) -> ValidationResult:
    """Describes each split, fixes the schema and checks every split against it.

    Args:
        splits: Split name to Parquet path; must hold ``train``.
        label: The label column.
        schema_uri: A curated schema to use instead of inferring one from train.
        beam_pipeline_args: Beam options to compute statistics with Beam; empty for in-process.

    Returns:
        Statistics, schema and anomalies of every split.

    Raises:
        DataError: The label is not a column, or the curated schema cannot be read.
    """
    logger.info(
        "Validating splits %s, label=%r, schema=%s, beam=%s",
        sorted(splits),
        label,
        schema_uri or "inferred from train",
        list(beam_pipeline_args) or "in-process",
    )
    curated = load_schema(schema_uri) if schema_uri else None
    statistics = {
        split: compute_statistics(path, beam_pipeline_args) for split, path in splits.items()
    }
    columns = _feature_names(statistics[constants.TRAIN_SPLIT])
    if label not in columns:
        raise DataError(
            f"The label {label!r} is not a column of the data. Columns: {', '.join(columns)}. "
            "Pass the right one with --label."
        )
    schema = curated or infer_schema(statistics[constants.TRAIN_SPLIT])
    if label not in [feature.name for feature in schema.feature]:
        raise DataError(f"The schema {schema_uri!r} has no feature for the label {label!r}.")
    add_environments(schema, label)
    anomalies = {
        split: tfdv.validate_statistics(stats, schema, environment=constants.TRAINING_ENV)
        for split, stats in statistics.items()
    }
    found = [item for split, result in anomalies.items() for item in list_anomalies(split, result)]
    for item in found:
        logger.warning("Anomaly: %s", item)
    return ValidationResult(statistics, schema, anomalies, found)


def raise_for_anomalies(found: list[Anomaly], anomalies_location: str) -> None:
    """Stops the run when TFDV found anomalies, listing each of them.

    Raises:
        ValidationFailed: ``found`` is not empty.
    """
    if found:
        listing = "; ".join(str(item) for item in found)
        raise ValidationFailed(
            f"The data failed validation with {len(found)} anomalies: {listing}. "
            f"Fix the data, or curate the schema (--schema) if the data is right; "
            f"the anomalies and statistics are in {anomalies_location}."
        )
