"""``mlops``: run the training pipeline locally, or compile it for a cluster.

mlops run --local [--data PATH_OR_URI] [--label COLUMN] [--model-name NAME] ...
mlops compile [--output PATH] [--schema SCHEMA.pbtxt] [--gpus N]
mlops upload [--host URL] | mlops submit [--host URL] [--param K=V ...]
"""

import argparse
import contextlib
import io
import json
import logging
import os
import sys
import warnings
from collections.abc import Sequence
from typing import Any

import yaml

from components import beam, settings
from components.beam import BeamConfig
from components.errors import REPORTED_ERRORS, ConfigurationError, PipelineInputError
from components.evaluate.blessing import EvalConfig
from components.ingest.config import IngestConfig
from components.monitor.config import MonitorConfig
from components.train.config import TrainConfig
from components.transform.config import TransformConfig
from pipelines import rollout_commands, shadow
from pipelines.arguments import parse_param, parse_threshold, typed_params
from pipelines.cluster_training import OBJECT_STORE_SECRET, PIPELINE_NAME
from pipelines.parameters import TRAINING_CONFIGS, RunConfig

DEFAULT_OUTPUT = os.path.join("pipelines", "compiled", "training.yaml")
# kubectl port-forward -n kubeflow svc/ml-pipeline 8888:8888 and svc/ml-pipeline-ui 8080:80
DEFAULT_KFP_HOST = "http://localhost:8888"
DEFAULT_KFP_UI = "http://localhost:8080"


def _add_run_command(commands: Any) -> None:
    run = commands.add_parser("run", help="run the training pipeline (embedded, with kfp.local)")
    run.add_argument(
        "--local",
        action="store_true",
        default=True,
        help="run embedded on this machine with kfp.local (the only mode of `run`; "
        "cluster runs are started with `mlops submit`)",
    )
    # Every flag but --schema, --threshold and --beam-pipeline-arg (whose command-line forms
    # differ from the parameter's) comes from a step config (pipelines/parameters.py).
    data = run.add_argument_group("data")
    settings.add_arguments(data, RunConfig, ["data_uri", "label"])
    settings.add_arguments(data, IngestConfig)
    data.add_argument("--schema", help="curated TFDV schema (text format) to validate against")
    data.add_argument(
        "--beam-pipeline-arg",
        action="append",
        default=[],
        metavar="ARG",
        help=settings.help_text(BeamConfig, "beam_pipeline_args") + "; repeatable",
    )
    model = run.add_argument_group("model")
    settings.add_arguments(model, RunConfig, ["model_name", "registry"])
    settings.add_arguments(model, TransformConfig)
    settings.add_arguments(model, TrainConfig)
    blessing = run.add_argument_group("blessing")
    blessing.add_argument(
        "--threshold",
        type=parse_threshold,
        action="append",
        default=[],
        metavar="METRIC>=VALUE",
        help=settings.help_text(EvalConfig, "thresholds") + "; repeatable",
    )
    settings.add_arguments(blessing, EvalConfig, ["min_improvement", "min_labelled_rows"])
    run.add_argument("--runs-dir", default="runs", help="where each run's artifacts and log go")
    run.add_argument("--verbose", "-v", action="store_true", help="show every step's output")


def _add_compile_command(commands: Any) -> None:
    compile_ = commands.add_parser(
        "compile", help="compile the cluster training pipeline to KFP IR YAML"
    )
    compile_.add_argument("--output", default=DEFAULT_OUTPUT)
    compile_.add_argument("--schema", help="curated schema URI to build into the pipeline")
    compile_.add_argument(
        "--object-store-secret",
        default=OBJECT_STORE_SECRET,
        help="Kubernetes Secret with the object-store keys for ingest, resolve-baseline, deploy "
        f"and rollout (default: {OBJECT_STORE_SECRET}, from manifests/); 'none' to use none",
    )
    compile_.add_argument(
        "--gpus",
        type=int,
        default=0,
        help="GPUs for the train step: nvidia.com/gpu limit, GPU image, GPU-node toleration",
    )


