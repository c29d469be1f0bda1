"""The Makefile's recipes as `make -n` prints them, and the hack/ scripts they call, run for real
with stand-ins for `kind` and `kubectl` on PATH."""

import base64
import json
import os
import re
import shutil
import stat
import subprocess

import pytest

from components import images
from tests.static.conftest import ROOT

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")

HACK = os.path.join(ROOT, "hack")
RUNTIMES_URL = "kserve-cluster-resources.yaml"


def make_n(*args: str) -> str:
    """What `make -n ARGS` would run, one command a line."""
    done = subprocess.run(
        ["make", "--no-print-directory", "-n", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def line_index(lines: list[str], pattern: str) -> int:
    """Index of the first line matching ``pattern``; fails naming the pattern when none does."""
    found = [index for index, line in enumerate(lines) if re.search(pattern, line)]
    assert found, f"no line matches {pattern!r} in:\n" + "\n".join(lines)
    return found[0]


def test_image_settings_do_not_override_makefile_variables():
    with open(os.path.join(ROOT, "Makefile")) as handle:
        assigned = set(re.findall(r"^([A-Za-z_][A-Za-z0-9_]*)\s*[:?+]?=", handle.read(), re.M))
    printed = {line.split("=", 1)[0] for line in images.as_make_variables().splitlines()}
    assert not printed & assigned


def test_serve_reads_the_model_registry_folder():
    assert re.search(r"mlops-serve --registry model-registry(\s|$)", make_n("serve"), re.M)


def test_bench_serving_reads_the_model_registry_folder():
    assert re.search(r"bench/serving.py --registry model-registry(\s|$)", make_n("bench-serving"))


def test_e2e_creates_the_pipeline_venv_before_it_runs_the_tests(tmp_path):
    venv = str(tmp_path / "venv")
    lines = make_n("e2e", f"VENV={venv}").splitlines()
    created = line_index(lines, rf"-m venv {re.escape(venv)}$")
    assert created < line_index(lines, rf"^MLOPS_E2E=1 {re.escape(venv)}/bin/python -m pytest")


def test_e2e_builds_and_loads_the_cpu_images():
    out = make_n("e2e")
    for image in (images.PIPELINE_IMAGE, images.SERVING_IMAGE):
        assert re.search(rf"^docker build .* -t {re.escape(image)} \.$", out, re.M), image
        assert re.search(rf"^hack/kind-load.sh \S+ .*{re.escape(image)}", out, re.M), image


def test_e2e_neither_builds_nor_loads_the_gpu_image():
    out = make_n("e2e")
    assert images.PIPELINE_GPU_IMAGE not in out
    assert images.GPU_BASE_IMAGE not in out


def test_images_builds_the_gpu_image_too():
    out = make_n("images")
    base, image = re.escape(images.GPU_BASE_IMAGE), re.escape(images.PIPELINE_GPU_IMAGE)
    assert re.search(rf"BASE_IMAGE={base} .*-t {image}", out)


def test_images_say_the_code_they_were_built_from():
    commit = subprocess.run(
        ["git", "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()
    builds = [line for line in make_n("images").splitlines() if "docker build" in line]
    assert len(builds) == 3
    assert all(f"--build-arg CODE_VERSION=0.1.0+g{commit}" in line for line in builds)


def test_load_images_loads_all_three_images_through_the_workers_only_loader():
    lines = make_n("load-images").splitlines()
    loads = " ".join(line for line in lines if line.startswith("hack/kind-load.sh "))
    for image in (images.PIPELINE_IMAGE, images.PIPELINE_GPU_IMAGE, images.SERVING_IMAGE):
        assert image in loads
    assert not [line for line in lines if line.startswith("kind load")]


def test_platform_writes_the_credentials_before_it_applies_the_overlay():
    lines = make_n("platform").splitlines()
    credentials = line_index(
        lines, r"^hack/object-store-env.sh kind manifests/overlays/kind/object-store.env$"
    )
    assert credentials < line_index(lines, r"^kubectl apply -k manifests/overlays/kind$")


def test_platform_checks_another_overlays_credentials_before_any_install():
    lines = make_n("platform", "OVERLAY=cloud").splitlines()
    check = line_index(
        lines, r"object-store-env.sh cloud manifests/overlays/cloud/object-store.env"
    )
    assert check < line_index(lines, r"^kubectl apply")


def test_platform_retries_the_kserve_runtimes_with_the_failing_retry():
    lines = make_n("platform").splitlines()
    apply = lines[line_index(lines, re.escape(RUNTIMES_URL))]
    assert apply.startswith("hack/retry.sh ")
    assert "for attempt" not in apply


def test_platform_gives_the_storage_initializer_a_restricted_security_context():
    # mlops-models enforces the restricted Pod Security profile (manifests/base/namespace.yaml);
    # KServe 0.15.2 injects the storage-initializer with no securityContext but the default
    # ClusterStorageContainer's, so the platform patches that one after KServe's resources.
    lines = make_n("platform").splitlines()
    patch_line = line_index(lines, r"^kubectl patch clusterstoragecontainer/default ")
    assert line_index(lines, re.escape(RUNTIMES_URL)) < patch_line
    payload = re.search(r"-p '(.*)'$", lines[patch_line]).group(1)
    context = json.loads(payload)["spec"]["container"]["securityContext"]
    assert context == {
        "allowPrivilegeEscalation": False,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _executable(path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def test_retry_fails_with_the_status_of_the_last_attempt(tmp_path):
    attempts = tmp_path / "attempts"
    done = subprocess.run(
        [f"{HACK}/retry.sh", "3", "0", "sh", "-c", f"echo x >> {attempts}; exit 7"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 7
    assert attempts.read_text().count("x") == 3
    assert "failed 3 times" in done.stderr


def test_retry_stops_at_the_first_success(tmp_path):
    attempts = tmp_path / "attempts"
    # Fails twice, then succeeds: the third attempt finds two lines before its own.
    script = f'echo x >> {attempts}; [ "$(wc -l < {attempts})" -ge 3 ]'
    done = subprocess.run([f"{HACK}/retry.sh", "5", "0", "sh", "-c", script])
    assert done.returncode == 0
    assert attempts.read_text().count("x") == 3


def test_retry_refuses_a_count_that_is_not_a_positive_number():
    done = subprocess.run([f"{HACK}/retry.sh", "0", "0", "true"], capture_output=True, text=True)
    assert done.returncode == 2
    assert "usage" in done.stderr


@pytest.fixture
def kind_standin(tmp_path):
    """A `kind` on PATH that lists the nodes given and records the arguments of `kind load`.

    `kind get nodes --name C` prints one node name a line, ``C-control-plane``, ``C-worker``,
    ``C-worker2`` (kind v0.27.0 pkg/cmd/kind/get/nodes/nodes.go runE, and
    pkg/cluster/internal/providers/common/namer.go: ``<cluster>-<role><count if > 1>``).
    """
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    nodes = tmp_path / "nodes"
    calls = tmp_path / "calls"
    _executable(
        bin_dir / "kind",
        f'#!/bin/sh\nif [ "$1" = get ]; then cat {nodes}; else echo "$*" >> {calls}; fi\n',
    )
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}

    def load(node_names: list[str], *images_: str) -> str:
        nodes.write_text("".join(f"{name}\n" for name in node_names))
        subprocess.run([f"{HACK}/kind-load.sh", "mlops", *images_], env=env, check=True)
        return calls.read_text()

    return load


def test_kind_load_goes_to_the_workers_only(kind_standin):
    call = kind_standin(["mlops-control-plane", "mlops-worker", "mlops-worker2"], "a:1", "b:1")
    assert call == "load docker-image --name mlops --nodes mlops-worker,mlops-worker2 a:1 b:1\n"


def test_kind_load_goes_to_the_control_plane_of_a_cluster_without_workers(kind_standin):
    call = kind_standin(["mlops-control-plane"], "a:1")
    assert call == "load docker-image --name mlops --nodes mlops-control-plane a:1\n"


@pytest.fixture
def kubectl_standin(tmp_path):
    """A `kubectl` on PATH holding KFP's MinIO Secret, or none (then it fails like kubectl).

    `kubectl get secret NAME -n NS -o jsonpath={.data.KEY}` prints the key's value as stored in
    the Secret's data, base64, with no newline; a missing Secret is "Error from server (NotFound)"
    on stderr and exit 1. Keys and values are those of kubeflow/pipelines 2.5.0,
    manifests/kustomize/third-party/minio/base/mlpipeline-minio-artifact-secret.yaml.
    """
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    access, secret = (base64.b64encode(value).decode() for value in (b"minio", b"minio123"))
    _executable(
        bin_dir / "kubectl",
        "#!/bin/sh\n"
        'case "$*" in\n'
        '  "get secret mlpipeline-minio-artifact -n kubeflow -o jsonpath={.data.accesskey}")'
        f" printf %s {access} ;;\n"
        '  "get secret mlpipeline-minio-artifact -n kubeflow -o jsonpath={.data.secretkey}")'
        f" printf %s {secret} ;;\n"
        '  *) echo "Error from server (NotFound): secrets not found" >&2; exit 1 ;;\n'
        "esac\n",
    )
    missing = tmp_path / "missing-bin"
    missing.mkdir()
    _executable(
        missing / "kubectl",
        '#!/bin/sh\necho \'Error from server (NotFound): secrets "mlpipeline-minio-artifact" '
        "not found' >&2\nexit 1\n",
    )

    def run(overlay: str, env_file, secret_exists: bool = True) -> subprocess.CompletedProcess:
        path = bin_dir if secret_exists else missing
        env = {**os.environ, "PATH": f"{path}{os.pathsep}{os.environ['PATH']}"}
        return subprocess.run(
            [f"{HACK}/object-store-env.sh", overlay, str(env_file)],
            env=env,
            capture_output=True,
            text=True,
        )

    return run


def test_credentials_on_kind_come_from_kfps_minio_secret(kubectl_standin, tmp_path):
    env_file = tmp_path / "object-store.env"
    done = kubectl_standin("kind", env_file)
    assert done.returncode == 0, done.stderr
    assert env_file.read_text() == "AWS_ACCESS_KEY_ID=minio\nAWS_SECRET_ACCESS_KEY=minio123\n"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600


def test_credentials_never_overwrite_an_existing_file(kubectl_standin, tmp_path):
    env_file = tmp_path / "object-store.env"
    env_file.write_text("AWS_ACCESS_KEY_ID=mine\nAWS_SECRET_ACCESS_KEY=mine\n")
    done = kubectl_standin("kind", env_file)
    assert done.returncode == 0, done.stderr
    assert env_file.read_text() == "AWS_ACCESS_KEY_ID=mine\nAWS_SECRET_ACCESS_KEY=mine\n"


def test_credentials_of_another_overlay_say_which_file_to_write(kubectl_standin, tmp_path):
    env_file = tmp_path / "object-store.env"
    done = kubectl_standin("cloud", env_file)
    assert done.returncode == 1
    for expected in (str(env_file), "AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY=", "'cloud'"):
        assert expected in done.stderr
    assert not env_file.exists()


def test_credentials_without_kfps_secret_fail_and_write_nothing(kubectl_standin, tmp_path):
    env_file = tmp_path / "object-store.env"
    done = kubectl_standin("kind", env_file, secret_exists=False)
    assert done.returncode != 0
    assert "NotFound" in done.stderr
    assert sorted(os.listdir(tmp_path)) == ["bin", "missing-bin"]
