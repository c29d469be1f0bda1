"""A Kubernetes API stand-in on loopback, for code that drives KServe InferenceServices.

API behaviour it reproduces, for ``serving.kserve.io/v1beta1`` ``inferenceservices`` under
``/apis/serving.kserve.io/v1beta1/namespaces/{namespace}/inferenceservices[/{name}]``:

- GET of an object; 404 with a ``Status`` body (reason ``NotFound``) when there is none.
- POST creates it: ``metadata.generation`` 1, a ``resourceVersion``, ``uid``,
  ``creationTimestamp``; 409 ``AlreadyExists`` when the name is taken.
- PUT replaces it: 409 ``Conflict`` when the body's ``metadata.resourceVersion`` is stale;
  ``generation`` goes up when the spec changes; ``status`` in the body is ignored.
- DELETE removes it (200 with a ``Status``), 404 when there is none.

And what KServe's controller does to the status, simplified: a write starts a new revision;
from the second read after it, ``status.observedGeneration`` equals the generation and the
conditions ``PredictorReady``, ``IngressReady`` and ``Ready`` are set by ``revision_ready``
(a test's choice): True with ``status.url`` and
``status.components.predictor.latestReadyRevision``, or False with a reason and message, as
KServe reports a revision whose model does not load. ``latestReadyRevision`` keeps pointing at
the last revision that was ready.

Not reproduced: watches, field selectors, server-side apply, admission webhooks, Knative routes.
"""

import copy
import json
import re
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from tests.loopback import JsonHandler, LoopbackServer

_PATH = re.compile(
    r"^/apis/serving\.kserve\.io/v1beta1/namespaces/(?P<ns>[^/]+)/inferenceservices(?:/(?P<name>[^/?]+))?"
)


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "reason": reason,
        "message": message,
        "code": code,
    }


class InferenceServiceStandIn(LoopbackServer):
    """The stand-in server. ``revision_ready(obj) -> (ready, reason, message)`` decides how a
    revision ends; by default every revision becomes ready."""

    def __init__(self, revision_ready: Callable[[dict], tuple[bool, str, str]] | None = None):
        self.revision_ready = revision_ready or (lambda obj: (True, "", ""))
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.reads_since_write: dict[tuple[str, str], int] = {}
        self.requests: list[tuple[str, str]] = []
        self._version = 0
        self._lock = threading.Lock()
        super().__init__()

    def _next_version(self) -> str:
        self._version += 1
        return str(self._version)

    def _reconcile(self, key: tuple[str, str]) -> None:
        obj = self.objects[key]
        self.reads_since_write[key] = self.reads_since_write.get(key, 0) + 1
        generation = obj["metadata"]["generation"]
        revision = f"{obj['metadata']['name']}-predictor-{generation:05d}"
        status = obj.setdefault("status", {})
        predictor = status.setdefault("components", {}).setdefault("predictor", {})
        predictor["latestCreatedRevision"] = revision
        if self.reads_since_write[key] < 2:
            status["conditions"] = [
                {"type": "Ready", "status": "Unknown", "reason": "RevisionPending"}
            ]
            return
        ready, reason, message = self.revision_ready(obj)
        status["observedGeneration"] = generation
        if ready:
            status["conditions"] = [
                {"type": kind, "status": "True"}
                for kind in ("PredictorReady", "IngressReady", "Ready")
            ]
            status["url"] = f"http://{obj['metadata']['name']}.{key[0]}.example.com"
            predictor["latestReadyRevision"] = revision
        else:
            failed = {"status": "False", "reason": reason, "message": message}
            status["conditions"] = [
                {"type": "PredictorReady", **failed},
                {"type": "Ready", **failed},
            ]

    def _handler(self):
        standin = self

        class Handler(JsonHandler):
            def _body(self) -> dict:
                return json.loads(self._raw())

            def _route(self, method: str) -> None:
                match = _PATH.match(self.path)
                if not match:
                    self._send(404, _status(404, "NotFound", f"no route {self.path}"))
                    return
                key = (match["ns"], match["name"] or "")
                standin.requests.append((method, self.path))
                with standin._lock:
                    code, body = getattr(standin, f"_{method.lower()}")(key, self)
                self._send(code, body)

            def do_GET(self):
                self._route("GET")

            def do_POST(self):
                self._route("POST")

            def do_PUT(self):
                self._route("PUT")

            def do_DELETE(self):
                self._route("DELETE")

        return Handler

    def _get(self, key, handler):
        if key not in self.objects:
            return 404, _status(404, "NotFound", f'inferenceservices "{key[1]}" not found')
        self._reconcile(key)
        return 200, copy.deepcopy(self.objects[key])

    def _post(self, key, handler):
        body = handler._body()
        key = (key[0], body["metadata"]["name"])
        if key in self.objects:
            return 409, _status(
                409, "AlreadyExists", f'inferenceservices "{key[1]}" already exists'
            )
        body.pop("status", None)
        body["metadata"].update(
            namespace=key[0],
            generation=1,
            uid=str(uuid.uuid4()),
            resourceVersion=self._next_version(),
            creationTimestamp=datetime.now(UTC).isoformat(),
        )
        self.objects[key] = body
        self.reads_since_write[key] = 0
        return 201, copy.deepcopy(body)

    def _put(self, key, handler):
        if key not in self.objects:
            return 404, _status(404, "NotFound", f'inferenceservices "{key[1]}" not found')
        body, current = handler._body(), self.objects[key]
        if body["metadata"].get("resourceVersion") != current["metadata"]["resourceVersion"]:
            return 409, _status(
                409,
                "Conflict",
                "the object has been modified; apply your changes to the latest version",
            )
        body.pop("status", None)
        generation = current["metadata"]["generation"] + (body["spec"] != current["spec"])
        body["metadata"].update(generation=generation, resourceVersion=self._next_version())
        body["status"] = current.get("status", {})
        self.objects[key] = body
        self.reads_since_write[key] = 0
        return 200, copy.deepcopy(body)

    def _delete(self, key, handler):
        if self.objects.pop(key, None) is None:
            return 404, _status(404, "NotFound", f'inferenceservices "{key[1]}" not found')
        return 200, {"kind": "Status", "apiVersion": "v1", "status": "Success"}
