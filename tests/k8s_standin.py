"""A Kubernetes API stand-in on loopback, with KServe's InferenceService controller and the
Deployment controller cut down to what a deployer can observe.

Sources it follows: kserve/kserve at tag v0.15.2 (paths below are from its root unless a repo
is named); Kubernetes 1.32.2 (the kind node version of this project) through kubernetes/api and
kubernetes/kubectl at tag kubernetes-1.32.2, and kubernetes/kubernetes
``pkg/controller/deployment`` (function names; read at commit 008b3652).

API it serves, for the real kubernetes client:

- ``serving.kserve.io/v1beta1`` ``inferenceservices``
  (``/apis/serving.kserve.io/v1beta1/namespaces/{ns}/inferenceservices[/{name}]``): GET;
  404 with a ``Status`` body (reason ``NotFound``) when there is none. POST creates it:
  ``metadata.generation`` 1, ``resourceVersion``, ``uid``, ``creationTimestamp``; 409
  ``AlreadyExists`` when the name is taken. PUT replaces it: 409 ``Conflict`` when the body's
  ``resourceVersion`` is stale; ``generation`` goes up when the spec changes; ``status`` in the
  body is ignored. DELETE removes it (200 ``Status``; 404 when there is none) and, as the
  garbage collector does for owned objects, its Deployments and pods. Every write, the
  controller's status writes included, gives a new ``resourceVersion``.
- ``apps/v1`` ``deployments`` (``/apis/apps/v1/namespaces/{ns}/deployments[/{name}]``): GET one,
  GET a list with ``labelSelector`` (``key=value`` terms joined by ``,``).
- ``v1`` ``pods`` (``/api/v1/namespaces/{ns}/pods``): GET a list with ``labelSelector``. Each
  pod has a ``status.podIP`` of its own.
- ``serving.kserve.io/v1alpha1`` ``inferencegraphs``: GET, POST, PUT, DELETE as for
  InferenceServices (the same resourceVersion, generation and 409 rules).

Every request first runs the controllers one step ("tick"), in this order:

1. The Deployment controller syncs each Deployment (rolling update; kubernetes/kubernetes
   rolling.go ``rolloutRolling``, progress.go ``syncRolloutStatus``):

   - The new ReplicaSet is the one whose pod template equals the Deployment's (its pods carry
     label ``pod-template-hash``, kubernetes/api apps/v1/types.go:424); it gets the next
     revision, kept in annotation ``deployment.kubernetes.io/revision`` (kubectl
     pkg/util/deployment/deployment.go:37).
   - ``maxSurge``/``maxUnavailable`` are 25 % (as KServe sets them,
     pkg/controller/v1beta1/inferenceservice/reconcilers/deployment/deployment_reconciler.go:
     312-321), rounded up and down (kubernetes/api apps/v1/types.go:457 and :472; both 0 → 1
     unavailable, deployment_util.go ``ResolveFenceposts``). The new ReplicaSet grows up to
     replicas + maxSurge pods in all. Old pods go, not-ready ones first, up to all pods -
     (replicas - maxUnavailable) - new pods not ready; then ready ones while
     replicas - maxUnavailable pods stay available (rolling.go ``reconcileNewReplicaSet``,
     ``reconcileOldReplicaSets``, ``cleanupUnhealthyReplicas``). With 1 replica: one new pod
     next to the old one, which stays until the new one is available.
   - A pod is Pending with ``ContainerCreating`` on the tick it is created and Running and
     Ready on the next, unless ``pod_failure(template annotations)`` returns a
     :class:`PodFailure`: then its container waits with that reason (``CrashLoopBackOff``
     with the last exit, ``ImagePullBackOff``, ...), as the kubelet reports it; for the
     storage initializer, the init container does and the model server waits in
     ``PodInitializing``. Available = Ready (minReadySeconds 0).
   - Status: ``observedGeneration`` = ``metadata.generation``; ``replicas`` (all pods),
     ``updatedReplicas`` (new pods), ``readyReplicas``/``availableReplicas``,
     ``unavailableReplicas`` (types.go:484-523). ``Available`` True
     (``MinimumReplicasAvailable``) while available ≥ replicas - maxUnavailable, else False
     (``MinimumReplicasUnavailable``), types.go:529-531, so it stays True while the old
     ReplicaSet serves. ``Progressing``: True ``NewReplicaSetAvailable`` once complete, True
     ``ReplicaSetUpdated`` (last update now) on any progress, False
     ``ProgressDeadlineExceeded`` when none for ``progressDeadlineSeconds`` (types.go:412-417;
     kubectl deployment.go:56). The deadline is measured on a clock ``time_scale`` times
     faster than the wall clock.

2. KServe's controller reconciles each InferenceService, ``controller_lag`` ticks after the
   InferenceService was last written (it works from a watch, after the write returned):

   - Mode: ``status.deploymentMode`` if set, else annotation ``serving.kserve.io/deploymentMode``,
     else ``default_mode`` (pkg/controller/v1beta1/inferenceservice/utils/utils.go:176-191);
     recorded in ``status.deploymentMode`` (controller.go:320).
   - RawDeployment: the predictor Deployment ``<isvc>-predictor``
     (components/predictor.go:149, :426-442; constants.go:580-582) is created, or updated when
     it differs (deployment_reconciler.go:388-437). Labels: the InferenceService's and the
     predictor's, ``serving.kserve.io/inferenceservice: <isvc>``, ``component: predictor``
     (predictor.go:450-458) and ``app: isvc.<deployment>`` (deployment_reconciler.go:142,
     constants.go:538-540), which is also the selector (:147-151). Pod template annotations =
     Deployment annotations: the InferenceService's (minus the disallowed list,
     constants.go:397-402), ``internal.serving.kserve.io/storage-initializer-sourceuri`` =
     storageUri (predictor.go:259-271) and the predictor's own (predictor.go:154-156,
     :459-463; deployment_reconciler.go:141-153). Replicas = ``minReplicas`` (:162-164 and the
     HPA's minimum). Owner: the InferenceService as controller (predictor.go:695-698).
   - Raw status (inference_service_status.go:334-355): ``PredictorReady`` = the Deployment's
     ``Available`` condition (status, reason, message); ``status.observedGeneration`` = the
     Deployment's ``status.observedGeneration``; ``IngressReady`` True once PredictorReady is,
     else False "Predictor ingress not created" (reconcilers/ingress/kube_ingress_reconciler.go:
     102-116, :186-192), then ``status.url`` ``http://<isvc>-<ns>.example.com``; ``Ready`` is
     True when both are (inference_service_status.go:268-272). The status copied is the
     Deployment's before the controller's own update took effect (KServe propagates the
     object its dry-run update returned, deployment_reconciler.go:232-237, :437, and
     predictor.go:717-722), so it says Ready while the new pods crash.
   - Serverless: no Deployment. Simplified from Knative: from that tick on,
     ``observedGeneration`` is the generation (the Knative Service's, copied at
     inference_service_status.go:510, moves with it because each spec written changes the
     revision template) and the revision ``<isvc>-predictor-<generation:05d>`` is ready, or,
     when ``pod_failure`` says so, ``PredictorReady``/``Ready`` False ``RevisionFailed`` with
     the failure in the message (:487-497). ``latestReadyRevision`` keeps the last ready
     revision (:483-485).

3. KServe's InferenceGraph controller reconciles each RawDeployment graph, the same lag after a
   write (pkg/controller/v1alpha1/inferencegraph/controller.go, raw_ig.go):

   - The Deployment ``<graph>`` in the graph's namespace: labels the graph's plus
     ``serving.kserve.io/inferencegraph: <graph>`` (raw_ig.go:121) and ``app: isvc.<graph>``,
     its selector (deployment_reconciler.go:136-158); the pod template carries the graph's
     annotations; one container, the router, with ``--graph-json <spec>`` (raw_ig.go:56-69);
     the graph is its controlling owner (raw_ig.go:162-172). Replicas ``minReplicas`` or 1.
   - Status: nothing until the Deployment has an ``Available`` condition (controller.go:
     195-205); then ``Ready`` True whatever that condition says, ``url``, and
     ``observedGeneration`` = the Deployment's (raw_ig.go:195-213).
   - Routing a request is not reproduced here: tests route with the graph's spec as the router
     does (cmd/router/main.go:172-187, :302-344).

Not reproduced: watches, field selectors, server-side apply, admission webhooks (the
deployment-mode change rejection, inference_service_validation.go:447-457), ReplicaSet and
Service objects, the HPA, Knative objects, multi-node predictors.
"""

