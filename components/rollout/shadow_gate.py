"""The rollout step's shadow gate: before a version takes any traffic, it answers the prediction
log's recent requests (a replay, :func:`serving.shadow.replay_version`) and is compared with
what was served, by the rules of ``mlops shadow report`` (:func:`serving.shadow.report`). A
version that the report says not to promote is not rolled out."""

import logging
import time

from components.registry import ModelRegistry
from components.rollout.blue_green import Step

logger = logging.getLogger(__name__)

NAME = "shadow replay"


def shadow_gate(
    log: str,
    registry: ModelRegistry,
    model: str,
    version: int,
    hours: int,
    min_rows: int,
    min_agreement: float,
) -> Step:
    """Replays the last ``hours`` of ``model``'s logged requests on ``version`` and judges it.

    Fewer than ``min_rows`` logged rows (a first deployment has none) decide nothing: the step
    passes and says so, as evaluate does with too few labelled rows.

    Raises:
        ConfigurationError: The registry has no such version.
        DataError: The version cannot answer the logged requests.
    """
    from serving import prediction_log as pl
    from serving import shadow

    predictions = pl.read(log, pl.PREDICTIONS, model, time.time() - hours * 3600)
    if predictions.num_rows < min_rows:
        detail = (
            f"{predictions.num_rows} logged row(s) of {model} in the last {hours} h, fewer than "
            f"{min_rows}: not compared"
        )
        logger.info("Shadow gate: %s", detail)
        return Step(NAME, True, detail, {}, {"logged_rows": predictions.num_rows})
    rows = shadow.replay_version(predictions, registry, model, version)
    config = shadow.ShadowConfig(min_rows=min_rows, min_agreement=min_agreement)
    found = shadow.report(predictions, rows, pl.read(log, pl.LABELS, model), config, version)
    values = {
        "rows": found.rows,
        "errors": found.errors,
        "agreement": None if found.agreement is None else round(found.agreement, 4),
        "mean_absolute_difference": found.mean_absolute_difference,
        "served_versions": found.served_versions,
        **{f"labelled_{key}": value for key, value in found.labelled.items()},
    }
    values = {key: value for key, value in values.items() if value is not None}
    logger.info("Shadow gate: %s", "; ".join(found.reasons))
    return Step(NAME, found.promote, "; ".join(found.reasons), {}, values)
