"""mlops upload and submit through the real kfp.Client, over real HTTP, against the KFP API
stand-in in tests/kfp_standin.py (which follows the KFP 2.5.0 API server)."""

import pytest
import yaml

from pipelines.cli import main
from pipelines.cluster import version_name_for
from tests.kfp_standin import KfpStandIn


def _compiled(tmp_path, *extra) -> str:
    path = tmp_path / "training.yaml"
    assert main(["compile", "--output", str(path), *extra]) == 0
    return str(path)


def _gpu_package(tmp_path) -> str:
    (tmp_path / "gpu").mkdir()
    return _compiled(tmp_path / "gpu", "--gpus", "1")


def _submit(kfp, package, *extra) -> int:
    return main(
        ["submit", "--host", kfp.host, "--ui-host", "http://ui:8080", "--package", package, *extra]
    )


def test_upload_names_every_version_after_its_content(tmp_path, capsys):
    package, gpu = _compiled(tmp_path), _gpu_package(tmp_path)
    with KfpStandIn() as kfp:
        for path in (package, package, gpu):
            assert main(["upload", "--host", kfp.host, "--package", path]) == 0
        (pipeline,) = kfp.pipelines.values()
        versions = kfp.versions[pipeline["pipeline_id"]]
        packages = [kfp.packages[v["pipeline_version_id"]] for v in versions]
    printed = [
        line for line in capsys.readouterr().out.splitlines() if line.startswith("mlops-training ")
    ]
    outcomes = [line.split(": ", 1)[1].split(" (")[0] for line in printed]
    assert outcomes == ["uploaded", "already there", "uploaded"]
    names = [version["display_name"] for version in versions]
    assert names == [version_name_for(package), version_name_for(gpu)]
    assert "nvidia.com/gpu" not in packages[0].decode()
    assert "nvidia.com/gpu" in packages[1].decode()


def test_submit_runs_the_version_of_the_local_package_not_the_newest(tmp_path, capsys):
    package, gpu = _compiled(tmp_path), _gpu_package(tmp_path)
    with KfpStandIn() as kfp:
        assert main(["upload", "--host", kfp.host, "--package", package]) == 0
        kfp.seconds += 1
        assert main(["upload", "--host", kfp.host, "--package", gpu]) == 0
        # Uploading the CPU package again finds its version and moves nothing.
        assert main(["upload", "--host", kfp.host, "--package", package]) == 0
        assert _submit(kfp, package, "--experiment", "nightly", "--param", "epochs=3") == 0
        (run,) = kfp.runs
        (experiment,) = kfp.experiments.values()
        version_id = run["pipeline_version_reference"]["pipeline_version_id"]
        ran = kfp.packages[version_id]
    assert "nvidia.com/gpu" not in ran.decode()
    assert run["display_name"].endswith(version_name_for(package))
    assert experiment["display_name"] == "nightly"
    assert run["experiment_id"] == experiment["experiment_id"]
    # Only what was asked for: the rest comes from the compiled defaults, as for a dashboard run.
    assert run["runtime_config"]["parameters"] == {"epochs": 3}
    # Runs started here use KFP's default account, as runs from the dashboard do.
    assert "service_account" not in run or not run["service_account"]


def test_submit_prints_one_run_link_on_the_dashboard(tmp_path, capsys):
    package = _compiled(tmp_path)
    with KfpStandIn() as kfp:
        assert main(["upload", "--host", kfp.host, "--package", package]) == 0
        capsys.readouterr()
        assert _submit(kfp, package) == 0
        (run,) = kfp.runs
    printed = capsys.readouterr().out
    assert printed.strip() == f"http://ui:8080/#/runs/details/{run['run_id']}"
    assert kfp.host not in printed


def test_submit_of_a_package_that_is_not_uploaded_says_what_to_do(tmp_path, capsys):
    package, gpu = _compiled(tmp_path), _gpu_package(tmp_path)
    with KfpStandIn() as kfp:
        assert _submit(kfp, package) == 1
        assert main(["upload", "--host", kfp.host, "--package", package]) == 0
        assert _submit(kfp, gpu) == 1
        assert kfp.runs == []
    err = capsys.readouterr().err
    assert err.count("run `mlops upload` (or `make upload`) first") == 2
    assert version_name_for(gpu) in err