import copy
import functools
import hashlib
import json
import math
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.loopback import JsonHandler, LoopbackServer, api_now, api_status

ISVC_LABEL = "serving.kserve.io/inferenceservice"
GRAPH_LABEL = "serving.kserve.io/inferencegraph"
STORAGE_URI_ANNOTATION = "internal.serving.kserve.io/storage-initializer-sourceuri"
REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
MODE_ANNOTATION = "serving.kserve.io/deploymentMode"
# constants.go:397-402 (the Knative scale annotations, the storage URI, kubectl's).
_DISALLOWED = {
    "autoscaling.knative.dev/min-scale",
    "autoscaling.knative.dev/max-scale",
    STORAGE_URI_ANNOTATION,
    "kubectl.kubernetes.io/last-applied-configuration",
}
_ROUTES = {
    ("serving.kserve.io", "inferenceservices"): "/apis/serving.kserve.io/v1beta1/namespaces/",
    ("serving.kserve.io", "inferencegraphs"): "/apis/serving.kserve.io/v1alpha1/namespaces/",
    ("apps", "deployments"): "/apis/apps/v1/namespaces/",
    ("", "pods"): "/api/v1/namespaces/",
}


@dataclass(frozen=True)
class PodFailure:
    """How the new pods of a revision fail, as the kubelet reports it in a container status."""

    reason: str = "CrashLoopBackOff"
    message: str = "back-off 10s restarting failed container"
    container: str = "kserve-container"
    exit_code: int = 1
    exit_message: str = ""


