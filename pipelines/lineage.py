"""``mlops lineage``: the provenance of a pushed model, and what used a dataset, read from the
workspace's lineage store (``runs/metadata.sqlite`` by default)."""

import json
from typing import Any

from components import constants as c
from components.lineage import recording, store


def _value(value: Any) -> Any:
    # Lists and mappings are stored as JSON text (components.lineage.mlmd).
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _props(item: Any) -> dict[str, Any]:
    return {key: _value(value) for key, value in item.properties.items()}


def _run(execution: store.StoredExecution) -> str | None:
    return next((name for kind, name in execution.contexts if kind == store.RUN_CONTEXT), None)


_DEPLOY = recording.execution_type("deploy")
# Execution properties every step has, which are not its parameters.
_BOOKKEEPING = (
    recording.CODE_VERSION,
    recording.STARTED,
    recording.ENDED,
    recording.DISPLAY_NAME,
    recording.ERROR,
)
_ROLLOUT = recording.execution_type("rollout")


def _completed(
    executions: list[store.StoredExecution], step_type: str
) -> list[store.StoredExecution]:
    return [e for e in executions if e.type_name == step_type and e.state == store.COMPLETE]


def _pushed_version(deploy: store.StoredExecution) -> int | None:
    push = _props(deploy.outputs["push_result"])
    return push.get(c.VERSION) if push.get(c.PUSHED) in (True, 1) else None


def _step_line(step: dict) -> str:
    values = ", ".join(f"{key} {value}" for key, value in step.get("values", {}).items())
    outcome = "passed" if step.get("passed") else "FAILED"
    return f"{step.get('name')}: {outcome}" + (f" ({values})" if values else "")


def _deployment(executions: list[store.StoredExecution], version: int) -> dict:
    """Where ``version`` serves now, as the model's rollouts recorded it: the newest rollout
    that served a version says which version serves. The steps of the newest rollout of
    ``version`` (blue-green's) say why it serves or was rolled back."""
    rollouts = [(e, _props(e.outputs["rollout_result"])) for e in _completed(executions, _ROLLOUT)]
    own = [(e, r) for e, r in rollouts if r.get(c.VERSION) == version]
    steps = [_step_line(step) for step in (own[-1][1].get("steps") or [])] if own else []
    served = [(e, r) for e, r in rollouts if r.get(c.ROLLED_OUT) in (True, 1)]
    if own and own[-1][1].get(c.ROLLED_OUT) not in (True, 1) and own[-1][1].get("steps"):
        latest, result = own[-1]
        return {
            "serving": False,
            "status": f"rolled back (run {_run(latest)}): {result.get(c.REASON)}",
            "steps": steps,
        }
    if not served:
        return {"serving": False, "status": "never rolled out to a cluster", "steps": steps}
    latest, result = served[-1]
    if result.get(c.VERSION) == version:
        where = (
            f"InferenceGraph {result.get('namespace')}/{result.get('inference_service')}, "
            f"colour {result.get('colour')}"
            if result.get("strategy") in ("blue-green", "canary")
            else f"InferenceService {result.get('namespace')}/{result.get('inference_service')}"
        )
        return {
            "serving": True,
            "status": (
                f"{where} at {result.get('url')}, revision {result.get('revision')},"
                f" {result.get('traffic_percent', 100)}% of traffic (run {_run(latest)})"
            ),
            "inference_service": result.get("inference_service"),
            "namespace": result.get("namespace"),
            "url": result.get("url"),
            "revision": result.get("revision"),
            "storage_uri": result.get("served_uri"),
            "traffic_percent": result.get("traffic_percent"),
            "run": _run(latest),
            "steps": steps,
        }
    was = [e for e, r in served if r.get(c.VERSION) == version]
    status = f"version {result.get(c.VERSION)} serves instead (run {_run(latest)})"
    if was:
        status = f"served from run {_run(was[-1])}; {status}"
    return {"serving": False, "status": status, "steps": steps}


def _producer_props(lineage: store.LineageStore, artifact: store.StoredArtifact) -> dict:
    producer = lineage.producer(artifact.id)
    return _props(producer) if producer else {}


