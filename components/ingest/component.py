"""KFP wrapper of :mod:`components.ingest.core`."""

from kfp import dsl
from kfp.dsl import Dataset, Output

from components.images import PIPELINE_IMAGE


@dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)
def ingest(
    data_uri: str,
    train_data: Output[Dataset],
    eval_data: Output[Dataset],
    eval_fraction: float = 0.2,
) -> None:
    """Reads CSV or Parquet and writes deterministic train and eval splits as Parquet.

    Args:
        data_uri: A CSV or Parquet file or folder: a local path, gs:// or s3://.
        train_data: The train split.
        eval_data: The eval split.
        eval_fraction: The share of rows for eval.
    """

    from components import constants
    from components.errors import step
    from components.ingest import core
    from components.lineage.recording import step as lineage_step
    from components.metadata import record

    with (
        lineage_step(
            "ingest",
            {"data_uri": data_uri, "eval_fraction": eval_fraction},
            {},
            {"train_data": train_data, "eval_data": eval_data},
        ),
        step("ingest"),
    ):
        result = core.ingest(data_uri, train_data.path, eval_data.path, eval_fraction)
        for artifact, split, rows in (
            (train_data, constants.TRAIN_SPLIT, result.train_rows),
            (eval_data, constants.EVAL_SPLIT, result.eval_rows),
        ):
            record(
                artifact,
                {
                    constants.SPLIT: split,
                    constants.NUM_ROWS: rows,
                    constants.FINGERPRINT: result.fingerprint,
                    constants.COLUMNS: result.columns,
                },
            )
