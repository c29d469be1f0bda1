"""Runs the training pipeline embedded on this machine with ``kfp.local``, and reports it.

``kfp.local`` prints its own progress and every step's output to ``sys.stdout``. A run sends all
of that to ``<run dir>/pipeline.log`` and shows one line as each step starts and ends;
``verbose`` shows everything as well.
"""

import contextlib
import io
import os
import re
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TextIO

from components.errors import find_reported_error
from components.lineage import recording

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_STARTED = re.compile(r"Executing task '([^']+)'")
_FINISHED = re.compile(r"Task '([^']+)' finished with status (\w+)")


# kfp 2.13's SubprocessRunner replaces "python3" in every element of a step's command with the
# interpreter's path, executor input included, so a parameter such as a path holding
# "python3.11" reaches the step rewritten (kubeflow/pipelines PR #14459, open). While a run is
# on, only the interpreter of the bootstrap line is replaced.
_BOOTSTRAP = "python3 -m kfp.dsl.executor_main"


def _replace_interpreter_only(full_command: list[str], new_executable: str) -> list[str]:
    return [
        part.replace(_BOOTSTRAP, f"{new_executable} -m kfp.dsl.executor_main")
        for part in full_command
    ]


@contextlib.contextmanager
def _interpreter_replacement_fixed() -> Iterator[None]:
    from kfp.local import subprocess_task_handler

    original = subprocess_task_handler.replace_python_executable
    subprocess_task_handler.replace_python_executable = _replace_interpreter_only
    try:
        yield
    finally:
        subprocess_task_handler.replace_python_executable = original


class RunFailed(Exception):
    """The pipeline stopped; the message says at which step and why."""


@dataclass
class StepTimes:
    """Wall time of each step, in the order they ran."""

    seconds: dict[str, float] = field(default_factory=dict)
    started: dict[str, float] = field(default_factory=dict)
    last_started: str | None = None


class StepReporter(io.TextIOBase):
    """A stdout stand-in: writes everything to the log and a line per step start and end
    to the terminal (everything, when verbose)."""

    def __init__(self, log: TextIO, terminal: TextIO, verbose: bool) -> None:
        self.log, self.terminal, self.verbose = log, terminal, verbose
        self.times = StepTimes()
        self._pending = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.log.write(text)
        if self.verbose:
            self.terminal.write(text)
        self._pending += text
        *lines, self._pending = self._pending.split("\n")
        for line in lines:
            self._watch(_ANSI.sub("", line))
        return len(text)

    def flush(self) -> None:
        self.log.flush()
        self.terminal.flush()

    def _watch(self, line: str) -> None:
        if started := _STARTED.search(line):
            name = started.group(1)
            self.times.started[name] = time.monotonic()
            self.times.last_started = name
            if not self.verbose:
                self.terminal.write(f"  ▸ {name} ...\n")
        elif finished := _FINISHED.search(line):
            name, status = finished.groups()
            took = time.monotonic() - self.times.started.get(name, time.monotonic())
            self.times.seconds[name] = took
            mark = "✓" if status == "SUCCESS" else "✗"
            self.terminal.write(f"  {mark} {name:<16} {took:6.1f} s\n")
        self.terminal.flush()


@dataclass
class RunReport:
    """What a run produced, for the summary."""

    run_dir: str
    log_path: str
    outputs: dict[str, Any]
    times: StepTimes
    total_seconds: float


