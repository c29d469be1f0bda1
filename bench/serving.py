"""Benchmark the KServe predictor (``python -m serving``) against the SavedModel called in-process.

In one run it measures, on single penguin rows:

* the in-process reference: ``serving_default`` of the same SavedModel, loaded with
  ``tf.saved_model.load`` and called on prebuilt one-row tensors (p50/p99 of many calls);
* the latency of one V1 request (``POST /v1/models/NAME:predict``) over a persistent HTTP
  connection to the real server, started as a subprocess on free loopback ports;
* throughput (rows/s), latency and errors at 1, 8 and 32 concurrent clients (threads, one
  session each), and a soak of 32 clients for ``--soak-seconds``;
* the cost of the prediction log: p50 and rows/s at 8 clients of a server without and one with
  ``--prediction-log``, in alternating rounds, and of a shadow version beside the served one.

It prints a table and verdicts against the targets: HTTP p50 <= 5 x in-process p50 + 2 ms, no
errors at 32 clients over the soak, and with the log p50 within +0.3 ms and rows/s within 10 %.
Clients and server share this machine's cores (``--only-log`` runs the last part alone).

Run with ``make bench-serving``, or ``.venv-serving/bin/python bench/serving.py --seconds 3``.
"""

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

import requests

from components import constants

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROWS: list[dict[str, Any]] = [  # Real rows of palmerpenguins' penguins.csv, without species.
    {"island": "Torgersen", "bill_length_mm": 39.1, "bill_depth_mm": 18.7,
     "flipper_length_mm": 181.0, "body_mass_g": 3750.0, "sex": "male", "year": 2007.0},
    {"island": "Biscoe", "bill_length_mm": 46.2, "bill_depth_mm": 14.4,
     "flipper_length_mm": 214.0, "body_mass_g": 4650.0, "sex": None, "year": 2008.0},
    {"island": "Dream", "bill_length_mm": 50.6, "bill_depth_mm": 19.4,
     "flipper_length_mm": 193.0, "body_mass_g": 3800.0, "sex": "male", "year": 2007.0},
]  # fmt: skip
CLIENTS = (1, 8, 32)


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank ``q``-th percentile of ``values`` (NaN when empty)."""
    ordered = sorted(values) or [float("nan")]
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def in_process_ms(model_dir: str, calls: int, warmup: int = 50) -> list[float]:
    """Milliseconds per ``serving_default`` call on one row, loaded in this process."""
    import tensorflow as tf

    signature = tf.saved_model.load(model_dir).signatures[constants.SERVING_SIGNATURE]
    specs = signature.structured_input_signature[1].items()
    missing = {tf.string: "", tf.float32: float("nan")}  # What the server sends for null.
    batches = [
        {k: tf.constant([missing[s.dtype] if r[k] is None else r[k]], s.dtype) for k, s in specs}
        for r in ROWS
    ]
    times = []
    for i in range(warmup + calls):
        start = time.perf_counter()
        {k: v.numpy() for k, v in signature(**batches[i % len(batches)]).items()}
        if i >= warmup:
            times.append((time.perf_counter() - start) * 1000)
    return times


def free_port() -> int:
    """A TCP port free on loopback now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux; NaN elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_server(
    registry: str, name: str, log_path: str, *extra: str
) -> tuple[subprocess.Popen, str]:
    """Starts ``python -m serving`` on loopback; returns it and its URL once it is ready.

    Raises:
        RuntimeError: The server exited or was not ready within 90 s.
    """
    http_port, grpc_port = free_port(), free_port()
    command = [sys.executable, "-m", "serving", "--registry", registry, "--model-name", name]
    command += ["--version", "1", "--http-port", str(http_port), "--grpc-port", str(grpc_port)]
    command += list(extra)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=log, cwd=ROOT, env=env)
    url = f"http://127.0.0.1:{http_port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if requests.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                return process, url
        except requests.RequestException:
            pass
        time.sleep(0.3)
    stop(process)
    raise RuntimeError(f"server exited or not ready within 90 s; see {log_path}")


