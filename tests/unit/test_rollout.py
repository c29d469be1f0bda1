"""The rollout step through the real kubernetes client, over real HTTP, against the KServe
stand-in in tests/k8s_standin.py (KServe v0.15.2's controller, cut down; its docstring cites the
source of each behaviour): the InferenceService rollout itself, then the step serving what
deploy pushed."""

import copy
import logging
import time

import pytest
from kubernetes.client import ApiClient, Configuration

from components.deploy import core as deploy_core
from components.errors import ConfigurationError, PipelineInputError, RolloutFailed
from components.registry import ModelRegistry
from components.rollout import core as rollout_core
from components.rollout import inference_service as kserve
from components.rollout.core import KServeSettings
from tests.k8s_standin import KServeStandIn, PodFailure

NS = "models"
ROOT = "s3://reg/_served/penguins/1/"
BROKEN = 13
CRASH = PodFailure(
    reason="CrashLoopBackOff",
    message="back-off 40s restarting failed container=kserve-container",
    exit_message="Failed to load servable penguins version 13",
)


def _api(standin) -> ApiClient:
    return ApiClient(Configuration(host=standin.host))


def _spec(version: int, **overrides) -> kserve.InferenceServiceSpec:
    fields = {"name": "penguins", "namespace": NS, "storage_uri": ROOT, **overrides}
    return kserve.InferenceServiceSpec(model_version=version, **fields)


def _version(stored) -> str:
    return stored["spec"]["predictor"]["annotations"][kserve.MODEL_VERSION_ANNOTATION]


def _fails_when_broken(failure: PodFailure):
    def pod_failure(annotations):
        return failure if annotations.get(kserve.MODEL_VERSION_ANNOTATION) == str(BROKEN) else None

    return pod_failure


def _pod_versions(standin) -> list[str]:
    return [p["metadata"]["annotations"][kserve.MODEL_VERSION_ANNOTATION] for p in standin.pods(NS)]


def test_new_service_is_created_and_serves():
    with KServeStandIn() as standin:
        result = kserve.rollout(_api(standin), _spec(1), 30, poll_seconds=0.01)
        stored = standin.objects[(NS, "penguins")]
        assert _pod_versions(standin) == ["1"]
    assert result.url == "http://penguins-models.example.com"
    assert result.revision == "penguins-predictor revision 1"
    assert result.previous_model_version is None
    model = stored["spec"]["predictor"]["model"]
    assert model["modelFormat"] == {"name": "tensorflow"}
    assert model["storageUri"] == ROOT
    assert _version(stored) == "1"
    assert model["runtime"] == kserve.TF_SERVING_RUNTIME
    assert model["runtimeVersion"] == "2.16.1"  # TF Serving matching TF 2.16, not KServe's 2.6.2
    assert stored["metadata"]["annotations"][kserve.DEPLOYMENT_MODE_ANNOTATION] == "RawDeployment"


def test_raw_update_returns_once_the_old_pods_are_gone():
    with KServeStandIn() as standin:
        api = _api(standin)
        kserve.rollout(api, _spec(1), 30, poll_seconds=0.01)
        result = kserve.rollout(api, _spec(2), 30, poll_seconds=0.01)
        assert _pod_versions(standin) == ["2"]
        deployment = standin.deployments[(NS, "penguins-predictor")]
    assert (result.model_version, result.previous_model_version) == (2, 1)
    assert result.revision == "penguins-predictor revision 2"
    assert deployment["status"]["updatedReplicas"] == deployment["status"]["availableReplicas"] == 1


