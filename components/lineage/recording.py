"""The one call a step makes to record its lineage, and the rule that it never breaks a run.

Where to record comes from the environment, so the cluster pipeline gets no new parameters:
``mlops run --local`` sets :data:`STORE_ENV` and :data:`RUN_ENV`, and kfp.local's steps (its
subprocesses) inherit them. Without :data:`STORE_ENV` nothing is recorded.
"""

import functools
import importlib.metadata
import logging
import os
import subprocess
from collections.abc import Mapping, Sequence

from components.lineage import store

# The SQLite file of the workspace's store.
STORE_ENV = "MLOPS_LINEAGE_STORE"
# The run's name: the run context.
RUN_ENV = "MLOPS_LINEAGE_RUN"
# "1": a lineage failure fails the step (for an audit trail) instead of one warning line.
STRICT_ENV = "MLOPS_LINEAGE_STRICT"
# Where `mlops run --local` keeps the store, beside the run folders.
STORE_FILE = "metadata.sqlite"

CODE_VERSION = "code_version"
STARTED = "started"
ENDED = "ended"

_PACKAGE = "mlops-suite"

logger = logging.getLogger(__name__)


class LineageError(Exception):
    """Recording lineage failed and :data:`STRICT_ENV` asks for that to fail the step."""


@functools.cache
def code_version() -> str:
    """The package version, plus ``+g<commit>`` when the code runs from a git checkout."""
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


def record(
    step: str,
    parameters: Mapping[str, object],
    inputs: Mapping[str, store.Artifact],
    outputs: Mapping[str, store.Artifact],
    started: float,
    ended: float,
    model_name: str | None = None,
    state: str = store.COMPLETE,
    environ: Mapping[str, str] | None = None,
    contexts: Sequence[tuple[str, str]] = (),
) -> store.Recorded | None:
    """Records one execution of ``step`` in the store the environment names, if any.

    Args:
        step: The step's name: the execution type.
        parameters: Its parameters (``None`` values are left out).
        inputs: Artifacts read, by input name.
        outputs: Artifacts written, by output name.
        started: Start time, seconds since the epoch.
        ended: End time, seconds since the epoch.
        model_name: The model the run trains: a context besides the run's.
        state: :data:`~components.lineage.store.COMPLETE` or ``FAILED``.
        environ: Where to read :data:`STORE_ENV` and the rest (``os.environ`` by default).
        contexts: More ``(type, name)`` contexts.

    Returns:
        The ids recorded, or ``None`` when nothing was (no store configured, or a failure that
        was logged as one warning line).

    Raises:
        LineageError: Recording failed and :data:`STRICT_ENV` is ``1``.
    """
    environ = os.environ if environ is None else environ
    path = environ.get(STORE_ENV)
    if not path:
        return None
    run = environ.get(RUN_ENV) or "unnamed-run"
    all_contexts = [(store.RUN_CONTEXT, run), *contexts]
    if model_name:
        all_contexts.append((store.MODEL_CONTEXT, model_name))
    execution = store.Execution(
        type_name=step,
        properties={
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
    try:
        from components.lineage.mlmd import sqlite_store

        return sqlite_store(path).record(execution)
    except Exception as err:  # any failure of the store: a run never stops for lineage
        if environ.get(STRICT_ENV) == "1":
            raise LineageError(
                f"Recording lineage of step {step!r} in {path} failed: {err}"
            ) from err
        logger.warning(
            "Lineage of step %r not recorded in %s (%s: %s); set %s=1 to make this an error.",
            step,
            path,
            type(err).__name__,
            err,
            STRICT_ENV,
        )
        return None


# The model name the run trains: a context for every step, even those that do not take it.
MODEL_ENV = "MLOPS_LINEAGE_MODEL"

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
}


def reference(environ: Mapping[str, str] | None = None) -> dict[str, str] | None:
    """Where this run's lineage is recorded (store, run context, model context), for a pushed
    version's metadata; ``None`` when nothing is recorded."""
    environ = os.environ if environ is None else environ
    if not environ.get(STORE_ENV):
        return None
    found = {
        "store": environ[STORE_ENV],
        "run": environ.get(RUN_ENV) or "unnamed-run",
        "model": environ.get(MODEL_ENV) or None,
    }
    return {key: value for key, value in found.items() if value}


def _artifact(name: str, artifact: object) -> store.Artifact:
    return store.Artifact(
        ARTIFACT_TYPES.get(name, store.GENERIC),
        artifact.uri,  # type: ignore[attr-defined]
        dict(artifact.metadata),  # type: ignore[attr-defined]
    )


def record_step(
    step: str,
    started: float,
    parameters: Mapping[str, object],
    inputs: Mapping[str, object],
    outputs: Mapping[str, object],
) -> store.Recorded | None:
    """What a component wrapper calls last: records its execution, with its KFP artifacts
    (anything with ``.uri`` and ``.metadata``) typed by :data:`ARTIFACT_TYPES`, in the run's
    context and the model name's (:data:`MODEL_ENV`). See :func:`record`.

    Args:
        step: The step's name.
        started: When the step began, seconds since the epoch.
        parameters: Its parameters.
        inputs: Its input artifacts by name.
        outputs: Its output artifacts by name, their metadata written.
    """
    import time

    return record(
        step,
        parameters,
        {name: _artifact(name, artifact) for name, artifact in inputs.items()},
        {name: _artifact(name, artifact) for name, artifact in outputs.items()},
        started=started,
        ended=time.time(),
        model_name=os.environ.get(MODEL_ENV) or None,
    )