def stop(process: subprocess.Popen) -> None:
    """Terminates the server, and kills it if it does not exit within 30 s."""
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def load(predict: str, pid: int, clients: int, seconds: float, count: int = 0) -> dict[str, Any]:
    """``clients`` threads, one session each, send single-row V1 requests.

    Each sends ``count`` requests when ``count`` is set, else requests until ``seconds`` have
    passed. Returns rows/s, latencies (ms), errors, and CPU ms per request of the server and of
    this process (the clients).
    """
    lock, ready = threading.Lock(), threading.Barrier(clients + 1)
    times: list[float] = []
    errors: list[str] = []
    deadline = float("inf")

    def client(index: int) -> None:
        mine, failed, sent = [], [], 0
        with requests.Session() as session:
            ready.wait()
            while (sent < count) if count else time.perf_counter() < deadline:
                body = {"instances": [ROWS[(index + sent) % len(ROWS)]]}
                sent += 1
                start = time.perf_counter()
                try:
                    reply = session.post(predict, json=body, timeout=30)
                    if reply.status_code == 200:
                        mine.append((time.perf_counter() - start) * 1000)
                    else:
                        failed.append(f"HTTP {reply.status_code}: {reply.text[:200]}")
                except requests.RequestException as err:
                    failed.append(f"{type(err).__name__}: {err}")
        with lock:
            times.extend(mine)
            errors.extend(failed)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    server_cpu, client_cpu = cpu_seconds(pid), time.process_time()
    start = time.perf_counter()
    deadline = start + seconds
    ready.wait()
    for thread in threads:
        thread.join()
    elapsed, sent = time.perf_counter() - start, max(1, len(times) + len(errors))
    server_ms = (cpu_seconds(pid) - server_cpu) * 1000 / sent
    client_ms = (time.process_time() - client_cpu) * 1000 / sent
    return dict(rps=len(times) / elapsed, times=times, errors=errors, cpu=(server_ms, client_ms))


