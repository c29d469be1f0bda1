"""Blue/green through the real kubernetes client, over real HTTP, against the KServe stand-in
(tests/k8s_standin.py: InferenceServices and RawDeployment InferenceGraphs as KServe v0.15.2
makes them), with smoke requests sent over real HTTP to loopback servers standing for the
predictors and for the graph's router (which posts the body to the live step's URL and answers
with its status and body, kserve v0.15.2 cmd/router/main.go:96-170, :378-395)."""

import json
from urllib.parse import urlsplit

import pytest
import requests
from google.protobuf import text_format
from kubernetes.client import ApiClient, Configuration

from components.deploy import core as deploy_core
from components.errors import ConfigurationError
from components.registry import ModelRegistry
from components.rollout import core as rollout_core
from components.rollout import graph, manage
from components.rollout import inference_service as kserve
from pipelines.cli import main
from tests.k8s_standin import KServeStandIn, PodFailure
from tests.loopback import JsonHandler, LoopbackServer
from tests.testdata import build as testdata

NS, ROUTING = "models", "routing"
FRONT = f"http://penguins.{ROUTING}.svc.cluster.local"
# What the penguins model is served: every column of the data but the label.
FEATURES = {"island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g",
            "sex", "year"}  # fmt: skip


class Predictors(LoopbackServer):
    """Each colour's predictor (``/v1/models/<service>:predict``) and the graph's router.

    A predictor answers a row of penguin features with a label, or 500 when its service is in
    ``broken``; the router reads the live graph from the stand-in and posts to its step.
    """

    def __init__(self, standin: KServeStandIn) -> None:
        self.standin = standin
        self.broken: set[str] = set()
        self.router_down = False
        self.seen: list[tuple[str, dict]] = []
        super().__init__()

    def _handler(self) -> type[JsonHandler]:
        server = self

        class Handler(JsonHandler):
            def do_POST(self):
                body = json.loads(self._raw())
                service = self.path.split("/")[3].split(":")[0]
                server.seen.append((service, body))
                if service in server.broken:
                    self._send(500, {"error": f"{service} failed to load"})
                elif set(body["instances"][0]) != FEATURES:
                    self._send(400, {"error": "the row does not fit the model"})
                else:
                    self._send(200, {"predictions": [{"label": "Adelie"}]})

        return Handler

    def post(self, url: str, body: dict, timeout: float) -> tuple[int, str]:
        """What a request to ``url`` in the cluster gets, sent over loopback."""
        parts = urlsplit(url)
        if parts.hostname == urlsplit(FRONT).hostname:
            if self.router_down:
                raise requests.ConnectionError(f"connection refused: {url}")
            live = self.standin.graphs[(ROUTING, "penguins")]
            url = live["spec"]["nodes"]["root"]["steps"][0]["serviceUrl"]
            parts = urlsplit(url)
        reply = requests.post(self.host + parts.path, json=body, timeout=timeout)
        return reply.status_code, reply.text


@pytest.fixture(scope="module")
def registry_files(penguins_splits):
    from components.validate import core

    result = core.validate(penguins_splits, testdata.LABEL)
    return (
        text_format.MessageToString(result.schema),
        text_format.MessageToString(result.statistics["train"]),
    )


def _model(tmp_path) -> str:
    folder = tmp_path / "model"
    (folder / "variables").mkdir(parents=True, exist_ok=True)
    (folder / "saved_model.pb").write_bytes(b"graph")
    (folder / "variables" / "variables.index").write_bytes(b"index")
    return str(folder)


def _settings(**overrides) -> rollout_core.KServeSettings:
    fields = dict(
        serving_namespace=NS,
        routing_namespace=ROUTING,
        rollout_strategy=rollout_core.BLUE_GREEN,
        rollout_timeout_seconds=30,
        poll_seconds=0.01,
    )
    return rollout_core.KServeSettings(**{**fields, **overrides})


def _push_and_roll_out(tmp_path, standin, predictors, registry_files, **overrides):
    registry = f"file://{tmp_path}/store"
    schema, statistics = registry_files
    pushed = deploy_core.deploy(
        _model(tmp_path), True, ["beats"], registry, "penguins", {}, schema, statistics
    )
    return rollout_core.rollout(
        pushed.version,
        registry,
        "penguins",
        _settings(**overrides),
        api=ApiClient(Configuration(host=standin.host)),
        post=predictors.post,
    )


