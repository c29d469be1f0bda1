"""mlops upload and submit through the real kfp.Client, over real HTTP, against the KFP API
stand-in in tests/kfp_standin.py."""

import yaml

from pipelines.cli import main
from tests.kfp_standin import KfpStandIn


def _compiled(tmp_path, *extra) -> str:
    path = tmp_path / "training.yaml"
    assert main(["compile", "--output", str(path), *extra]) == 0
    return str(path)


def test_upload_creates_then_versions_by_content(tmp_path, capsys):
    package = _compiled(tmp_path)
    (tmp_path / "gpu").mkdir()
    gpu = _compiled(tmp_path / "gpu", "--gpus", "1")
    with KfpStandIn() as kfp:
        for path in (package, package, package, gpu):
            assert main(["upload", "--host", kfp.host, "--package", path]) == 0
        (pipeline,) = kfp.pipelines.values()
        versions = kfp.versions[pipeline["pipeline_id"]]
        newest = kfp.packages[versions[0]["pipeline_version_id"]]
    printed = [
        line for line in capsys.readouterr().out.splitlines() if line.startswith("mlops-training ")
    ]
    outcomes = [line.split(": ", 1)[1].split(" (")[0] for line in printed]
    assert outcomes == ["uploaded", "uploaded", "already there", "uploaded"]
    names = [version["display_name"] for version in reversed(versions)]
    assert names[0] == "mlops-training" and names[1].startswith("v-") and len(names) == 3
    assert "nvidia.com/gpu" in newest.decode()


def test_submit_runs_the_newest_version_with_cluster_defaults(tmp_path, capsys):
    package = _compiled(tmp_path)
    with KfpStandIn() as kfp:
        assert main(["upload", "--host", kfp.host, "--package", package]) == 0
        status = main(
            [
                "submit",
                "--host",
                kfp.host,
                "--ui-host",
                "http://ui:8080",
                "--experiment",
                "nightly",
                "--param",
                "epochs=3",
                "--param",
                "label=species",
            ]
        )
        (run,) = kfp.runs
        (experiment,) = kfp.experiments.values()
        (pipeline,) = kfp.pipelines.values()
    assert status == 0
    assert (
        capsys.readouterr().out.strip().endswith(f"http://ui:8080/#/runs/details/{run['run_id']}")
    )
    assert (
        run["experiment_id"] == experiment["experiment_id"]
        and experiment["display_name"] == "nightly"
    )
    assert run["pipeline_version_reference"]["pipeline_id"] == pipeline["pipeline_id"]
    assert run["service_account"] == "mlops-deployer"
    params = run["runtime_config"]["parameters"]
    assert params["epochs"] == 3 and params["deploy_target"] == "kserve"
    assert params["registry"].startswith("s3://mlpipeline/")


def test_submit_before_upload_says_what_to_do(capsys):
    with KfpStandIn() as kfp:
        assert main(["submit", "--host", kfp.host]) == 1
    assert "run `mlops upload` first" in capsys.readouterr().err


def test_compiled_ir_is_valid_yaml_for_upload(tmp_path):
    with open(_compiled(tmp_path)) as handle:
        assert yaml.safe_load_all(handle)
