"""Shared fixtures: the bundled penguins data, split once; a transform fitted on it and a model
trained on it by the current code (slow tests only); and copies of the committed golden
transform and model (tests/testdata) for tests that need just some transform or SavedModel.

The serving tests (tests/serving) run in the serving environment, which has neither pyarrow nor
the pipeline's libraries: everything here imports them inside the fixture that needs them.
"""

import os
import pathlib
import shutil
import sys

import pytest

from tests.testdata import build as testdata

# Fixtures that fit a transform or train a model. `make test-fast` leaves slow tests out to stay
# under a minute, so a unit test using one of these must be marked slow (checked before it runs).
# The DirectRunner in several worker processes: what a Beam test runs a data step on.
MULTI_PROCESS_BEAM = [
    "--runner=DirectRunner",
    "--direct_running_mode=multi_processing",
    "--direct_num_workers=2",
]
FITTING_FIXTURES = frozenset({"penguins_transform", "penguins_model"})
UNIT_TESTS = pathlib.Path(__file__).parent / "unit"

# Tests import TensorFlow in this process; keep its C++ start-up chatter out of the output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def penguins_csv() -> str:
    """The Palmer penguins CSV shipped by the palmerpenguins package (344 rows)."""
    return testdata.penguins_csv()


@pytest.fixture(scope="session")
def penguins_splits(tmp_path_factory, penguins_csv) -> dict[str, str]:
    """Penguins ingested into train and eval Parquet splits."""
    from components.ingest import core

    folder = tmp_path_factory.mktemp("penguins")
    splits = {"train": str(folder / "train.parquet"), "eval": str(folder / "eval.parquet")}
    core.ingest(penguins_csv, splits["train"], splits["eval"], testdata.EVAL_FRACTION)
    return splits


@pytest.fixture(scope="session")
def penguins_schema(penguins_splits):
    """The schema validate infers from the penguins train split."""
    from components.validate import core

    return core.validate(penguins_splits, testdata.LABEL).schema


@pytest.fixture(scope="session")
def penguins_registry_texts(penguins_splits) -> tuple[str, str]:
    """The schema and train statistics (text format) deploy keeps beside each version."""
    from google.protobuf import text_format

    from components.validate import core

    result = core.validate(penguins_splits, testdata.LABEL)
    return (
        text_format.MessageToString(result.schema),
        text_format.MessageToString(result.statistics["train"]),
    )


@pytest.fixture(scope="session")
def penguins_transform(tmp_path_factory, penguins_splits, penguins_schema) -> str:
    """A transform artifact fitted on the penguins train split."""
    from components.transform import core

    folder = str(tmp_path_factory.mktemp("transform"))
    core.transform(penguins_splits["train"], penguins_schema, testdata.LABEL, folder)
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


@pytest.fixture
def kubeconfig(tmp_path, monkeypatch):
    """Points KUBECONFIG at a stand-in, as `kind export kubeconfig` points it at a cluster."""

    def use(standin) -> None:
        path = tmp_path / "kubeconfig"
        path.write_text(
            "apiVersion: v1\nkind: Config\ncurrent-context: standin\n"
            f"clusters: [{{name: standin, cluster: {{server: '{standin.host}'}}}}]\n"
            "contexts: [{name: standin, context: {cluster: standin, user: me}}]\n"
            "users: [{name: me, user: {token: t}}]\n"
        )
        monkeypatch.setenv("KUBECONFIG", str(path))

    return use


@pytest.fixture
def golden_transform(tmp_path_factory) -> str:
    """A copy of the committed transform fitted on the penguins train split (the split
    ``penguins_splits`` makes), built by tests/testdata/build.py."""
    return str(shutil.copytree(testdata.TRANSFORM_DIR, tmp_path_factory.mktemp("golden") / "tf"))


@pytest.fixture
def golden_model(tmp_path_factory) -> str:
    """A copy of the committed serving SavedModel trained on the penguins train split on top of
    the golden transform (tests/testdata/build.py); it beats the majority class on eval."""
    return str(shutil.copytree(testdata.MODEL_DIR, tmp_path_factory.mktemp("golden") / "model"))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item) -> None:
    """Fails a unit test that fits or trains without the ``slow`` marker, before it does."""
    fitting = FITTING_FIXTURES.intersection(getattr(item, "fixturenames", ()))
    if fitting and UNIT_TESTS in item.path.parents and item.get_closest_marker("slow") is None:
        pytest.fail(
            f"{item.nodeid} needs {', '.join(sorted(fitting))} (fitting or training): mark it "
            "@pytest.mark.slow, or use golden_transform and golden_model (tests/testdata)",
            pytrace=False,
        )


def export_untrained(transform_dir: str, model_dir: str) -> str:
    """Exports a serving model as train does, on the transform in ``transform_dir``, with its
    network as initialised: train's signature and outputs without the cost of training."""
    import keras

    from components.features import load_transform
    from components.train import core

    spec, transform = load_transform(transform_dir)
    keras.utils.set_random_seed(0)  # The same untrained network on every run.
    network = core.build_model(spec, core.TrainConfig(hidden_units=(2,), embedding_dim=1))
    core.export(spec, transform, network, model_dir)
    return model_dir


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
