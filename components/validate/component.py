"""KFP wrapper of :mod:`components.validate.core`."""

from typing import List, Optional

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Output

from components.images import PIPELINE_IMAGE


@dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)
def validate(
    train_data: Input[Dataset],
    eval_data: Input[Dataset],
    label: str,
    statistics: Output[Artifact],
    schema: Output[Artifact],
    anomalies: Output[Artifact],
    statistics_view: Output[HTML],
    schema_uri: Optional[str] = None,
    beam_pipeline_args: Optional[List[str]] = None,
    fail_on_anomalies: bool = True,
) -> None:
    """TFDV statistics of each split, the schema, and anomalies of each split against it.

    Args:
        train_data: The train split.
        eval_data: The eval split.
        label: The label column (absent from the schema's SERVING environment).
        statistics: A folder with ``<split>_stats.pb`` per split.
        schema: The schema in text format.
        anomalies: A folder with ``<split>_anomalies.pbtxt``; metadata lists them.
        statistics_view: Train against eval per feature, self-contained HTML for the KFP UI.
        schema_uri: A curated schema to validate against instead of inferring one.
        beam_pipeline_args: Beam options to compute statistics on a Beam runner.
        fail_on_anomalies: Stop the run when anomalies are found.
    """
    import os

    from google.protobuf import text_format

    from components import constants
    from components.errors import step
    from components.lineage.recording import step as lineage_step
    from components.metadata import record
    from components.validate import core

    with (
        lineage_step(
            "validate",
            {
                "label": label,
                "schema_uri": schema_uri,
                "beam_pipeline_args": beam_pipeline_args,
                "fail_on_anomalies": fail_on_anomalies,
            },
            {"train_data": train_data, "eval_data": eval_data},
            {"statistics": statistics, "schema": schema, "anomalies": anomalies},
        ),
        step("validate"),
    ):
        result = core.validate(
            {constants.TRAIN_SPLIT: train_data.path, constants.EVAL_SPLIT: eval_data.path},
            label,
            schema_uri,
            beam_pipeline_args or (),
        )
        os.makedirs(statistics.path, exist_ok=True)
        os.makedirs(anomalies.path, exist_ok=True)
        for split, stats in result.statistics.items():
            with open(
                os.path.join(statistics.path, constants.STATS_FILE.format(split=split)), "wb"
            ) as f:
                f.write(stats.SerializeToString())
            with open(
                os.path.join(anomalies.path, constants.ANOMALIES_FILE.format(split=split)), "w"
            ) as f:
                f.write(text_format.MessageToString(result.anomalies[split]))
        with open(schema.path, "w") as f:
            f.write(text_format.MessageToString(result.schema))
        with open(statistics_view.path, "w") as f:
            f.write(core.statistics_html(result.statistics))
        record(
            anomalies,
            {
                constants.ANOMALY_COUNT: len(result.found),
                constants.ANOMALIES: [str(item) for item in result.found],
            },
        )
        record(schema, {constants.SCHEMA_SOURCE: schema_uri or "inferred from the train split"})
        if fail_on_anomalies:
            core.raise_for_anomalies(result.found, anomalies.path)