@dataclass
class _ReplicaSet:
    name: str
    template_hash: str
    template: dict[str, Any]
    revision: int
    pods: list[dict[str, Any]] = field(default_factory=list)
    started: set[str] = field(default_factory=set)  # Pods past their first tick.


def _ready(pod: dict[str, Any]) -> bool:
    conditions = pod["status"].get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def _selected(labels: dict[str, str], selector: str) -> bool:
    terms = [term.split("=", 1) for term in selector.split(",") if term]
    return all(labels.get(key) == value for key, value in terms)


def _set_condition(status: dict[str, Any], condition: dict[str, Any]) -> None:
    status["conditions"] = [
        c for c in status.get("conditions", []) if c["type"] != condition["type"]
    ] + [condition]


def _get_condition(status: dict[str, Any], kind: str) -> dict[str, Any] | None:
    return next((c for c in status.get("conditions", []) if c["type"] == kind), None)


class KServeStandIn(LoopbackServer):
    """The stand-in server (see the module docstring).

    Args:
        pod_failure: Given a revision's pod template annotations, how its pods fail, or None
            when they start and become ready. By default every revision serves.
        controller_lag: Ticks between an InferenceService write and KServe acting on it.
        time_scale: How many cluster seconds pass per wall-clock second (progress deadlines).
        default_mode: The cluster's ``deploy.defaultDeploymentMode``.
    """

    def __init__(
        self,
        pod_failure: Callable[[dict[str, str]], PodFailure | None] | None = None,
        controller_lag: int = 2,
        time_scale: float = 1.0,
        default_mode: str = "RawDeployment",
    ) -> None:
        self.pod_failure = pod_failure or (lambda annotations: None)
        self.controller_lag = controller_lag
        self.time_scale = time_scale
        self.default_mode = default_mode
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}  # InferenceServices
        self.graphs: dict[tuple[str, str], dict[str, Any]] = {}  # InferenceGraphs
        self._stores = {"inferenceservices": self.objects, "inferencegraphs": self.graphs}
        self.deployments: dict[tuple[str, str], dict[str, Any]] = {}
        self.replicasets: dict[tuple[str, str], list[_ReplicaSet]] = {}
        self.calls: list[tuple[str, str]] = []  # (verb, resource), as RBAC names them
        self._lag: dict[tuple[str, str], int] = {}
        self._progress_at: dict[tuple[str, str], float] = {}
        self._version = 0
        self._pod_ips: list[tuple[str, str]] = []  # One address per pod made, never reused.
        self._lock = threading.Lock()
        super().__init__()

    def _next_version(self) -> str:
        self._version += 1
        return str(self._version)

    def pods(self, namespace: str) -> list[dict[str, Any]]:
        """Every pod in the namespace."""
        return [
            pod
            for (ns, _), sets in self.replicasets.items()
            if ns == namespace
            for rs in sets
            for pod in rs.pods
        ]

    def _tick(self) -> None:
        for key in list(self.deployments):
            self._sync_deployment(key)
        for resource, store in self._stores.items():
            reconcile = self._reconcile if store is self.objects else self._reconcile_graph
            for key in list(store):
                lag_key = (resource, *key)
                if self._lag.get(lag_key, 0) > 0:
                    self._lag[lag_key] -= 1
                    continue
                before = copy.deepcopy(store[key].get("status"))
                reconcile(key)
                if store[key].get("status") != before:
                    store[key]["metadata"]["resourceVersion"] = self._next_version()

    def _mode(self, obj: dict[str, Any]) -> str:
        annotations = obj["metadata"].get("annotations", {})
        return obj.get("status", {}).get("deploymentMode") or annotations.get(
            MODE_ANNOTATION, self.default_mode
        )

    def _template_annotations(self, obj: dict[str, Any]) -> dict[str, str]:
        predictor = obj["spec"]["predictor"]
        annotations = {
            k: v for k, v in obj["metadata"].get("annotations", {}).items() if k not in _DISALLOWED
        }
        annotations[STORAGE_URI_ANNOTATION] = predictor["model"]["storageUri"]
        annotations.update(
            {k: v for k, v in predictor.get("annotations", {}).items() if k not in _DISALLOWED}
        )
        return annotations

    def _reconcile(self, key: tuple[str, str]) -> None:
        obj = self.objects[key]
        status = obj.setdefault("status", {})
        status["deploymentMode"] = self._mode(obj)
        if status["deploymentMode"] == "RawDeployment":
            self._reconcile_raw(key, obj)
        else:
            self._reconcile_serverless(key, obj)

    def _reconcile_raw(self, key: tuple[str, str], obj: dict[str, Any]) -> None:
        name = f"{key[1]}-predictor"
        predictor = obj["spec"]["predictor"]
        app = f"isvc.{name}"
        labels = {
            **obj["metadata"].get("labels", {}),
            **predictor.get("labels", {}),
            ISVC_LABEL: key[1],
            "component": "predictor",
            "app": app,
        }
        annotations = self._template_annotations(obj)
        model = predictor["model"]
        spec = {
            "replicas": predictor.get("minReplicas", 1),
            "selector": {"matchLabels": {"app": app}},
            "template": {
                "metadata": {"labels": labels, "annotations": annotations},
                "spec": {
                    "serviceAccountName": predictor.get("serviceAccountName", "default"),
                    "containers": [
                        {
                            "name": "kserve-container",
                            "image": f"{model['runtime']}:{model.get('runtimeVersion', 'latest')}",
                            "resources": model.get("resources", {}),
                        }
                    ],
                },
            },
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
            },
            "progressDeadlineSeconds": 600,
            "revisionHistoryLimit": 10,
        }
        dep_key = (key[0], name)
        self._apply_deployment(
            dep_key, labels, annotations, spec, obj, "v1beta1", "InferenceService"
        )
        self._propagate_raw(key, obj, self.deployments[dep_key])

    def _apply_deployment(
        self,
        dep_key: tuple[str, str],
        labels: dict[str, str],
        annotations: dict[str, str],
        spec: dict[str, Any],
        owner: dict[str, Any],
        version: str,
        kind: str,
    ) -> None:
        current = self.deployments.get(dep_key)
        if current is None:
            self.deployments[dep_key] = {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {
                    "name": dep_key[1],
                    "namespace": dep_key[0],
                    "labels": labels,
                    "annotations": dict(annotations),
                    "ownerReferences": [
                        {
                            "apiVersion": f"serving.kserve.io/{version}",
                            "kind": kind,
                            "name": owner["metadata"]["name"],
                            "uid": owner["metadata"]["uid"],
                            "controller": True,
                            "blockOwnerDeletion": True,
                        }
                    ],
                    "uid": str(uuid.uuid4()),
                    "generation": 1,
                    "resourceVersion": self._next_version(),
                    "creationTimestamp": api_now(),
                },
                "spec": spec,
                "status": {},
            }
            self.replicasets[dep_key] = []
        elif current["spec"] != spec:
            current["spec"] = spec
            current["metadata"]["generation"] += 1
            revision = current["metadata"]["annotations"].get(REVISION_ANNOTATION)
            current["metadata"].update(labels=labels, annotations=dict(annotations))
            if revision:
                current["metadata"]["annotations"][REVISION_ANNOTATION] = revision
            current["metadata"]["resourceVersion"] = self._next_version()

    def _reconcile_graph(self, key: tuple[str, str]) -> None:
        graph = self.graphs[key]
        status = graph.setdefault("status", {})
        if self._mode(graph) != "RawDeployment":
            return  # Knative InferenceGraphs are not reproduced.
        status["deploymentMode"] = "RawDeployment"
        name = key[1]
        app = f"isvc.{name}"
        labels = {**graph["metadata"].get("labels", {}), GRAPH_LABEL: name, "app": app}
        annotations = dict(graph["metadata"].get("annotations", {}))
        spec = {
            "replicas": graph["spec"].get("minReplicas", 1),
            "selector": {"matchLabels": {"app": app}},
            "template": {
                "metadata": {"labels": labels, "annotations": annotations},
                "spec": {
                    "automountServiceAccountToken": False,
                    "containers": [
                        {
                            "name": name,
                            "image": "kserve/router:v0.15.2",
                            "args": ["--graph-json", json.dumps(graph["spec"])],
                        }
                    ],
                },
            },
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
            },
            "progressDeadlineSeconds": 600,
            "revisionHistoryLimit": 10,
        }
        self._apply_deployment(key, labels, annotations, spec, graph, "v1alpha1", "InferenceGraph")
        dep_status = self.deployments[key].get("status", {})
        if _get_condition(dep_status, "Available") is None:
            return  # Requeued, status unchanged (controller.go:195-205).
        status["url"] = f"http://{name}-{key[0]}.example.com"
        status["conditions"] = [{"type": "Ready", "status": "True"}]
        status["observedGeneration"] = dep_status.get("observedGeneration", 0)

    def _propagate_raw(
        self, key: tuple[str, str], obj: dict[str, Any], deployment: dict[str, Any] | None
    ) -> None:
        status = obj["status"]
        dep_status = (deployment or {}).get("status", {})
        available = _get_condition(dep_status, "Available")
        if available is None:
            predictor_ready = {"type": "PredictorReady", "status": "Unknown"}
        else:
            predictor_ready = {
                "type": "PredictorReady",
                "status": available["status"],
                "reason": available.get("reason", ""),
                "message": available.get("message", ""),
            }
        _set_condition(status, predictor_ready)
        if predictor_ready["status"] == "True":
            _set_condition(status, {"type": "IngressReady", "status": "True"})
            status["url"] = f"http://{key[1]}-{key[0]}.example.com"
            status.setdefault("components", {})["predictor"] = {
                "url": f"http://{key[1]}-predictor-{key[0]}.example.com"
            }
        else:
            _set_condition(
                status,
                {
                    "type": "IngressReady",
                    "status": "False",
                    "reason": "Predictor ingress not created",
                },
            )
        failing = next(
            (
                c
                for c in status["conditions"]
                if c["type"] in ("PredictorReady", "IngressReady") and c["status"] != "True"
            ),
            None,
        )
        if failing is None:
            _set_condition(status, {"type": "Ready", "status": "True"})
        else:
            _set_condition(
                status,
                {
                    "type": "Ready",
                    "status": failing["status"],
                    "reason": failing.get("reason", ""),
                    "message": failing.get("message", ""),
                },
            )
        status["observedGeneration"] = dep_status.get("observedGeneration", 0)

    def _reconcile_serverless(self, key: tuple[str, str], obj: dict[str, Any]) -> None:
        generation = obj["metadata"]["generation"]
        revision = f"{key[1]}-predictor-{generation:05d}"
        status = obj["status"]
        predictor = status.setdefault("components", {}).setdefault("predictor", {})
        predictor["latestCreatedRevision"] = revision
        status["observedGeneration"] = generation
        failure = self.pod_failure(self._template_annotations(obj))
        if failure is None:
            status["conditions"] = [
                {"type": kind, "status": "True"}
                for kind in ("PredictorReady", "IngressReady", "Ready")
            ]
            status["url"] = f"http://{key[1]}.{key[0]}.example.com"
            predictor["latestReadyRevision"] = revision
        else:
            failed = {
                "status": "False",
                "reason": "RevisionFailed",
                "message": f'Revision "{revision}" failed with message: '
                f"{failure.exit_message or failure.message}.",
            }
            status["conditions"] = [
                {"type": "PredictorReady", **failed},
                {"type": "Ready", **failed},
            ]

    def _sync_deployment(self, key: tuple[str, str]) -> None:
        deployment = self.deployments[key]
        spec, status = deployment["spec"], deployment.setdefault("status", {})
        desired = spec["replicas"]
        sets = self.replicasets[key]
        template_hash = hashlib.sha256(
            json.dumps(spec["template"], sort_keys=True).encode()
        ).hexdigest()[:10]
        newest = max((rs.revision for rs in sets), default=0)
        new = next((rs for rs in sets if rs.template_hash == template_hash), None)
        progressed = False
        if new is None:
            new = _ReplicaSet(
                f"{key[1]}-{template_hash}", template_hash, spec["template"], newest + 1
            )
            sets.append(new)
            progressed = True
        elif new.revision < newest:  # Back to an older template: it becomes the newest.
            new.revision = newest + 1
        deployment["metadata"]["annotations"][REVISION_ANNOTATION] = str(new.revision)
        old = [rs for rs in sets if rs is not new]
        for rs in sets:
            for pod in rs.pods:
                progressed |= self._start(pod, rs) and rs is new

        max_surge = math.ceil(desired * 0.25)
        max_unavailable = math.floor(desired * 0.25)
        if max_surge == 0 and max_unavailable == 0:
            max_unavailable = 1
        total = sum(len(rs.pods) for rs in sets)
        grow = min(desired + max_surge - total, desired - len(new.pods))
        for _ in range(max(grow, 0)):
            new.pods.append(self._new_pod(key, new))
            progressed = True
        min_available = desired - max_unavailable
        # First old pods that are not ready, within what the new unavailable ones leave...
        total = sum(len(rs.pods) for rs in sets)
        budget = total - min_available - sum(not _ready(pod) for pod in new.pods)
        progressed |= self._scale_down(old, budget, ready=False)
        # ...then old ready ones, as long as enough pods stay available.
        budget = sum(_ready(pod) for rs in sets for pod in rs.pods) - min_available
        progressed |= self._scale_down(old, budget, ready=True)

        pods = [pod for rs in sets for pod in rs.pods]
        available = sum(_ready(pod) for pod in pods)
        updated = len(new.pods)
        status.update(
            observedGeneration=deployment["metadata"]["generation"],
            replicas=len(pods),
            updatedReplicas=updated,
            readyReplicas=available,
            availableReplicas=available,
            unavailableReplicas=max(desired - available, 0),
        )
        if available >= min_available:
            state, reason, message = "True", "MinimumReplicasAvailable", "has"
        else:
            state, reason, message = "False", "MinimumReplicasUnavailable", "does not have"
        current = _get_condition(status, "Available")
        if current is None or (current["status"], current["reason"]) != (state, reason):
            _set_condition(
                status,
                {
                    "type": "Available",
                    "status": state,
                    "reason": reason,
                    "message": f"Deployment {message} minimum availability.",
                    "lastUpdateTime": api_now(),
                    "lastTransitionTime": api_now(),
                },
            )
        self._progress(key, status, new, desired, progressed)

    @staticmethod
    def _scale_down(old: list[_ReplicaSet], budget: int, ready: bool) -> bool:
        removed = False
        for rs in sorted(old, key=lambda rs: rs.revision):
            for pod in list(rs.pods):
                if budget > 0 and _ready(pod) == ready:
                    rs.pods.remove(pod)
                    budget -= 1
                    removed = True
        return removed

    def _progress(
        self,
        key: tuple[str, str],
        status: dict[str, Any],
        new: _ReplicaSet,
        desired: int,
        progressed: bool,
    ) -> None:
        current = _get_condition(status, "Progressing")
        complete = (
            status["updatedReplicas"] == desired
            and status["replicas"] == desired
            and status["availableReplicas"] == desired
        )
        if current and current["reason"] == "NewReplicaSetAvailable" and complete:
            return
        if complete:
            reason, state, message = "NewReplicaSetAvailable", "True", "has successfully progressed"
        elif progressed:
            reason, state, message = "ReplicaSetUpdated", "True", "is progressing"
            self._progress_at[key] = time.monotonic()
        else:
            deadline = self.deployments[key]["spec"]["progressDeadlineSeconds"]
            waited = (time.monotonic() - self._progress_at.get(key, 0.0)) * self.time_scale
            if (current and current["reason"] == "ProgressDeadlineExceeded") or waited <= deadline:
                return
            reason, state, message = (
                "ProgressDeadlineExceeded",
                "False",
                "has timed out progressing",
            )
        _set_condition(
            status,
            {
                "type": "Progressing",
                "status": state,
                "reason": reason,
                "message": f'ReplicaSet "{new.name}" {message}.',
                "lastUpdateTime": api_now(),
                "lastTransitionTime": api_now(),
            },
        )

    def _new_pod(self, key: tuple[str, str], rs: _ReplicaSet) -> dict[str, Any]:
        metadata = rs.template["metadata"]
        self._pod_ips.append(key)
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"{rs.name}-{uuid.uuid4().hex[:5]}",
                "namespace": key[0],
                "labels": {**metadata["labels"], "pod-template-hash": rs.template_hash},
                "annotations": dict(metadata["annotations"]),
                "ownerReferences": [
                    {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs.name}
                ],
            },
            "spec": copy.deepcopy(rs.template["spec"]),
            "status": {
                "phase": "Pending",
                "podIP": f"10.244.{len(self._pod_ips) // 250}.{len(self._pod_ips) % 250 + 2}",
                "conditions": [{"type": "PodScheduled", "status": "True"}],
                "containerStatuses": [
                    {
                        "name": "kserve-container",
                        "ready": False,
                        "restartCount": 0,
                        "state": {"waiting": {"reason": "ContainerCreating"}},
                    }
                ],
            },
        }

    def _start(self, pod: dict[str, Any], rs: _ReplicaSet) -> bool:
        """Moves a pod created on an earlier tick to its lasting state; True when it became
        ready now."""
        status = pod["status"]
        if pod["metadata"]["name"] in rs.started:
            return False
        rs.started.add(pod["metadata"]["name"])
        failure = self.pod_failure(rs.template["metadata"]["annotations"])
        if failure is None:
            status.update(
                phase="Running",
                conditions=[
                    {"type": "PodScheduled", "status": "True"},
                    {"type": "Ready", "status": "True"},
                ],
                containerStatuses=[
                    {
                        "name": "kserve-container",
                        "ready": True,
                        "restartCount": 0,
                        "state": {"running": {"startedAt": api_now()}},
                    }
                ],
            )
            return True
        failed: dict[str, Any] = {
            "name": failure.container,
            "ready": False,
            "restartCount": 3 if failure.reason == "CrashLoopBackOff" else 0,
            "state": {"waiting": {"reason": failure.reason, "message": failure.message}},
        }
        if failure.reason == "CrashLoopBackOff":
            failed["lastState"] = {
                "terminated": {
                    "exitCode": failure.exit_code,
                    "reason": "Error",
                    "message": failure.exit_message,
                }
            }
        if failure.container == "storage-initializer":
            status["initContainerStatuses"] = [failed]
            status["containerStatuses"] = [
                {
                    "name": "kserve-container",
                    "ready": False,
                    "restartCount": 0,
                    "state": {"waiting": {"reason": "PodInitializing"}},
                }
            ]
        else:
            status["phase"] = "Running"
            status["containerStatuses"] = [failed]
        status["conditions"] = [
            {"type": "PodScheduled", "status": "True"},
            {"type": "Ready", "status": "False", "reason": "ContainersNotReady"},
        ]
        return False

    def _handler(self) -> type[JsonHandler]:
        standin = self

        class Handler(JsonHandler):
            def _body(self) -> dict:
                return json.loads(self._raw())

            def _route(self, method: str) -> None:
                parts = urlsplit(self.path)
                for (group, resource), prefix in _ROUTES.items():
                    if not parts.path.startswith(prefix):
                        continue
                    rest = parts.path[len(prefix) :].split("/")
                    if len(rest) < 2 or rest[1] != resource or len(rest) > 3:
                        continue
                    name = rest[2] if len(rest) == 3 else ""
                    verb = {
                        "GET": "get" if name else "list",
                        "POST": "create",
                        "PUT": "update",
                        "DELETE": "delete",
                    }[method]
                    selector = parse_qs(parts.query).get("labelSelector", [""])[0]
                    with standin._lock:
                        standin.calls.append((verb, f"{group}/{resource}".lstrip("/")))
                        standin._tick()
                        if resource in standin._stores and verb != "list":
                            handle = functools.partial(
                                getattr(standin, f"_{verb}_custom"), resource
                            )
                        else:
                            handle = getattr(standin, f"_{verb}_{resource}", None)
                        if handle is None:
                            code, body = 405, api_status(405, "MethodNotAllowed", method)
                        else:
                            code, body = handle((rest[0], name), self, selector)
                    self._send(code, body)
                    return
                self._send(404, api_status(404, "NotFound", f"no route {self.path}"))

            def do_GET(self):
                self._route("GET")

            def do_POST(self):
                self._route("POST")

            def do_PUT(self):
                self._route("PUT")

            def do_DELETE(self):
                self._route("DELETE")

        return Handler

    def _get_custom(self, resource, key, handler, selector):
        store = self._stores[resource]
        if key not in store:
            return 404, api_status(404, "NotFound", f'{resource} "{key[1]}" not found')
        return 200, copy.deepcopy(store[key])

    def _create_custom(self, resource, key, handler, selector):
        store, body = self._stores[resource], handler._body()
        key = (key[0], body["metadata"]["name"])
        if key in store:
            return 409, api_status(409, "AlreadyExists", f'{resource} "{key[1]}" already exists')
        body.pop("status", None)
        body["metadata"].update(
            namespace=key[0],
            generation=1,
            uid=str(uuid.uuid4()),
            resourceVersion=self._next_version(),
            creationTimestamp=api_now(),
        )
        store[key] = body
        self._lag[(resource, *key)] = self.controller_lag
        return 201, copy.deepcopy(body)

    def _update_custom(self, resource, key, handler, selector):
        store = self._stores[resource]
        if key not in store:
            return 404, api_status(404, "NotFound", f'{resource} "{key[1]}" not found')
        body, current = handler._body(), store[key]
        if body["metadata"].get("resourceVersion") != current["metadata"]["resourceVersion"]:
            return 409, api_status(
                409,
                "Conflict",
                "the object has been modified; please apply your changes to the latest version "
                "and try again",
            )
        body.pop("status", None)
        generation = current["metadata"]["generation"] + (body["spec"] != current["spec"])
        body["metadata"].update(generation=generation, resourceVersion=self._next_version())
        body["status"] = current.get("status", {})
        store[key] = body
        self._lag[(resource, *key)] = self.controller_lag
        return 200, copy.deepcopy(body)

    def _delete_custom(self, resource, key, handler, selector):
        obj = self._stores[resource].pop(key, None)
        if obj is None:
            return 404, api_status(404, "NotFound", f'{resource} "{key[1]}" not found')
        for dep_key, deployment in list(self.deployments.items()):
            owners = deployment["metadata"].get("ownerReferences", [])
            if any(owner["uid"] == obj["metadata"]["uid"] for owner in owners):
                del self.deployments[dep_key]
                del self.replicasets[dep_key]
        return 200, {"kind": "Status", "apiVersion": "v1", "status": "Success"}

    def _get_deployments(self, key, handler, selector):
        if key not in self.deployments:
            return 404, api_status(404, "NotFound", f'deployments.apps "{key[1]}" not found')
        return 200, copy.deepcopy(self.deployments[key])

    def _list_deployments(self, key, handler, selector):
        items = [
            copy.deepcopy(deployment)
            for (ns, _), deployment in sorted(self.deployments.items())
            if ns == key[0] and _selected(deployment["metadata"]["labels"], selector)
        ]
        return 200, {
            "kind": "DeploymentList",
            "apiVersion": "apps/v1",
            "metadata": {"resourceVersion": str(self._version)},
            "items": items,
        }

    def _list_pods(self, key, handler, selector):
        items = [
            copy.deepcopy(pod)
            for pod in self.pods(key[0])
            if _selected(pod["metadata"]["labels"], selector)
        ]
        return 200, {
            "kind": "PodList",
            "apiVersion": "v1",
            "metadata": {"resourceVersion": str(self._version)},
            "items": items,
        }
