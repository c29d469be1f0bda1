"""``mlops rollout status|promote|rollback MODEL``: who serves what share of a model on the
cluster, and the two changes a person makes by hand (:mod:`components.rollout.manage`), with the
kubeconfig's cluster (``KUBECONFIG``, ``~/.kube/config``) or, in a pod, its service account."""

import argparse
from typing import Any

from components.errors import ConfigurationError, kubernetes_message


def add_command(commands: Any) -> None:
    """Adds ``mlops rollout`` to the ``mlops`` parser."""
    rollout = commands.add_parser(
        "rollout", help="who serves what share of a model on the cluster; promote, roll back"
    )
    actions = rollout.add_subparsers(dest="action", required=True)
    helps = {
        "status": "the versions serving the model and their shares of the traffic",
        "promote": "send all traffic to the canary (Serverless mode)",
        "rollback": "serve the version that served before again, and wait until it does",
    }
    for action, text in helps.items():
        parser = actions.add_parser(action, help=text)
        parser.add_argument("model", help="the model (its InferenceService's name)")
        parser.add_argument("--namespace", default="mlops-models", help="the serving namespace")
        parser.add_argument(
            "--routing-namespace",
            default="mlops-routing",
            help="where a blue-green model's InferenceGraph runs",
        )
    rollback = actions.choices["rollback"]
    rollback.add_argument(
        "--timeout", type=float, default=600.0, help="seconds the version has to serve"
    )
    rollback.add_argument(
        "--registry",
        help="the registry (s3://...): the version rolled back from stops being the baseline "
        "later runs must beat",
    )


def _client() -> Any:
    from kubernetes import config

    try:
        from components.rollout.core import cluster_client

        return cluster_client()
    except config.ConfigException as err:
        raise ConfigurationError(
            f"No cluster to talk to: {str(err).rstrip('.')}. Point KUBECONFIG (or "
            "~/.kube/config) at the cluster, e.g. `kind export kubeconfig --name mlops`."
        ) from err


def command(args: argparse.Namespace) -> int:
    """``mlops rollout``."""
    from kubernetes.client.exceptions import ApiException

    api = _client()
    try:
        return _act(api, args)
    except ApiException as err:
        raise ConfigurationError(
            f"The cluster refused `mlops rollout {args.action}`: {err.status} {err.reason}"
            f"{_refusal(err)}. It reads InferenceServices (and, in RawDeployment mode, the "
            f"predictor's Deployments and pods) in {args.namespace}, and InferenceGraphs and "
            f"their Deployments in {args.routing_namespace}; a rollback also updates the "
            "InferenceService, or a blue-green model's InferenceGraph."
        ) from err


def _refusal(err: Any) -> str:
    message = kubernetes_message(err)
    return f" ({message})" if message else ""


def _act(api: Any, args: argparse.Namespace) -> int:
    from components.registry import ModelRegistry
    from components.rollout import manage

    routing = args.routing_namespace
    if args.action == "status":
        print(manage.render(manage.status(api, args.namespace, args.model, routing)))
    elif args.action == "promote":
        print(f"mlops: {manage.promote(api, args.namespace, args.model, routing)}")
    else:
        done = manage.rollback(
            api, args.namespace, args.model, args.timeout, routing_namespace=routing
        )
        if args.registry:
            registry = ModelRegistry(args.registry)
            # The serving version is the baseline later runs must beat; the one rolled back
            # from is not.
            registry.mark_served(args.model, done.model_version)
            if done.previous_model_version is not None:
                registry.unmark_served(args.model, done.previous_model_version)
        print(
            f"mlops: rolled {args.model} back to version {done.model_version} "
            f"(from version {done.previous_model_version}); it serves at {done.url}"
        )
        print(manage.render(manage.status(api, args.namespace, args.model, routing)))
    return 0