def test_standin_raw_mode_reports_ready_while_the_new_version_crashes():
    # The trap the rollout watch avoids (inference_service_status.go:347-354 at v0.15.2):
    # Ready and observedGeneration come from the Deployment, whose old ReplicaSet still serves.
    with KServeStandIn(_fails_when_broken(CRASH)) as standin:
        api = _api(standin)
        kserve.rollout(api, _spec(1), 30, poll_seconds=0.01)
        services = kserve.InferenceServices(api, NS)
        applied = services.replace_spec(
            services.get("penguins"), _spec(BROKEN).to_body()["spec"], {}
        )
        for _ in range(10):
            current = services.get("penguins")
        assert sorted(_pod_versions(standin)) == ["1", str(BROKEN)]
    ready = next(c for c in current["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True"
    assert current["status"]["observedGeneration"] >= applied["metadata"]["generation"]


def test_raw_version_that_never_becomes_available_is_rolled_back():
    with KServeStandIn(_fails_when_broken(CRASH)) as standin:
        api = _api(standin)
        kserve.rollout(api, _spec(1), 30, poll_seconds=0.01)
        calls = []
        with pytest.raises(RolloutFailed) as err:
            kserve.rollout(
                api, _spec(BROKEN), 0.3, poll_seconds=0.01, on_rollback=lambda: calls.append(1)
            )
        stored = standin.objects[(NS, "penguins")]
        for _ in range(5):  # The Deployment controller rolls the old template back in.
            kserve.InferenceServices(api, NS).get("penguins")
        assert _pod_versions(standin) == ["1"]
    message = str(err.value)
    assert f"did not serve within 0.3 s version {BROKEN}" in message
    assert (
        "Deployment penguins-predictor has 1 of 1 replica(s) on the new version, 1 of 2 pod(s) "
        "available, 1 old pod(s) left"
    ) in message
    assert "container kserve-container CrashLoopBackOff" in message
    assert "Failed to load servable penguins version 13" in message
    assert "kubectl -n models describe deployment penguins-predictor" in message
    assert "previous spec (version 1) was restored" in message
    assert _version(stored) == "1"
    assert calls == [1]


def test_progress_deadline_exceeded_fails_before_the_timeout():
    # 600 s of cluster time pass in 0.06 s.
    with KServeStandIn(_fails_when_broken(CRASH), time_scale=10_000) as standin:
        api = _api(standin)
        kserve.rollout(api, _spec(1), 30, poll_seconds=0.01)
        start = time.monotonic()
        with pytest.raises(RolloutFailed) as err:
            kserve.rollout(api, _spec(BROKEN), 30, poll_seconds=0.01)
        elapsed = time.monotonic() - start
        stored = standin.objects[(NS, "penguins")]
    assert elapsed < 10
    message = str(err.value)
    assert f"failed to roll out version {BROKEN}" in message
    assert "no progress within its 600 s progress deadline" in message
    assert "Progressing=False (ProgressDeadlineExceeded" in message
    assert _version(stored) == "1"


def test_deployment_kserve_has_not_updated_is_not_taken_for_the_new_version():
    # KServe acts long after the write: the Deployment still rolled out the old template.
    with KServeStandIn(controller_lag=1_000) as standin:
        api = _api(standin)
        standin.controller_lag = 0
        kserve.rollout(api, _spec(1), 30, poll_seconds=0.01)
        standin.controller_lag = 1_000
        with pytest.raises(RolloutFailed, match="KServe has not put the new spec"):
            kserve.rollout(api, _spec(2), 0.2, poll_seconds=0.01)


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        (
            PodFailure("ImagePullBackOff", 'Back-off pulling image "serving:9"'),
            'container kserve-container ImagePullBackOff: Back-off pulling image "serving:9"',
        ),
        (
            PodFailure(
                container="storage-initializer",
                exit_message="RuntimeError: Failed to fetch model. No model found in _served/",
            ),
            "container storage-initializer CrashLoopBackOff",
        ),
    ],
)
def test_failure_names_the_new_pods_waiting_reason(failure, expected):
    with KServeStandIn(_fails_when_broken(failure)) as standin:
        api = _api(standin)
        kserve.rollout(api, _spec(1), 30, poll_seconds=0.01)
        with pytest.raises(RolloutFailed) as err:
            kserve.rollout(api, _spec(BROKEN), 0.2, poll_seconds=0.01)
    assert expected in str(err.value)
    assert failure.exit_message in str(err.value)


def test_new_service_that_never_becomes_available_is_deleted():
    with KServeStandIn(_fails_when_broken(CRASH)) as standin:
        with pytest.raises(RolloutFailed, match="was deleted"):
            kserve.rollout(_api(standin), _spec(BROKEN), 0.2, poll_seconds=0.01)
        assert standin.objects == {}
        assert standin.deployments == {}


