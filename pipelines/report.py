"""What ``mlops run`` shows when a run finished: the summary of its outputs, and the run's views
linked into its folder under names a browser or editor opens directly."""

import glob
import os
from typing import Any

from components import constants

# Views a run links into its folder under names a browser or editor opens directly.
VIEWS = (
    ("statistics", "validate", "statistics_view", "statistics.html"),
    ("evaluation", "evaluate", "report", "evaluation.md"),
    ("training", "train", "training_report", "training.md"),
)


def link_views(run_dir: str) -> dict[str, str]:
    """Links each view artifact of a run as ``<run dir>/<name>.<ext>``; returns label → path."""
    links = {}
    for label, task, output, file_name in VIEWS:
        matches = glob.glob(os.path.join(run_dir, "*", task, output))
        if matches:
            link = os.path.join(run_dir, file_name)
            if not os.path.lexists(link):
                os.symlink(os.path.relpath(matches[0], run_dir), link)
            links[label] = link
    return links


def _shown(path: str) -> str:
    """A path relative to the working folder when it is inside it, else absolute."""
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


def summary(report: Any, model_name: str | None = None, runs_dir: str = "runs") -> str:
    """The human summary of a finished run.

    Args:
        report: What the run produced.
        model_name: The model's name, for the ``mlops lineage`` command of a pushed version.
        runs_dir: The workspace the run recorded its lineage in.
    """
    out = report.outputs
    c = constants
    train, evaluation = out["train_data"].metadata, out["eval_data"].metadata
    anomalies = out["anomalies"].metadata.get(c.ANOMALIES, [])
    blessing, pushed = out["blessing"].metadata, out["push_result"].metadata
    values = out["metrics"].metadata
    order = c.CLASSIFICATION_METRICS + c.REGRESSION_METRICS
    metrics = " · ".join(f"{name} {values[name]:.4f}" for name in order if name in values)
    model = out["model"].metadata
    times = " · ".join(f"{name} {secs:.1f} s" for name, secs in report.times.seconds.items())
    train_rows, eval_rows = int(train[c.NUM_ROWS]), int(evaluation[c.NUM_ROWS])
    from_log = int(train.get(c.LABELLED_ROWS, 0)) + int(evaluation.get(c.LABELLED_ROWS, 0))
    joined = f", {from_log} of them the prediction log's labelled rows" if from_log else ""
    lines = [
        "",
        "Summary",
        f"  data       {train_rows + eval_rows} rows: {train_rows} train, {eval_rows} eval "
        f"(fingerprint {train[c.FINGERPRINT]}){joined}",
        f"  anomalies  {'; '.join(anomalies) if anomalies else 'none'}",
        f"  training   {int(model[c.EPOCHS_RUN])} epochs, {model[c.STRATEGY]} strategy with "
        f"{int(model[c.REPLICAS])} replica(s), task {model[c.TASK]}",
        f"  metrics    {metrics} (eval split)",
        f"  blessed    {'yes' if blessing[c.BLESSED] else 'no'}: {'; '.join(blessing[c.REASONS])}",
    ]
    if pushed[c.PUSHED]:
        version, destination = int(pushed[c.VERSION]), pushed[c.DESTINATION]
        lines.append(f"  model      pushed as version {version}: {destination}")
        if model_name:
            workspace = "" if runs_dir == "runs" else f" --runs-dir {runs_dir}"
            lines.append(f"  lineage    mlops lineage {model_name}:{version}{workspace}")
    else:
        lines.append("  model      not pushed (not blessed); the registry is unchanged")
    for label, path in link_views(report.run_dir).items():
        lines.append(f"  {label:<10} {_shown(path)}")
    lines += [
        f"  log        {_shown(report.log_path)}",
        f"  wall time  {times} · total {report.total_seconds:.1f} s",
    ]
    return "\n".join(lines)
