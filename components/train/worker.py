"""One worker of the train step's TFJob (:mod:`components.train.job`):
``python -m components.train.worker --train-data URI --eval-data URI --transform-graph URI
--model URI --result URI --config JSON``.

It copies the staged inputs from the object store, trains with :func:`core.train` under the
``TF_CONFIG`` the Training Operator set in its pod, and, on the chief, puts the model in the
staging folder and then the result file, which says which files make the model whole. Written
last, the result file is what tells the step the model is complete.
"""

import argparse
import dataclasses
import json
import logging
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from typing import Any

import pyarrow.fs as pa_fs

from components.errors import step
from components.train.config import TrainConfig
from components.train.job import copy

logger = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m components.train.worker")
    for flag in ("--train-data", "--eval-data", "--transform-graph", "--model", "--result"):
        parser.add_argument(flag, required=True, help="an object-store URI pyarrow opens")
    parser.add_argument("--config", required=True, help="TrainConfig's fields as JSON")
    return parser


def fetch(uri: str, local: str) -> str:
    """Copies a staged file or folder to ``local``; returns ``local``."""
    fs, path = pa_fs.FileSystem.from_uri(uri)
    copy(fs, path, pa_fs.LocalFileSystem(), local)
    return local


def publish(model_dir: str, result: dict[str, Any], model_uri: str, result_uri: str) -> None:
    """The chief's hand-off: the model folder, then the result file listing its files' sizes."""
    files = {
        os.path.relpath(os.path.join(folder, name), model_dir): os.path.getsize(
            os.path.join(folder, name)
        )
        for folder, _, names in os.walk(model_dir)
        for name in names
    }
    fs, path = pa_fs.FileSystem.from_uri(model_uri)
    copy(pa_fs.LocalFileSystem(), model_dir, fs, path)
    fs, path = pa_fs.FileSystem.from_uri(result_uri)
    if isinstance(fs, pa_fs.LocalFileSystem):
        fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    with fs.open_output_stream(path) as stream:
        stream.write(json.dumps({**result, "files": files}).encode())


def main(argv: Sequence[str] | None = None, train: Callable[..., Any] | None = None) -> int:
    """Runs the worker.

    Args:
        argv: The arguments (``sys.argv[1:]`` when None).
        train: Trains and exports (:func:`components.train.core.train` when None).
    """
    args = _parser().parse_args(argv)
    with step("train"), tempfile.TemporaryDirectory() as scratch:
        from components.train import core

        train = train or core.train
        config = TrainConfig(**json.loads(args.config))
        task = core.cluster_task()
        logger.info("Worker %s of %s", task[:2] if task else "alone", args.model)
        train_path = fetch(args.train_data, os.path.join(scratch, "train.parquet"))
        eval_path = fetch(args.eval_data, os.path.join(scratch, "eval.parquet"))
        transform_dir = fetch(args.transform_graph, os.path.join(scratch, "transform"))
        model_dir = os.path.join(scratch, "model")
        result = train(train_path, eval_path, transform_dir, model_dir, config)
        if core.is_chief(task):
            publish(model_dir, dataclasses.asdict(result), args.model, args.result)
            logger.info("The chief's model is in %s", args.model)
    return 0


if __name__ == "__main__":
    sys.exit(main())