def test_raw_rollout_api_calls():
    # What the deployer's ServiceAccount needs in the serving namespace (RBAC).
    with KServeStandIn(_fails_when_broken(CRASH)) as standin:
        api = _api(standin)
        kserve.rollout(api, _spec(1), 30, poll_seconds=0.01)
        with pytest.raises(RolloutFailed):
            kserve.rollout(api, _spec(BROKEN), 0.2, poll_seconds=0.01)
        with pytest.raises(RolloutFailed):
            kserve.rollout(api, _spec(BROKEN, name="other"), 0.2, poll_seconds=0.01)
    assert set(standin.calls) == {
        ("get", "serving.kserve.io/inferenceservices"),
        ("create", "serving.kserve.io/inferenceservices"),
        ("update", "serving.kserve.io/inferenceservices"),
        ("delete", "serving.kserve.io/inferenceservices"),
        ("list", "apps/deployments"),
        ("list", "pods"),
    }


def test_deployment_mode_of_an_existing_service_is_kept():
    with KServeStandIn() as standin:
        api = _api(standin)
        kserve.rollout(api, _spec(1), 30, poll_seconds=0.01)
        with pytest.raises(ConfigurationError, match="deployment_mode=RawDeployment"):
            kserve.rollout(api, _spec(2, deployment_mode="Serverless"), 30, poll_seconds=0.01)
        assert _version(standin.objects[(NS, "penguins")]) == "1"


def test_spec_write_retries_when_the_controller_wrote_in_between():
    with KServeStandIn() as standin:
        api = _api(standin)
        kserve.rollout(api, _spec(1), 30, poll_seconds=0.01)
        services = kserve.InferenceServices(api, NS)
        stale = services.get("penguins")
        services.replace_spec(stale, stale["spec"], {"note": "a status or metadata write"})
        services.replace_spec(stale, _spec(2).to_body()["spec"], {})
        assert _version(standin.objects[(NS, "penguins")]) == "2"
        assert standin.calls.count(("update", "serving.kserve.io/inferenceservices")) == 3


SERVERLESS = {"deployment_mode": "Serverless"}


def test_serverless_service_serves_its_latest_revision():
    with KServeStandIn() as standin:
        api = _api(standin)
        kserve.rollout(api, _spec(1, **SERVERLESS), 30, poll_seconds=0.01)
        result = kserve.rollout(api, _spec(2, **SERVERLESS), 30, poll_seconds=0.01)
        assert standin.deployments == {}
    assert result.revision == "penguins-predictor-00002"
    assert result.url == "http://penguins.models.example.com"
    assert (result.model_version, result.previous_model_version) == (2, 1)


def test_serverless_revision_that_fails_is_rolled_back():
    with KServeStandIn(_fails_when_broken(CRASH)) as standin:
        api = _api(standin)
        kserve.rollout(api, _spec(1, **SERVERLESS), 30, poll_seconds=0.01)
        with pytest.raises(RolloutFailed) as err:
            kserve.rollout(api, _spec(BROKEN, **SERVERLESS), 0.2, poll_seconds=0.01)
        stored = standin.objects[(NS, "penguins")]
    assert "Ready=False (RevisionFailed" in str(err.value)
    assert "Failed to load servable penguins version 13" in str(err.value)
    assert "previous spec (version 1) was restored" in str(err.value)
    assert _version(stored) == "1"


def test_canary_needs_knative_mode():
    with pytest.raises(ConfigurationError, match="Knative"):
        _spec(2, canary_traffic_percent=10)


def test_canary_then_promotion_in_knative_mode():
    with KServeStandIn() as standin:
        api = _api(standin)
        kserve.rollout(api, _spec(1, **SERVERLESS), 30, poll_seconds=0.01)
        canary = _spec(2, canary_traffic_percent=10, **SERVERLESS)
        kserve.rollout(api, canary, 30, poll_seconds=0.01)
        assert standin.objects[(NS, "penguins")]["spec"]["predictor"]["canaryTrafficPercent"] == 10
        kserve.promote(api, NS, "penguins")
        assert "canaryTrafficPercent" not in standin.objects[(NS, "penguins")]["spec"]["predictor"]


def test_project_runtime_speaks_v2():
    model = _spec(1, runtime=kserve.PROJECT_RUNTIME).to_body()["spec"]["predictor"]["model"]
    assert model["protocolVersion"] == "v2"
    assert "runtimeVersion" not in model