def test_compiled_ir_is_a_pipeline_spec_and_a_platform_spec(tmp_path):
    with open(_compiled(tmp_path)) as handle:
        documents = list(yaml.safe_load_all(handle))
    assert len(documents) == 2
    assert {"components", "deploymentSpec", "root"} <= set(documents[0])
    assert set(documents[1]) == {"platforms"}
    assert documents[0]["pipelineInfo"]["name"] == "mlops-training"


def test_compile_refuses_a_schema_the_cluster_cannot_read(tmp_path, capsys):
    assert (
        main(["compile", "--output", str(tmp_path / "x.yaml"), "--schema", "/home/me/s.pbtxt"]) == 1
    )
    assert "must be at a gs:// URI" in capsys.readouterr().err
    assert not (tmp_path / "x.yaml").exists()


def test_submit_sends_each_param_as_its_type_in_the_package(tmp_path):
    package = _compiled(tmp_path)
    with KfpStandIn() as kfp:
        assert main(["upload", "--host", kfp.host, "--package", package]) == 0
        flags = ["--param", "label=2024", "--param", "epochs=3", "--param", "serve=false"]
        flags += ["--param", "hidden_units=[8,4]", "--param", "predictor_cpu=1"]
        assert _submit(kfp, package, *flags) == 0
        (run,) = kfp.runs
    assert run["runtime_config"]["parameters"] == {
        "label": "2024",
        "epochs": 3,
        "serve": False,
        "hidden_units": [8, 4],
        "predictor_cpu": "1",
    }


def test_submit_of_an_unknown_or_mistyped_param_says_which(tmp_path, capsys):
    package = _compiled(tmp_path)
    with KfpStandIn() as kfp:
        assert main(["upload", "--host", kfp.host, "--package", package]) == 0
        assert _submit(kfp, package, "--param", "epoch=3") == 1
        assert _submit(kfp, package, "--param", "epochs=many") == 1
        assert kfp.runs == []
    err = capsys.readouterr().err
    assert "--param epoch: the pipeline has no such parameter" in err
    assert "--param epochs=many: not a number integer" in err


def test_schedule_uploads_the_monitoring_pipeline_and_runs_it_hourly_one_at_a_time(capsys):
    with KfpStandIn() as kfp:
        args = ["schedule", "--host", kfp.host, "--ui-host", "http://ui:8080"]
        assert main([*args, "--param", "model_name=flights", "--param", "min_rows=500"]) == 0
        (pipeline,) = kfp.pipelines.values()
        (recurring,) = kfp.recurring_runs
        (version,) = kfp.versions[pipeline["pipeline_id"]]
    assert pipeline["display_name"] == "mlops-monitoring"
    assert recurring["trigger"]["cron_schedule"]["cron"] == "0 0 * * * *"
    assert int(recurring["max_concurrency"]) == 1 and recurring["no_catchup"] is True
    assert recurring["mode"] == "ENABLE"
    assert (
        recurring["pipeline_version_reference"]["pipeline_version_id"]
        == (version["pipeline_version_id"])
    )
    assert recurring["runtime_config"]["parameters"] == {"model_name": "flights", "min_rows": 500}
    assert capsys.readouterr().out.strip().startswith("http://ui:8080/#/recurringrun/details/")


def test_schedule_refuses_a_five_field_cron_before_touching_the_server(capsys):
    with KfpStandIn() as kfp:
        assert main(["schedule", "--host", kfp.host, "--cron", "0 * * * *"]) == 1
        assert kfp.pipelines == {} and kfp.recurring_runs == []
    assert "six-field cron (seconds first)" in capsys.readouterr().err


