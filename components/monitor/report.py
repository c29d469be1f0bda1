"""The monitor's reports: Markdown, and a self-contained HTML page with a chart per skewed or
drifted feature (served against training, and against the previous window)."""

import datetime as dt
import html

from components import statistics_view
from components.monitor.core import MonitorResult, MonitorState

MARKDOWN_FILE = "report.md"
HTML_FILE = "report.html"


def _when(seconds: float | None) -> str:
    if seconds is None:
        return "the first prediction"
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _value(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def markdown(result: MonitorResult) -> str:
    """The decision and the per-feature distances as Markdown."""
    verdict = "**retrain**" if result.retrain else "no retraining"
    lines = [
        f"# Monitor: {result.model} version {result.version}",
        "",
        f"Window {_when(result.window_start)} to {_when(result.window_end)}: {result.rows:,} "
        f"rows, {result.labelled_rows:,} labelled. Decision: {verdict}.",
        "",
        *[f"- {reason}" for reason in result.reasons],
        "",
    ]
    if result.features:
        lines += [
            "| feature | comparator | skew | drift | threshold | verdict |",
            "|---|---|---|---|---|---|",
        ]
        for check in result.features:
            flags = [k for k, f in (("skewed", check.skewed), ("drifted", check.drifted)) if f]
            lines.append(
                f"| {check.feature} | {check.comparator} | {_value(check.skew)} | "
                f"{_value(check.drift)} | {check.threshold:g} | {', '.join(flags) or 'ok'} |"
            )
    if result.decay:
        d = result.decay
        lines += [
            "",
            f"Decay: {d['metric']} {d['served']:.4f} on {d['rows']} labelled rows; "
            f"evaluated {_value(d['evaluated'])}.",
        ]
    return "\n".join(lines) + "\n"


def html_page(result: MonitorResult, window, train, previous) -> str:
    """The decision, the table, and a chart per skewed or drifted feature."""
    verdict = (
        '<span class="bad">retrain</span>'
        if result.retrain
        else '<span class="ok">no retraining</span>'
    )
    body = [
        f"<p>Window {_when(result.window_start)} to {_when(result.window_end)}: "
        f"{result.rows:,} rows, {result.labelled_rows:,} labelled. Decision: {verdict}.</p><ul>",
        *[f"<li>{html.escape(reason)}</li>" for reason in result.reasons],
        "</ul>",
    ]
    if result.features:
        body.append(
            "<table><tr><th>feature</th><th>comparator</th><th>skew</th><th>drift</th>"
            "<th>threshold</th><th>verdict</th></tr>"
        )
        for check in result.features:
            flagged = check.skewed or check.drifted
            verdict_cell = ", ".join(
                k for k, f in (("skewed", check.skewed), ("drifted", check.drifted)) if f
            )
            body.append(
                f"<tr><td>{html.escape(check.feature)}</td><td>{check.comparator}</td>"
                f"<td>{_value(check.skew)}</td><td>{_value(check.drift)}</td>"
                f'<td>{check.threshold:g}</td><td class="{"bad" if flagged else "ok"}">'
                f"{verdict_cell or 'ok'}</td></tr>"
            )
        body.append("</table>")
    datasets = {"served (this window)": window, "training": train}
    if previous is not None:
        datasets["previous window"] = previous
    labels = list(datasets)
    features = [statistics_view.features_of(s) for s in datasets.values()]
    flagged = [c.feature for c in result.features if c.skewed or c.drifted]
    if flagged:
        body.append("<h2>Skewed or drifted features</h2>" + statistics_view.legend(labels))
    for name in flagged:
        chart = statistics_view.chart(name, [f.get(name) for f in features], labels)
        body.append(f"<h2>{html.escape(name)}</h2><figure>{chart}</figure>")
    title = f"Monitor: {result.model} version {result.version}"
    return statistics_view.page(title, "".join(body))


def keep(log: str, result: MonitorResult, window, train, previous) -> tuple[dict[str, str], str]:
    """Renders both reports and keeps them with the window's decision and statistics in the log.

    Returns:
        The reports by file name, and the window's folder.
    """
    texts = {
        MARKDOWN_FILE: markdown(result),
        HTML_FILE: html_page(result, window, train, previous),
    }
    return texts, MonitorState(log, result.model).save(result, window, texts)