def provenance(lineage: store.LineageStore, model_name: str, version: int | None) -> dict:
    """The provenance of version ``version`` (the newest pushed when ``None``) of a model, and
    the runs of that model that pushed nothing, with why.

    Raises:
        LookupError: No such pushed version is recorded.
    """
    executions = lineage.executions(store.MODEL_CONTEXT, model_name)
    deploys = _completed(executions, _DEPLOY)
    pushed = [e for e in deploys if _pushed_version(e) is not None]
    if version is not None:
        pushed = [e for e in pushed if _pushed_version(e) == version]
    if not pushed:
        wanted = f"{model_name}:{version}" if version is not None else model_name
        raise LookupError(f"No pushed model {wanted!r} is recorded in the lineage store.")
    deploy = max(pushed, key=_pushed_version)
    push = _props(deploy.outputs["push_result"])
    train = lineage.producer(deploy.inputs["model"].id)
    ingest = lineage.producer(deploy.inputs["train_data"].id)
    validate = lineage.producer(deploy.inputs["schema"].id)
    blessing = _props(deploy.inputs["blessing"])
    result = {
        "model": model_name,
        "version": push[c.VERSION],
        "destination": push.get(c.DESTINATION),
        "run": _run(deploy),
        "code_version": _props(train).get(recording.CODE_VERSION) if train else None,
        "data": {
            "uri": _props(ingest).get("data_uri") if ingest else None,
            # The prediction log whose labelled rows joined the data, if any.
            "labelled_log": (_props(ingest).get(c.LABELLED_LOG) or None) if ingest else None,
            "splits": {
                _props(a).get(c.SPLIT, name): {
                    "rows": _props(a).get(c.NUM_ROWS),
                    "fingerprint": _props(a).get(c.FINGERPRINT),
                    "uri": a.uri,
                }
                for name, a in (ingest.outputs if ingest else {}).items()
                # The log's rows in eval are a split of their own only when a log was joined.
                if _props(a).get(c.SPLIT) != c.LABELLED_EVAL_SPLIT or _props(a).get(c.LABELLED_LOG)
            },
        },
        "schema": deploy.inputs["schema"].uri,
        "anomalies": _props(validate.outputs["anomalies"]).get(c.ANOMALIES, [])
        if validate
        else None,
        "parameters": {
            key: value
            for key, value in (_props(train) if train else {}).items()
            if key not in _BOOKKEEPING
        },
        "metrics": blessing.get(c.METRICS, {}),
        "blessing": {
            "blessed": bool(blessing.get(c.BLESSED)),
            "reasons": blessing.get(c.REASONS, []),
            "baseline_version": blessing.get(c.BASELINE_VERSION),
        },
        "deployed": _deployment(executions, push[c.VERSION]),
        "lineage": {
            "deploy_execution": deploy.id,
            "pushed_model_artifact": deploy.outputs["push_result"].id,
        },
        "not_pushed": [],
        "failed": [
            {
                "run": _run(e),
                "step": e.type_name.removeprefix(recording.EXECUTION_PREFIX),
                "error": _props(e).get(recording.ERROR),
            }
            for e in executions
            if e.state == store.FAILED
        ],
    }
    for other in deploys:
        if _pushed_version(other) is not None:
            continue
        why = _props(other.inputs["blessing"])
        result["not_pushed"].append(
            {
                "run": _run(other),
                "reasons": why.get(c.REASONS, []),
                "baseline_version": why.get(c.BASELINE_VERSION),
                "metrics": why.get(c.METRICS, {}),
            }
        )
    return result


def dataset_users(lineage: store.LineageStore, fingerprint: str) -> list[dict]:
    """The runs whose training read the dataset of ``fingerprint``, with the model each pushed."""
    found = []
    for examples in lineage.artifacts(store.EXAMPLES):
        if _props(examples).get(c.FINGERPRINT) != fingerprint:
            continue
        for consumer in lineage.consumers(examples.id):
            if consumer.type_name != _DEPLOY or consumer.state != store.COMPLETE:
                continue
            push = _props(consumer.outputs["push_result"])
            found.append(
                {
                    "run": _run(consumer),
                    "model": _props(consumer).get(c.MODEL_NAME),
                    "pushed": bool(push.get(c.PUSHED)),
                    "version": push.get(c.VERSION),
                    "reason": push.get(c.REASON),
                }
            )
    return found


def _tree(lines: list[str], items: list[str], indent: str) -> None:
    for index, item in enumerate(items):
        lines.append(f"{indent}{'└─' if index == len(items) - 1 else '├─'} {item}")


def render_provenance(tree: dict) -> str:
    """``tree`` from :func:`provenance` as text a person reads."""
    lines = [f"{tree['model']}:{tree['version']}  {tree['destination']}"]
    lines.append(f"├─ run           {tree['run']} (code {tree['code_version']})")
    lines.append(f"├─ data          {tree['data']['uri']}")
    joined = tree["data"].get("labelled_log")
    _tree(
        lines,
        ([f"joined     the labelled rows of {joined}"] if joined else [])
        + [
            f"{split:<10} {info['rows']} rows, fingerprint {info['fingerprint']}"
            for split, info in tree["data"]["splits"].items()
        ],
        "│  ",
    )
    lines.append(f"├─ schema        {tree['schema']}")
    anomalies = tree["anomalies"]
    lines.append(f"├─ anomalies     {'; '.join(anomalies) if anomalies else 'none'}")
    params = ", ".join(f"{key}={value}" for key, value in sorted(tree["parameters"].items()))
    lines.append(f"├─ parameters    {params}")
    metrics = ", ".join(
        f"{key} {value:.4f}" if isinstance(value, float) else f"{key} {value}"
        for key, value in sorted(tree["metrics"].items())
    )
    lines.append(f"├─ metrics       {metrics}")
    blessing = tree["blessing"]
    beat = (
        f"beat version {blessing['baseline_version']}"
        if blessing["baseline_version"] is not None
        else "no baseline"
    )
    lines.append(f"├─ blessed       {beat}: {'; '.join(blessing['reasons'])}")
    lines.append(f"├─ deployed      {tree['deployed']['status']}")
    _tree(lines, tree["deployed"].get("steps", []), "│  ")
    others = tree["not_pushed"]
    failed = tree["failed"]
    lines.append(
        f"{'├─' if failed else '└─'} not pushed    {len(others)} other run(s) of {tree['model']}"
    )
    _tree(
        lines,
        [f"{other['run']}: {'; '.join(other['reasons'])}" for other in others],
        "│  " if failed else "   ",
    )
    if failed:
        lines.append(f"└─ failed        {len(failed)} step(s) of runs of {tree['model']}")
        _tree(lines, [f"{f['run']} {f['step']}: {f['error']}" for f in failed], "   ")
    return "\n".join(lines)


def render_dataset(fingerprint: str, users: list[dict]) -> str:
    """:func:`dataset_users` as text."""
    if not users:
        return f"No recorded run used the dataset with fingerprint {fingerprint}."
    lines = [f"dataset {fingerprint}"]
    for user in users:
        outcome = (
            f"pushed {user['model']}:{user['version']}"
            if user["pushed"]
            else f"{user['model']}: {user['reason']}"
        )
        lines.append(f"  run {user['run']}: {outcome}")
    return "\n".join(lines)
