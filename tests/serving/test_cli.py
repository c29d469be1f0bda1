"""mlops-serve's command line: KServe's server flags from KServe's parser, and the project's."""

import subprocess
import sys

import pytest

from serving.__main__ import kserve_spelling
from tests.serving.conftest import ROOT, read_log, start_server


def test_help_lists_kserves_flags_and_the_projects():
    done = subprocess.run(
        [sys.executable, "-m", "serving", "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    for flag in ("--http_port", "--grpc_port", "--workers", "--max_threads", "--model_name"):
        assert f"\n  {flag} " in done.stdout
    for flag in ("--registry", "--model-dir", "--version", "--max-rows", "--worker-start-seconds"):
        assert f"\n  {flag} " in done.stdout


@pytest.mark.parametrize(
    ("given", "spelled"),
    [
        (["--http-port", "80", "--grpc-port=81"], ["--http_port", "80", "--grpc_port=81"]),
        (["--model-name", "penguins"], ["--model_name", "penguins"]),
        (["--max-rows", "5", "--registry", "a=b"], ["--max-rows", "5", "--registry", "a=b"]),
    ],
)
def test_hyphenated_kserve_flags_take_kserves_spelling(given, spelled):
    assert kserve_spelling(given) == spelled


@pytest.mark.slow
def test_kserves_own_flags_reach_its_model_server(trained, tmp_path):
    # mlops-serve does not define --max_threads: it is KServe's, from KServe's parser.
    server = start_server(trained["registry"], str(tmp_path / "serve.log"), "--max_threads", "2")
    server.stop()
    assert "Starting gRPC server with 2 workers" in read_log(server.log)