def test_trigger_starts_the_newest_training_version_only_when_told_to_retrain(tmp_path):
    from components.trigger import core
    from pipelines.cluster import connect

    older, newer = _compiled(tmp_path), _gpu_package(tmp_path)
    with KfpStandIn() as kfp:
        for package in (older, newer):
            assert main(["upload", "--host", kfp.host, "--package", package]) == 0
            kfp.seconds += 1
        client = lambda: connect(kfp.host)  # noqa: E731 - what the step passes
        params = {"data_uri": "s3://fresh/flights.csv", "registry": "s3://r", "model_name": "m"}
        quiet = core.trigger(False, ["no drift"], client, "mlops-training", "mlops", params)
        assert not quiet.started and kfp.runs == []
        done = core.trigger(True, ["island: skew 0.4 > 0.15"], client, "mlops-training", "mlops",
                            params)  # fmt: skip
        (run,) = kfp.runs
        (pipeline,) = kfp.pipelines.values()
        newest = kfp.versions[pipeline["pipeline_id"]][-1]["pipeline_version_id"]
    assert done.started and done.run_id == run["run_id"]
    assert run["pipeline_version_reference"]["pipeline_version_id"] == newest
    assert run["runtime_config"]["parameters"] == params
    assert "island: skew 0.4 > 0.15" in run["display_name"]


def test_the_trigger_reaches_kfp_as_a_step_does(tmp_path):
    """In a step KFP sets _KFP_RUNTIME, and `import kfp` has no Client then (kfp 2.13
    kfp/__init__.py:37-40): the trigger's client must still come up, in a process like a step's."""
    import os
    import subprocess
    import sys

    code = (
        "import sys; from components.trigger import core; "
        "print(core.latest_version(core.client_for(sys.argv[1]), 'mlops-training')[0])"
    )
    package = _compiled(tmp_path)
    with KfpStandIn() as kfp:
        assert main(["upload", "--host", kfp.host, "--package", package]) == 0
        (pipeline_id,) = kfp.pipelines
        done = subprocess.run(
            [sys.executable, "-c", code, kfp.host],
            capture_output=True,
            text=True,
            env={**os.environ, "_KFP_RUNTIME": "true"},
            timeout=120,
        )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == pipeline_id


def test_a_second_schedule_of_the_monitor_is_refused(capsys):
    with KfpStandIn() as kfp:
        args = ["schedule", "--host", kfp.host, "--cron", "@hourly"]
        assert main(args) == 0
        assert main(args) == 1
        assert len(kfp.recurring_runs) == 1
    assert "already runs on a schedule" in capsys.readouterr().err


def test_the_trigger_waits_while_a_retraining_run_has_not_ended(tmp_path):
    from components.trigger import core
    from pipelines.cluster import connect

    with KfpStandIn() as kfp:
        assert main(["upload", "--host", kfp.host, "--package", _compiled(tmp_path)]) == 0
        client = lambda: connect(kfp.host)  # noqa: E731 - what the step passes
        params = {"data_uri": "s3://fresh.csv", "registry": "s3://r", "model_name": "m"}
        first = core.trigger(True, ["drift"], client, "mlops-training", "mlops", params)
        second = core.trigger(True, ["drift"], client, "mlops-training", "mlops", params)
        assert first.started and not second.started
        assert second.reason == f"retraining run {first.run_id} is still running"
        kfp.runs[0]["state"] = "SUCCEEDED"
        third = core.trigger(True, ["drift"], client, "mlops-training", "mlops", params)
        assert third.started and len(kfp.runs) == 2


def _decision(tmp_path, retrain: bool, window_end: float):
    from kfp import dsl

    from components.monitor.core import MonitorState

    decision = dsl.Artifact(name="decision", uri=str(tmp_path / "decision.json"))
    decision.metadata.update(
        {
            "retrain": retrain,
            "reasons": ["island: skew 0.4 > 0.15"],
            "window": MonitorState.window(window_end),
        }
    )
    return decision


def _window(log, window_end: float) -> None:
    """A window the monitor decided on, as MonitorState keeps it."""
    import json
    import os

    folder = f"{log}/monitor/model=penguins/{int(window_end * 1000)}"
    os.makedirs(folder)
    with open(f"{folder}/decision.json", "w") as f:
        json.dump({"retrain": True, "retrain_signal": True, "version": 1}, f)