def _fake_saved_model(folder) -> str:
    (folder / "variables").mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(b"graph")
    (folder / "variables" / "variables.index").write_bytes(b"index")
    return str(folder)


def _settings(timeout: float = 30, **overrides) -> rollout_core.KServeSettings:
    return rollout_core.KServeSettings(
        serving_namespace=NS, rollout_timeout_seconds=timeout, poll_seconds=0.01, **overrides
    )


def _push(model: str, registry: str) -> deploy_core.PushResult:
    return deploy_core.deploy(model, True, ["beats"], registry, "penguins", {}, "schema")


def _deploy_and_roll_out(
    standin, model: str, registry: str, timeout: float = 30
) -> tuple[deploy_core.PushResult, rollout_core.RolloutResult]:
    """The cluster pipeline's deploy and rollout steps, one after the other."""
    pushed = _push(model, registry)
    rolled = rollout_core.rollout(
        pushed.version, registry, "penguins", _settings(timeout), api=_api(standin)
    )
    return pushed, rolled


def test_rollout_serves_the_pushed_version_from_its_own_served_folder(tmp_path):
    model = _fake_saved_model(tmp_path / "model")
    registry = f"file://{tmp_path}/store"
    with KServeStandIn() as standin:
        first, _ = _deploy_and_roll_out(standin, model, registry)
        second, rolled = _deploy_and_roll_out(standin, model, registry)
        stored = standin.objects[(NS, "penguins")]
    assert (first.version, second.version) == (1, 2)
    assert stored["spec"]["predictor"]["model"]["storageUri"] == f"{registry}/_served/penguins/2/"
    served = tmp_path / "store" / "_served" / "penguins" / "2"
    assert [p.name for p in served.iterdir()] == ["2"]  # One version, TF Serving's layout.
    assert (served / "2" / "saved_model.pb").is_file()
    assert (served / "2" / "variables" / "variables.index").is_file()
    assert _version(stored) == "2"
    assert second.destination == f"{registry}/penguins/2"
    assert rolled.rolled_out and rolled.version == 2
    assert rolled.served_uri == f"{registry}/_served/penguins/2/"
    assert rolled.previous_version == 1 and rolled.rollback_version == 1
    assert rolled.previous_destination == f"{registry}/penguins/1"
    assert rolled.url == "http://penguins-models.example.com"


def test_rollout_discards_a_version_that_does_not_serve(tmp_path):
    model = _fake_saved_model(tmp_path / "model")
    registry = f"file://{tmp_path}/store"

    def second_version_crashes(annotations):
        return CRASH if annotations.get(kserve.MODEL_VERSION_ANNOTATION) == "2" else None

    with KServeStandIn(second_version_crashes) as standin:
        _deploy_and_roll_out(standin, model, registry)
        with pytest.raises(RolloutFailed, match="CrashLoopBackOff"):
            _deploy_and_roll_out(standin, model, registry, timeout=0.2)
        stored = standin.objects[(NS, "penguins")]
    assert ModelRegistry(registry).versions("penguins") == [1]
    assert _version(stored) == "1"
    assert stored["spec"]["predictor"]["model"]["storageUri"] == f"{registry}/_served/penguins/1/"
    served = tmp_path / "store" / "_served" / "penguins"
    # The failed version's folder is gone; the serving one stays, marked as served.
    assert sorted(p.name for p in served.iterdir()) == ["1", "1.served"]
    assert (served / "1" / "1" / "saved_model.pb").is_file()


def test_rollout_failure_is_not_reported_as_bad_input():
    assert not issubclass(RolloutFailed, PipelineInputError)


def test_later_registry_push_does_not_reach_the_served_folder(tmp_path):
    # E.g. a local run, or a cluster run with serve=false, pushing into the same registry.
    model = _fake_saved_model(tmp_path / "model")
    registry = f"file://{tmp_path}/store"
    with KServeStandIn() as standin:
        _deploy_and_roll_out(standin, model, registry)
    assert ModelRegistry(registry).push("penguins", model, {}) == 2
    served = tmp_path / "store" / "_served" / "penguins" / "1"
    assert [p.name for p in served.iterdir()] == ["1"]


