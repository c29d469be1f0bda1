"""The served model called in-process, without a server.

In an interpreter of its own: kserve's V2 protos and tritonclient's (test_server.py) define the
same symbols, and one process cannot load both ("duplicate symbol 'inference.ServerLiveRequest'").
"""

import json
import os
import subprocess
import sys

import pytest

from tests.serving.conftest import ROOT

pytestmark = pytest.mark.slow

SWAP_DURING_A_V2_CALL = """
import asyncio, dataclasses, json, sys
from kserve import InferInput, InferRequest
from serving.model import LoadedModel, ModelSource, ServedModel

registry, rows = sys.argv[1], json.loads(sys.argv[2])
served = ServedModel("penguins", ModelSource(registry=registry, name="penguins"))
assert served.load()
computing = served.loaded
newer = dataclasses.replace(computing, version=computing.version + 1)
run = LoadedModel.run

def run_then_swap(self, columns):
    outputs = run(self, columns)
    served._loaded = newer  # What the version watcher does when a push lands mid-request.
    return outputs

LoadedModel.run = run_then_swap
inputs = []
for name in sorted(rows[0]):
    values = [row[name] for row in rows]
    if isinstance(next((v for v in values if v is not None), ""), str):
        inputs.append(InferInput(name, [len(rows)], "BYTES", [v or "" for v in values]))
    else:
        data = [float("nan") if v is None else v for v in values]
        inputs.append(InferInput(name, [len(rows)], "FP32", data))
response = asyncio.run(served.predict(InferRequest(model_name="penguins", infer_inputs=inputs)))
print(json.dumps({"computed_by": computing.version, "serving_now": served.loaded.version,
                  "response_names": response.model_version}))
"""


def test_v2_response_names_the_version_that_computed_it(trained):
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            SWAP_DURING_A_V2_CALL,
            trained["registry"],
            json.dumps(trained["rows"][:3]),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["serving_now"] == result["computed_by"] + 1
    assert result["response_names"] == str(result["computed_by"])
