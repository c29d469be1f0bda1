"""``make demo-drift``: the loop after deploy, on one machine, in a few minutes.

1. Train on the bundled penguins and push version 1.
2. Serve it with the prediction log on, and keep clients sending requests the whole time.
3. Traffic sampled from the eval split: the monitor finds no drift.
4. Shifted traffic (body mass x1.4, the islands' mix changed): the monitor names exactly those
   features. The true species of the first shifted window's requests arrive (``mlops
   feedback``); after two windows in a row the monitor decides to retrain, the training
   pipeline runs on the shifted data joined with the log's labelled rows, the candidate is
   compared with the serving version on those of them in its eval split, version 2 is pushed,
   and the running server swaps to it.
5. Not one request failed, and the server never restarted.

Each stage prints a line or two. ``python -m pipelines.demo_drift --workspace DIR``.
"""

import argparse
import contextlib
import io
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from components.registry import ModelRegistry

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = "penguins"
SHIFTED_ISLANDS = ("Torgersen", "Torgersen", "Dream")
# The demo's server writes a window a second: rows answered this long ago are in the log.
SETTLE_SECONDS = 2


def shift(row: dict, chooser: random.Random) -> dict:
    """A penguin as the shifted world sees it: heavier, on other islands."""
    shifted = dict(row)
    if shifted.get("body_mass_g") is not None:
        shifted["body_mass_g"] = shifted["body_mass_g"] * 1.4
    shifted["island"] = chooser.choice(SHIFTED_ISLANDS)
    return shifted


def shifted_dataset(source_csv: str, target: str, seed: int = 7) -> str:
    """The penguins CSV with every row shifted: the fresh data to retrain on."""
    chooser = random.Random(seed)
    rows = [shift(row, chooser) for row in pa_csv.read_csv(source_csv).to_pylist()]
    pa_csv.write_csv(pa.Table.from_pylist(rows), target)
    return target


@dataclass
class Traffic:
    """Clients sending one-row V1 requests until stopped, from the rows they are given."""

    url: str
    rows: list[dict]
    clients: int = 2
    answered: int = 0
    failed: list[str] = field(default_factory=list)
    # (request id, species) of each answered request, while ``keep_truth`` is set.
    truth: list[tuple[str, str]] = field(default_factory=list)
    keep_truth: bool = False
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def use(self, rows: list[dict]) -> None:
        self.rows = rows

    def _client(self, seed: int) -> None:
        import requests

        chooser = random.Random(seed)
        with requests.Session() as session:
            while not self._stop.is_set():
                row = dict(chooser.choice(self.rows))
                species = row.pop("species", None)
                try:
                    reply = session.post(self.url, json={"instances": [row]}, timeout=30)
                    ok = reply.status_code == 200
                    problem = f"HTTP {reply.status_code}: {reply.text[:200]}"
                except requests.RequestException as err:
                    ok, problem = False, f"{type(err).__name__}: {err}"
                with self._lock:
                    if ok:
                        self.answered += 1
                        if self.keep_truth:
                            self.truth.append((reply.headers["x-request-id"], species))
                    else:
                        self.failed.append(problem)
                time.sleep(0.005)

    @contextlib.contextmanager
    def running(self) -> Iterator["Traffic"]:
        threads = [threading.Thread(target=self._client, args=(i,)) for i in range(self.clients)]
        for thread in threads:
            thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            for thread in threads:
                thread.join()


def _cli(*args: str) -> tuple[int, str]:
    from pipelines.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = main(list(args))
    return status, out.getvalue()


def _field(printed: str, name: str) -> str:
    return next((line.split(name, 1)[1].strip() for line in printed.splitlines()
                 if line.strip().startswith(name)), "")  # fmt: skip


def _rows_since(log: str, since: float) -> int:
    from serving import prediction_log as pl

    return pl.read(log, pl.PREDICTIONS, MODEL, since, [pl.REQUEST_ID]).num_rows


