"""What recording lineage adds to a local run (``make run``), against recording it step by step.

In one run it:

1. runs the real pipeline once (``mlops run --local`` on the bundled penguins, few epochs) and
   reads back the executions it recorded: real records, the size and shape a run writes;
2. measures, each in a fresh Python process as a step is one, what a step pays to write its
   record into the run's spool folder (``MLOPS_LINEAGE_SPOOL``);
3. measures what the runner pays at the end to store the run's records in the workspace's
   ML Metadata store (``recording.store_spooled``: the one ML Metadata start-up of the run);
4. measures the reference in the same way: each step opening the SQLite store and recording
   itself (``MLOPS_LINEAGE_STORE``), one ML Metadata start-up per step.

It prints per-step and per-run figures, the ratio to the reference and a verdict against the
target: lineage adds at most 0.5 s to a run. Run with ``make bench-lineage``.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUDGET_SECONDS = 0.5

# Each snippet runs in a fresh interpreter and prints the seconds its work took, imports included
# but kfp's: a step runs under kfp.dsl.executor_main and the runner is `mlops run`, which both
# have imported kfp (and the standard library it pulls in) before lineage is recorded.
WRITE = """
import json, sys, time
import kfp.dsl
started = time.perf_counter()
from components.lineage import recording, store
recording.record(store.from_json(json.load(open(sys.argv[1]))), {recording.SPOOL_ENV: sys.argv[2]})
print(time.perf_counter() - started)
"""
STORE_ALL = """
import sys, time
import kfp.dsl
started = time.perf_counter()
from components.lineage import recording
recording.store_spooled(sys.argv[1], sys.argv[2], sys.argv[3])
print(time.perf_counter() - started)
"""
STORE_ONE = """
import json, sys, time
import kfp.dsl
started = time.perf_counter()
from components.lineage import recording, store
execution = store.from_json(json.load(open(sys.argv[1])))
recording.record(execution, {recording.STORE_ENV: sys.argv[2], recording.RUN_ENV: sys.argv[3]})
print(time.perf_counter() - started)
"""


def _seconds(snippet: str, *args: str) -> float:
    done = subprocess.run(
        [sys.executable, "-c", snippet, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": ROOT},
    )
    return float(done.stdout.strip().splitlines()[-1])


def _real_records(folder: str, epochs: int) -> tuple[list[dict], float]:
    """Runs the pipeline once; returns its recorded executions as records, and its wall time."""
    from components.lineage import recording, store
    from components.lineage.mlmd import sqlite_store

    began = time.monotonic()
    subprocess.run(
        [
            os.path.join(os.path.dirname(sys.executable), "mlops"),
            "run",
            "--local",
            "--registry",
            os.path.join(folder, "registry"),
            "--runs-dir",
            os.path.join(folder, "runs"),
            "--epochs",
            str(epochs),
        ],
        check=True,
        capture_output=True,
    )
    wall = time.monotonic() - began
    lineage = sqlite_store(os.path.join(folder, "runs", recording.STORE_FILE))
    (run,) = [n for n in os.listdir(os.path.join(folder, "runs")) if not n.endswith(".sqlite")]
    records = []
    for found in lineage.executions(store.RUN_CONTEXT, run):
        records.append(
            store.to_json(
                store.Execution(
                    type_name=found.type_name,
                    properties=found.properties,
                    state=found.state,
                    inputs={
                        k: store.Artifact(a.type_name, a.uri, a.properties)
                        for k, a in found.inputs.items()
                    },
                    outputs={
                        k: store.Artifact(a.type_name, a.uri, a.properties)
                        for k, a in found.outputs.items()
                    },
                    contexts=[c for c in found.contexts if c[0] != store.RUN_CONTEXT],
                )
            )
        )
    return records, wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="measurements of each figure")
    parser.add_argument("--epochs", type=int, default=5, help="epochs of the one real run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        records, wall = _real_records(folder, args.epochs)
        files = []
        for index, record in enumerate(records):
            path = os.path.join(folder, f"record-{index}.json")
            with open(path, "w") as f:
                json.dump(record, f)
            files.append(path)
        store_path = os.path.join(folder, "runs", "metadata.sqlite")  # holds the real run

        writes, flushes, references = [], [], []
        for repeat in range(args.repeats):
            spool = os.path.join(folder, f"spool-{repeat}")
            os.makedirs(spool)
            per_step = [_seconds(WRITE, path, spool) for path in files]
            writes.append(per_step)
            flushes.append(_seconds(STORE_ALL, spool, store_path, f"bench-{repeat}"))
            references.append(
                sum(_seconds(STORE_ONE, path, store_path, f"ref-{repeat}") for path in files)
            )

    per_run = [sum(w) + f for w, f in zip(writes, flushes, strict=True)]
    added = statistics.median(per_run)
    reference = statistics.median(references)
    step_write = statistics.median(x for w in writes for x in w)
    print(f"one real run: {len(records)} steps recorded, {wall:.1f} s wall ({args.epochs} epochs)")
    print(f"{'figure':<52}{'median':>10}")
    print(f"{'a step writes its record (spool, fresh process)':<52}{step_write * 1000:>8.1f} ms")
    print(
        f"{'the runner stores the run (one ML Metadata start-up)':<52}"
        f"{statistics.median(flushes) * 1000:>8.1f} ms"
    )
    print(f"{'added to a run: every step + the store':<52}{added * 1000:>8.1f} ms")
    print(f"{'reference: each step records itself in SQLite':<52}{reference * 1000:>8.1f} ms")
    print(
        f"ratio to the reference: {added / reference:.2f}x; "
        f"{added / wall * 100:.2f} % of the run's wall time"
    )
    verdict = "PASS" if added <= BUDGET_SECONDS else "FAIL"
    print(f"{verdict}: lineage adds {added:.2f} s to a run (target <= {BUDGET_SECONDS} s)")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
