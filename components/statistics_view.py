"""Self-contained HTML views of TFDV statistics: tables and inline SVG charts, no script and
nothing fetched from the internet, so a page renders in the KFP UI, offline and in an
air-gapped cluster alike (TFDV's Facets view loads Facets and a polyfill from the internet and is
blank there)."""

import html
from collections.abc import Mapping, Sequence

from tensorflow_metadata.proto.v0 import statistics_pb2

# One colour per dataset, in order (readable for the common colour-vision deficiencies).
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd")
STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.6em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.bad { color: #b00020; font-weight: 600; } .ok { color: #1b5e20; }
.legend span { display: inline-block; width: 0.9em; height: 0.9em; margin: 0 0.3em 0 1em; }
figure { margin: 0.4em 0 1.2em; }
"""


def features_of(stats: statistics_pb2.DatasetFeatureStatisticsList) -> dict:
    """Its features by name."""
    return {f.path.step[0]: f for f in stats.datasets[0].features} if stats.datasets else {}


def _distribution(feature) -> list[tuple[float, float, float]] | list[tuple[str, float]]:
    """(low, high, share) buckets of a numeric feature, or (value, share) of a categorical."""
    if feature.HasField("num_stats"):
        for histogram in feature.num_stats.histograms:
            if histogram.type == statistics_pb2.Histogram.STANDARD:
                total = sum(b.sample_count for b in histogram.buckets) or 1.0
                return [(b.low_value, b.high_value, b.sample_count / total)
                        for b in histogram.buckets]  # fmt: skip
        return []
    counts = feature.string_stats.rank_histogram.buckets or []
    pairs = [(b.label, b.sample_count) for b in counts] or [
        (v.value, v.frequency) for v in feature.string_stats.top_values
    ]
    total = sum(c for _, c in pairs) or 1.0
    return [(label, count / total) for label, count in pairs]


def chart(name: str, features: Sequence, labels: Sequence[str]) -> str:
    """An SVG of one feature's distribution in each dataset (``features`` are its
    FeatureNameStatistics, one per dataset, None where absent)."""
    present = [
        (f, label, colour)
        for f, label, colour in zip(features, labels, COLOURS, strict=False)
        if f is not None
    ]
    if not present:
        return ""
    width, height, pad = 520, 160, 28
    numeric = present[0][0].HasField("num_stats")
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + pad}" '
             f'role="img" aria-label="{html.escape(name)}">']  # fmt: skip
    if numeric:
        buckets = [(_distribution(f), colour) for f, _, colour in present]
        lows = [b[0] for dist, _ in buckets for b in dist]
        highs = [b[1] for dist, _ in buckets for b in dist]
        if not lows:
            return ""
        low, high = min(lows), max(highs)
        span = (high - low) or 1.0
        top = max((b[2] / max((b[1] - b[0]) / span, 1e-9) for dist, _ in buckets for b in dist),
                  default=1.0) or 1.0  # fmt: skip
        for dist, colour in buckets:
            for b_low, b_high, share in dist:
                x = pad + (b_low - low) / span * (width - 2 * pad)
                w = max((b_high - b_low) / span * (width - 2 * pad), 1.0)
                density = share / max((b_high - b_low) / span, 1e-9)
                h = density / top * (height - pad)
                parts.append(f'<rect x="{x:.1f}" y="{height - h:.1f}" width="{w:.1f}" '
                             f'height="{h:.1f}" fill="{colour}" fill-opacity="0.45"/>')  # fmt: skip
        parts.append(f'<text x="{pad}" y="{height + 18}" font-size="11">{low:.4g}</text>')
        parts.append(f'<text x="{width - pad}" y="{height + 18}" font-size="11" '
                     f'text-anchor="end">{high:.4g}</text>')  # fmt: skip
    else:
        shares: dict[str, list[float]] = {}
        for index, (f, _, _) in enumerate(present):
            for value, share in _distribution(f):
                shares.setdefault(value, [0.0] * len(present))[index] = share
        values = sorted(shares, key=lambda v: -max(shares[v]))[:12]
        top = max((max(shares[v]) for v in values), default=1.0) or 1.0
        row = (height - 4) / max(len(values), 1)
        bar = row / (len(present) + 0.5)
        for i, value in enumerate(values):
            y = 2 + i * row
            parts.append(f'<text x="{pad + 118}" y="{y + row / 2 + 4:.1f}" font-size="11" '
                         f'text-anchor="end">{html.escape(value[:20])}</text>')  # fmt: skip
            for j, (_, _, colour) in enumerate(present):
                w = shares[value][j] / top * (width - pad - 130)
                parts.append(f'<rect x="{pad + 122}" y="{y + j * bar:.1f}" width="{w:.1f}" '
                             f'height="{bar:.1f}" fill="{colour}"/>')  # fmt: skip
    parts.append("</svg>")
    return "".join(parts)


def _cell(feature) -> list[str]:
    common = feature.num_stats.common_stats if feature.HasField("num_stats") else (
        feature.string_stats.common_stats)  # fmt: skip
    count = common.num_non_missing + common.num_missing
    missing = f"{common.num_missing / count:.1%}" if count else "-"
    if feature.HasField("num_stats"):
        n = feature.num_stats
        return [f"{common.num_non_missing:,}", missing, f"{n.mean:.4g}", f"{n.std_dev:.4g}",
                f"{n.min:.4g}", f"{n.max:.4g}"]  # fmt: skip
    s = feature.string_stats
    top = s.top_values[0].value if s.top_values else "-"
    return [f"{common.num_non_missing:,}", missing, f"{s.unique:,} unique", html.escape(top),
            "", ""]  # fmt: skip


def legend(labels: Sequence[str]) -> str:
    """The colour of each dataset."""
    return (
        '<p class="legend">'
        + "".join(
            f'<span style="background:{c}"></span>{html.escape(label)}'
            for label, c in zip(labels, COLOURS, strict=False)
        )
        + "</p>"
    )


def page(title: str, body: str) -> str:
    """A whole HTML document with the inline style."""
    return (f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{html.escape(title)}"
            f"</title><style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>{body}"
            "</body></html>")  # fmt: skip


def statistics_html(
    statistics: Mapping[str, statistics_pb2.DatasetFeatureStatisticsList], title: str
) -> str:
    """Every feature of each dataset (e.g. train and eval): a table and a chart per feature."""
    labels = list(statistics)
    by_dataset = [features_of(statistics[label]) for label in labels]
    names = sorted({name for features in by_dataset for name in features})
    rows = [f"{html.escape(label)}: {s.datasets[0].num_examples:,} rows"
            for label, s in statistics.items() if s.datasets]  # fmt: skip
    body = [legend(labels), "<p>" + " · ".join(rows) + "</p>"]
    for name in names:
        body.append(f"<h2>{html.escape(name)}</h2><table><tr><th>dataset</th><th>present</th>"
                    "<th>missing</th><th>mean / unique</th><th>std / top</th><th>min</th>"
                    "<th>max</th></tr>")  # fmt: skip
        for label, features in zip(labels, by_dataset, strict=True):
            if name in features:
                cells = "".join(f"<td>{c}</td>" for c in _cell(features[name]))
                body.append(f"<tr><td>{html.escape(label)}</td>{cells}</tr>")
        body.append("</table>")
        body.append(f"<figure>{chart(name, [f.get(name) for f in by_dataset], labels)}</figure>")
    return page(title, "".join(body))