def logging_cost(registry: str, name: str, rounds: int, seconds: float, requests_: int) -> int:
    """The same load on a server without and with ``--prediction-log``, and with the log and a
    shadow (``--shadow-version``, the served version itself: the cost, not the comparison), in
    alternating rounds (so drift of a shared machine falls on all); prints p50 and rows/s of
    each and the verdicts: p50 within +0.3 ms and rows/s within 10 % with the log on. The
    shadow has no target: it runs the model a second time on the same cores."""
    folder = tempfile.mkdtemp(prefix="bench-log-")
    log_dir = os.path.join(folder, "prediction-log")
    configurations = {
        "off": [],
        "on": ["--prediction-log", log_dir],
        "on + shadow": ["--prediction-log", log_dir + "-shadowed", "--shadow-version", "1"],
    }
    servers = {}
    try:
        for key, extra in configurations.items():
            log = os.path.join(folder, f"{key.replace(' + ', '-')}.log")
            servers[key] = start_server(registry, name, log, *extra)
        results: dict[str, dict[str, list[float]]] = {k: {"p50": [], "rps": []} for k in servers}
        for _ in range(rounds):
            for key, (process, url) in servers.items():
                predict = f"{url}/v1/models/{name}:predict"
                load(predict, process.pid, 1, 0, count=50)  # warm-up
                results[key]["p50"].append(
                    percentile(load(predict, process.pid, 1, 0, requests_)["times"], 50)
                )
                results[key]["rps"].append(load(predict, process.pid, 8, seconds)["rps"])
        written = requests.get(f"{servers['on'][1]}/metrics", timeout=5).text
        shadowed = requests.get(f"{servers['on + shadow'][1]}/metrics", timeout=5).text
    except RuntimeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    finally:
        for process, _ in servers.values():
            stop(process)

    def first(text: str, prefix: str) -> str:
        return next((x for x in text.splitlines() if x.startswith(prefix)), "no metric")

    print(f"\nprediction log off vs on ({rounds} alternating rounds; "
          f"{first(written, 'mlops_prediction_log_rows_total')}; "
          f"{first(shadowed, 'mlops_shadow_rows_total')})")  # fmt: skip
    print(f"{'':<22}{'p50 ms':>10}{'rows/s (8 clients)':>22}")
    median = {k: {m: sorted(v)[len(v) // 2] for m, v in r.items()} for k, r in results.items()}
    for key in configurations:
        print(f"{'log ' + key:<22}{median[key]['p50']:>10.2f}{median[key]['rps']:>22.0f}")
    p50_delta = median["on"]["p50"] - median["off"]["p50"]
    rps_ratio = median["on"]["rps"] / median["off"]["rps"]
    verdict = "PASS" if p50_delta <= 0.3 else "FAIL"
    print(f"{verdict}  p50 with the log {p50_delta:+.2f} ms (target <= +0.3 ms)")
    verdict = "PASS" if rps_ratio >= 0.9 else "FAIL"
    print(f"{verdict}  rows/s with the log {rps_ratio:.1%} of without (target >= 90 %)")
    shadow_delta = median["on + shadow"]["p50"] - median["on"]["p50"]
    shadow_ratio = median["on + shadow"]["rps"] / median["on"]["rps"]
    print(f"info  a shadow adds {shadow_delta:+.2f} ms to p50 and leaves {shadow_ratio:.1%} of "
          "rows/s (no target: it runs the model again on the same cores)")  # fmt: skip
    return 0


def main(argv: list[str] | None = None) -> int:
    """Runs the benchmark and prints its figures; 1 when the server does not start."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registry", default="model-registry", help="model registry folder")
    parser.add_argument("--model-name", default="penguins")
    parser.add_argument("--seconds", type=float, default=10.0, help="per concurrency level")
    parser.add_argument("--soak-seconds", type=float, default=30.0, help="32-client soak")
    parser.add_argument("--requests", type=int, default=500, help="sequential latency requests")
    parser.add_argument(
        "--log-rounds", type=int, default=3, help="rounds of the prediction-log comparison"
    )
    parser.add_argument(
        "--only-log", action="store_true", help="run only the prediction-log comparison"
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    registry = os.path.abspath(args.registry)
    if args.only_log:
        return logging_cost(registry, args.model_name, args.log_rounds, args.seconds, args.requests)

    local = in_process_ms(os.path.join(registry, args.model_name, "1"), args.requests * 4)
    log_path = os.path.join(tempfile.mkdtemp(prefix="bench-serving-"), "server.log")
    try:
        process, url = start_server(registry, args.model_name, log_path)
    except RuntimeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    runs: list[tuple[str, dict[str, Any]]] = []
    try:
        predict, pid = f"{url}/v1/models/{args.model_name}:predict", process.pid
        load(predict, pid, 1, 0, count=50)  # Warm-up.
        runs.append(
            (f"HTTP V1 sequential x{args.requests}", load(predict, pid, 1, 0, args.requests))
        )
        for n in CLIENTS:
            runs.append((f"{n} clients x {args.seconds:g} s", load(predict, pid, n, args.seconds)))
        soak = load(predict, pid, CLIENTS[-1], args.soak_seconds)
        runs.append((f"soak {CLIENTS[-1]} clients x {args.soak_seconds:g} s", soak))
    finally:
        stop(process)

    print(f"server log: {log_path}; {os.cpu_count()} CPUs shared by server and clients\n")
    print(f"{'CPU ms/request':>79}\n{'rows/s  p50 ms  p99 ms errors  server  client':>79}")
    local_p50, remote_p50 = percentile(local, 50), percentile(runs[0][1]["times"], 50)
    print(f"{f'in-process call x{len(local)}':<40}{local_p50:>8.2f}{percentile(local, 99):>8.2f}")
    for label, run in runs:
        p50, p99 = percentile(run["times"], 50), percentile(run["times"], 99)
        print(
            f"{label:<32}{run['rps']:>8.0f}{p50:>8.2f}{p99:>8.2f}{len(run['errors']):>7}"
            f"{run['cpu'][0]:>8.2f}{run['cpu'][1]:>8.2f}"
        )
    budget = 5 * local_p50 + 2
    print(f"\nHTTP p50 / in-process p50 = {remote_p50 / local_p50:.1f}x")
    verdict = "PASS" if remote_p50 <= budget else "FAIL"
    print(f"{verdict}  HTTP p50 {remote_p50:.2f} ms <= 5 x {local_p50:.2f} + 2 = {budget:.2f} ms")
    verdict = "PASS" if not soak["errors"] else "FAIL"
    print(f"{verdict}  {len(soak['errors'])} errors at 32 clients over {args.soak_seconds:g} s")
    for error in sorted({e for _, run in runs for e in run["errors"]})[:5]:
        print(f"  error: {error}")
    return logging_cost(registry, args.model_name, args.log_rounds, args.seconds, args.requests)


if __name__ == "__main__":
    sys.exit(main())
