"""Fixtures of the serving tests: a model trained by the real pipeline code, and a real
``mlops-serve`` process on loopback.

These tests run in the serving environment (.venv-serving). The model is trained by the pipeline
environment's Python (.venv, or MLOPS_PIPELINE_PYTHON) in a subprocess, as `make run` would.
Where kserve is not installed (a plain `pytest` in .venv) each module here is skipped, saying
where they run; `make test` sets MLOPS_PIPELINE_PYTHON for their run, and then a missing kserve
fails the run instead.
"""

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass

import pytest
import requests

from components import constants

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

TRAIN_SCRIPT = """
import json, sys
import pyarrow.parquet as pq
from components.ingest import core as ingest
from components.validate import core as validate
from components.transform import core as transform
from components.train import core as train
from components.registry import ModelRegistry

data, work, registry = sys.argv[1:4]
splits = {{"train": work + "/train.pq", "eval": work + "/eval.pq"}}
ingest.ingest(data, splits["train"], splits["eval"], 0.2)
schema = validate.validate(splits, "species").schema
transform.transform(splits["train"], schema, "species", work + "/transform")
train.train(splits["train"], splits["eval"], work + "/transform", work + "/model",
            train.TrainConfig(epochs={epochs}))
ModelRegistry(registry).push("penguins", work + "/model", {{}})
rows = pq.read_table(splits["eval"]).drop(["species"]).to_pylist()
with open(work + "/eval_rows.json", "w") as f:
    json.dump(rows, f)
"""


def pipeline_python() -> str:
    """The pipeline environment's interpreter, which trains the model."""
    python = os.environ.get("MLOPS_PIPELINE_PYTHON", os.path.join(ROOT, ".venv", "bin", "python"))
    if not os.path.exists(python):
        pytest.fail(
            f"{python} is missing: the serving tests train with the pipeline env; run make test"
        )
    return python


NOT_SERVING_ENV = (
    "kserve is not installed in {python}: the serving tests run in .venv-serving "
    "(make test, or MLOPS_PIPELINE_PYTHON=.venv/bin/python .venv-serving/bin/python -m pytest "
    "tests/serving)"
)


class _NeedsServingEnv(pytest.File):
    """A test module collected where kserve is not installed: skipped, saying where it runs."""

    def collect(self):
        pytest.skip(NOT_SERVING_ENV.format(python=sys.executable))


def pytest_pycollect_makemodule(module_path, parent):
    """Collects the modules here only where kserve is installed (they import it, or start
    servers that do); elsewhere skips them, or fails when MLOPS_PIPELINE_PYTHON says this is
    the serving tests' run."""
    if importlib.util.find_spec("kserve") is not None:
        return None
    if os.environ.get("MLOPS_PIPELINE_PYTHON"):
        pytest.fail(
            NOT_SERVING_ENV.format(python=sys.executable)
            + "; MLOPS_PIPELINE_PYTHON is set, so this run was meant to be theirs",
            pytrace=False,
        )
    return _NeedsServingEnv.from_parent(parent, path=module_path)


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """A registry with penguins version 1, and raw eval rows (dicts without the label)."""
    work = tmp_path_factory.mktemp("trained")
    registry = work / "registry"
    data = subprocess.run(
        [
            pipeline_python(),
            "-c",
            "import palmerpenguins, os; "
            "print(os.path.join(os.path.dirname(palmerpenguins.__file__), 'data', 'penguins.csv'))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    done = subprocess.run(
        [pipeline_python(), "-c", TRAIN_SCRIPT.format(epochs=15), data, str(work), str(registry)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    with open(work / "eval_rows.json") as f:
        rows = json.load(f)
    return {"registry": str(registry), "rows": rows, "work": work}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    """A running mlops-serve process."""

    process: subprocess.Popen
    http: str
    grpc: str
    log: str

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()


def read_log(path: str) -> str:
    """The text a server has logged so far."""
    with open(path) as handle:
        return handle.read()


def start_server(
    registry: str, log_path: str, *extra: str, wait: bool = True, ready_seconds: float = 90
) -> Server:
    """Starts ``python -m serving`` on free loopback ports and waits until the model is ready."""
    http_port, grpc_port = free_port(), free_port()
    log = open(log_path, "w")  # noqa: SIM115 - the process writes it until stop().
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "serving",
            "--registry",
            registry,
            "--http-port",
            str(http_port),
            "--grpc-port",
            str(grpc_port),
            *extra,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    server = Server(process, f"http://127.0.0.1:{http_port}", f"127.0.0.1:{grpc_port}", log_path)
    deadline = time.monotonic() + ready_seconds
    while wait and time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(
                f"server exited {process.returncode}: {read_log(log_path)[-3000:]}"
            )
        try:
            if requests.get(f"{server.http}/v2/health/ready", timeout=1).ok:
                return server
        except requests.ConnectionError:
            pass
        time.sleep(0.3)
    if wait:
        server.stop()
        raise AssertionError(
            f"server not ready in {ready_seconds:g} s: {read_log(log_path)[-3000:]}"
        )
    return server


@pytest.fixture
def busy_cores():
    """One busy-looping process per core for the duration of a test: a machine under load."""
    loops = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"])
        for _ in range(len(os.sched_getaffinity(0)))
    ]
    yield len(loops)
    for loop in loops:
        loop.kill()
        loop.wait()


@pytest.fixture(scope="session")
def server(trained, tmp_path_factory):
    """mlops-serve on the trained registry, version pinned to 1."""
    running = start_server(
        trained["registry"],
        str(tmp_path_factory.mktemp("logs") / "serve.log"),
        "--model-name",
        "penguins",
        "--version",
        "1",
        "--max-body-bytes",
        "200000",
    )
    yield running
    running.stop()


@pytest.fixture(scope="session")
def expected(trained):
    """The SavedModel's own outputs for the eval rows, called in-process."""
    import numpy as np
    import tensorflow as tf

    model_dir = os.path.join(trained["registry"], "penguins", "1")
    signature = tf.saved_model.load(model_dir).signatures[constants.SERVING_SIGNATURE]
    rows = trained["rows"]
    inputs = {}
    for name, spec in signature.structured_input_signature[1].items():
        values = [row[name] for row in rows]
        if spec.dtype == tf.string:
            inputs[name] = tf.constant(["" if v is None else v for v in values])
        else:
            inputs[name] = tf.constant([np.nan if v is None else v for v in values], tf.float32)
    return {k: v.numpy() for k, v in signature(**inputs).items()}


def copy_version(registry: str, source: int, target: int) -> None:
    """Pushes a copy of a version as another, the way the registry does: aside, then rename."""
    folder = os.path.join(registry, "penguins")
    staging = os.path.join(folder, f".staging-{target}")
    shutil.copytree(os.path.join(folder, str(source)), staging)
    os.rename(staging, os.path.join(folder, str(target)))