def new_run_dir(root: str) -> str:
    """A fresh folder for one run's artifacts and log."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path = os.path.join(os.path.abspath(root), stamp)
    suffix = 1
    while os.path.exists(path):
        suffix += 1
        path = os.path.join(os.path.abspath(root), f"{stamp}-{suffix}")
    os.makedirs(path)
    return path


@contextlib.contextmanager
def _lineage_environment(runs_root: str, run_dir: str, model_name: str | None) -> Iterator[None]:
    """Tells the steps (kfp.local's subprocesses inherit the environment) how to record lineage:
    each writes its record into the run's spool folder, which :func:`_store_lineage` stores in
    the workspace's store beside the runs when the run ends (one ML Metadata start-up per run,
    not one per step). A store the caller set already wins; set to an empty value, nothing is
    recorded."""
    store_uri = os.environ.get(
        recording.STORE_ENV, os.path.join(os.path.abspath(runs_root), recording.STORE_FILE)
    )
    spool = os.path.join(run_dir, _SPOOL)
    values = {
        recording.STORE_ENV: store_uri,
        recording.SPOOL_ENV: spool if store_uri else "",
        recording.RUN_ENV: os.path.basename(run_dir),
        recording.MODEL_ENV: model_name or "",
    }
    if store_uri:
        os.makedirs(spool, exist_ok=True)
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if store_uri:
            _store_lineage(spool, store_uri, os.path.basename(run_dir))


# The folder of a run where its steps leave their lineage records until the run ends.
_SPOOL = "lineage-records"


def _store_lineage(spool: str, store_uri: str, run: str) -> None:
    """Stores the steps' lineage records: a failure is one warning line (the records stay in the
    run's folder), or an error when :data:`~components.lineage.recording.STRICT_ENV` is 1."""
    try:
        recording.store_spooled(spool, store_uri, run)
    except Exception as err:  # a run never fails for lineage unless asked to
        message = f"Lineage of run {run} not stored in {store_uri} ({type(err).__name__}: {err})"
        if os.environ.get(recording.STRICT_ENV) == "1":
            raise RunFailed(f"{message}; its records are in {spool}.") from err
        print(f"warning: {message}; its records stay in {spool}.", file=sys.stderr)
        return
    with contextlib.suppress(OSError):
        os.rmdir(spool)


def run_local(
    pipeline_func: Any,
    arguments: dict[str, Any],
    runs_root: str,
    verbose: bool = False,
    terminal: TextIO | None = None,
) -> RunReport:
    """Runs a pipeline with ``kfp.local``'s SubprocessRunner in this Python environment.

    Args:
        pipeline_func: A ``@dsl.pipeline`` function.
        arguments: Its parameters.
        runs_root: Under it, a folder per run holds the artifacts and ``pipeline.log``.
        verbose: Also show everything the steps print.
        terminal: Where progress lines go (stdout by default).

    Returns:
        The pipeline's outputs, step times and where the log is.

    Raises:
        RunFailed: A step failed; the message is the step's own when it reported one.
    """
    from kfp import local

    terminal = terminal or sys.stdout
    run_dir = new_run_dir(runs_root)
    log_path = os.path.join(run_dir, "pipeline.log")
    # use_venv=False: the steps run in this interpreter's environment, which has the project.
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=run_dir)
    began = time.monotonic()
    with open(log_path, "w") as log:
        reporter = StepReporter(log, terminal, verbose)
        with (
            contextlib.redirect_stdout(reporter),
            warnings.catch_warnings(),
            _interpreter_replacement_fixed(),
            _lineage_environment(runs_root, run_dir, arguments.get("model_name")),
        ):
            if not verbose:
                warnings.simplefilter("ignore")
            try:
                task = pipeline_func(**arguments)
            except RuntimeError as err:
                failure = err
            else:
                failure = None
    if failure is not None:
        raise RunFailed(_failure_message(log_path, reporter.times, failure)) from failure
    return RunReport(
        run_dir, log_path, dict(task.outputs), reporter.times, time.monotonic() - began
    )


def _failure_message(log_path: str, times: StepTimes, err: Exception) -> str:
    with open(log_path) as log:
        text = log.read()
    reported = find_reported_error(text)
    if reported:
        return f"The {reported['step']} step stopped: {reported['message']}\n(full log: {log_path})"
    step = times.last_started or "pipeline"
    errors = [
        line.strip()
        for line in _ANSI.sub("", text).splitlines()
        if re.match(r"\s*\w+(\.\w+)*(Error|Exception): ", line)
    ]
    cause = errors[-1] if errors else str(err)
    return f"The {step} step failed unexpectedly: {cause}\nSee the full log: {log_path}"
