"""``mlops shadow report|replay``: compare a shadow version with the served one, from the
prediction log (:mod:`serving.shadow`).

- ``report`` reads the shadow rows a predictor wrote (``mlops-serve --shadow-version N``) or a
  replay wrote, joins them to what was served, prints the comparison and the decision, and
  keeps the report in the log (``<log>/shadow-reports/model=<m>/<time>.{md,json}``). It exits 0
  when the candidate may be promoted and 3 when not, so a script can gate on it.
- ``replay`` runs a registry version on the logged features of a window (for KServe's
  TensorFlow Serving runtime, which cannot hold a second version) and writes its answers as
  shadow rows.
"""

import argparse
import dataclasses
import json
import os
import time
from typing import Any

from components import settings
from components.errors import DataError

# The exit status of a report whose decision is not to promote.
NOT_PROMOTED = 3


def add_command(commands: Any, timestamp: Any) -> None:
    """Adds ``mlops shadow`` to the ``mlops`` parser; ``timestamp`` parses ISO 8601 times."""
    from serving.shadow import ShadowConfig

    shadow = commands.add_parser(
        "shadow", help="compare a shadow version with the served one, from the prediction log"
    )
    actions = shadow.add_subparsers(dest="action", required=True)
    report = actions.add_parser("report", help="the comparison, and whether to promote")
    replay = actions.add_parser(
        "replay", help="run a registry version on a window's logged requests as a shadow"
    )
    for parser in (report, replay):
        parser.add_argument("--log", required=True, metavar="DIR|URI", help="the prediction log")
        parser.add_argument("--model", help="the model (default: the one model in the log)")
        parser.add_argument("--since", type=timestamp, help="window start, ISO 8601")
        parser.add_argument("--until", type=timestamp, help="window end, ISO 8601 (default: now)")
    settings.add_arguments(report, ShadowConfig)
    report.add_argument(
        "--version", type=int, help="the candidate version (default: the newest shadowed)"
    )
    report.add_argument("--json", action="store_true", help="print JSON for tools")
    replay.add_argument("--registry", default="model-registry", help="where the version is")
    replay.add_argument("--version", type=int, required=True, help="the candidate version")


def command(args: argparse.Namespace, one_model: Any) -> int:
    """``mlops shadow``; ``one_model(log)`` names the log's one model."""
    from serving import prediction_log as pl

    model = args.model or one_model(args.log)
    predictions = pl.read(args.log, pl.PREDICTIONS, model, args.since, until=args.until)
    if predictions.num_rows == 0:
        raise DataError(f"No predictions of {model!r} in {args.log} in that window.")
    if args.action == "replay":
        return _replay(args, model, predictions)
    return _report(args, model, predictions)


def _replay(args: argparse.Namespace, model: str, predictions: Any) -> int:
    import uuid

    from components.registry import ModelRegistry
    from serving import prediction_log as pl
    from serving.shadow import replay_version

    rows = replay_version(predictions, ModelRegistry(args.registry), model, args.version)
    now = time.time()
    name = f"{int(now * 1000)}-replay-{uuid.uuid4().hex[:12]}.parquet"
    path = pl.LogStore(args.log).write(pl.SHADOW, model, pl.hour_of(now), name, rows)
    print(f"mlops: version {args.version} answered {rows.num_rows} logged rows of {model}")
    print(f"  shadow rows {path}")
    print(f"  next        mlops shadow report --log {args.log} --model {model}")
    return 0


def _report(args: argparse.Namespace, model: str, predictions: Any) -> int:
    from serving import prediction_log as pl
    from serving import shadow
    from serving.shadow import ShadowConfig

    config = settings.from_arguments(args, ShadowConfig)
    rows = pl.read(args.log, pl.SHADOW, model, args.since)
    if rows.num_rows == 0:
        raise DataError(
            f"No shadow rows of {model!r} in {args.log}: serve with --shadow-version N and the "
            "prediction log on, or run `mlops shadow replay`."
        )
    labels = pl.read(args.log, pl.LABELS, model)
    found = shadow.report(predictions, rows, labels, config, args.version)
    text = shadow.markdown(found)
    store = pl.LogStore(args.log)
    folder = f"{store.root}/shadow-reports/model={model}"
    if store.is_local:
        os.makedirs(folder, exist_ok=True)
    stamp = int(time.time() * 1000)
    for suffix, content in (("md", text), ("json", json.dumps(dataclasses.asdict(found)))):
        with store.fs.open_output_stream(f"{folder}/{stamp}.{suffix}") as f:
            f.write(content.encode())
    if args.json:
        print(json.dumps(dataclasses.asdict(found), indent=2))
    else:
        print(text, end="")
        print(f"\nKept in {folder}/{stamp}.md")
    return 0 if found.promote else NOT_PROMOTED
