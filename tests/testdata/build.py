"""Builds the golden artifacts the fast unit tests use instead of fitting and training per run.

A transform fitted on the penguins train split and a small serving SavedModel trained on it, made
by the project's own steps in the order the pipeline runs them (ingest, validate, transform,
train), from the penguins CSV the palmerpenguins package ships. Rebuild them whenever the
transform's spec or the exported model's signature changes (tests/unit/test_testdata.py fails
then, saying so)::

    make testdata            # or: .venv/bin/python -m tests.testdata.build

Tests copy them to ``tmp_path`` (the ``golden_transform`` and ``golden_model`` fixtures of
tests/conftest.py) and never write here.

This module imports TensorFlow and the components only inside :func:`build`: tests/conftest.py
reads the paths below in the serving environment too, which has neither.
"""

import argparse
import importlib.resources
import json
import logging
import os
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
TRANSFORM_DIR = os.path.join(HERE, "penguins_transform")
MODEL_DIR = os.path.join(HERE, "penguins_model")
BUILD_INFO = os.path.join(HERE, "build_info.json")

LABEL = "species"
EVAL_FRACTION = 0.2
# Small enough to keep the SavedModel around a hundred KB and the build a few seconds, and
# trained long enough to beat the majority class clearly (test_evaluate.py blesses it).
TRAIN_SETTINGS = {"epochs": 10, "hidden_units": (8,), "embedding_dim": 2, "dropout": 0.0}


def penguins_csv() -> str:
    """The Palmer penguins CSV shipped by the palmerpenguins package (344 rows)."""
    return str(importlib.resources.files("palmerpenguins") / "data" / "penguins.csv")


def build(output_dir: str) -> dict[str, str]:
    """Runs ingest, validate, transform and train on penguins, writing into ``output_dir``.

    Args:
        output_dir: An empty or missing folder; gets ``penguins_transform``, ``penguins_model``,
            ``build_info.json`` and the splits under ``work``.

    Returns:
        The paths written: ``transform``, ``model``, ``build_info`` and the ``train`` and
        ``eval`` splits.
    """
    import tensorflow as tf

    from components.ingest import core as ingest_core
    from components.train import core as train_core
    from components.transform import core as transform_core
    from components.validate import core as validate_core

    out = {
        "transform": os.path.join(output_dir, os.path.basename(TRANSFORM_DIR)),
        "model": os.path.join(output_dir, os.path.basename(MODEL_DIR)),
        "build_info": os.path.join(output_dir, os.path.basename(BUILD_INFO)),
        "train": os.path.join(output_dir, "work", "train.parquet"),
        "eval": os.path.join(output_dir, "work", "eval.parquet"),
    }
    ingest_core.ingest(penguins_csv(), out["train"], out["eval"], EVAL_FRACTION)
    splits = {"train": out["train"], "eval": out["eval"]}
    schema = validate_core.validate(splits, LABEL).schema
    transform_core.transform(out["train"], schema, LABEL, out["transform"])
    config = train_core.TrainConfig(**TRAIN_SETTINGS)
    result = train_core.train(out["train"], out["eval"], out["transform"], out["model"], config)
    info = {
        "built_by": "tests/testdata/build.py",
        "tensorflow": tf.__version__,
        "data": "palmerpenguins penguins.csv",
        "label": LABEL,
        "eval_fraction": EVAL_FRACTION,
        "train_settings": TRAIN_SETTINGS,
        "epochs_run": result.epochs_run,
    }
    with open(out["build_info"], "w") as handle:
        json.dump(info, handle, indent=2)
        handle.write("\n")
    return out


def _remove_empty_folders(*roots: str) -> None:
    # TensorFlow writes an empty assets/ folder that git would not keep: without it here too, the
    # tests load the artifacts exactly as a fresh clone has them.
    for root in roots:
        for folder, _, _ in os.walk(root, topdown=False):
            if not os.listdir(folder):
                os.rmdir(folder)


def main(argv: list[str] | None = None) -> int:
    """Rebuilds the committed golden artifacts in place."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    with tempfile.TemporaryDirectory() as scratch:
        built = build(scratch)
        for name, target in (
            ("transform", TRANSFORM_DIR),
            ("model", MODEL_DIR),
            ("build_info", BUILD_INFO),
        ):
            if os.path.isdir(target):
                shutil.rmtree(target)
            if os.path.isdir(built[name]):
                shutil.copytree(built[name], target)
            else:
                shutil.copyfile(built[name], target)
    _remove_empty_folders(TRANSFORM_DIR, MODEL_DIR)
    for target in (TRANSFORM_DIR, MODEL_DIR):
        size = sum(
            os.path.getsize(os.path.join(folder, name))
            for folder, _, names in os.walk(target)
            for name in names
        )
        logging.info("Wrote %s (%d KB)", os.path.relpath(target), size // 1024)
    return 0


if __name__ == "__main__":
    sys.exit(main())
