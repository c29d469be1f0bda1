"""manifests/: each overlay renders offline with kustomize, passes Kubernetes schema validation
and checkov, and grants nothing cluster-wide; kind-config.yaml describes a pinned cluster."""

import json
import os
import shutil
import subprocess

import pytest
import yaml

from tests.static.conftest import ROOT

OVERLAYS = ["kind", "cloud"]


def _render(overlay: str) -> str:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl (with its built-in kustomize) is needed to render manifests/")
    done = subprocess.run(
        [kubectl, "kustomize", os.path.join(ROOT, "manifests", "overlays", overlay)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request, tmp_path_factory):
    path = tmp_path_factory.mktemp(request.param) / "rendered.yaml"
    path.write_text(_render(request.param))
    return path


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
    kinds = [doc["kind"] for doc in yaml.safe_load_all(rendered.read_text()) if doc]
    assert "ClusterRole" not in kinds and "ClusterRoleBinding" not in kinds
    assert {"Role", "RoleBinding", "ServiceAccount", "Secret", "ServingRuntime"} <= set(kinds)


def test_storage_credentials_carry_the_kserve_s3_annotations(rendered):
    secret = next(
        d
        for d in yaml.safe_load_all(rendered.read_text())
        if d and d["kind"] == "Secret" and d["metadata"]["namespace"] == "mlops-models"
    )
    annotations = secret["metadata"]["annotations"]
    assert {"serving.kserve.io/s3-endpoint", "serving.kserve.io/s3-usehttps"} <= set(annotations)
    assert set(secret["stringData"]) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}


def test_kind_config_pins_its_node_image():
    with open(os.path.join(ROOT, "kind-config.yaml")) as handle:
        config = yaml.safe_load(handle)
    roles = [node["role"] for node in config["nodes"]]
    assert roles[0] == "control-plane" and "worker" in roles
    assert all(":v1." in node["image"] for node in config["nodes"])
