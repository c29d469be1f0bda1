"""The KServe deploy target through the real kubernetes client, over real HTTP, against the
InferenceService stand-in in tests/k8s_standin.py."""

import pytest
from kubernetes.client import ApiClient, Configuration, CustomObjectsApi

from components.deploy import core as deploy_core
from components.deploy import kserve
from components.errors import ConfigurationError
from components.registry import ModelRegistry
from tests.k8s_standin import InferenceServiceStandIn

NS = "models"


def _api(standin) -> CustomObjectsApi:
    return CustomObjectsApi(ApiClient(Configuration(host=standin.host)))


ROOT = "s3://reg/penguins"
BROKEN = 13


def _spec(version: int, **overrides) -> kserve.InferenceServiceSpec:
    return kserve.InferenceServiceSpec(
        name="penguins", namespace=NS, storage_uri=ROOT, model_version=version, **overrides
    )


def _version(stored) -> str:
    return stored["spec"]["predictor"]["annotations"][kserve.MODEL_VERSION_ANNOTATION]


def _fails_when_broken(obj):
    if _version(obj) == str(BROKEN):
        return False, "ModelLoadFailed", f"failed to load version {BROKEN}"
    return True, "", ""


def test_new_service_is_created_and_becomes_ready():
    with InferenceServiceStandIn() as standin:
        result = kserve.rollout(_api(standin), _spec(1), 30, poll_seconds=0.01)
        stored = standin.objects[(NS, "penguins")]
    assert result.url == "http://penguins.models.example.com"
    assert result.revision == "penguins-predictor-00001"
    assert result.previous_model_version is None
    model = stored["spec"]["predictor"]["model"]
    assert model["modelFormat"] == {"name": "tensorflow"}
    assert model["storageUri"] == ROOT
    assert _version(stored) == "1"
    assert model["runtime"] == kserve.TF_SERVING_RUNTIME
    assert model["runtimeVersion"] == "2.16.1"  # TF Serving matching TF 2.16, not KServe's 2.6.2
    assert stored["metadata"]["annotations"][kserve.DEPLOYMENT_MODE_ANNOTATION] == "RawDeployment"


def test_update_reports_the_previous_model():
    with InferenceServiceStandIn() as standin:
        api = _api(standin)
        kserve.rollout(api, _spec(1), 30, poll_seconds=0.01)
        result = kserve.rollout(api, _spec(2), 30, poll_seconds=0.01)
        stored = standin.objects[(NS, "penguins")]
    assert (result.model_version, result.previous_model_version) == (2, 1)
    assert result.revision == "penguins-predictor-00002"
    assert stored["metadata"]["generation"] == 2


def test_revision_that_never_becomes_ready_is_rolled_back():
    with InferenceServiceStandIn(_fails_when_broken) as standin:
        api = _api(standin)
        kserve.rollout(api, _spec(1), 30, poll_seconds=0.01)
        calls = []
        with pytest.raises(kserve.RolloutFailed) as err:
            kserve.rollout(
                api, _spec(BROKEN), 0.2, poll_seconds=0.01, before_rollback=lambda: calls.append(1)
            )
        stored = standin.objects[(NS, "penguins")]
    assert "ModelLoadFailed" in str(err.value)
    assert f"failed to load version {BROKEN}" in str(err.value)
    assert "previous spec (version 1) was restored" in str(err.value)
    assert _version(stored) == "1"
    assert calls == [1]


def test_new_service_that_never_becomes_ready_is_deleted():
    with InferenceServiceStandIn(_fails_when_broken) as standin:
        with pytest.raises(kserve.RolloutFailed, match="was deleted"):
            kserve.rollout(_api(standin), _spec(BROKEN), 0.2, poll_seconds=0.01)
        assert standin.objects == {}


def test_canary_needs_knative_mode():
    with pytest.raises(ConfigurationError, match="Knative"):
        _spec(2, canary_traffic_percent=10)


def test_canary_then_promotion_in_knative_mode():
    with InferenceServiceStandIn() as standin:
        api = _api(standin)
        serverless = {"deployment_mode": "Serverless"}
        kserve.rollout(api, _spec(1, **serverless), 30, poll_seconds=0.01)
        canary = _spec(2, canary_traffic_percent=10, **serverless)
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
    return str(folder)


def _target(standin, registry: str, timeout: float = 30) -> deploy_core.KServeTarget:
    settings = deploy_core.KServeSettings(namespace=NS, timeout_seconds=timeout, poll_seconds=0.01)
    return deploy_core.KServeTarget(registry, settings, api=_api(standin))


def test_kserve_target_serves_the_pushed_registry_version(tmp_path):
    model = _fake_saved_model(tmp_path / "model")
    registry = f"file://{tmp_path}/store"
    with InferenceServiceStandIn() as standin:
        first = _target(standin, registry).push(model, "penguins", {}, "schema")
        second = _target(standin, registry).push(model, "penguins", {}, "schema")
        stored = standin.objects[(NS, "penguins")]
    assert (first.version, second.version) == (1, 2)
    assert stored["spec"]["predictor"]["model"]["storageUri"] == f"{registry}/penguins"
    assert _version(stored) == "2"
    assert second.destination == f"{registry}/penguins/2"
    assert second.previous_destination == f"{registry}/penguins/1"
    assert second.url == "http://penguins.models.example.com"


def test_kserve_target_discards_a_version_that_does_not_serve(tmp_path):
    model = _fake_saved_model(tmp_path / "model")
    registry = f"file://{tmp_path}/store"

    def second_revision_fails(obj):
        return obj["metadata"]["generation"] == 1, "ModelLoadFailed", "bad model"

    with InferenceServiceStandIn(second_revision_fails) as standin:
        _target(standin, registry).push(model, "penguins", {}, "schema")
        with pytest.raises(kserve.RolloutFailed, match="bad model"):
            _target(standin, registry, timeout=0.2).push(model, "penguins", {}, "schema")
        stored = standin.objects[(NS, "penguins")]
    assert ModelRegistry(registry).versions("penguins") == [1]
    assert _version(stored) == "1"


def test_kserve_target_needs_an_object_store_registry(tmp_path):
    with pytest.raises(ConfigurationError, match="object store"):
        deploy_core.make_target("kserve", str(tmp_path), deploy_core.KServeSettings())


def test_resources_limits_are_twice_the_requests():
    body = kserve.Resources.scaled("500m", "1Gi").to_body()
    assert body == {
        "requests": {"cpu": "500m", "memory": "1Gi"},
        "limits": {"cpu": "1000m", "memory": "2Gi"},
    }