def _live(standin) -> str:
    return graph.live_colour(standin.graphs[(ROUTING, "penguins")])


def _version_of(standin, colour: str) -> int | None:
    return kserve.model_version_of(standin.objects.get((NS, f"penguins-{colour}")))


def _steps(result) -> list[tuple[str, bool]]:
    return [(step["name"], step["passed"]) for step in result.steps]


def test_first_rollout_serves_blue_behind_the_graph(tmp_path, registry_files):
    with KServeStandIn() as standin, Predictors(standin) as predictors:
        result = _push_and_roll_out(tmp_path, standin, predictors, registry_files)
        assert _live(standin) == "blue" and _version_of(standin, "blue") == 1
        step = standin.graphs[(ROUTING, "penguins")]["spec"]["nodes"]["root"]["steps"]
    assert result.rolled_out and result.colour == "blue" and result.url == FRONT
    assert step == [
        {
            "name": "blue",
            "serviceUrl": f"http://penguins-blue-predictor.{NS}.svc.cluster.local"
            "/v1/models/penguins-blue:predict",
            "dependency": "Hard",
        }
    ]
    assert _steps(result) == [
        ("roll out blue", True),
        ("smoke test blue", True),
        ("switch to blue", True),
        ("smoke test through the graph", True),
    ]
    assert result.steps[-1]["traffic"] == {"blue": 100}
    # The smoke row is the version's typical penguin, label left out.
    service, body = predictors.seen[0]
    assert service == "penguins-blue" and set(body["instances"][0]) == FEATURES


def test_second_rollout_switches_to_green_and_keeps_blue_warm(tmp_path, registry_files):
    with KServeStandIn() as standin, Predictors(standin) as predictors:
        _push_and_roll_out(tmp_path, standin, predictors, registry_files)
        result = _push_and_roll_out(tmp_path, standin, predictors, registry_files)
        assert _live(standin) == "green"
        assert (_version_of(standin, "blue"), _version_of(standin, "green")) == (1, 2)
        router = standin.deployments[(ROUTING, "penguins")]
        template = router["spec"]["template"]["metadata"]["annotations"]
    assert result.rolled_out and result.version == 2
    assert (result.previous_version, result.rollback_version) == (1, 1)
    assert result.steps[0]["traffic"] == {"blue": 100}
    assert result.steps[-1]["traffic"] == {"green": 100}
    # Every router pod runs the switched graph before the rollout says it switched.
    assert template[graph.LIVE_COLOUR_ANNOTATION] == "green"
    assert ModelRegistry(f"file://{tmp_path}/store").served_versions("penguins") == [1, 2]


def test_candidate_failing_its_smoke_test_never_takes_traffic(tmp_path, registry_files):
    with KServeStandIn() as standin, Predictors(standin) as predictors:
        _push_and_roll_out(tmp_path, standin, predictors, registry_files)
        predictors.broken.add("penguins-green")
        result = _push_and_roll_out(tmp_path, standin, predictors, registry_files)
        assert _live(standin) == "blue" and _version_of(standin, "blue") == 1
        # Green was new: it is gone again.
        assert (NS, "penguins-green") not in standin.objects
    assert not result.rolled_out
    assert (
        "smoke test of green failed" in result.reason and "version 1 still serves" in result.reason
    )
    assert _steps(result) == [("roll out green", True), ("smoke test green", False)]
    assert result.steps[1]["values"]["status"] == 500
    assert ModelRegistry(f"file://{tmp_path}/store").versions("penguins") == [1]


def test_failed_smoke_test_puts_the_idle_colours_previous_version_back(tmp_path, registry_files):
    with KServeStandIn() as standin, Predictors(standin) as predictors:
        for _ in range(2):
            _push_and_roll_out(tmp_path, standin, predictors, registry_files)
        predictors.broken.add("penguins-blue")
        result = _push_and_roll_out(tmp_path, standin, predictors, registry_files)
        assert _live(standin) == "green"
        assert (_version_of(standin, "blue"), _version_of(standin, "green")) == (1, 2)
    assert not result.rolled_out and result.version == 3
    assert ModelRegistry(f"file://{tmp_path}/store").versions("penguins") == [1, 2]