def test_nothing_is_rolled_out_when_nothing_was_pushed(tmp_path):
    # No API client is made: an unblessed model needs no cluster.
    result = rollout_core.rollout(None, f"file://{tmp_path}/store", "penguins", _settings())
    assert not result.rolled_out
    assert "deploy pushed nothing" in result.reason
    assert not (tmp_path / "store").exists()


def test_serve_false_leaves_the_pushed_version_unserved(tmp_path):
    registry = f"file://{tmp_path}/store"
    pushed = _push(_fake_saved_model(tmp_path / "model"), registry)
    result = rollout_core.rollout(pushed.version, registry, "penguins", _settings(), serve=False)
    assert not result.rolled_out and result.version == 1
    assert ModelRegistry(registry).versions("penguins") == [1]
    assert not (tmp_path / "store" / "_served").exists()


def test_rollout_needs_an_object_store_registry_and_discards_the_version(tmp_path):
    registry = str(tmp_path / "registry")
    pushed = _push(_fake_saved_model(tmp_path / "model"), registry)
    with pytest.raises(ConfigurationError, match="object store"):
        rollout_core.rollout(pushed.version, registry, "penguins", _settings(), api=object())
    assert ModelRegistry(registry).versions("penguins") == []


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"serving_runtime": "triton"}, "serving_runtime must be one of"),
        ({"canary_traffic_percent": 10}, "Knative"),
        ({"predictor_memory": "lots"}, "not a Kubernetes quantity"),
        ({"rollout_timeout_seconds": 0}, "rollout_timeout_seconds must be above 0"),
    ],
)
def test_settings_kserve_cannot_use_discard_the_pushed_version(tmp_path, overrides, message):
    registry = f"file://{tmp_path}/store"
    pushed = _push(_fake_saved_model(tmp_path / "model"), registry)
    settings = rollout_core.KServeSettings(serving_namespace=NS, **overrides)
    with pytest.raises(ConfigurationError, match=message):
        rollout_core.rollout(pushed.version, registry, "penguins", settings, api=object())
    assert ModelRegistry(registry).versions("penguins") == []


def test_resources_limits_are_twice_the_requests():
    body = kserve.Resources.scaled("500m", "1Gi").to_body()
    assert body == {
        "requests": {"cpu": "500m", "memory": "1Gi"},
        "limits": {"cpu": "1000m", "memory": "2Gi"},
    }


