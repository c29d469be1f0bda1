"""A Kubeflow Pipelines API stand-in on loopback, for the upload and submit commands.

API behaviour it reproduces, as the KFP backend at tag 2.5.0 implements it (paths under
backend/src/apiserver/ of kubeflow/pipelines@2.5.0) and as ``kfp.Client`` 2.13 calls it (REST
``/apis/v2beta1``):

- ``GET /healthz`` answers ``{"multi_user": false}``.
- ``GET /pipelines?filter=`` with a ``display_name`` EQUALS predicate lists matching pipelines.
- ``POST /pipelines`` creates a pipeline with no version (server/pipeline_server.go:204-228).
- ``POST /pipelines/upload?name=`` (multipart ``uploadfile``) creates a pipeline and its first
  version, named like the pipeline (server/pipeline_upload_server.go:120-131).
- ``POST /pipelines/upload_version?name=&pipelineid=`` adds a version; a name the pipeline
  already has is refused with AlreadyExists, 409 (storage/pipeline_store.go:755-757).
- ``GET /pipelines/{id}/versions`` filters on ``display_name`` (the ``Name`` column) and sorts on
  ``created_at``, stored in whole seconds (model/pipeline_version.go:60-72); ties are ordered by
  the version's UUID, in the same direction (list/list.go:225-231); ``page_size`` caps the
  answer. The stand-in's clock stands still unless a test moves it, so uploads share a second,
  as quick uploads do on a real server.
- ``GET /experiments?filter=`` lists experiments by ``display_name``; ``POST /experiments``
  creates one.
- ``GET /pipelines/{id}/versions/{version id}`` answers the version with its ``pipeline_spec``:
  the package's pipeline spec, or ``{"pipeline_spec", "platform_spec"}`` when the package has a
  platform spec (server/api_util.go:165-214).
- ``POST /runs`` refuses, with InvalidInput, 400, a parameter the pipeline version does not
  declare and a value whose kind is not the declared type's (template/v2_template.go:383-440);
  otherwise records the run (pipeline version reference, parameters, service account) and
  answers with a ``run_id``.
- ``POST /recurringruns`` refuses a ``max_concurrency`` outside 1..10 and a cron robfig/cron v1
  cannot parse (5 to 6 fields, or a descriptor such as ``@hourly``), with InvalidInput, 400
  (server/api_converter.go:1918-1927); otherwise records the recurring run and answers with a
  ``recurring_run_id``.
- ``GET /recurringruns?experiment_id=`` lists an experiment's recurring runs; ``GET
  /runs?experiment_id=`` its runs, newest first (backend/api/v2beta1/run.proto:84, :398), each
  with a ``state`` of RuntimeState (run.proto:221-242: PENDING when created; a test moves it).

Not reproduced: authentication, namespaces (single-user mode), page tokens, run execution.
"""

import email.parser
import json
import urllib.parse
import uuid
from typing import Any

import yaml

from tests.loopback import JsonHandler, LoopbackServer

PREFIX = "/apis/v2beta1"


def _pipeline_spec(package: bytes) -> dict[str, Any]:
    """The version's ``pipeline_spec`` as the API answers it (server/api_util.go:165-214)."""
    documents = [d for d in yaml.safe_load_all(package) if d]
    platform = [d for d in documents if "platforms" in d]
    (spec,) = [d for d in documents if "platforms" not in d]
    return {"pipeline_spec": spec, "platform_spec": platform[0]} if platform else spec


# The JSON kind a parameter value must have, per declared type (template/v2_template.go:392-420).
_KINDS = {
    "NUMBER_DOUBLE": (int, float),
    "NUMBER_INTEGER": (int, float),
    "STRING": (str,),
    "BOOLEAN": (bool,),
    "LIST": (list,),
    "STRUCT": (dict,),
}


def _parameter_problem(spec: dict[str, Any], values: dict[str, Any]) -> str | None:
    """Why the API server refuses a run's parameters, if it does (v2_template.go:383-440)."""
    spec = spec.get("pipeline_spec", spec)
    declared = spec["root"].get("inputDefinitions", {}).get("parameters", {})
    for name, value in values.items():
        if name not in declared:
            extra = ", ".join(n for n in values if n not in declared)
            return f"parameter(s) provided are not required by pipeline: {extra}"
        kind = declared[name]["parameterType"]
        if not isinstance(value, _KINDS[kind]) or (kind != "BOOLEAN" and isinstance(value, bool)):
            return f"input parameter {name} requires type {kind}"
    return None


def _matches(query: dict[str, str], item: dict[str, Any]) -> bool:
    if "filter" not in query:
        return True
    (predicate,) = json.loads(query["filter"])["predicates"]
    assert predicate["key"] == "display_name", predicate
    return item["display_name"] == predicate["stringValue"]


