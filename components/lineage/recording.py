"""The one call a step makes to record its lineage, and the rule that it never breaks a run.

Where to record comes from the environment, so the pipelines get no new parameters:

- ``mlops run --local`` sets :data:`SPOOL_ENV`: each step (a kfp.local subprocess) writes its
  record there as JSON, and the runner stores them all in the workspace's store when the run
  ends (:func:`store_spooled`), so a step pays no ML Metadata start-up.
- :data:`STORE_ENV` names a store a step writes to itself: a SQLite file, or ``grpc://HOST:PORT``.
- In a KFP step's pod, KFP's own store and run (:mod:`components.lineage.kfp`).

Without any of them nothing is recorded.
"""

import contextlib
import functools
import importlib.metadata
import json
import logging
import os
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping, Sequence

from components.lineage import kfp, store

# A store a step writes to itself: a SQLite file's path, or grpc://HOST:PORT.
STORE_ENV = "MLOPS_LINEAGE_STORE"
# A folder each step writes its record into (JSON), for the runner to store at the end.
SPOOL_ENV = "MLOPS_LINEAGE_SPOOL"
# The run's name: the run context.
RUN_ENV = "MLOPS_LINEAGE_RUN"
# The model name the run trains: a context for every step, even those that do not take it.
MODEL_ENV = "MLOPS_LINEAGE_MODEL"
# "1": a lineage failure fails the step (for an audit trail) instead of one warning line.
STRICT_ENV = "MLOPS_LINEAGE_STRICT"
# The code version an image was built from (images/*/Dockerfile; `make images` passes it).
CODE_VERSION_ENV = "MLOPS_CODE_VERSION"
# Where `mlops run --local` keeps the store, beside the run folders.
STORE_FILE = "metadata.sqlite"

# Execution properties every step gets.
CODE_VERSION = "code_version"
STARTED = "started"
ENDED = "ended"
ERROR = "error"

# Execution types are the step's name under this prefix: KFP's store is shared with KFP's own
# types (system.*) and perhaps other tools'.
EXECUTION_PREFIX = "mlops."

_PACKAGE = "mlops-suite"

logger = logging.getLogger(__name__)


class LineageError(Exception):
    """Recording lineage failed and :data:`STRICT_ENV` asks for that to fail the step."""


def execution_type(step: str) -> str:
    """The execution type of a step: ``mlops.<step>``."""
    return EXECUTION_PREFIX + step