def _add_schedule_command(commands: Any) -> None:
    schedule = commands.add_parser(
        "schedule",
        help="run the monitoring pipeline on a schedule on Kubeflow Pipelines (a recurring run)",
    )
    schedule.add_argument("--host", default=DEFAULT_KFP_HOST, help="KFP API endpoint")
    schedule.add_argument(
        "--ui-host", default=DEFAULT_KFP_UI, help="KFP dashboard, for the schedule's URL"
    )
    schedule.add_argument(
        "--cron",
        default="0 0 * * * *",
        help="KFP's six-field cron, seconds first (default: the top of every hour)",
    )
    schedule.add_argument("--experiment", default="mlops", help="experiment to run in")
    schedule.add_argument(
        "--param",
        action="append",
        default=[],
        type=parse_param,
        metavar="K=V",
        help="monitoring pipeline parameter, repeatable (model_name, data_uri, thresholds...)",
    )


def _add_cluster_commands(commands: Any) -> None:
    upload = commands.add_parser(
        "upload", help="upload the compiled pipeline to Kubeflow Pipelines"
    )
    upload.add_argument("--host", default=DEFAULT_KFP_HOST, help="KFP API endpoint")
    upload.add_argument(
        "--package", default=DEFAULT_OUTPUT, help="compiled pipeline (make compile)"
    )
    upload.add_argument("--name", default=PIPELINE_NAME, help="pipeline name on the server")

    submit = commands.add_parser("submit", help="start a run of the uploaded pipeline")
    submit.add_argument("--host", default=DEFAULT_KFP_HOST, help="KFP API endpoint")
    submit.add_argument(
        "--ui-host", default=DEFAULT_KFP_UI, help="KFP dashboard, for the run's URL"
    )
    submit.add_argument("--name", default=PIPELINE_NAME, help="pipeline name on the server")
    submit.add_argument(
        "--package",
        default=DEFAULT_OUTPUT,
        help="compiled pipeline whose uploaded version to run (make compile; make upload)",
    )
    submit.add_argument("--experiment", default="mlops", help="experiment to run in")
    submit.add_argument(
        "--param",
        action="append",
        default=[],
        type=parse_param,
        metavar="K=V",
        help="pipeline parameter, repeatable; read as the parameter's type in the package "
        "(text, number, true/false, or JSON for lists and dicts)",
    )
    submit.add_argument(
        "--service-account",
        default=None,
        help="the run's Kubernetes ServiceAccount (default: KFP's pipeline-runner, as for runs "
        "started from the dashboard; manifests/base/deployer-rbac.yaml grants it the deploy "
        "rights)",
    )

    lineage = commands.add_parser(
        "lineage", help="the provenance of a pushed model, or what used a dataset"
    )
    lineage.add_argument(
        "model", nargs="?", metavar="MODEL[:VERSION]", help="a pushed model (newest version)"
    )
    lineage.add_argument("--dataset", metavar="FINGERPRINT", help="the runs that used a dataset")
    lineage.add_argument(
        "--runs-dir", default="runs", help="the workspace whose lineage store to read"
    )
    lineage.add_argument(
        "--store",
        metavar="URI",
        help="another store: grpc://HOST:PORT (KFP's, by kubectl port-forward) or a SQLite file",
    )
    lineage.add_argument("--json", action="store_true", help="print JSON for tools")
    monitor = commands.add_parser(
        "monitor", help="skew, drift and decay of served traffic; retrain when the model is stale"
    )
    monitor.add_argument(
        "--local", action="store_true", default=True, help="on this machine (the only mode yet)"
    )
    monitor.add_argument("--log", required=True, metavar="DIR|URI", help="the prediction log")
    monitor.add_argument("--model", help="the model (default: the one model in the log)")
    monitor.add_argument(
        "--registry", default="model-registry", help="the registry the served versions are in"
    )
    monitor.add_argument(
        "--since", type=_timestamp, help="window start, ISO 8601 (default: the last monitor run)"
    )
    monitor.add_argument("--until", type=_timestamp, help="window end, ISO 8601 (default: now)")
    settings.add_arguments(
        monitor,
        MonitorConfig,
        [
            "min_rows",
            "numeric_threshold",
            "categorical_threshold",
            "decay_tolerance",
            "windows_in_a_row",
            "label_lookback_hours",
            "settle_seconds",
        ],
    )
    monitor.add_argument(
        "--feature-threshold",
        type=_feature_threshold,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help=settings.help_text(MonitorConfig, "feature_thresholds") + "; repeatable",
    )
    monitor.add_argument(
        "--retrain",
        action="store_true",
        help="when the decision is to retrain, run the training pipeline on --data",
    )
    monitor.add_argument(
        "--data",
        help="the fresh data to retrain on (CSV or Parquet), joined with the log's recent "
        "labelled rows",
    )
    monitor.add_argument(
        "--without-labels",
        action="store_true",
        help="retrain on --data alone, not joined with the log's labelled rows (which also "
        "gate the candidate against the serving version)",
    )
    monitor.add_argument(
        "--runs-dir", default="runs", help="where a retraining run's artifacts and log go"
    )
    monitor.add_argument(
        "--run-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="an option for the retraining run as `mlops run` takes it, e.g. --run-arg=--epochs=20",
    )
    feedback = commands.add_parser(
        "feedback", help="store late labels in the prediction log, joined by request id"
    )
    feedback.add_argument(
        "--log", required=True, metavar="DIR|URI", help="the prediction log (mlops-serve's)"
    )
    feedback.add_argument(
        "--labels",
        required=True,
        metavar="FILE",
        help="CSV or Parquet with request_id, label and optionally row (0 by default)",
    )
    feedback.add_argument(
        "--model", help="the model the labels are for (default: the one model in the log)"
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``mlops`` argument parser."""
    parser = argparse.ArgumentParser(prog="mlops", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    _add_run_command(commands)
    _add_compile_command(commands)
    _add_cluster_commands(commands)
    _add_schedule_command(commands)
    shadow.add_command(commands, _timestamp)
    rollout_commands.add_command(commands)
    return parser


def run_arguments(args: argparse.Namespace) -> dict[str, Any]:
    """The pipeline parameters of ``mlops run``, each checked by its step config.

    Raises:
        PipelineInputError: A value its config refuses, or data that is not there.
    """
    given = {
        **vars(args),
        # Steps run in other processes; an absolute path means the same folder to all.
        "registry": os.path.abspath(args.registry),
        "thresholds": dict(args.threshold),
        "beam_pipeline_args": args.beam_pipeline_arg,
    }
    arguments = {}
    for config in TRAINING_CONFIGS:
        values = {name: given[name] for name in settings.defaults(config)}
        config(**values)  # Checks them.
        arguments.update(values)
    arguments["hidden_units"] = list(arguments["hidden_units"])
    data = arguments["data_uri"]
    if "://" not in data and not os.path.exists(data):
        raise PipelineInputError(f"No data at {data!r}: the path does not exist.")
    if arguments["workers"] > 1:
        raise ConfigurationError(
            f"--workers {arguments['workers']} trains in a TFJob on a Kubernetes cluster, which "
            "mlops run --local does not have: leave it at 1 here, and set the workers "
            "parameter on a cluster run (mlops submit --param workers=N)."
        )
    if arguments["beam_pipeline_args"]:
        beam.pipeline_options(arguments["beam_pipeline_args"])  # Refused before any step runs.
    return arguments


def command_run(args: argparse.Namespace) -> int:
    """``mlops run --local``."""
    from pipelines.local import RunFailed, run_local
    from pipelines.report import summary
    from pipelines.training import build_training_pipeline

    arguments = run_arguments(args)
    schema = (
        os.path.abspath(args.schema) if args.schema and "://" not in args.schema else args.schema
    )
    if schema and "://" not in schema and not os.path.isfile(schema):
        raise PipelineInputError(f"No schema at {args.schema!r}: the file does not exist.")
    print(f"mlops: training pipeline on {arguments['data_uri']} (label {args.label!r})")
    try:
        report = run_local(build_training_pipeline(schema), arguments, args.runs_dir, args.verbose)
    except RunFailed as err:
        print(f"\nerror: {err}", file=sys.stderr)
        return 1
    print(summary(report, arguments.get("model_name"), args.runs_dir))
    return 0


def command_compile(args: argparse.Namespace) -> int:
    """``mlops compile``."""
    from kfp import compiler

    from pipelines.cluster_training import build_cluster_training_pipeline

    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    if args.schema and not args.schema.startswith("gs://"):
        # validate reads it with TensorFlow in its pod: no local file of this machine is there,
        # and TensorFlow 2.16 has no s3:// filesystem.
        raise PipelineInputError(
            f"--schema {args.schema!r}: on a cluster the curated schema must be at a gs:// URI "
            "the validate step can read (TensorFlow reads gs://, not s3:// or local paths)."
        )
    secret = None if args.object_store_secret == "none" else args.object_store_secret
    # The package is for a cluster: its defaults are the cluster's, which runs started from the
    # dashboard or on a schedule use.
    pipeline = build_cluster_training_pipeline(args.schema, args.gpus, secret)
    compiler.Compiler().compile(pipeline, args.output)
    print(f"wrote {args.output}")
    return 0


def command_upload(args: argparse.Namespace) -> int:
    """``mlops upload``."""
    from pipelines import cluster

    if not os.path.isfile(args.package):
        raise PipelineInputError(f"No compiled pipeline at {args.package!r}; run `make compile`.")
    uploaded = cluster.upload(cluster.reach(args.host), args.package, args.name)
    state = "uploaded" if uploaded.created else "already there"
    print(f"{args.name} version {uploaded.version_name}: {state} (pipeline {uploaded.pipeline_id})")
    return 0


def _package_params(package: str, given: list) -> dict[str, Any]:
    """``--param`` values read as the types of the compiled package's parameters.

    Raises:
        PipelineInputError: A name the package has not, or a value its type refuses.
    """
    with open(package) as handle:
        spec = next(yaml.safe_load_all(handle))
    types = {
        name: parameter["parameterType"]
        for name, parameter in spec["root"]["inputDefinitions"]["parameters"].items()
    }
    try:
        return typed_params(given, types)
    except ValueError as err:
        raise PipelineInputError(str(err)) from err


def command_submit(args: argparse.Namespace) -> int:
    """``mlops submit``."""
    from pipelines import cluster

    if not os.path.isfile(args.package):
        raise PipelineInputError(
            f"No compiled pipeline at {args.package!r}; run `make compile` and `make upload`."
        )
    # Only what was given; the rest from the compiled defaults, as from the dashboard.
    params = _package_params(args.package, args.param)
    _, url = cluster.submit(
        cluster.reach(args.host, args.ui_host),
        args.name,
        args.package,
        args.experiment,
        params,
        args.ui_host,
        args.service_account,
    )
    print(url)
    return 0


def command_lineage(args: argparse.Namespace) -> int:
    """``mlops lineage MODEL[:VERSION]`` and ``mlops lineage --dataset FINGERPRINT``."""
    from ml_metadata import errors as mlmd_errors

    from components.lineage import recording
    from components.lineage.mlmd import open_store

    if (args.model is None) == (args.dataset is None):
        raise ConfigurationError("Give a MODEL[:VERSION] or --dataset FINGERPRINT (one of them).")
    uri = args.store or os.path.join(args.runs_dir, recording.STORE_FILE)
    if not uri.startswith("grpc://") and not os.path.isfile(uri):
        raise ConfigurationError(
            f"No lineage store at {uri!r}: "
            f"run 'mlops run --local --runs-dir {args.runs_dir}' first."
        )
    try:
        return _print_lineage(args, open_store(uri))
    except (ValueError, mlmd_errors.UnavailableError, mlmd_errors.DeadlineExceededError) as err:
        hint = (
            " Is 'kubectl port-forward -n kubeflow svc/metadata-grpc-service 8090:8080' running?"
            if uri.startswith("grpc://")
            else ""
        )
        raise ConfigurationError(
            f"Cannot read the lineage store {uri}: {' '.join(str(err).split())[:300]}.{hint}"
        ) from err


def _print_lineage(args: argparse.Namespace, store: Any) -> int:
    from pipelines import lineage

    if args.dataset is not None:
        users = lineage.dataset_users(store, args.dataset)
        print(
            json.dumps(users, indent=2)
            if args.json
            else lineage.render_dataset(args.dataset, users)
        )
        return 0
    name, _, version = args.model.partition(":")
    if version and not version.isdigit():
        raise ConfigurationError(f"Version {version!r} in {args.model!r} is not a number.")
    try:
        tree = lineage.provenance(store, name, int(version) if version else None)
    except LookupError as err:
        raise ConfigurationError(str(err)) from err
    print(json.dumps(tree, indent=2) if args.json else lineage.render_provenance(tree))
    return 0


def _timestamp(text: str) -> float:
    from datetime import UTC, datetime

    try:
        when = datetime.fromisoformat(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time") from err
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def _feature_threshold(text: str) -> tuple[str, float]:
    name, _, value = text.partition("=")
    try:
        return name, float(value)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{text!r}: give NAME=VALUE, e.g. island=0.2") from err


def command_schedule(args: argparse.Namespace) -> int:
    """``mlops schedule``: compile and upload the monitoring pipeline, then a recurring run."""
    import tempfile

    from kfp import compiler

    from pipelines import cluster
    from pipelines.monitoring import PIPELINE_NAME as MONITORING
    from pipelines.monitoring import monitoring_pipeline

    cluster.check_cron(args.cron)
    with tempfile.TemporaryDirectory() as folder:
        package = os.path.join(folder, "monitoring.yaml")
        compiler.Compiler().compile(monitoring_pipeline, package)
        params = _package_params(package, args.param)
        _, url = cluster.schedule(
            cluster.reach(args.host, args.ui_host),
            MONITORING,
            package,
            args.experiment,
            args.cron,
            params,
            args.ui_host,
        )
    print(url)
    return 0


def command_monitor(args: argparse.Namespace) -> int:
    """``mlops monitor --local --log DIR``: one window, its reports, and retraining if stale."""
    _quiet_tensorflow()
    from components.monitor import core, report

    config = settings.from_arguments(
        args, MonitorConfig, feature_thresholds=dict(args.feature_threshold)
    )
    if args.retrain and not args.data:
        raise ConfigurationError("--retrain needs --data: the fresh data to train on.")
    model = args.model or _one_model(args.log)
    result, window, train, previous = core.monitor(
        args.log, args.registry, model, config, args.since, args.until
    )
    _, folder = report.keep(args.log, result, window, train, previous)
    flagged = [c.feature for c in result.features if c.skewed or c.drifted]
    print(
        f"mlops: monitored {model} version {result.version}: {result.rows} rows "
        f"({result.labelled_rows} labelled)"
    )
    print(f"  drifted    {', '.join(flagged) if flagged else 'none'}")
    for reason in result.reasons:
        print(f"  reason     {reason}")
    print(f"  decision   {'retrain' if result.retrain else 'no retraining'}")
    print(f"  report     {folder}/{report.HTML_FILE}")
    if not (result.retrain and args.retrain):
        return 0
    joined = [] if args.without_labels else ["--labelled-log", args.log]
    print(f"mlops: retraining {model} on {args.data}{'' if joined else ' alone'}")
    code = main(
        ["run", "--local", "--data", args.data, "--registry", args.registry,
         "--model-name", model, "--runs-dir", args.runs_dir, *joined, *args.run_arg]
    )  # fmt: skip
    # Kept beside the decision: a retraining that failed leaves the decision standing.
    outcome = {"acted": code == 0, "reason": "retrained" if code == 0 else "the run failed"}
    state = core.MonitorState(args.log, model)
    state.record_outcome(state.window(result.window_end), outcome)
    return code


def _quiet_tensorflow() -> None:
    """Imports TFDV (and TensorFlow) without their start-up chatter, which says nothing a user
    of this command can act on: TensorFlow's C++ notices (its CUDA plugins log as errors on a
    machine without a GPU), TFDV's note that IPython is missing."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with contextlib.redirect_stderr(io.StringIO()):
        import tensorflow_data_validation  # noqa: F401