def test_graph_unreachable_after_the_switch_switches_back(tmp_path, registry_files):
    with KServeStandIn() as standin, Predictors(standin) as predictors:
        _push_and_roll_out(tmp_path, standin, predictors, registry_files)
        predictors.router_down = True
        result = _push_and_roll_out(tmp_path, standin, predictors, registry_files)
        live = standin.graphs[(ROUTING, "penguins")]
        router = standin.deployments[(ROUTING, "penguins")]
        assert graph.live_colour(live) == "blue"
        assert (
            router["spec"]["template"]["metadata"]["annotations"][graph.LIVE_COLOUR_ANNOTATION]
            == "blue"
        )
    assert not result.rolled_out
    assert _steps(result) == [
        ("roll out green", True),
        ("smoke test green", True),
        ("switch to green", True),
        ("smoke test through the graph", False),
        ("switch back to blue", True),
    ]
    assert result.steps[-1]["traffic"] == {"blue": 100}


def test_router_that_does_not_roll_out_leaves_the_graph_on_the_old_colour(tmp_path, registry_files):
    def green_routers_crash(annotations):
        if annotations.get(graph.LIVE_COLOUR_ANNOTATION) == "green":
            return PodFailure(reason="CrashLoopBackOff", message="back-off restarting router")
        return None

    with KServeStandIn(green_routers_crash) as standin, Predictors(standin) as predictors:
        _push_and_roll_out(tmp_path, standin, predictors, registry_files)
        result = _push_and_roll_out(
            tmp_path, standin, predictors, registry_files, rollout_timeout_seconds=0.3
        )
        assert _live(standin) == "blue"
    assert not result.rolled_out
    assert _steps(result)[-1] == ("switch to green", False)
    assert "CrashLoopBackOff" in result.steps[-1]["detail"]


def test_blue_green_needs_raw_deployment(tmp_path, registry_files):
    with (
        KServeStandIn() as standin,
        Predictors(standin) as predictors,
        pytest.raises(ConfigurationError, match=r"blue-green .* RawDeployment"),
    ):
        _push_and_roll_out(
            tmp_path, standin, predictors, registry_files, deployment_mode="Serverless"
        )
    assert ModelRegistry(f"file://{tmp_path}/store").versions("penguins") == []


def test_status_shows_the_live_colour_and_rollback_switches_to_the_warm_one(
    tmp_path, registry_files
):
    with KServeStandIn() as standin, Predictors(standin) as predictors:
        for _ in range(2):
            _push_and_roll_out(tmp_path, standin, predictors, registry_files)
        api = ApiClient(Configuration(host=standin.host))
        before = manage.status(api, NS, "penguins", ROUTING)
        rolled = manage.rollback(api, NS, "penguins", 30, 0.01, ROUTING)
        after = manage.status(api, NS, "penguins", ROUTING)
    assert [(s.version, s.percent, s.role) for s in before.shares] == [
        (2, 100, "green"),
        (1, 0, "blue"),
    ]
    assert before.rollback_to == 1 and before.mode == "blue-green"
    assert rolled.model_version == 1 and rolled.previous_model_version == 2
    assert [(s.version, s.percent) for s in after.shares] == [(1, 100), (2, 0)]
    assert after.rollback_to == 2


def test_mlops_rollout_rollback_switches_the_graph_back(
    tmp_path, registry_files, kubeconfig, capsys
):
    with KServeStandIn() as standin, Predictors(standin) as predictors:
        for _ in range(2):
            _push_and_roll_out(tmp_path, standin, predictors, registry_files)
        kubeconfig(standin)
        registry = f"file://{tmp_path}/store"
        args = ["penguins", "--namespace", NS, "--routing-namespace", ROUTING]
        assert main(["rollout", "rollback", *args, "--registry", registry]) == 0
        assert _live(standin) == "blue"
    printed = capsys.readouterr().out.splitlines()
    assert (
        printed[0]
        == f"mlops: rolled penguins back to version 1 (from version 2); it serves at {FRONT}"
    )
    assert printed[1] == f"{ROUTING}/penguins (blue-green): blue ready; green ready"
    assert printed[2].split()[:5] == ["version", "1", "100", "%", "blue"]
    # Version 2 stops being the baseline later runs must beat.
    assert ModelRegistry(registry).served_versions("penguins") == [1]