@functools.cache
def code_version() -> str:
    """What an image says it was built from (:data:`CODE_VERSION_ENV`), else the package
    version, plus ``+g<commit>`` when the code runs from a git checkout."""
    if os.environ.get(CODE_VERSION_ENV):
        return os.environ[CODE_VERSION_ENV]
    try:
        version = importlib.metadata.version(_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=os.path.dirname(os.path.abspath(__file__)),
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return version
    return f"{version}+g{commit}" if commit else version


def _open(uri: str) -> store.LineageStore:
    from components.lineage.mlmd import open_store

    return open_store(uri)


def _store(execution: store.Execution, environ: Mapping[str, str]) -> str | None:
    """Records ``execution`` where the environment says; returns where, or ``None``."""
    spool = environ.get(SPOOL_ENV)
    if spool:
        name = f"{execution.properties[STARTED]:.6f}-{execution.type_name}-{os.getpid()}.json"
        path = os.path.join(spool, name)
        with open(path + ".partial", "w") as f:
            json.dump(store.to_json(execution), f)
        os.replace(path + ".partial", path)  # the runner never reads half a record
        return spool
    uri = environ.get(STORE_ENV)
    if uri:
        run = environ.get(RUN_ENV) or "unnamed-run"
        _open(uri).record(store.with_context(execution, (store.RUN_CONTEXT, run)))
        return uri
    uri = kfp.address(environ)
    if uri:
        kfp.check_not_a_task(execution.properties)
        lineage = _open(uri)
        step = kfp.step_in_run(lineage.metadata_store, environ[kfp.POD_ENV])
        model = (store.MODEL_CONTEXT, step.model_name)
        if step.model_name and model not in execution.contexts:
            execution = store.with_context(execution, model)
        lineage.record(store.with_context(execution, (store.RUN_CONTEXT, step.run_id)))
        return uri
    return None


# The longest a step waits for its lineage to be recorded before it goes on without.
BUDGET_SECONDS = 60.0


def record(
    execution: store.Execution,
    environ: Mapping[str, str] | None = None,
    budget_seconds: float = BUDGET_SECONDS,
) -> str | None:
    """Records one execution where the environment says (see the module docstring), within
    ``budget_seconds``: a store slower than that is left behind, as a failure.

    Args:
        execution: What to record; the run's context is added here.
        environ: Where to look (``os.environ`` by default).
        budget_seconds: The longest to wait.

    Returns:
        Where it was recorded, or ``None`` when nothing was (nowhere configured, or a failure
        that was logged as one warning line).

    Raises:
        LineageError: Recording failed and :data:`STRICT_ENV` is ``1``.
    """
    environ = os.environ if environ is None else environ
    outcome: dict[str, object] = {}

    def attempt() -> None:
        try:
            outcome["where"] = _store(execution, environ)
        except Exception as err:  # any failure of the store: a run never stops for lineage
            outcome["error"] = err

    worker = threading.Thread(target=attempt, name="lineage", daemon=True)
    worker.start()
    worker.join(budget_seconds)
    if worker.is_alive():
        outcome["error"] = TimeoutError(f"the store did not answer within {budget_seconds:g} s")
    err = outcome.get("error")
    if err is None:
        return outcome.get("where")  # type: ignore[return-value]
    if environ.get(STRICT_ENV) == "1":
        raise LineageError(f"Recording the lineage of {execution.type_name} failed: {err}") from err  # type: ignore[misc]
    logger.warning(
        "Lineage of %s not recorded (%s: %s); set %s=1 to make this an error.",
        execution.type_name,
        type(err).__name__,
        " ".join(str(err).split()),
        STRICT_ENV,
    )
    return None


def store_spooled(spool: str, uri: str, run: str) -> int:
    """Stores the records the steps of run ``run`` wrote into ``spool``, in the order they
    started, into the store at ``uri``, and removes them. Returns how many were stored.

    Raises:
        Exception: Whatever the store raised; the records not yet stored stay in ``spool``.
    """
    names = sorted(n for n in os.listdir(spool) if n.endswith(".json"))
    if not names:
        return 0
    lineage = _open(uri)
    for name in names:
        path = os.path.join(spool, name)
        with open(path) as f:
            execution = store.from_json(json.load(f))
        lineage.record(store.with_context(execution, (store.RUN_CONTEXT, run)))
        os.remove(path)
    return len(names)


def execution(
    step: str,
    parameters: Mapping[str, object],
    inputs: Mapping[str, store.Artifact],
    outputs: Mapping[str, store.Artifact],
    started: float,
    ended: float,
    state: str = store.COMPLETE,
    model_name: str | None = None,
    contexts: Sequence[tuple[str, str]] = (),
) -> store.Execution:
    """What a step ran, as a record: its parameters (``None`` values left out), the code
    version, start and end, in the model name's context (and ``contexts``); the run's context is
    added where it is recorded."""
    all_contexts = list(contexts)
    if model_name:
        all_contexts.append((store.MODEL_CONTEXT, model_name))
    return store.Execution(
        type_name=execution_type(step),
        properties={
            DISPLAY_NAME: step,
            **{key: value for key, value in parameters.items() if value is not None},
            CODE_VERSION: code_version(),
            STARTED: started,
            ENDED: ended,
        },
        state=state,
        inputs=inputs,
        outputs=outputs,
        contexts=all_contexts,
    )


# The lineage type of each artifact the pipelines pass, by its input/output name (TFX's names);
# any other artifact (a report, a view) is a generic artifact.
ARTIFACT_TYPES = {
    "train_data": store.EXAMPLES,
    "eval_data": store.EXAMPLES,
    "statistics": store.EXAMPLE_STATISTICS,
    "schema": store.SCHEMA,
    "anomalies": store.EXAMPLE_ANOMALIES,
    "transform_graph": store.TRANSFORM_GRAPH,
    "model": store.MODEL,
    "baseline": store.MODEL,
    "metrics": store.MODEL_EVALUATION,
    "blessing": store.MODEL_BLESSING,
    "push_result": store.PUSHED_MODEL,
    "rollout_result": store.DEPLOYMENT,
}


def reference(environ: Mapping[str, str] | None = None) -> dict[str, str] | None:
    """Where this run's lineage is recorded (store, run context, model context), for a pushed
    version's metadata; ``None`` when nothing is recorded locally (on a cluster the run is the
    KFP run the version's metadata names already)."""
    environ = os.environ if environ is None else environ
    uri = environ.get(STORE_ENV)
    if not uri:
        return None
    found = {
        "store": uri,
        "run": environ.get(RUN_ENV) or "unnamed-run",
        "model": environ.get(MODEL_ENV) or None,
    }
    return {key: value for key, value in found.items() if value}


# What KFP's dashboard shows as the name of an execution or artifact (frontend/src/mlmd/
# MlmdUtils.ts getName, ArtifactList.tsx): the step's name, the output's name.
DISPLAY_NAME = "display_name"


def _artifact(name: str, artifact: object) -> store.Artifact:
    return store.Artifact(
        ARTIFACT_TYPES.get(name, store.GENERIC),
        artifact.uri,  # type: ignore[attr-defined]
        {DISPLAY_NAME: name, **artifact.metadata},  # type: ignore[attr-defined]
    )


def _artifacts(found: Mapping[str, object]) -> dict[str, store.Artifact]:
    # An optional input a run left out is None: nothing to record.
    return {name: _artifact(name, a) for name, a in found.items() if a is not None}


class StepLineage:
    """What :func:`step` records: the body may add parameters it works out."""

    def __init__(self, parameters: Mapping[str, object]) -> None:
        self.parameters = dict(parameters)


@contextlib.contextmanager
def step(
    name: str,
    parameters: Mapping[str, object],
    inputs: Mapping[str, object],
    outputs: Mapping[str, object],
    model_name: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Iterator[StepLineage]:
    """Records the body of a component wrapper as one execution of step ``name``: COMPLETE with
    its KFP artifacts (anything with ``.uri`` and ``.metadata``, typed by
    :data:`ARTIFACT_TYPES`) when it returns, FAILED with the error and no outputs when it raises.

    Args:
        name: The step's name.
        parameters: Its parameters; the body may add more to the yielded ``parameters``.
        inputs: Its input artifacts by name.
        outputs: Its output artifacts by name; their metadata is read when the body ends.
        model_name: The model's name, for a model context; :data:`MODEL_ENV` when ``None``.
        environ: Where to look (``os.environ`` by default).
    """
    environ = os.environ if environ is None else environ
    model_name = model_name or environ.get(MODEL_ENV) or None
    started = time.time()
    lineage = StepLineage(parameters)
    read = _artifacts(inputs)
    try:
        yield lineage
    except BaseException as err:
        failed = execution(
            name,
            {**lineage.parameters, ERROR: f"{type(err).__name__}: {err}"},
            read,
            {},
            started,
            time.time(),
            store.FAILED,
            model_name,
        )
        with contextlib.suppress(LineageError):  # the step's own error is the one to raise
            record(failed, environ)
        raise
    written = _artifacts(outputs)
    record(
        execution(
            name, lineage.parameters, read, written, started, time.time(), model_name=model_name
        ),
        environ,
    )