@pytest.mark.parametrize("runtime", [kserve.TF_SERVING_RUNTIME, kserve.PROJECT_RUNTIME])
def test_predictor_pods_meet_the_restricted_pod_security_profile(runtime):
    predictor = _spec(1, runtime=runtime).to_body()["spec"]["predictor"]
    assert predictor["securityContext"] == {
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def test_project_runtime_needs_raw_deployment_for_its_two_ports():
    with pytest.raises(ConfigurationError, match="two ports"):
        _spec(1, runtime=kserve.PROJECT_RUNTIME, deployment_mode="Serverless")


def test_served_folders_of_versions_no_spec_names_are_retired(tmp_path):
    model = _fake_saved_model(tmp_path / "model")
    registry = f"file://{tmp_path}/store"
    with KServeStandIn() as standin:
        for _ in range(3):
            _deploy_and_roll_out(standin, model, registry)
    served = tmp_path / "store" / "_served" / "penguins"
    # The serving version and the one a rollback goes back to; the registry keeps all three.
    assert sorted(p.name for p in served.iterdir()) == ["2", "2.served", "3", "3.served"]
    assert ModelRegistry(registry).served_versions("penguins") == [2, 3]
    assert ModelRegistry(registry).versions("penguins") == [1, 2, 3]


def test_rolling_the_same_version_out_again_keeps_what_a_rollback_goes_to(tmp_path):
    # A rollout step retried after it served: the version before stays rollback's target.
    model = _fake_saved_model(tmp_path / "model")
    registry = f"file://{tmp_path}/store"
    with KServeStandIn() as standin:
        for _ in range(2):
            _deploy_and_roll_out(standin, model, registry)
        again = rollout_core.rollout(2, registry, "penguins", _settings(), api=_api(standin))
        stored = standin.objects[(NS, "penguins")]
    assert again.rolled_out
    assert stored["metadata"]["annotations"][kserve.PREVIOUS_VERSION_ANNOTATION] == "1"
    served = tmp_path / "store" / "_served" / "penguins"
    assert sorted(p.name for p in served.iterdir()) == ["1", "1.served", "2", "2.served"]


def test_the_number_of_a_discarded_version_is_never_reused(tmp_path):
    model = _fake_saved_model(tmp_path / "model")
    registry = f"file://{tmp_path}/store"

    def version_2_crashes(annotations):
        return CRASH if annotations.get(kserve.MODEL_VERSION_ANNOTATION) == "2" else None

    with KServeStandIn(version_2_crashes) as standin:
        _deploy_and_roll_out(standin, model, registry)
        with pytest.raises(RolloutFailed):
            _deploy_and_roll_out(standin, model, registry, timeout=0.3)
        third, _ = _deploy_and_roll_out(standin, model, registry)
    assert third.version == 3
    assert ModelRegistry(registry).versions("penguins") == [1, 3]


def test_a_retried_rollout_of_a_discarded_version_says_so_at_once(tmp_path):
    registry = f"file://{tmp_path}/store"
    ModelRegistry(registry).push("penguins", _fake_saved_model(tmp_path / "model"), {})
    ModelRegistry(registry).discard("penguins", 1)  # What the first, failed attempt did.
    with KServeStandIn() as standin:
        with pytest.raises(ConfigurationError, match="not in the registry"):
            rollout_core.rollout(1, registry, "penguins", _settings(), api=_api(standin))
        assert standin.objects == {}


def test_served_folders_of_newer_versions_are_left_to_their_rollouts(tmp_path):
    registry = ModelRegistry(f"file://{tmp_path}/store")
    model = _fake_saved_model(tmp_path / "model")
    for version in (1, 2, 3, 4):
        registry.push("penguins", model, {})
        registry.publish("penguins", version)
        if version < 4:
            registry.mark_served("penguins", version)
    # Version 3 just served after 2; 4 is another run's rollout under way.
    assert registry.retire_served("penguins", {3, 2}) == [1]
    assert registry.served_versions("penguins") == [2, 3]
    assert (tmp_path / "store" / "_served" / "penguins" / "4" / "4" / "saved_model.pb").is_file()


def test_each_version_logs_to_the_sink_under_its_own_url():
    settings = KServeSettings(serving_namespace=NS)
    with KServeStandIn() as standin:
        kserve.rollout(_api(standin), settings.spec("penguins", ROOT, 1), 30, poll_seconds=0.01)
        first = copy.deepcopy(standin.objects[(NS, "penguins")]["spec"]["predictor"]["logger"])
        kserve.rollout(_api(standin), settings.spec("penguins", ROOT, 2), 30, poll_seconds=0.01)
        second = standin.objects[(NS, "penguins")]["spec"]["predictor"]["logger"]
    assert first == {"mode": "all", "url": f"{kserve.LOG_SINK_URL}?model=penguins&version=1"}
    assert (
        settings.spec("penguins", ROOT, 1).to_body()["spec"]["predictor"][
            "terminationGracePeriodSeconds"
        ]
        == kserve.LOGGER_GRACE_SECONDS
    )
    assert second["url"] == f"{kserve.LOG_SINK_URL}?model=penguins&version=2"


def test_no_logger_without_a_prediction_log_url():
    spec = KServeSettings(prediction_log_url="").spec("penguins", ROOT, 1)
    assert "logger" not in spec.to_body()["spec"]["predictor"]
    with pytest.raises(ConfigurationError, match="an http:// or https:// URL, or empty"):
        KServeSettings(prediction_log_url="mlops-log-sink/log").check()


def test_a_service_that_gains_a_logger_is_said_to_refuse_requests_until_new_pods(caplog):
    without = KServeSettings(serving_namespace=NS, prediction_log_url="")
    with KServeStandIn() as standin:
        kserve.rollout(_api(standin), without.spec("penguins", ROOT, 1), 30, poll_seconds=0.01)
        with caplog.at_level(logging.WARNING):
            kserve.rollout(
                _api(standin),
                KServeSettings(serving_namespace=NS).spec("penguins", ROOT, 2),
                30,
                poll_seconds=0.01,
            )
    assert "gets a payload logger now" in caplog.text
    assert kserve.gains_a_logger(None, without.spec("penguins", ROOT, 1).to_body()) is False