def _one_model(log: str) -> str:
    from serving import prediction_log as pl

    predictions = pl.read(log, pl.PREDICTIONS)
    models = sorted(set(predictions.column("model").to_pylist())) if predictions.num_rows else []
    if len(models) != 1:
        raise ConfigurationError(
            f"The log {log!r} holds predictions of {models or 'no model'}: say which with --model."
        )
    return models[0]


def command_feedback(args: argparse.Namespace) -> int:
    """``mlops feedback --log URI --labels FILE``: stores late labels beside the predictions."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    from serving import prediction_log as pl

    if not os.path.isfile(args.labels):
        raise PipelineInputError(f"No labels file at {args.labels!r}.")
    try:
        if args.labels.endswith((".parquet", ".pq")):
            table = pq.read_table(args.labels)
        else:
            # Every column as text: ids and labels are names, not numbers.
            table = pa_csv.read_csv(
                args.labels,
                convert_options=pa_csv.ConvertOptions(
                    column_types={pl.REQUEST_ID: pa.string(), pl.LABEL: pa.string()}
                ),
            )
        labels = pl.rows_of(table.to_pylist())
    except (pa.ArrowInvalid, ValueError) as err:
        raise PipelineInputError(
            f"Cannot read labels from {args.labels!r}: {err}. It needs the columns "
            f"{pl.REQUEST_ID!r} and {pl.LABEL!r} (and optionally {pl.ROW!r})."
        ) from err
    if not labels:
        raise PipelineInputError(f"{args.labels!r} holds no labels.")
    model = args.model or _one_model(args.log)
    path = pl.write_labels(args.log, model, labels)
    known = pl.known_requests(args.log, model)
    matched = sum((request_id, row) in known for request_id, row, _ in labels)
    print(f"stored {len(labels)} labels of {model} in {path}")
    print(
        f"{matched} match a logged prediction now; "
        f"{len(labels) - matched} do not (yet: a window is written within a minute)"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mlops`` console script."""
    args = build_parser().parse_args(argv)
    verbose = getattr(args, "verbose", False)
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING)
    if not verbose:
        # The KFP client's version notice and urllib3's retry chatter say nothing actionable.
        logging.getLogger("urllib3").setLevel(logging.ERROR)
        warnings.filterwarnings("ignore", category=FutureWarning)
    commands = {
        "run": command_run,
        "compile": command_compile,
        "upload": command_upload,
        "submit": command_submit,
        "lineage": command_lineage,
        "feedback": command_feedback,
        "monitor": command_monitor,
        "schedule": command_schedule,
        "shadow": lambda args: shadow.command(args, _one_model),
        "rollout": rollout_commands.command,
    }
    try:
        return commands[args.command](args)
    except REPORTED_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
