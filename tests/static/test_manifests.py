"""manifests/: each overlay renders offline with kustomize, passes Kubernetes schema validation
and checkov, and grants nothing cluster-wide; kind-config.yaml describes a pinned cluster."""

import base64
import json
import os
import re
import shutil
import subprocess

import pytest
import yaml

from tests.static.conftest import ROOT

OVERLAYS = ["kind", "cloud"]
CREDENTIALS_FILE = "object-store.env"


def _render(overlay: str, workdir) -> str:
    """Renders an overlay from a copy of manifests/ with a made-up object-store.env: the real
    one is the user's and never in the repository."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl (with its built-in kustomize) is needed to render manifests/")
    copy = workdir / "manifests"
    shutil.copytree(os.path.join(ROOT, "manifests"), copy)
    (copy / "overlays" / overlay / CREDENTIALS_FILE).write_text(
        "AWS_ACCESS_KEY_ID=test-key\nAWS_SECRET_ACCESS_KEY=test-secret\n"
    )
    done = subprocess.run(
        [kubectl, "kustomize", str(copy / "overlays" / overlay)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(request.param)
    path = folder / "rendered.yaml"
    path.write_text(_render(request.param, folder))
    return path


def _documents(rendered) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(rendered.read_text()) if doc]


def _one(rendered, kind: str, name: str, namespace: str = "mlops-models") -> dict:
    (found,) = [
        d
        for d in _documents(rendered)
        if d["kind"] == kind
        and d["metadata"]["name"] == name
        and d["metadata"].get("namespace") == namespace
    ]
    return found


def test_kubernetes_schema_validation(tool, rendered):
    done = subprocess.run(
        [tool("kubernetes-validate"), "--kubernetes-version", "1.32.0", "--strict", str(rendered)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "passed for resource role/mlops-inferenceservice-deployer" in done.stdout


def test_checkov_finds_no_failed_check(tool, rendered):
    done = subprocess.run(
        [
            tool("checkov"),
            "--file",
            str(rendered),
            "--framework",
            "kubernetes",
            "--skip-download",
            "--output",
            "json",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
    )
    report = json.loads(done.stdout)
    failed = report.get("results", {}).get("failed_checks", []) if isinstance(report, dict) else []
    assert failed == [], [(c["check_id"], c["resource"]) for c in failed]
    assert report["summary"]["passed"] > 0


def test_nothing_cluster_wide_is_granted(rendered):
    kinds = [doc["kind"] for doc in _documents(rendered)]
    assert "ClusterRole" not in kinds and "ClusterRoleBinding" not in kinds
    assert {"Role", "RoleBinding", "ServiceAccount", "Secret", "ServingRuntime"} <= set(kinds)


def test_runs_from_the_dashboard_may_deploy(rendered):
    # KFP 2.5.0 runs a run without a service account as pipeline-runner (dashboard and
    # recurring runs): that account gets the deploy Role, in the serving namespace only.
    binding = _one(rendered, "RoleBinding", "mlops-inferenceservice-deployer")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "pipeline-runner", "namespace": "kubeflow"}
    ]
    role = _one(rendered, "Role", binding["roleRef"]["name"])
    granted = {
        (group, resource)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }
    assert {("serving.kserve.io", "inferenceservices"), ("apps", "deployments")} <= granted
    assert not any(resource == "secrets" for _, resource in granted)


def test_storage_credentials_come_from_the_users_file_with_the_kserve_s3_annotations(rendered):
    secrets = [d for d in _documents(rendered) if d["kind"] == "Secret"]
    assert {s["metadata"]["namespace"] for s in secrets} == {"kubeflow", "mlops-models"}
    for secret in secrets:
        assert secret["metadata"]["name"] == "mlops-s3-credentials"  # no hash suffix
        assert set(secret["data"]) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
        assert base64.b64decode(secret["data"]["AWS_SECRET_ACCESS_KEY"]) == b"test-secret"
    annotations = _one(rendered, "Secret", "mlops-s3-credentials")["metadata"]["annotations"]
    assert {"serving.kserve.io/s3-endpoint", "serving.kserve.io/s3-usehttps"} <= set(annotations)


def test_no_credentials_are_committed():
    tracked = subprocess.run(
        ["git", "ls-files", "manifests"], capture_output=True, text=True, cwd=ROOT, check=True
    ).stdout.split()
    assert not [path for path in tracked if path.endswith(CREDENTIALS_FILE)]
    for path in tracked:
        with open(os.path.join(ROOT, path)) as handle:
            text = handle.read()
        assert "minio123" not in text, path
        assert "kind: Secret" not in text, f"{path}: Secrets come from the overlays' generators"
    for overlay in OVERLAYS:
        env_file = os.path.join("manifests", "overlays", overlay, CREDENTIALS_FILE)
        ignored = subprocess.run(["git", "check-ignore", "-q", env_file], cwd=ROOT)
        assert ignored.returncode == 0, f"{env_file} must be git-ignored"


def test_serving_namespace_enforces_the_restricted_pod_security_profile(rendered):
    labels = next(d for d in _documents(rendered) if d["kind"] == "Namespace")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


def test_project_runtime_meets_the_restricted_profile_and_can_write_tmp(rendered):
    runtime = _one(rendered, "ServingRuntime", "mlops-predictor")["spec"]
    (container,) = runtime["containers"]
    context = container["securityContext"]
    assert context["runAsNonRoot"] and context["readOnlyRootFilesystem"]
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"]["drop"] == ["ALL"]
    assert context["seccompProfile"]["type"] == "RuntimeDefault"
    volumes = {v["name"]: v for v in runtime["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]


def test_project_runtime_declares_a_port_per_protocol(rendered):
    # KServe 0.15.2 builds the raw-mode Service from the container ports; a port named *grpc*
    # gets appProtocol h2c (service_reconciler.go:65-76, 113-153).
    runtime = _one(rendered, "ServingRuntime", "mlops-predictor")["spec"]
    (container,) = runtime["containers"]
    ports = {p["containerPort"]: p["name"] for p in container["ports"]}
    args = " ".join(container["args"])
    assert f"--http_port={min(ports)}" in args and "grpc" not in ports[min(ports)]
    grpc = [port for port, name in ports.items() if "grpc" in name]
    assert grpc and f"--grpc_port={grpc[0]}" in args
    assert "grpc-v2" in runtime["protocolVersions"]


def test_predictors_are_reachable_only_from_allowed_namespaces(rendered):
    policies = {
        d["metadata"]["name"]: d["spec"]
        for d in _documents(rendered)
        if d["kind"] == "NetworkPolicy" and d["metadata"]["namespace"] == "mlops-models"
    }
    deny = policies["default-deny"]
    assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny and "egress" not in deny
    sources = policies["predictor-clients"]["ingress"][0]["from"]
    assert {"podSelector": {}} in sources
    assert all(source != {"namespaceSelector": {}} for source in sources)
    assert "object-store" in policies


def test_predictors_reach_the_log_sink_through_kserves_agent(rendered):
    policies = {
        d["metadata"]["name"]: d["spec"]
        for d in _documents(rendered)
        if d["kind"] == "NetworkPolicy" and d["metadata"]["namespace"] == "mlops-models"
    }
    # With a logger, the predictor Service targets the agent on 9081 (kserve v0.15.2
    # service_reconciler.go:123-135): clients must reach it there.
    ports = {p["port"] for p in policies["predictor-clients"]["ingress"][0]["ports"]}
    assert 9081 in ports
    sink = _one(rendered, "Deployment", "mlops-log-sink")["spec"]["template"]["spec"]
    (container,) = sink["containers"]
    egress = policies["predictors-to-log-sink"]["egress"][0]
    assert egress["to"] == [{"podSelector": {"matchLabels": sink_labels(rendered)}}]
    assert egress["ports"][0]["port"] == container["ports"][0]["containerPort"]
    service = _one(rendered, "Service", "mlops-log-sink")["spec"]
    assert service["ports"][0]["port"] == 80  # the rollout's default URL has no port
    assert service["sessionAffinity"] == "ClientIP"


def sink_labels(rendered) -> dict:
    return _one(rendered, "Deployment", "mlops-log-sink")["spec"]["selector"]["matchLabels"]


def test_log_sink_meets_the_restricted_profile_and_reads_its_log_uri(rendered):
    spec = _one(rendered, "Deployment", "mlops-log-sink")["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    context = container["securityContext"]
    assert spec["securityContext"]["runAsNonRoot"] and context["readOnlyRootFilesystem"]
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"]["drop"] == ["ALL"]
    assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert container["command"] == ["mlops-log-sink"]
    (uri_from,) = [e for e in container["env"] if e["name"] == "PREDICTION_LOG"]
    config = _one(rendered, "ConfigMap", uri_from["valueFrom"]["configMapKeyRef"]["name"])
    assert config["data"]["PREDICTION_LOG"].startswith("s3://")
    assert container["envFrom"] == [{"secretRef": {"name": "mlops-s3-credentials"}}]
    assert {"readinessProbe", "livenessProbe", "resources"} <= set(container)


def test_project_runtime_has_no_exec_readiness_probe(rendered):
    # KServe's agent (injected with a logger) needs SERVING_READINESS_PROBE, which KServe sets
    # only from an HTTP or TCP readiness probe of the model container; it exits without it
    # (kserve v0.15.2 agent_injector.go:274-300, cmd/agent/main.go:100, :135-138).
    (container,) = _one(rendered, "ServingRuntime", "mlops-predictor")["spec"]["containers"]
    assert "exec" not in container.get("readinessProbe", {})


def test_kind_config_pins_its_node_image():
    with open(os.path.join(ROOT, "kind-config.yaml")) as handle:
        config = yaml.safe_load(handle)
    roles = [node["role"] for node in config["nodes"]]
    assert roles[0] == "control-plane" and "worker" in roles
    assert all(":v1." in node["image"] for node in config["nodes"])


def test_the_kind_runtime_runs_the_serving_image_the_makefile_builds(tmp_path):
    from components import images

    rendered = tmp_path / "kind.yaml"
    rendered.write_text(_render("kind", tmp_path))
    runtime = _one(rendered, "ServingRuntime", "mlops-predictor")
    (container,) = runtime["spec"]["containers"]
    assert container["image"] == images.SERVING_IMAGE
    # Every container of the project's images (the log sink's too) runs the tag it builds.
    built = {images.PIPELINE_IMAGE, images.PIPELINE_GPU_IMAGE, images.SERVING_IMAGE}
    ours = [
        image
        for image in re.findall(r"image: (\S+)", rendered.read_text())
        if image.startswith(images.IMAGE_REGISTRY)
    ]
    assert len(ours) >= 2 and set(ours) <= built, ours
