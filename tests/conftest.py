"""Shared fixtures: the bundled penguins data, split once, and a transform fitted on it.

The serving tests (tests/serving) run in the serving environment, which has neither pyarrow nor
the pipeline's libraries: everything here imports them inside the fixture that needs them.
"""

import importlib.resources
import os
import sys

import pytest

# Tests import TensorFlow in this process; keep its C++ start-up chatter out of the output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def penguins_csv() -> str:
    """The Palmer penguins CSV shipped by the palmerpenguins package (344 rows)."""
    return str(importlib.resources.files("palmerpenguins") / "data" / "penguins.csv")


@pytest.fixture(scope="session")
def penguins_splits(tmp_path_factory, penguins_csv) -> dict[str, str]:
    """Penguins ingested into train and eval Parquet splits."""
    from components.ingest import core

    folder = tmp_path_factory.mktemp("penguins")
    splits = {"train": str(folder / "train.parquet"), "eval": str(folder / "eval.parquet")}
    core.ingest(penguins_csv, splits["train"], splits["eval"], 0.2)
    return splits


@pytest.fixture(scope="session")
def penguins_schema(penguins_splits):
    """The schema validate infers from the penguins train split."""
    from components.validate import core

    return core.validate(penguins_splits, "species").schema


@pytest.fixture(scope="session")
def penguins_transform(tmp_path_factory, penguins_splits, penguins_schema) -> str:
    """A transform artifact fitted on the penguins train split."""
    from components.transform import core

    folder = str(tmp_path_factory.mktemp("transform"))
    core.transform(penguins_splits["train"], penguins_schema, "species", folder)
    return folder


@pytest.fixture(scope="session")
def penguins_model(tmp_path_factory, penguins_splits, penguins_transform) -> str:
    """A serving SavedModel trained on penguins (a few epochs)."""
    from components.train import core

    folder = str(tmp_path_factory.mktemp("model") / "model")
    core.train(
        penguins_splits["train"],
        penguins_splits["eval"],
        penguins_transform,
        folder,
        core.TrainConfig(epochs=15),
    )
    return folder


def write_parquet(path, columns: dict) -> str:
    """Writes a small table given as ``{name: list of values}``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table(columns), str(path))
    return str(path)


_EXIT_STATUS: list[int] = []


def pytest_sessionfinish(session, exitstatus) -> None:
    _EXIT_STATUS.append(int(exitstatus))


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config) -> None:
    """Leaves with pytest's own exit status, skipping the interpreter's module teardown.

    TensorFlow (with gRPC and tf.data's Python generators) sometimes segfaults while the
    interpreter tears its modules down after every test has passed and the summary is printed;
    that crash says nothing about the code under test but would turn the run red.
    """
    if _EXIT_STATUS:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_EXIT_STATUS[-1])