def _wait_for_rows(log: str, since: float, rows: int, seconds: float = 120) -> None:
    """Waits until ``rows`` rows answered after ``since`` are in the log, and the settle time
    the monitor leaves has passed."""
    deadline = time.monotonic() + seconds
    while _rows_since(log, since) < rows:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the prediction log did not reach {rows} rows in {seconds:g} s")
        time.sleep(0.5)
    time.sleep(SETTLE_SECONDS)


def start_server(registry: str, log: str, out: str) -> tuple[subprocess.Popen, str]:
    """mlops-serve (the serving environment) following the latest version, logging."""
    import socket

    import requests

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        grpc_port = sock.getsockname()[1]
    serve = os.environ.get("MLOPS_SERVE", os.path.join(ROOT, ".venv-serving", "bin", "mlops-serve"))
    process = subprocess.Popen(
        [serve, "--registry", registry, "--model-name", MODEL, "--http-port", str(port),
         "--grpc-port", str(grpc_port), "--poll-seconds", "1", "--prediction-log", log,
         "--prediction-log-window-seconds", "1"],
        stdout=open(out, "w"),  # noqa: SIM115 - the server writes it until it stops
        stderr=subprocess.STDOUT,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"mlops-serve exited {process.returncode}; see {out}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"{url}/v2/health/ready", timeout=1).ok:
                return process, url
        time.sleep(0.5)
    process.terminate()
    raise RuntimeError(f"mlops-serve was not ready in 180 s; see {out}")


@dataclass
class DemoResult:
    """What the demo saw, for its test."""

    calm: str = ""
    shifted: list[str] = field(default_factory=list)
    labels: int = 0
    blessing: str = ""
    pushed: int | None = None
    swapped: bool = False
    answered: int = 0
    failed: list[str] = field(default_factory=list)
    server_pid_kept: bool = False


def _say(text: str) -> None:
    print(f"demo: {text}", flush=True)


def run(workspace: str, epochs: int = 15, window_rows: int = 300) -> DemoResult:
    """The demo in ``workspace``; returns what it saw.

    Raises:
        RuntimeError: A stage did not do what the demo shows (the message says which).
    """
    result = DemoResult()
    os.makedirs(workspace, exist_ok=True)
    registry = os.path.join(workspace, "model-registry")
    runs = os.path.join(workspace, "runs")
    log = os.path.join(workspace, "prediction-log")
    data = _penguins_csv()

    _say(f"1/5 training {MODEL} on {os.path.basename(data)} ...")
    status, printed = _cli("run", "--local", "--data", data, "--registry", registry,
                           "--runs-dir", runs, "--epochs", str(epochs))  # fmt: skip
    if status != 0 or ModelRegistry(registry).versions(MODEL) != [1]:
        raise RuntimeError(f"training did not push version 1:\n{printed}")
    _say(f"    {_field(printed, 'model')}")
    eval_split = sorted(
        os.path.join(folder, name)
        for folder, _, names in os.walk(runs)
        for name in names
        if os.path.basename(folder) == "eval_data" or name == "eval_data"
    )
    eval_rows = pq.read_table(eval_split[0]).to_pylist()
    chooser = random.Random(3)
    shifted_rows = [shift(row, chooser) for row in eval_rows]

    _say("2/5 serving it with the prediction log on; clients send requests from now on")
    process, url = start_server(registry, log, os.path.join(workspace, "serve.log"))
    pid = process.pid
    traffic = Traffic(f"{url}/v1/models/{MODEL}:predict", eval_rows)
    monitor = ["monitor", "--local", "--log", log, "--registry", registry,
               "--min-rows", str(window_rows // 2),
               "--settle-seconds", str(SETTLE_SECONDS)]  # fmt: skip
    try:
        with traffic.running():
            _wait_for_rows(log, 0, window_rows)
            status, printed = _cli(*monitor)
            result.calm = _field(printed, "drifted")
            _say(f"3/5 traffic like the eval split: drifted {result.calm}; "
                 f"{_field(printed, 'decision')}")  # fmt: skip

            fresh = shifted_dataset(data, os.path.join(workspace, "penguins-shifted.csv"))
            traffic.use(shifted_rows)
            traffic.keep_truth = True
            # The first shifted window starts at the shift (the calm rows answered while the
            # monitor ran belong to no window of this demo); the second after the first.
            since = time.time()
            for window in (1, 2):
                _wait_for_rows(log, since, window_rows)
                retrain = ["--retrain", "--data", fresh, "--runs-dir", runs]
                start = [f"--since={_iso(since)}"] if window == 1 else []
                status, printed = _cli(*monitor, *start, *retrain, f"--run-arg=--epochs={epochs}")
                since = time.time() - SETTLE_SECONDS
                drifted = _field(printed, "drifted")
                result.shifted.append(drifted)
                _say(f"4/5 shifted traffic, window {window}: drifted {drifted}; "
                     f"{_field(printed, 'decision')}")  # fmt: skip
                if status != 0:
                    raise RuntimeError(f"monitoring or retraining failed:\n{printed}")
                if window == 1:
                    result.labels = _send_labels(workspace, log, traffic)
                    _say(f"    the true species of {result.labels} shifted requests arrive "
                         "(mlops feedback)")  # fmt: skip
            result.blessing = _field(printed, "blessed")
            versions = ModelRegistry(registry).versions(MODEL)
            result.pushed = versions[-1] if len(versions) > 1 else None
            _say(f"    retrained on {os.path.basename(fresh)} and the log's labelled rows: "
                 f"{_field(printed, 'data')}")  # fmt: skip
            _say(f"    blessed {result.blessing}")
            _say(f"    {_field(printed, 'model') or 'nothing pushed'}")
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and result.pushed:
                with open(os.path.join(workspace, "serve.log")) as f:
                    if f"now serves version {result.pushed}" in f.read():
                        result.swapped = True
                        break
                time.sleep(0.5)
            time.sleep(2)  # requests keep flowing across the swap
        result.answered, result.failed = traffic.answered, list(traffic.failed)
        result.server_pid_kept = process.poll() is None and process.pid == pid
        _say(f"5/5 the server swapped to version {result.pushed} without a restart "
             f"(pid {pid}): {result.answered} requests answered, {len(result.failed)} failed"
             if result.swapped else "5/5 the server did not swap to a new version")  # fmt: skip
    finally:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=30)
    return result


def _send_labels(workspace: str, log: str, traffic: Traffic) -> int:
    """The true species of the shifted requests answered so far, through ``mlops feedback``."""
    with traffic._lock:
        truth = list(traffic.truth)
    path = os.path.join(workspace, "labels.csv")
    pa_csv.write_csv(
        pa.table({"request_id": [r for r, _ in truth], "label": [s for _, s in truth]}), path
    )
    status, printed = _cli("feedback", "--log", log, "--labels", path)
    if status != 0:
        raise RuntimeError(f"mlops feedback failed:\n{printed}")
    return len(truth)


def _iso(seconds: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(seconds, UTC).isoformat()


def _penguins_csv() -> str:
    import palmerpenguins

    return os.path.join(os.path.dirname(palmerpenguins.__file__), "data", "penguins.csv")


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``make demo-drift``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", help="where the demo's registry, runs and log go "
                        "(a new temporary folder by default)")  # fmt: skip
    parser.add_argument("--epochs", type=int, default=15)
    args = parser.parse_args(argv)
    workspace = args.workspace or tempfile.mkdtemp(prefix="mlops-demo-drift-")
    _say(f"workspace {workspace}")
    try:
        result = run(workspace, args.epochs)
    except RuntimeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    ok = result.swapped and not result.failed and result.server_pid_kept
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
