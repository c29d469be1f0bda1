"""`mlops rollout status|promote|rollback` through the real kubernetes client, configured by a
kubeconfig file as a user's is, against the KServe stand-in (tests/k8s_standin.py)."""

from components.registry import ModelRegistry
from components.rollout import inference_service as kserve
from pipelines.cli import main
from tests.k8s_standin import KServeStandIn, PodFailure
from tests.unit.test_rollout import NS, SERVERLESS, _api, _pod_versions, _spec, _version

CRASH = PodFailure(reason="CrashLoopBackOff", message="back-off restarting failed container",
                   exit_message="Failed to load servable")  # fmt: skip


def _uri(version: int) -> str:
    return f"s3://reg/_served/penguins/{version}/"


def _rolled_out(standin, *versions: int, **overrides) -> None:
    for version in versions:
        spec = _spec(version, storage_uri=_uri(version), **overrides)
        kserve.rollout(_api(standin), spec, 30, poll_seconds=0.01)


def _rollout(*args: str) -> int:
    return main(["rollout", *args, "penguins", "--namespace", NS])


def test_status_says_who_serves_and_what_a_rollback_goes_to(kubeconfig, capsys):
    with KServeStandIn() as standin:
        kubeconfig(standin)
        _rolled_out(standin, 1, 2)
        assert _rollout("status") == 0
    printed = [line.strip() for line in capsys.readouterr().out.splitlines()]
    assert printed[0] == f"{NS}/penguins (RawDeployment): ready"
    assert printed[1].split() == ["version", "2", "100", "%", "serving", _uri(2)]
    assert "rollback   to version 1" in printed


def test_a_rollback_serves_the_version_before_and_a_second_goes_forward_again(kubeconfig, capsys):
    with KServeStandIn() as standin:
        kubeconfig(standin)
        _rolled_out(standin, 1, 2)
        assert _rollout("rollback") == 0
        stored = standin.objects[(NS, "penguins")]
        assert _version(stored) == "1" and _pod_versions(standin) == ["1"]
        assert stored["spec"]["predictor"]["model"]["storageUri"] == _uri(1)
        assert "rolled penguins back to version 1 (from version 2)" in capsys.readouterr().out
        assert _rollout("rollback") == 0
        assert _version(standin.objects[(NS, "penguins")]) == "2"


def test_a_rollback_whose_version_does_not_serve_leaves_the_current_one(kubeconfig, capsys):
    broken: set[str] = set()

    def pod_failure(annotations):
        return CRASH if annotations.get(kserve.MODEL_VERSION_ANNOTATION) in broken else None

    with KServeStandIn(pod_failure) as standin:
        kubeconfig(standin)
        _rolled_out(standin, 1, 2)
        broken.add("1")  # its served folder went bad since
        assert main(["rollout", "rollback", "penguins", "--namespace", NS, "--timeout", "0.5"]) == 1
        stored = standin.objects[(NS, "penguins")]
    assert "previous spec (version 2) was restored" in capsys.readouterr().err
    assert _version(stored) == "2"
    # What a rollback goes to is as it was.
    assert stored["metadata"]["annotations"][kserve.PREVIOUS_VERSION_ANNOTATION] == "1"


def test_a_rollback_with_the_registry_stops_the_bad_version_being_the_baseline(
    kubeconfig, tmp_path
):
    registry = ModelRegistry(str(tmp_path / "registry"))
    model = tmp_path / "model"
    model.mkdir()
    (model / "saved_model.pb").write_bytes(b"x")
    for version in (1, 2):
        registry.push("penguins", str(model), {})
        registry.publish("penguins", version)
        registry.mark_served("penguins", version)
    with KServeStandIn() as standin:
        kubeconfig(standin)
        _rolled_out(standin, 1, 2)
        args = ["rollout", "rollback", "penguins", "--namespace", NS, "--registry", registry.root]
        assert main(args) == 0
    assert registry.served_versions("penguins") == [1]


def test_nothing_to_roll_back_to_says_so(kubeconfig, capsys):
    with KServeStandIn() as standin:
        kubeconfig(standin)
        _rolled_out(standin, 1)
        assert _rollout("rollback") == 1
    assert "no version to roll back to: version 1 is the first" in capsys.readouterr().err


def test_a_canary_shows_both_shares_and_promote_gives_it_all(kubeconfig, capsys):
    with KServeStandIn() as standin:
        kubeconfig(standin)
        _rolled_out(standin, 1, **SERVERLESS)
        _rolled_out(standin, 2, canary_traffic_percent=10, **SERVERLESS)
        assert _rollout("status") == 0
        shares = [line.split()[:5] for line in capsys.readouterr().out.splitlines()[1:3]]
        assert shares == [
            ["version", "2", "10", "%", "canary"],
            ["version", "1", "90", "%", "stable"],
        ]
        assert _rollout("promote") == 0
        assert _rollout("status") == 0
    printed = capsys.readouterr().out
    assert "version 2 of models/penguins now takes all traffic" in printed
    assert "version 2  100 %  serving" in printed


def test_raw_mode_has_no_canary_to_promote_and_a_missing_model_says_so(kubeconfig, capsys):
    with KServeStandIn() as standin:
        kubeconfig(standin)
        _rolled_out(standin, 1)
        assert _rollout("promote") == 1
        assert main(["rollout", "status", "nothing", "--namespace", NS]) == 1
    err = capsys.readouterr().err
    assert "no canary to promote: version 1 serves all its traffic (RawDeployment" in err
    assert f"No InferenceService {NS}/nothing" in err


def test_without_a_cluster_configured_it_says_how_to_point_at_one(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))
    monkeypatch.setenv("HOME", str(tmp_path))
    assert _rollout("status") == 1
    assert "No cluster to talk to" in capsys.readouterr().err


def test_over_a_canary_never_promoted_the_stable_version_stays_what_a_rollback_goes_to(
    kubeconfig, capsys
):
    with KServeStandIn() as standin:
        kubeconfig(standin)
        _rolled_out(standin, 1, **SERVERLESS)
        _rolled_out(standin, 2, canary_traffic_percent=10, **SERVERLESS)
        _rolled_out(standin, 3, canary_traffic_percent=10, **SERVERLESS)
        assert _rollout("status") == 0
        shares = [line.split()[:5] for line in capsys.readouterr().out.splitlines()[1:3]]
        # KServe splits between the canary and the last version that took all traffic.
        assert shares == [
            ["version", "3", "10", "%", "canary"],
            ["version", "1", "90", "%", "stable"],
        ]
        assert _rollout("rollback") == 0
        stored = standin.objects[(NS, "penguins")]
    assert _version(stored) == "1"
    assert "canaryTrafficPercent" not in stored["spec"]["predictor"]


def test_a_rollback_changes_the_live_spec_only_where_it_must(kubeconfig):
    with KServeStandIn() as standin:
        kubeconfig(standin)
        base = "http://sink.models/log?token=abc"
        _rolled_out(standin, 1, 2, logger_url=base)
        live = standin.objects[(NS, "penguins")]
        live["spec"]["predictor"]["nodeSelector"] = {"pool": "models"}  # an operator's edit
        assert _rollout("rollback") == 0
        predictor = standin.objects[(NS, "penguins")]["spec"]["predictor"]
    assert predictor["nodeSelector"] == {"pool": "models"}
    assert predictor["logger"]["url"] == "http://sink.models/log?token=abc&model=penguins&version=1"
    assert predictor["model"]["storageUri"] == _uri(1)
