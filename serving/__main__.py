"""``mlops-serve``: serve a pipeline-exported model with KServe's model server.

    mlops-serve --registry DIR [--model-name NAME] [--version N|latest] [--http-port P]
                [--grpc-port P] [--workers N [--worker-start-seconds S]]
    mlops-serve --model-dir /mnt/models --model-name NAME      # in the serving image on KServe

With ``--registry`` and no ``--model-name`` it serves the model pushed most recently.
"""

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from components import layout
from serving.http import DEFAULT_MAX_BODY_BYTES


def latest_model_name(registry: str) -> str:
    """The model in ``registry`` whose newest version was pushed last."""
    pushed = [
        (os.path.getmtime(os.path.join(registry, name, str(versions[-1]))), name)
        for name in (os.listdir(registry) if os.path.isdir(registry) else [])
        if (versions := layout.versions(os.path.join(registry, name)))
    ]
    if not pushed:
        raise SystemExit(
            f"error: no model in {registry!r}; train one first (make run) or pass --registry"
        )
    return max(pushed)[1]


def _version(text: str) -> int | None:
    if text == "latest":
        return None
    version = layout.version_number(text)
    if version is None or version < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a version number or 'latest'")
    return version


def _seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = 0.0
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give a number of seconds above 0")
    return seconds


def build_parser() -> argparse.ArgumentParser:
    """The ``mlops-serve`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="mlops-serve",
        description=__doc__.splitlines()[0],
        epilog="Each --flag-name also answers to --flag_name, the spelling KServe runtimes use.",
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--registry", help="model registry folder (TensorFlow Serving layout)")
    where.add_argument(
        "--model-dir", "--model_dir", help="a SavedModel, or a folder of version folders"
    )
    parser.add_argument(
        "--model-name", "--model_name", help="model name (default: the last one pushed)"
    )
    parser.add_argument(
        "--version",
        type=_version,
        default=None,
        metavar="N|latest",
        help="version to serve; 'latest' (default) follows new pushes",
    )
    parser.add_argument("--http-port", "--http_port", type=int, default=8080)
    parser.add_argument("--grpc-port", "--grpc_port", type=int, default=8081)
    parser.add_argument("--workers", type=int, default=1, help="HTTP worker processes")
    parser.add_argument(
        "--worker-start-seconds",
        "--worker_start_seconds",
        type=_seconds,
        default=120.0,
        help="with --workers > 1: a worker not started by then stops the server, saying why",
    )
    parser.add_argument(
        "--max-rows", "--max_rows", type=int, default=10_000, help="most rows per request"
    )
    parser.add_argument(
        "--max-body-bytes",
        "--max_body_bytes",
        type=int,
        default=DEFAULT_MAX_BODY_BYTES,
        help="larger request bodies get 413",
    )
    parser.add_argument(
        "--poll-seconds",
        "--poll_seconds",
        type=float,
        default=2.0,
        help="how often --version latest looks for a new version",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``mlops-serve`` and of the serving image."""
    args = build_parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        from kserve.errors import NoModelReady
    except ImportError:
        print(
            "error: mlops-serve runs in the serving environment: `make serve`, or "
            ".venv-serving/bin/mlops-serve",
            file=sys.stderr,
        )
        return 1
    from serving.http import install_body_limit
    from serving.model import ModelSource, ServedModel
    from serving.workers import ModelServer, WorkerStartError

    # kserve configures only its own loggers; give ours the same destination and level.
    handler = logging.StreamHandler()
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(process)d %(name)s %(levelname)s %(message)s")
    )
    serving_logger = logging.getLogger("serving")
    serving_logger.addHandler(handler)
    serving_logger.setLevel(logging.INFO)

    if args.registry:
        name = args.model_name or latest_model_name(args.registry)
        source = ModelSource(registry=args.registry, name=name, version=args.version)
    else:
        if not args.model_name:
            print("error: --model-dir needs --model-name (the name clients use)", file=sys.stderr)
            return 2
        name = args.model_name
        source = ModelSource(model_dir=args.model_dir, version=args.version)
    serving_logger.info("Serving %r from %s", name, source)
    model = ServedModel(name, source, args.max_rows, args.poll_seconds, args.max_body_bytes)
    model.load()
    install_body_limit(args.max_body_bytes)
    server = ModelServer(
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        workers=args.workers,
        worker_start_seconds=args.worker_start_seconds,
    )
    try:
        server.start([model])
    except NoModelReady:
        print(
            f"error: model {name!r} is not ready: nothing loadable at {source}; "
            "see the log line above",
            file=sys.stderr,
        )
        return 1
    except WorkerStartError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
