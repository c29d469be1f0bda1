"""KFP wrapper of :mod:`components.monitor.core`."""

from kfp import dsl
from kfp.dsl import HTML, Artifact, Markdown, Metrics, Output

from components.images import PIPELINE_IMAGE


@dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)
def monitor(
    prediction_log: str,
    registry: str,
    model_name: str,
    report: Output[HTML],
    summary: Output[Markdown],
    metrics: Output[Metrics],
    decision: Output[Artifact],
    min_rows: int = 200,
    numeric_threshold: float = 0.15,
    categorical_threshold: float = 0.15,
    decay_tolerance: float = 0.05,
    windows_in_a_row: int = 2,
    label_lookback_hours: float = 72.0,
    settle_seconds: float = 90.0,
) -> None:
    """Skew, drift and decay of the served traffic since the last monitor run, and whether to
    retrain.

    Args:
        prediction_log: The prediction log (the log sink's PREDICTION_LOG).
        registry: The registry the served versions are in.
        model_name: The model.
        report: The self-contained HTML report, for the KFP UI.
        summary: The same as Markdown.
        metrics: Skew and drift per feature, rows, labelled rows.
        decision: ``retrain`` (bool), ``reasons``, ``features`` (skewed or drifted), ``version``,
            ``rows``, ``window`` (its folder in the log, where the trigger keeps its outcome)
            as metadata; the whole decision as JSON.
        min_rows: Fewest rows in a window to decide on.
        numeric_threshold: Jensen-Shannon divergence above which a numeric feature moved.
        categorical_threshold: L-infinity distance above which a categorical feature moved.
        decay_tolerance: How far the primary metric on labelled rows may fall.
        windows_in_a_row: Windows that must say retrain in a row before it is acted on.
        label_lookback_hours: Labels arriving in a window are joined to predictions up to this
            long before them.
        settle_seconds: A window ends this long before now (rows reach the log late).
    """
    import json

    from components.errors import step
    from components.lineage.recording import step as lineage_step
    from components.metadata import record
    from components.monitor import core
    from components.monitor import report as reports
    from components.monitor.config import MonitorConfig

    with (
        lineage_step(
            "monitor",
            {"prediction_log": prediction_log, "registry": registry, "model_name": model_name},
            {},
            {"decision": decision, "report": report},
            model_name=model_name,
        ),
        step("monitor"),
    ):
        config = MonitorConfig(
            min_rows=min_rows,
            numeric_threshold=numeric_threshold,
            categorical_threshold=categorical_threshold,
            decay_tolerance=decay_tolerance,
            windows_in_a_row=windows_in_a_row,
            label_lookback_hours=label_lookback_hours,
            settle_seconds=settle_seconds,
        )
        try:
            result, window, train, previous = core.monitor(
                prediction_log, registry, model_name, config
            )
        except core.NoTraffic as quiet:
            # A recurring run with nothing served since the last one is not a failure.
            for target, text in ((report.path, f"<p>{quiet}</p>"), (summary.path, str(quiet))):
                with open(target, "w") as f:
                    f.write(text)
            with open(decision.path, "w") as f:
                json.dump({"retrain": False, "reasons": [str(quiet)]}, f)
            record(decision, {"retrain": False, "reasons": [str(quiet)], "rows": 0})
            return
        texts, _ = reports.keep(prediction_log, result, window, train, previous)
        with open(report.path, "w") as f:
            f.write(texts[reports.HTML_FILE])
        with open(summary.path, "w") as f:
            f.write(texts[reports.MARKDOWN_FILE])
        with open(decision.path, "w") as f:
            json.dump(result.to_json(), f, indent=2)
        metrics.log_metric("rows", result.rows)
        metrics.log_metric("labelled_rows", result.labelled_rows)
        for check in result.features:
            for kind, value in (("skew", check.skew), ("drift", check.drift)):
                if value is not None:
                    metrics.log_metric(f"{kind}_{check.feature}", round(value, 6))
        flagged = [c.feature for c in result.features if c.skewed or c.drifted]
        record(
            decision,
            {
                "retrain": result.retrain,
                "reasons": result.reasons,
                "features": flagged,
                "version": result.version,
                "rows": result.rows,
                # Text: ML Metadata keeps a number to 6 digits, which may not name the folder.
                "window": core.MonitorState.window(result.window_end),
            },
        )
