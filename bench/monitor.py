"""What one monitor window of 1,000,000 logged rows costs, against TFDV's Beam path on the same
rows.

It writes a prediction log of ``--rows`` penguin rows (sampled with replacement from the bundled
data, a tenth of them with body mass x1.4) in the log's real layout, and a registry version
holding the train statistics; then it times, in one run:

* ``components.monitor.core.monitor``: read the window, join labels, TFDV statistics in-process
  with exact categorical counts, skew and drift with TFDV's comparators, the decision;
* the reference: TFDV's ``GenerateStatistics`` as a Beam pipeline (DirectRunner) over the same
  rows, statistics only.

Target: the whole window in at most 20 s here. Run with ``make bench-monitor``.
"""

import argparse
import os
import sys
import tempfile
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

TARGET_SECONDS = 20.0
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The project first: bench/serving.py would shadow the serving package from this folder.
sys.path.insert(0, ROOT)


def _penguins() -> pa.Table:
    import palmerpenguins

    path = os.path.join(os.path.dirname(palmerpenguins.__file__), "data", "penguins.csv")
    return pa_csv.read_csv(path)


def write_log(log: str, rows: int, seed: int = 0) -> pa.Table:
    """``rows`` predictions in the log's layout, one file per 100,000 rows; returns the features."""
    from serving import prediction_log as pl

    source = _penguins()
    generator = np.random.default_rng(seed)
    features = source.drop(["species"]).take(pa.array(generator.integers(0, len(source), rows)))
    heavier = pc.multiply(features.column("body_mass_g"), 1.4)
    shifted = pa.array(generator.random(rows) < 0.1)
    features = features.set_column(
        features.column_names.index("body_mass_g"),
        "body_mass_g",
        pc.if_else(shifted, heavier, features.column("body_mass_g")),
    )
    now_ms = int(time.time() * 1000)
    folder = os.path.join(log, pl.PREDICTIONS, "model=penguins", f"hour={pl.hour_of(time.time())}")
    os.makedirs(folder, exist_ok=True)
    for start in range(0, rows, 100_000):
        part = features.slice(start, 100_000)
        n = part.num_rows
        table = pa.table(
            {
                pl.REQUEST_ID: pa.array([f"r{start + i}" for i in range(n)]),
                pl.ROW: pa.array(np.zeros(n, np.int32)),
                pl.TIME: pa.array(np.full(n, now_ms - 1000), pa.timestamp("ms", tz="UTC")),
                pl.VERSION: pa.array(np.ones(n, np.int64)),
                pl.LATENCY_MS: pa.array(np.ones(n)),
                **{name: pc.cast(part.column(name), pa.float64()) if name not in ("island", "sex")
                   else part.column(name) for name in part.column_names},
                "label": pa.array(["Adelie"] * n),
            }
        )  # fmt: skip
        pq.write_table(table, os.path.join(folder, f"{start}.parquet"))
    return features


def registry_with_statistics(root: str) -> None:
    """Version 1 of penguins keeping the whole dataset's statistics as its train statistics."""
    from google.protobuf import text_format
    from tensorflow_data_validation import StatsOptions
    from tensorflow_data_validation.statistics import stats_impl

    from components import constants
    from components.registry import ModelRegistry
    from components.validate.core import to_tfdv_batch

    model = os.path.join(root, "_model")
    os.makedirs(model, exist_ok=True)
    with open(os.path.join(model, "saved_model.pb"), "wb") as f:
        f.write(b"not loaded")
    train = stats_impl.generate_statistics_in_memory(to_tfdv_batch(_penguins()), StatsOptions())
    ModelRegistry(root).push(
        "penguins",
        model,
        {constants.METRICS: {"accuracy": 0.97}},
        {constants.REGISTRY_STATISTICS_FILE: text_format.MessageToString(train)},
    )


def beam_statistics_seconds(features: pa.Table) -> float:
    """TFDV's Beam path (DirectRunner) over the same rows: statistics only."""
    import apache_beam as beam
    import tensorflow_data_validation as tfdv

    from components.validate.core import to_tfdv_batch

    batches = [
        to_tfdv_batch(features.slice(start, 50_000)) for start in range(0, len(features), 50_000)
    ]
    started = time.perf_counter()
    with beam.Pipeline() as pipeline:
        _ = (
            pipeline
            | beam.Create(batches, reshuffle=False)
            | tfdv.GenerateStatistics(tfdv.StatsOptions())
            | beam.combiners.Count.Globally()
        )
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--no-beam", action="store_true", help="skip the Beam reference")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from components.monitor import core
    from components.monitor.config import MonitorConfig

    with tempfile.TemporaryDirectory() as folder:
        log, registry = os.path.join(folder, "log"), os.path.join(folder, "registry")
        features = write_log(log, args.rows)
        registry_with_statistics(registry)
        started = time.perf_counter()
        result, *_ = core.monitor(log, registry, "penguins", MonitorConfig(windows_in_a_row=1))
        monitor_seconds = time.perf_counter() - started
        beam_seconds = None if args.no_beam else beam_statistics_seconds(features)
    flagged = sorted(c.feature for c in result.features if c.skewed or c.drifted)
    print(f"window of {result.rows:,} logged rows ({os.cpu_count()} CPUs)")
    print(f"{'monitor: read, statistics, skew, drift, decision':<52}{monitor_seconds:>8.1f} s")
    if beam_seconds is not None:
        print(f"{'reference: TFDV GenerateStatistics on Beam (Direct)':<52}{beam_seconds:>8.1f} s")
        print(f"ratio: the monitor's whole window in {monitor_seconds / beam_seconds:.2f}x of "
              "Beam's statistics alone")  # fmt: skip
    print(f"flagged: {', '.join(flagged) or 'none'}; decision: "
          f"{'retrain' if result.retrain else 'no retraining'}")  # fmt: skip
    verdict = "PASS" if monitor_seconds <= TARGET_SECONDS else "FAIL"
    print(f"{verdict}: {monitor_seconds:.1f} s for the window (target <= {TARGET_SECONDS:g} s)")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
