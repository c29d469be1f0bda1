"""Evaluate's AUC past what flights x100 reaches: peak memory and seconds of ranking N random
scores on disk (components/evaluate/ranking.py), each size in a fresh process, against the
smallest measured in the same run. The scores arrive in 4,096-row batches, as evaluate adds
them; memory should stop growing once the runs are written (about RUN_ROWS scores).

Run: ``.venv/bin/python bench/ranking.py --rows 1000000,10000000,100000000`` (the largest
writes 2.4 GB of runs to the temporary folder).
"""

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time

BATCH = 4096


def rank(rows: int) -> None:
    """Ranks ``rows`` random scores in this process; prints its seconds and peak memory."""
    import numpy as np

    from components.evaluate.ranking import Ranking

    rng = np.random.default_rng(0)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-ranking-") as folder:
        ranking = Ranking(folder)
        for start in range(0, rows, BATCH):
            scores = rng.random(min(BATCH, rows - start)).astype(np.float32)
            ranking.add(scores, rng.random(len(scores)) < scores)
        auc, _ = ranking.result(curve=True)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("FIGURES " + json.dumps({"seconds": seconds, "peak_mib": peak, "auc": float(auc)}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="1000000,10000000", help="sizes, comma-separated")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # a size, in a child
    args = parser.parse_args()
    if args.one:
        rank(args.one)
        return 0
    sizes = [int(size) for size in args.rows.split(",")]
    figures = {}
    for size in sizes:
        done = subprocess.run(
            [sys.executable, "-P", __file__, "--one", str(size)], capture_output=True, text=True
        )
        line = next((x for x in done.stdout.splitlines() if x.startswith("FIGURES ")), None)
        if done.returncode or line is None:
            print(f"{size:,} rows failed:\n{done.stderr[-3000:]}", file=sys.stderr)
            return 1
        figures[size] = json.loads(line[len("FIGURES ") :])
    base = figures[sizes[0]]
    print(f"{'rows':>12} {'seconds':>9} {'time x':>7} {'peak MiB':>9} {'memory x':>9}  auc")
    for size in sizes:
        got = figures[size]
        print(
            f"{size:>12,} {got['seconds']:>9.2f} {got['seconds'] / base['seconds']:>7.1f} "
            f"{got['peak_mib']:>9.0f} {got['peak_mib'] / base['peak_mib']:>9.2f}  {got['auc']:.6f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
