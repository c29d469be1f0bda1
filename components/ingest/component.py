"""KFP wrapper of :mod:`components.ingest.core`."""

from typing import List, Optional

from kfp import dsl
from kfp.dsl import Dataset, Output

from components.images import PIPELINE_IMAGE


@dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)
def ingest(
    data_uri: str,
    train_data: Output[Dataset],
    eval_data: Output[Dataset],
    labelled_eval: Output[Dataset],
    eval_fraction: float = 0.2,
    labelled_log: str = "",
    labelled_hours: float = 168.0,
    label: str = "species",
    model_name: str = "penguins",
    beam_pipeline_args: Optional[List[str]] = None,
) -> None:
    """Reads CSV or Parquet (and the prediction log's recent labelled rows) and writes
    deterministic train and eval splits as Parquet.

    Args:
        data_uri: A CSV or Parquet file or folder: a local path, gs:// or s3://.
        train_data: The train split.
        eval_data: The eval split.
        labelled_eval: The prediction log's rows in the eval split (none without a log).
        eval_fraction: The share of rows for eval.
        labelled_log: A prediction log whose recent labelled rows join the data; "" for none.
        labelled_hours: How recent those rows are (hours back from now).
        label: The label column (where the log's labels go).
        model_name: The model whose predictions in the log are read.
        beam_pipeline_args: Beam options to split the data on a Beam runner (Parquet data).
    """

    from components import constants
    from components.errors import step
    from components.ingest import core
    from components.lineage.recording import step as lineage_step
    from components.metadata import record

    with (
        lineage_step(
            "ingest",
            {
                "data_uri": data_uri,
                "eval_fraction": eval_fraction,
                "labelled_log": labelled_log,
                "labelled_hours": labelled_hours,
                "beam_pipeline_args": beam_pipeline_args,
            },
            {},
            {"train_data": train_data, "eval_data": eval_data, "labelled_eval": labelled_eval},
        ),
        step("ingest"),
    ):
        result = core.ingest(
            data_uri,
            train_data.path,
            eval_data.path,
            eval_fraction,
            (labelled_log, model_name, label, labelled_hours) if labelled_log else None,
            labelled_eval.path,
            beam_pipeline_args or (),
        )
        log_eval = result.labelled_eval_rows
        for artifact, split, rows, from_log in (
            (train_data, constants.TRAIN_SPLIT, result.train_rows, result.labelled_rows - log_eval),
            (eval_data, constants.EVAL_SPLIT, result.eval_rows, log_eval),
            (labelled_eval, constants.LABELLED_EVAL_SPLIT, log_eval, log_eval),
        ):
            record(
                artifact,
                {
                    constants.SPLIT: split,
                    constants.NUM_ROWS: rows,
                    constants.LABELLED_ROWS: from_log,
                    constants.FINGERPRINT: result.fingerprint,
                    constants.COLUMNS: result.columns,
                },
            )
        record(labelled_eval, {constants.LABELLED_LOG: labelled_log})
