"""``mlops-serve``: serve a pipeline-exported model with KServe's model server.

    mlops-serve --registry DIR [--model-name NAME] [--version N|latest] [--http-port P]
                [--grpc-port P] [--workers N [--worker-start-seconds S]] [KServe's flags]
    mlops-serve --model-dir /mnt/models --model-name NAME      # in the serving image on KServe

With ``--registry`` and no ``--model-name`` it serves the model pushed most recently. KServe's
server flags come from KServe's own parser (``kserve.model_server.parser``, as KServe's model
servers take them); this module adds the project's.
"""

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from components import layout, settings
from serving.config import ServingConfig

# KServe spells its flags with underscores. mlops-serve spelled these with hyphens before it took
# KServe's parser, and the README and images/serving/Dockerfile still do.
_HYPHENATED_KSERVE_FLAGS = {
    "--http-port": "--http_port",
    "--grpc-port": "--grpc_port",
    "--model-name": "--model_name",
}
# KServe's flags that kserve.ModelServer takes as arguments. kserve reads the others it uses
# (--configure_logging, --log_config_file) from the command line itself, when it is imported.
_KSERVE_SERVER_ARGS = (
    "http_port",
    "grpc_port",
    "workers",
    "max_threads",
    "max_asyncio_workers",
    "enable_grpc",
    "enable_docs_url",
    "enable_latency_logging",
    "access_log_format",
)


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


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults in the help (KServe's help texts leave them to the formatter, as its parser
    does); the description and epilog as written (wrapping would break flags at a hyphen)."""


def kserve_spelling(argv: Sequence[str]) -> list[str]:
    """``argv`` with ``--http-port``, ``--grpc-port`` and ``--model-name`` (also as
    ``--flag=value``) spelled as KServe's parser spells them."""
    spelled = []
    for arg in argv:
        flag, equals, value = arg.partition("=")
        spelled.append(_HYPHENATED_KSERVE_FLAGS.get(flag, flag) + equals + value)
    return spelled


def build_parser() -> argparse.ArgumentParser:
    """The ``mlops-serve`` argument parser: KServe's server flags and this project's."""
    from kserve import model_server

    parser = argparse.ArgumentParser(
        prog="mlops-serve",
        usage="%(prog)s (--registry DIR | --model-dir DIR) [--model-name NAME] [options]",
        description="Serves a pipeline-exported model with KServe's model server.\n"
        "With --registry and no --model-name it serves the model pushed last.",
        parents=[model_server.parser],
        formatter_class=_HelpFormatter,
        epilog="KServe's flags (options above) keep KServe's spelling, e.g. --max_threads;\n"
        "--http-port, --grpc-port and --model-name work too. The mlops-serve flags\n"
        "take hyphens or underscores: --max-rows or --max_rows.",
    )
    # KServe's --model_name defaults to "model"; here no name means the model pushed last. This
    # changes the action itself, which parents= shares with kserve's parser: kserve parsed the
    # command line with it once, when it was imported, and does not parse again.
    parser.set_defaults(model_name=None)
    own = parser.add_argument_group("mlops-serve")
    where = own.add_mutually_exclusive_group(required=True)
    where.add_argument("--registry", help="model registry folder (TensorFlow Serving layout)")
    where.add_argument(
        "--model-dir", "--model_dir", help="a SavedModel, or a folder of version folders"
    )
    own.add_argument(
        "--version",
        type=_version,
        default="latest",
        metavar="N|latest",
        help="version to serve; 'latest' follows new pushes",
    )
    settings.add_arguments(own, ServingConfig, underscores=True, default_in_help=False)
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """``argv`` (default: the command line) parsed by :func:`build_parser`."""
    return build_parser().parse_args(kserve_spelling(sys.argv[1:] if argv is None else argv))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``mlops-serve`` and of the serving image."""
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
    args = parse_args(argv)
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
    config = settings.from_arguments(args, ServingConfig)
    model = ServedModel(name, source, config)
    model.load()
    install_body_limit(args.max_body_bytes)
    server = ModelServer(
        worker_start_seconds=args.worker_start_seconds,
        **{flag: getattr(args, flag) for flag in _KSERVE_SERVER_ARGS},
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