class KfpStandIn(LoopbackServer):
    """The stand-in server; ``pipelines``, ``versions``, ``experiments``, ``runs`` hold state."""

    def __init__(self) -> None:
        self.pipelines: dict[str, dict[str, Any]] = {}
        self.versions: dict[str, list[dict[str, Any]]] = {}
        self.packages: dict[str, bytes] = {}
        self.experiments: dict[str, dict[str, Any]] = {}
        self.runs: list[dict[str, Any]] = []
        self.recurring_runs: list[dict[str, Any]] = []
        self.seconds = 0
        super().__init__()

    def _now(self) -> str:
        return f"2026-01-01T00:00:{self.seconds:02d}Z"

    def _add_version(self, pipeline_id: str, name: str, package: bytes) -> dict[str, Any]:
        version = {
            "pipeline_id": pipeline_id,
            "pipeline_version_id": str(uuid.uuid4()),
            "display_name": name,
            "created_at": self._now(),
        }
        self.versions.setdefault(pipeline_id, []).append(version)
        self.packages[version["pipeline_version_id"]] = package
        return version

    def _add_pipeline(self, name: str) -> dict[str, Any]:
        pipeline = {
            "pipeline_id": str(uuid.uuid4()),
            "display_name": name,
            "created_at": self._now(),
        }
        self.pipelines[pipeline["pipeline_id"]] = pipeline
        self.versions[pipeline["pipeline_id"]] = []
        return pipeline

    def _list_versions(self, pipeline_id: str, query: dict[str, str]) -> list[dict[str, Any]]:
        found = [v for v in self.versions.get(pipeline_id, []) if _matches(query, v)]
        field, _, order = query.get("sort_by", "created_at").partition(" ")
        assert field == "created_at", field
        found.sort(key=lambda v: (v["created_at"], v["pipeline_version_id"]))
        if order == "desc":
            found.reverse()
        return found[: int(query["page_size"])] if "page_size" in query else found

    def _handler(self):
        standin = self

        class Handler(JsonHandler):
            def _upload(self) -> bytes:
                head = f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode()
                message = email.parser.BytesParser().parsebytes(head + self._raw())
                return next(part.get_payload(decode=True) for part in message.get_payload())

            def do_GET(self):
                url = urllib.parse.urlsplit(self.path)
                query = dict(urllib.parse.parse_qsl(url.query))
                path = url.path.removeprefix(PREFIX)
                if path == "/healthz":
                    return self._send(200, {"multi_user": False})
                if path == "/pipelines":
                    found = [p for p in standin.pipelines.values() if _matches(query, p)]
                    return self._send(
                        200, {"pipelines": found, "total_size": len(found)} if found else {}
                    )
                parts = path.split("/")
                if len(parts) == 5 and parts[1] == "pipelines" and parts[3] == "versions":
                    for version in standin.versions.get(parts[2], []):
                        if version["pipeline_version_id"] == parts[4]:
                            spec = _pipeline_spec(standin.packages[parts[4]])
                            return self._send(200, {**version, "pipeline_spec": spec})
                    return self._send(404, {"error": "no such version", "code": 5})
                if path.startswith("/pipelines/") and path.endswith("/versions"):
                    versions = standin._list_versions(path.split("/")[2], query)
                    return self._send(
                        200, {"pipeline_versions": versions, "total_size": len(versions)}
                    )
                if path == "/runs":
                    found = [
                        r
                        for r in reversed(standin.runs)
                        if r.get("experiment_id") == query.get("experiment_id")
                    ]
                    return self._send(200, {"runs": found} if found else {})
                if path == "/recurringruns":
                    found = [
                        r
                        for r in standin.recurring_runs
                        if r.get("experiment_id") == query.get("experiment_id")
                    ]
                    return self._send(200, {"recurringRuns": found} if found else {})
                if path == "/experiments":
                    found = [e for e in standin.experiments.values() if _matches(query, e)]
                    return self._send(
                        200, {"experiments": found, "total_size": len(found)} if found else {}
                    )
                return self._send(404, {"error": f"no route {path}", "code": 5})

            def do_POST(self):
                url = urllib.parse.urlsplit(self.path)
                query = dict(urllib.parse.parse_qsl(url.query))
                path = url.path.removeprefix(PREFIX)
                if path == "/pipelines/upload":
                    package = self._upload()
                    pipeline = standin._add_pipeline(query["name"])
                    standin._add_version(pipeline["pipeline_id"], query["name"], package)
                    return self._send(200, pipeline)
                if path == "/pipelines/upload_version":
                    package, pipeline_id = self._upload(), query["pipelineid"]
                    if any(
                        v["display_name"] == query["name"] for v in standin.versions[pipeline_id]
                    ):
                        return self._send(409, {"error": "version name exists", "code": 6})
                    return self._send(
                        200, standin._add_version(pipeline_id, query["name"], package)
                    )
                body = json.loads(self._raw())
                if path == "/pipelines":
                    return self._send(200, standin._add_pipeline(body["display_name"]))
                if path == "/experiments":
                    experiment = {
                        "experiment_id": str(uuid.uuid4()),
                        "display_name": body["display_name"],
                    }
                    standin.experiments[experiment["experiment_id"]] = experiment
                    return self._send(200, experiment)
                if path == "/runs":
                    version = body["pipeline_version_reference"]["pipeline_version_id"]
                    problem = _parameter_problem(
                        _pipeline_spec(standin.packages[version]),
                        body.get("runtime_config", {}).get("parameters", {}),
                    )
                    if problem:
                        return self._send(400, {"error": problem, "code": 3})
                    run = {**body, "run_id": str(uuid.uuid4()), "state": "PENDING"}
                    standin.runs.append(run)
                    return self._send(200, run)
                if path == "/recurringruns":
                    concurrency = int(body.get("max_concurrency") or 0)
                    cron = body.get("trigger", {}).get("cron_schedule", {}).get("cron")
                    if not 1 <= concurrency <= 10:
                        return self._send(400, {"error": "Max concurrency", "code": 3})
                    if (
                        cron is not None
                        and not cron.startswith("@")
                        and len(cron.split()) not in (5, 6)
                    ):
                        return self._send(400, {"error": "Schedule cron", "code": 3})
                    recurring = {**body, "recurring_run_id": str(uuid.uuid4()), "status": "ENABLED"}
                    standin.recurring_runs.append(recurring)
                    return self._send(200, recurring)
                return self._send(404, {"error": f"no route {path}", "code": 5})

        return Handler
