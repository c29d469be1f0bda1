"""KFP wrapper of :mod:`components.evaluate.core`."""

from typing import Dict, List, Optional

from kfp import dsl
from kfp.dsl import (
    Artifact,
    ClassificationMetrics,
    Dataset,
    Input,
    Markdown,
    Metrics,
    Model,
    Output,
)

from components.images import PIPELINE_IMAGE


@dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)
def evaluate(
    eval_data: Input[Dataset],
    model: Input[Model],
    transform_graph: Input[Artifact],
    baseline: Input[Model],
    labelled_eval: Input[Dataset],
    metrics: Output[Metrics],
    classification_metrics: Output[ClassificationMetrics],
    report: Output[Markdown],
    blessing: Output[Artifact],
    thresholds: Optional[Dict[str, Dict[str, float]]] = None,
    min_improvement: float = 0.0,
    min_labelled_rows: int = 30,
    beam_pipeline_args: Optional[List[str]] = None,
) -> None:
    """Scores the model on the eval split and blesses it or not.

    Args:
        eval_data: The eval split.
        model: The candidate SavedModel.
        transform_graph: The transform (its spec gives the task, classes and label statistics).
        baseline: The model to improve on (resolve_baseline's output; metadata ``found``).
        labelled_eval: The prediction log's labelled rows in the eval split (ingest's; no rows
            when the run joined no log).
        metrics: Scalar metrics for the KFP UI.
        classification_metrics: Confusion matrix (and ROC curve for two classes).
        report: The evaluation as Markdown.
        blessing: The decision: metadata ``blessed`` and ``reasons``; the evaluation as JSON.
        thresholds: Bounds per metric, e.g. ``{"accuracy": {"lower_bound": 0.9}}``.
        min_improvement: Required improvement of the primary metric over the baseline.
        min_labelled_rows: Fewest labelled log rows to compare with the baseline on.
        beam_pipeline_args: Beam options to score the eval split on a Beam runner.
    """
    import dataclasses
    import json

    from components import constants
    from components.errors import step
    from components.evaluate import core
    from components.features import load_spec
    from components.lineage.recording import step as lineage_step
    from components.metadata import read, record

    with (
        lineage_step(
            "evaluate",
            {
                "thresholds": thresholds,
                "min_improvement": min_improvement,
                "min_labelled_rows": min_labelled_rows,
                "beam_pipeline_args": beam_pipeline_args,
            },
            {
                "eval_data": eval_data,
                "labelled_eval": labelled_eval,
                "model": model,
                "transform_graph": transform_graph,
                "baseline": baseline,
            },
            {"metrics": metrics, "report": report, "blessing": blessing},
        ),
        step("evaluate"),
    ):
        config = core.EvalConfig(thresholds or {}, min_improvement, min_labelled_rows)
        found = bool(read(baseline, constants.BASELINE_FOUND))
        result = core.evaluate(
            eval_data.path,
            model.path,
            load_spec(transform_graph.path),
            core.Baseline(int(read(baseline, constants.VERSION)), baseline.path) if found else None,
            config,
            labelled_eval.path if read(labelled_eval, constants.LABELLED_LOG) else None,
            beam_pipeline_args or (),
        )
        # What Metrics.log_metric does, without NaN; the labelled rows' beside the eval split's.
        record(metrics, result.metrics)
        for prefix, values in (
            ("labelled_", result.labelled_metrics),
            ("labelled_baseline_", result.labelled_baseline_metrics),
        ):
            record(metrics, {prefix + name: value for name, value in values.items()})
        if result.confusion_matrix:
            classification_metrics.log_confusion_matrix(
                [str(name) for name in result.classes], result.confusion_matrix
            )
        if result.roc_curve:
            classification_metrics.log_roc_curve(
                result.roc_curve["fpr"], result.roc_curve["tpr"], result.roc_curve["thresholds"]
            )
        with open(report.path, "w") as f:
            f.write(core.markdown_report(result))
        with open(blessing.path, "w") as f:
            json.dump(dataclasses.asdict(result), f, indent=2)
        record(
            blessing,
            {
                constants.BLESSED: result.blessed,
                constants.REASONS: result.reasons,
                constants.PRIMARY_METRIC: result.primary_metric,
                constants.BASELINE_VERSION: result.baseline_version,  # None without a baseline
                constants.METRICS: result.metrics,
            },
        )
