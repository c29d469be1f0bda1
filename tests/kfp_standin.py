"""A Kubeflow Pipelines API stand-in on loopback, for the upload and submit commands.

API behaviour it reproduces (KFP backend 2.5, REST ``/apis/v2beta1``), as ``kfp.Client`` 2.13
calls it:

- ``GET /healthz`` answers ``{"multi_user": false}``.
- ``GET /pipelines?filter=`` with a ``display_name`` EQUALS predicate lists matching pipelines.
- ``POST /pipelines/upload?name=`` (multipart ``uploadfile``) creates a pipeline and its first
  version, named like the pipeline.
- ``POST /pipelines/upload_version?name=&pipelineid=`` adds a version; 409 when the pipeline
  already has a version of that name.
- ``GET /pipelines/{id}/versions`` lists versions, newest first.
- ``GET /experiments?filter=`` lists experiments by ``display_name``; ``POST /experiments``
  creates one.
- ``POST /runs`` records the run (pipeline version reference, parameters, service account) and
  answers with a ``run_id``.

Not reproduced: authentication, namespaces (single-user mode), pagination, run execution.
"""

import email.parser
import json
import urllib.parse
import uuid
from typing import Any

from tests.loopback import JsonHandler, LoopbackServer

PREFIX = "/apis/v2beta1"


class KfpStandIn(LoopbackServer):
    """The stand-in server; ``pipelines``, ``versions``, ``experiments``, ``runs`` hold state."""

    def __init__(self) -> None:
        self.pipelines: dict[str, dict[str, Any]] = {}
        self.versions: dict[str, list[dict[str, Any]]] = {}
        self.packages: dict[str, bytes] = {}
        self.experiments: dict[str, dict[str, Any]] = {}
        self.runs: list[dict[str, Any]] = []
        self._clock = 0
        super().__init__()

    def _tick(self) -> str:
        self._clock += 1
        return f"2026-01-01T00:00:{self._clock:02d}Z"

    def _add_version(self, pipeline_id: str, name: str, package: bytes) -> dict[str, Any]:
        version = {
            "pipeline_id": pipeline_id,
            "pipeline_version_id": str(uuid.uuid4()),
            "display_name": name,
            "created_at": self._tick(),
        }
        self.versions.setdefault(pipeline_id, []).insert(0, version)
        self.packages[version["pipeline_version_id"]] = package
        return version

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
                name = None
                if "filter" in query:
                    name = json.loads(query["filter"])["predicates"][0]["stringValue"]
                if path == "/pipelines":
                    found = [p for p in standin.pipelines.values() if p["display_name"] == name]
                    return self._send(
                        200, {"pipelines": found, "total_size": len(found)} if found else {}
                    )
                if path.startswith("/pipelines/") and path.endswith("/versions"):
                    versions = standin.versions.get(path.split("/")[2], [])
                    return self._send(
                        200, {"pipeline_versions": versions, "total_size": len(versions)}
                    )
                if path == "/experiments":
                    found = [e for e in standin.experiments.values() if e["display_name"] == name]
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
                    pipeline = {
                        "pipeline_id": str(uuid.uuid4()),
                        "display_name": query["name"],
                        "created_at": standin._tick(),
                    }
                    standin.pipelines[pipeline["pipeline_id"]] = pipeline
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
                if path == "/experiments":
                    experiment = {
                        "experiment_id": str(uuid.uuid4()),
                        "display_name": body["display_name"],
                    }
                    standin.experiments[experiment["experiment_id"]] = experiment
                    return self._send(200, experiment)
                if path == "/runs":
                    run = {**body, "run_id": str(uuid.uuid4()), "state": "PENDING"}
                    standin.runs.append(run)
                    return self._send(200, run)
                return self._send(404, {"error": f"no route {path}", "code": 5})

        return Handler
