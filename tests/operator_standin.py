"""A Kubernetes API stand-in on loopback with Kubeflow's Training Operator v1 TFJob controller,
cut down to what a program that starts TFJobs and waits for them can observe.

Sources it follows: kubeflow/training-operator (the repository is now kubeflow/trainer) at tag
v1.9.3, the version ``make platform`` installs; paths are from that repository's root. Pod and
container status fields are Kubernetes' core/v1 (kubernetes/api kubernetes-1.32.2
core/v1/types.go ``PodStatus``, ``ContainerStateTerminated``).

API it serves, for the real kubernetes client:

- ``kubeflow.org/v1`` ``tfjobs`` (``/apis/kubeflow.org/v1/namespaces/{ns}/tfjobs[/{name}]``):
  POST creates it, 201, with ``uid``, ``resourceVersion``, ``creationTimestamp``; 409
  ``AlreadyExists`` (``tfjobs.kubeflow.org "<name>" already exists``, apimachinery's
  ``NewAlreadyExists``) when the name is taken. GET; 404 ``NotFound`` when there is none. DELETE
  removes it and, as the garbage collector does for what it owns, its pods (the operator makes
  the TFJob their controlling owner: pkg/controller.v1/common/job_controller.go:222-234,
  pkg/controller.v1/common/pod.go:454-455).
- ``v1`` ``pods`` (``/api/v1/namespaces/{ns}/pods``): GET a list with ``labelSelector``
  (``key=value`` terms joined by ``,``); ``/pods/{name}/log`` with ``container`` and
  ``tailLines``: the pod's log as text, its last lines.

What the webhook and the defaults do:

- Defaults, applied by the controller to its in-memory copy, never written back
  (pkg/apis/kubeflow.org/v1/tensorflow_defaults.go:50-72; tfjob_controller.go:151):
  ``runPolicy.cleanPodPolicy`` ``None``, ``successPolicy`` ``""``, each replica's ``replicas``
  1 and ``restartPolicy`` ``Never`` (tensorflow_types.go:30), the ``tfjob-port`` 2222 container
  port on the container named ``tensorflow`` (tensorflow_types.go:24-28). The stored TFJob gets
  only the CRD schema's ``runPolicy.suspend: false``.
- Rejected by the validating webhook with 403 ``Forbidden``, ``admission webhook
  "validator.tfjob.training-operator.kubeflow.org" denied the request: ...``: a name that is
  not a DNS-1035 label, a replica without a container named ``tensorflow`` or with a container
  without an image (pkg/webhooks/tensorflow/tfjob_webhook.go:73-127; the field errors' exact
  wording is not reproduced).

The controller, one step per request ("tick"):

1. On creation the ``Created`` condition: reason ``TFJobCreated``, message
   ``TFJob <name> is created.`` (pkg/controller.v1/tensorflow/tfjob_controller.go:651-661;
   reasons are the kind and the condition, pkg/util/status.go:12-33).
2. On the next tick, one pod per replica and index (pkg/controller.v1/common/pod.go:267-380):
   name ``<job>-<type lowercase>-<index>`` (:414, common/util.go:50-53); labels
   ``training.kubeflow.org/operator-name: tfjob-controller``, ``job-name``, ``replica-type``
   (lowercase), ``replica-index``, and ``job-role: master`` on the master role, worker 0 when
   there is no Chief or Master (pod.go:402-408; job_controller.go:236-242;
   tfjob_controller.go:61 and :598-605); the replica's ``restartPolicy``
   (pod.go:435). When the job has more than one replica in all (util.go:74-95) the container
   named ``tensorflow``, and only it, gets ``TF_CONFIG`` (tfjob_controller.go:555-588):
   ``{"cluster": {"worker": ["<job>-worker-0.<ns>.svc:2222", ...]}, "task": {"type":
   "worker", "index": i}, "environment": "cloud"}`` (tensorflow.go:112-188). The Services the
   operator makes beside the pods (common/service.go:221-243) are not served.
3. The kubelet, not the operator: a pod is ``Pending`` with its container waiting in
   ``ContainerCreating`` on the tick it is created, ``Running`` on the next; from then on each
   tick calls ``kubelet(pod)``, which returns None (the container keeps running) or a
   :class:`PodOutcome`: its container terminated with that reason, exit code, message and log,
   the pod ``Succeeded`` for exit code 0, else ``Failed`` (restartPolicy ``Never``).
4. The job's status (common/pod.go:376 with pkg/core/status.go:34-50, then
   tfjob_controller.go:373-519): ``replicaStatuses.<Type>`` ``active``/``succeeded``/``failed``
   from the pods' phases; ``startTime``. With only Worker replicas: ``Succeeded`` once all
   workers succeeded or worker 0 exited 0 (unless ``successPolicy: AllWorkers``), message
   ``TFJob <ns>/<name> successfully completed.``; else ``Running`` while a worker runs, message
   ``TFJob <ns>/<name> is running.`` (:463-482). A failed pod (restartPolicy ``Never``) gives
   ``Failed``, reason ``TFJobFailed``, message ``TFJob <ns>/<name> has failed because <n>
   Worker replica(s) failed.`` (:485-509). ``Succeeded`` and ``Failed`` turn ``Running`` False
   (util/status.go:141-144); once ``Failed``, no condition changes (:103-107). Finished jobs
   keep their pods (``cleanPodPolicy: None``, common/job.go:43-51).

Not reproduced: Chief/PS/Evaluator replicas' own status rules, restarts (OnFailure, Always,
ExitCode: pod.go:349-374), ``backoffLimit``, ``activeDeadlineSeconds`` and
``ttlSecondsAfterFinished`` (job.go:186-247, :420-450), suspension, gang scheduling, Services,
watches, field selectors, events.
"""