def test_the_trigger_step_retrains_on_the_labelled_log_and_keeps_what_it_did(tmp_path):
    from kfp import dsl

    from components.monitor.core import MonitorState
    from components.trigger.component import trigger

    log, end = str(tmp_path / "log"), 1_795_000_000.0
    _window(log, end)
    triggered = dsl.Artifact(name="triggered", uri=str(tmp_path / "triggered.json"))
    with KfpStandIn() as kfp:
        assert main(["upload", "--host", kfp.host, "--package", _compiled(tmp_path)]) == 0
        trigger.python_func(
            _decision(tmp_path, True, end), log, "s3://fresh.csv", "s3://r", "penguins",
            triggered, "mlops-training", "mlops", kfp.host,
        )  # fmt: skip
        (run,) = kfp.runs
    # The API server took every parameter (the stand-in refuses undeclared ones, as 2.5.0 does).
    assert run["runtime_config"]["parameters"]["labelled_log"] == log
    assert triggered.metadata["started"] is True and triggered.metadata["acted"] is True
    _, decision, _ = MonitorState(log, "penguins").last()
    assert decision["outcome"]["acted"] is True and decision["outcome"]["run_id"] == run["run_id"]


def test_a_trigger_that_cannot_reach_kfp_fails_and_leaves_the_decision_standing(tmp_path):
    from kfp import dsl

    from components.errors import TriggerFailed
    from components.monitor.core import MonitorState
    from components.trigger.component import trigger

    log, end = str(tmp_path / "log"), 1_795_000_000.0
    _window(log, end)
    with KfpStandIn() as kfp:
        nowhere = kfp.host  # closed below: nothing answers there
    triggered = dsl.Artifact(name="triggered", uri=str(tmp_path / "triggered.json"))
    with pytest.raises(TriggerFailed, match=r"did not start the retraining run.*stands"):
        trigger.python_func(
            _decision(tmp_path, True, end), log, "s3://fresh.csv", "s3://r", "penguins",
            triggered, "mlops-training", "mlops", nowhere,
        )  # fmt: skip
    _, decision, _ = MonitorState(log, "penguins").last()
    assert decision["outcome"]["acted"] is False
    assert decision["outcome"]["reason"].startswith("the trigger failed")


def test_a_training_pipeline_uploaded_before_the_labelled_log_still_retrains(tmp_path, caplog):
    from components.trigger import core
    from pipelines.cluster import connect

    with open(_compiled(tmp_path)) as f:
        documents = list(yaml.safe_load_all(f))
    del documents[0]["root"]["inputDefinitions"]["parameters"]["labelled_log"]
    older = tmp_path / "older.yaml"
    older.write_text(yaml.safe_dump_all(documents))
    params = {"data_uri": "s3://fresh.csv", "registry": "s3://r", "model_name": "m",
              "labelled_log": "s3://log"}  # fmt: skip
    with KfpStandIn() as kfp:
        assert main(["upload", "--host", kfp.host, "--package", str(older)]) == 0
        done = core.trigger(
            True, ["drift"], lambda: connect(kfp.host), "mlops-training", "mlops", params
        )
        (run,) = kfp.runs
    assert done.started
    assert "labelled_log" not in run["runtime_config"]["parameters"]
    assert "takes no labelled_log" in caplog.text


def test_a_run_the_api_server_refuses_fails_with_what_it_said(tmp_path):
    from components.errors import TriggerFailed
    from components.trigger import core
    from pipelines.cluster import connect

    params = {"data_uri": "s3://fresh.csv", "registry": "s3://r", "model_name": 7}  # not text
    with KfpStandIn() as kfp:
        assert main(["upload", "--host", kfp.host, "--package", _compiled(tmp_path)]) == 0
        with pytest.raises(
            TriggerFailed, match=r"HTTP 400: input parameter model_name requires type STRING"
        ):
            core.trigger(True, ["drift"], lambda: connect(kfp.host), "mlops-training", "mlops",
                         params)  # fmt: skip
        assert kfp.runs == []
