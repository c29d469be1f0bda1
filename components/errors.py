"""Errors a step reports to people, and how it reports them.

A step that fails on bad input raises a subclass of :class:`PipelineInputError`; a rollout
whose new version does not come to serve raises :class:`RolloutFailed`, which is not bad input
but says as plainly what happened and what to look at. The KFP wrapper of each component runs
its body in :func:`step`, which logs the message of either on one marked line before the step
exits non-zero; ``mlops run`` finds that line in the step's log and prints the message alone,
without a traceback. On a cluster the same line is in the pod log.
"""

import contextlib
import json
import logging
import os
import sys
from collections.abc import Iterator

ERROR_MARKER = "MLOPS-STEP-ERROR "

logger = logging.getLogger(__name__)


class PipelineInputError(Exception):
    """Input a user can fix: a bad path, a missing column, data that fails validation."""


class DataError(PipelineInputError):
    """The data cannot be read or does not have what the pipeline needs."""


class ValidationFailed(PipelineInputError):
    """TFDV found anomalies in the data that stop the run."""


class ConfigurationError(PipelineInputError):
    """A parameter value is out of range or inconsistent with the data."""


class RolloutFailed(Exception):
    """A new model version did not come to serve in time, or its rollout failed; what served
    before serves again and the version was taken out of the registry. The message says why
    (the cluster's conditions, the new pods' reasons)."""


class TriggerFailed(Exception):
    """The KFP API did not take a retraining run (it did not answer, or refused the run); the
    monitor's decision to retrain stands for its next run. The message says what answered."""


# What :func:`step` reports on its marked line, and ``mlops`` prints without a traceback.
REPORTED_ERRORS = (PipelineInputError, RolloutFailed, TriggerFailed)


@contextlib.contextmanager
def step(name: str) -> Iterator[None]:
    """Runs the body of a pipeline step: logging set up, and an error of
    :data:`REPORTED_ERRORS` raised inside written as one marked line before it propagates.

    Args:
        name: The step's name, shown to the user with the message.
    """
    # The step runs in its own process (kfp.local or a pod); quiet TensorFlow's C++ start-up
    # chatter before anything imports it, unless the user set the level.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True
    )
    try:
        yield
    except REPORTED_ERRORS as err:
        line = json.dumps({"step": name, "message": str(err)})
        print(f"{ERROR_MARKER}{line}", file=sys.stderr, flush=True)
        raise


def kubernetes_message(err: Exception) -> str:
    """The message of the ``Status`` body the Kubernetes API refused a request with (a
    ``kubernetes.client`` ``ApiException``), or "" when it has none."""
    try:
        return str(json.loads(err.body).get("message") or "")
    except (TypeError, ValueError, AttributeError):
        return ""


def find_reported_error(log_text: str) -> dict | None:
    """Returns the last error a step reported in a log (``{"step", "message"}``), if any."""
    for line in reversed(log_text.splitlines()):
        _, found, payload = line.partition(ERROR_MARKER)
        if found:
            with contextlib.suppress(json.JSONDecodeError):
                return json.loads(payload)
    return None