import copy
import json
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.loopback import JsonHandler, LoopbackServer, api_now, api_status

JOBS = "/apis/kubeflow.org/v1/namespaces/"
PODS = "/api/v1/namespaces/"
CONTAINER = "tensorflow"
# pkg/apis/kubeflow.org/v1/common_types.go:25-37.
INDEX_LABEL = "training.kubeflow.org/replica-index"
TYPE_LABEL = "training.kubeflow.org/replica-type"
JOB_LABEL = "training.kubeflow.org/job-name"
OPERATOR_LABEL = "training.kubeflow.org/operator-name"
ROLE_LABEL = "training.kubeflow.org/job-role"
_DNS_1035 = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")


@dataclass(frozen=True)
class PodOutcome:
    """How a pod's ``tensorflow`` container ended, as the kubelet reports it."""

    exit_code: int = 0
    reason: str = "Completed"
    message: str = ""
    log: str = ""


def _selected(labels: dict[str, str], selector: str) -> bool:
    terms = [term.split("=", 1) for term in selector.split(",") if term]
    return all(labels.get(key) == value for key, value in terms)


class TrainingOperatorStandin(LoopbackServer):
    """The stand-in; see the module docstring.

    Args:
        kubelet: Called with each running pod (a dict) on every tick; returns how its
            container ended, or None while it runs. None: pods run for ever.

    Attributes:
        jobs: TFJobs by (namespace, name).
        created: Every TFJob body as it was posted, in order.
        pods: Pods by (namespace, name).
        calls: (verb, resource) of every request.
        logs: Each pod's log, by (namespace, name).
    """

    def __init__(self, kubelet: Callable[[dict[str, Any]], PodOutcome | None] | None = None):
        super().__init__()
        self.kubelet = kubelet or (lambda pod: None)
        self.jobs: dict[tuple[str, str], dict[str, Any]] = {}
        self.created: list[dict[str, Any]] = []
        self.pods: dict[tuple[str, str], dict[str, Any]] = {}
        self.calls: list[tuple[str, str]] = []
        self.logs: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()
        self._version = 0

    def _next_version(self) -> str:
        self._version += 1
        return str(self._version)

    def _tick(self) -> None:
        for job in self.jobs.values():
            if self._finished(job):
                # A finished job's pods are left alone (cleanPodPolicy None) and its status
                # is not recomputed (common/job.go:122-144); the kubelet goes on.
                for pod in [p for p in self.pods.values() if self._owned(p, job)]:
                    self._kubelet(pod)
                continue
            self._reconcile(job)

    @staticmethod
    def _finished(job: dict[str, Any]) -> bool:
        conditions = job.get("status", {}).get("conditions", [])
        return any(
            c["type"] in ("Succeeded", "Failed") and c["status"] == "True" for c in conditions
        )

    @staticmethod
    def _defaulted(job: dict[str, Any]) -> dict[str, Any]:
        """The TFJob's spec with the operator's defaults, which the controller applies to its
        in-memory copy on every reconcile (tfjob_controller.go:151, ``r.Scheme.Default``) and
        never writes back: a GET shows the spec as posted."""
        spec = copy.deepcopy(job["spec"])
        spec.setdefault("runPolicy", {}).setdefault("cleanPodPolicy", "None")
        spec.setdefault("successPolicy", "")
        for replica in spec["tfReplicaSpecs"].values():
            replica.setdefault("replicas", 1)
            replica.setdefault("restartPolicy", "Never")
            for container in replica["template"]["spec"]["containers"]:
                if container["name"] == CONTAINER and not any(
                    p.get("name") == "tfjob-port" for p in container.get("ports", [])
                ):
                    container.setdefault("ports", []).append(
                        {"name": "tfjob-port", "containerPort": 2222}
                    )
        return spec

    def _reconcile(self, job: dict[str, Any]) -> None:
        namespace, name = job["metadata"]["namespace"], job["metadata"]["name"]
        specs = self._defaulted(job)["tfReplicaSpecs"]
        status = job.setdefault("status", {})
        if status.get("startTime") is None:
            status["startTime"] = api_now()
        statuses = status.setdefault("replicaStatuses", {})
        for rtype, spec in specs.items():
            counts = statuses[rtype] = {}  # initializeReplicaStatuses, common/pod.go:304.
            for index in range(spec["replicas"]):
                pod_name = f"{name}-{rtype.lower()}-{index}"
                pod = self.pods.get((namespace, pod_name))
                if pod is None:
                    self.pods[(namespace, pod_name)] = self._new_pod(job, rtype, index)
                    continue
                self._kubelet(pod)
                phase = pod["status"]["phase"]
                field = {"Running": "active", "Succeeded": "succeeded", "Failed": "failed"}
                if phase in field:
                    counts[field[phase]] = counts.get(field[phase], 0) + 1
        self._update_conditions(job)
        job["metadata"]["resourceVersion"] = self._next_version()

    def _new_pod(self, job: dict[str, Any], rtype: str, index: int) -> dict[str, Any]:
        namespace, name = job["metadata"]["namespace"], job["metadata"]["name"]
        specs = self._defaulted(job)["tfReplicaSpecs"]
        spec = specs[rtype]
        template = copy.deepcopy(spec["template"])
        labels = template.setdefault("metadata", {}).setdefault("labels", {})
        labels.update(
            {
                OPERATOR_LABEL: "tfjob-controller",
                JOB_LABEL: name,
                TYPE_LABEL: rtype.lower(),
                INDEX_LABEL: str(index),
            }
        )
        chief_or_master = {"Chief", "Master"} & set(specs)
        if rtype in chief_or_master or (not chief_or_master and rtype == "Worker" and index == 0):
            labels[ROLE_LABEL] = "master"
        pod_spec = template["spec"]
        pod_spec["restartPolicy"] = spec["restartPolicy"]
        if sum(s["replicas"] for s in specs.values()) != 1:
            config = {
                "cluster": {
                    t.lower(): [
                        f"{name}-{t.lower()}-{i}.{namespace}.svc:{self._port(s)}"
                        for i in range(s["replicas"])
                    ]
                    for t, s in specs.items()
                },
                "task": {"type": rtype.lower(), "index": index},
                "environment": "cloud",
            }
            for container in pod_spec["containers"]:
                if container["name"] == CONTAINER:
                    container.setdefault("env", []).append(
                        {"name": "TF_CONFIG", "value": json.dumps(config)}
                    )
                    break
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"{name}-{rtype.lower()}-{index}",
                "namespace": namespace,
                "labels": labels,
                "uid": str(uuid.uuid4()),
                "creationTimestamp": api_now(),
                "ownerReferences": [
                    {
                        "apiVersion": "kubeflow.org/v1",
                        "kind": "TFJob",
                        "name": name,
                        "uid": job["metadata"]["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": pod_spec,
            "status": {
                "phase": "Pending",
                "containerStatuses": [
                    self._container(c, {"waiting": {"reason": "ContainerCreating"}})
                    for c in pod_spec["containers"]
                ],
            },
        }

    @staticmethod
    def _port(spec: dict[str, Any]) -> int:
        for container in spec["template"]["spec"]["containers"]:
            if container["name"] == CONTAINER:
                for port in container.get("ports", []):
                    if port.get("name") == "tfjob-port":
                        return port["containerPort"]
        return 2222

    @staticmethod
    def _container(container: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
        return {
            "name": container["name"],
            "image": container["image"],
            "imageID": "",
            "ready": "running" in state,
            "restartCount": 0,
            "state": state,
        }

    def _kubelet(self, pod: dict[str, Any]) -> None:
        status = pod["status"]
        containers = pod["spec"]["containers"]
        if status["phase"] == "Pending":
            status["phase"] = "Running"
            status["containerStatuses"] = [
                self._container(c, {"running": {"startedAt": api_now()}}) for c in containers
            ]
            return
        if status["phase"] != "Running":
            return
        outcome = self.kubelet(copy.deepcopy(pod))
        if outcome is None:
            return
        key = (pod["metadata"]["namespace"], pod["metadata"]["name"])
        self.logs[key] = outcome.log
        terminated = {
            "exitCode": outcome.exit_code,
            "reason": outcome.reason,
            "startedAt": api_now(),
            "finishedAt": api_now(),
        }
        if outcome.message:
            terminated["message"] = outcome.message
        status["phase"] = "Succeeded" if outcome.exit_code == 0 else "Failed"
        status["containerStatuses"] = [
            self._container(c, {"terminated": terminated}) for c in containers
        ]

    def _update_conditions(self, job: dict[str, Any]) -> None:
        namespace, name = job["metadata"]["namespace"], job["metadata"]["name"]
        specs, status = job["spec"]["tfReplicaSpecs"], job["status"]
        for rtype in ("Chief", "Evaluator", "Master", "PS", "Worker"):  # tfjob_controller.go:419.
            if rtype not in specs:
                continue
            counts = status["replicaStatuses"][rtype]
            expected = specs[rtype]["replicas"] - counts.get("succeeded", 0)
            if rtype == "Worker" and not {"Chief", "Master"} & set(specs):
                worker0 = self.pods.get((namespace, f"{name}-worker-0"))
                worker0_done = worker0 is not None and worker0["status"]["phase"] == "Succeeded"
                all_workers = job["spec"].get("successPolicy") == "AllWorkers"
                if expected == 0 or (worker0_done and not all_workers):
                    message = f"TFJob {namespace}/{name} successfully completed."
                    self._set_condition(job, "Succeeded", "TFJobSucceeded", message)
                    status.setdefault("completionTime", api_now())
                elif counts.get("active", 0) > 0:
                    message = f"TFJob {namespace}/{name} is running."
                    self._set_condition(job, "Running", "TFJobRunning", message)
            if counts.get("failed", 0) > 0:
                message = (
                    f"TFJob {namespace}/{name} has failed because {counts['failed']} "
                    f"{rtype} replica(s) failed."
                )
                self._set_condition(job, "Failed", "TFJobFailed", message)
                status.setdefault("completionTime", api_now())

    @staticmethod
    def _set_condition(job: dict[str, Any], kind: str, reason: str, message: str) -> None:
        """pkg/util/status.go:59-149 (setCondition, filterOutCondition)."""
        conditions = job["status"].setdefault("conditions", [])
        if any(c["type"] == "Failed" and c["status"] == "True" for c in conditions):
            return
        current = next((c for c in conditions if c["type"] == kind), None)
        if current and current["status"] == "True" and current["reason"] == reason:
            return
        kept = []
        for c in conditions:
            if c["type"] == kind:
                continue
            if kind in ("Succeeded", "Failed") and c["type"] == "Running":
                c = {**c, "status": "False"}
            kept.append(c)
        now = api_now()
        kept.append(
            {
                "type": kind,
                "status": "True",
                "reason": reason,
                "message": message,
                "lastUpdateTime": now,
                "lastTransitionTime": now,
            }
        )
        job["status"]["conditions"] = kept

    def _create_job(self, namespace: str, body: dict[str, Any]) -> tuple[int, Any]:
        name = body.get("metadata", {}).get("name", "")
        problems = [] if _DNS_1035.fullmatch(name or "") else [f"metadata.name: {name!r}"]
        for rtype, spec in (body.get("spec", {}).get("tfReplicaSpecs") or {}).items():
            containers = spec.get("template", {}).get("spec", {}).get("containers") or []
            if not any(c.get("name") == CONTAINER for c in containers):
                problems.append(f"{rtype}: must have at least one container with name {CONTAINER}")
            problems += [
                f"{rtype}: image must be required" for c in containers if not c.get("image")
            ]
        if problems:
            # A validator's error reaches the client through the API server's admission chain
            # as 403 Forbidden (controller-runtime's webhook; tfjob_webhook.go:54-58).
            message = (
                'admission webhook "validator.tfjob.training-operator.kubeflow.org" denied the '
                "request: " + "; ".join(problems)
            )
            return 403, api_status(403, "Forbidden", message)
        if (namespace, name) in self.jobs:
            return 409, api_status(
                409, "AlreadyExists", f'tfjobs.kubeflow.org "{name}" already exists'
            )
        self.created.append(copy.deepcopy(body))
        job = copy.deepcopy(body)
        job.pop("status", None)
        job["metadata"].update(
            namespace=namespace,
            uid=str(uuid.uuid4()),
            resourceVersion=self._next_version(),
            creationTimestamp=api_now(),
        )
        # The CRD's own schema default; the operator's defaults are applied in memory only.
        job["spec"].setdefault("runPolicy", {}).setdefault("suspend", False)
        job["status"] = {}
        self._set_condition(job, "Created", "TFJobCreated", f"TFJob {name} is created.")
        self.jobs[(namespace, name)] = job
        return 201, copy.deepcopy(job)

    def _handler(self) -> type[JsonHandler]:
        standin = self

        class Handler(JsonHandler):
            def _text(self, code: int, text: str) -> None:
                data = text.encode()
                self.send_response(code)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _route(self, method: str) -> None:
                parts = urlsplit(self.path)
                query = {key: values[0] for key, values in parse_qs(parts.query).items()}
                body = json.loads(self._raw() or b"{}") if method == "POST" else None
                with standin._lock:
                    if parts.path.startswith(JOBS) and "/tfjobs" in parts.path:
                        rest = parts.path[len(JOBS) :].split("/")
                        standin.calls.append((method, "tfjobs"))
                        standin._tick()
                        code, answer = standin._jobs(method, rest, body)
                    elif parts.path.startswith(PODS) and "/pods" in parts.path:
                        rest = parts.path[len(PODS) :].split("/")
                        standin.calls.append((method, "pods"))
                        standin._tick()
                        code, answer = standin._pods(method, rest, query)
                    else:
                        code, answer = 404, api_status(404, "NotFound", f"no route {self.path}")
                if isinstance(answer, str):
                    self._text(code, answer)
                else:
                    self._send(code, answer)

            def do_GET(self):
                self._route("GET")

            def do_POST(self):
                self._route("POST")

            def do_DELETE(self):
                self._route("DELETE")

        return Handler

    def _jobs(self, method: str, rest: list[str], body: Any) -> tuple[int, Any]:
        namespace = rest[0]
        name = rest[2] if len(rest) > 2 else ""
        if method == "POST" and not name:
            return self._create_job(namespace, body)
        job = self.jobs.get((namespace, name))
        if job is None:
            return 404, api_status(404, "NotFound", f'tfjobs.kubeflow.org "{name}" not found')
        if method == "GET":
            return 200, copy.deepcopy(job)
        if method == "DELETE":
            del self.jobs[(namespace, name)]
            for key in [k for k, pod in self.pods.items() if self._owned(pod, job)]:
                del self.pods[key]
            return 200, copy.deepcopy(job)
        return 405, api_status(405, "MethodNotAllowed", method)

    @staticmethod
    def _owned(pod: dict[str, Any], job: dict[str, Any]) -> bool:
        return any(o["uid"] == job["metadata"]["uid"] for o in pod["metadata"]["ownerReferences"])

    def _pods(self, method: str, rest: list[str], query: dict[str, str]) -> tuple[int, Any]:
        namespace = rest[0]
        if method != "GET":
            return 405, api_status(405, "MethodNotAllowed", method)
        if len(rest) == 2:
            items = [
                copy.deepcopy(pod)
                for (ns, _), pod in sorted(self.pods.items())
                if ns == namespace
                and _selected(pod["metadata"]["labels"], query.get("labelSelector", ""))
            ]
            return 200, {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items}
        name = rest[2]
        if (namespace, name) not in self.pods:
            return 404, api_status(404, "NotFound", f'pods "{name}" not found')
        if len(rest) == 4 and rest[3] == "log":
            lines = self.logs.get((namespace, name), "").splitlines(keepends=True)
            tail = int(query.get("tailLines", len(lines) or 1))
            return 200, "".join(lines[-tail:])
        return 200, copy.deepcopy(self.pods[(namespace, name)])
