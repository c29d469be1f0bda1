"""Blue/green through the real kubernetes client, over real HTTP, against the KServe stand-in
(tests/k8s_standin.py: InferenceServices and RawDeployment InferenceGraphs as KServe v0.15.2
makes them), with smoke requests sent over real HTTP to loopback servers standing for the
predictors and for the graph's router (which posts the body to the live step's URL and answers
with its status and body, kserve v0.15.2 cmd/router/main.go:96-170, :378-395)."""

import contextlib
import dataclasses
import json
import random
from collections.abc import Callable
from urllib.parse import urlsplit

import pytest
import requests
from kubernetes.client import ApiClient, Configuration
from prometheus_client import CollectorRegistry, generate_latest

from components.deploy import core as deploy_core
from components.errors import ConfigurationError, RolloutFailed
from components.registry import ModelRegistry
from components.rollout import blue_green, gates, graph, manage, smoke
from components.rollout import core as rollout_core
from components.rollout import inference_service as kserve
from pipelines.cli import main
from serving.metrics import RequestMetrics
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
        # Service → which rows it fails on (a model that breaks on some inputs).
        self.fails_on: dict[str, Callable[[dict], bool]] = {}
        self.router_down = False
        self.uncounted: set[str] = set()
        self.seen: list[tuple[str, dict]] = []
        self.registries: dict[str, tuple[CollectorRegistry, RequestMetrics]] = {}
        self.draws = random.Random(0)
        super().__init__()

    def answer(self, service: str, body: dict) -> tuple[int, dict]:
        """What the predictor of ``service`` answers, counted in its real request metrics."""
        self.seen.append((service, body))
        if "instances" in body:
            row = body["instances"][0]
        else:
            row = {t["name"]: t["data"][0] for t in body["inputs"]}
        if service in self.broken:
            code, answer, outcome = 500, {"error": f"{service} failed to load"}, "error"
        elif set(row) != FEATURES:
            code, answer, outcome = 400, {"error": "the row does not fit the model"}, "invalid"
        elif self.fails_on.get(service, lambda row: False)(row):
            code, answer, outcome = 500, {"error": "model failed"}, "error"
        else:
            code, answer, outcome = 200, {"predictions": [{"label": "Adelie"}]}, "ok"
        version = kserve.model_version_of(self.standin.objects.get((NS, service)))
        if service not in self.registries:
            registry = CollectorRegistry()
            self.registries[service] = (registry, RequestMetrics(registry))
        self.registries[service][1].observe(service, version, outcome, 0.004)
        return code, answer

    def metrics(self, url: str, timeout: float) -> str:
        """A pod's /metrics: the page of the predictor its IP belongs to."""
        ip = urlsplit(url).hostname
        pod = next(p for p in self.standin.pods(NS) if p["status"].get("podIP") == ip)
        service = pod["metadata"]["labels"][kserve.ISVC_LABEL]
        if service in self.uncounted:
            return ""  # A predictor image that counts no requests.
        registry = self.registries.get(service, (CollectorRegistry(),))[0]
        return generate_latest(registry).decode()

    def route(self) -> str:
        """The step URL KServe 0.15.2's router picks: a Sequence's one step; a Splitter's drawn
        in [0, 100] against the running sum of the weights, none for 100
        (cmd/router/main.go:172-187), which kills the connection."""
        root = self.standin.graphs[(ROUTING, "penguins")]["spec"]["nodes"]["root"]
        if root["routerType"] == "Sequence":
            return root["steps"][0]["serviceUrl"]
        point, end = self.draws.randrange(101), 0
        for step in root["steps"]:
            end += step["weight"]
            if point < end:
                return step["serviceUrl"]
        raise requests.ConnectionError("the router panicked: no step for the draw")

    def send(self, rows: list[dict]) -> None:
        """Live traffic: each row through the graph, as V2 requests; failures are the clients'."""
        for row in rows:
            with contextlib.suppress(requests.ConnectionError):
                self.post(FRONT, smoke.request_body(row, "v2"), 5)

    def _handler(self) -> type[JsonHandler]:
        server = self

        class Handler(JsonHandler):
            def do_POST(self):
                service = self.path.split("/")[3].split(":")[0]
                self._send(*server.answer(service, json.loads(self._raw())))

        return Handler

    def post(self, url: str, body: dict, timeout: float) -> tuple[int, str]:
        """What a request to ``url`` in the cluster gets, sent over loopback."""
        parts = urlsplit(url)
        if parts.hostname == urlsplit(FRONT).hostname:
            if self.router_down:
                raise requests.ConnectionError(f"connection refused: {url}")
            parts = urlsplit(self.route())
        reply = requests.post(self.host + parts.path, json=body, timeout=timeout)
        return reply.status_code, reply.text


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


def _push_and_roll_out(
    tmp_path, standin, predictors, penguins_registry_texts, canary=None, **overrides
):
    registry = f"file://{tmp_path}/store"
    schema, statistics = penguins_registry_texts
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
        canary=canary,
    )


def _live(standin) -> str:
    return graph.live_colour(standin.graphs[(ROUTING, "penguins")])


def _version_of(standin, colour: str) -> int | None:
    return kserve.model_version_of(standin.objects.get((NS, f"penguins-{colour}")))


def _steps(result) -> list[tuple[str, bool]]:
    return [(step["name"], step["passed"]) for step in result.steps]


def test_first_rollout_serves_blue_behind_the_graph(tmp_path, penguins_registry_texts):
    with KServeStandIn() as standin, Predictors(standin) as predictors:
        result = _push_and_roll_out(tmp_path, standin, predictors, penguins_registry_texts)
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


def test_second_rollout_switches_to_green_and_keeps_blue_warm(tmp_path, penguins_registry_texts):
    with KServeStandIn() as standin, Predictors(standin) as predictors:
        _push_and_roll_out(tmp_path, standin, predictors, penguins_registry_texts)
        result = _push_and_roll_out(tmp_path, standin, predictors, penguins_registry_texts)
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


def test_candidate_failing_its_smoke_test_never_takes_traffic(tmp_path, penguins_registry_texts):
    with KServeStandIn() as standin, Predictors(standin) as predictors:
        _push_and_roll_out(tmp_path, standin, predictors, penguins_registry_texts)
        predictors.broken.add("penguins-green")
        result = _push_and_roll_out(tmp_path, standin, predictors, penguins_registry_texts)
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


def test_failed_smoke_test_puts_the_idle_colours_previous_version_back(
    tmp_path, penguins_registry_texts
):
    with KServeStandIn() as standin, Predictors(standin) as predictors:
        for _ in range(2):
            _push_and_roll_out(tmp_path, standin, predictors, penguins_registry_texts)
        predictors.broken.add("penguins-blue")
        result = _push_and_roll_out(tmp_path, standin, predictors, penguins_registry_texts)
        assert _live(standin) == "green"
        assert (_version_of(standin, "blue"), _version_of(standin, "green")) == (1, 2)
    assert not result.rolled_out and result.version == 3
    assert ModelRegistry(f"file://{tmp_path}/store").versions("penguins") == [1, 2]


def test_graph_unreachable_after_the_switch_switches_back(tmp_path, penguins_registry_texts):
    with KServeStandIn() as standin, Predictors(standin) as predictors:
        _push_and_roll_out(tmp_path, standin, predictors, penguins_registry_texts)
        predictors.router_down = True
        result = _push_and_roll_out(tmp_path, standin, predictors, penguins_registry_texts)
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


def test_router_that_does_not_roll_out_leaves_the_graph_on_the_old_colour(
    tmp_path, penguins_registry_texts
):
    def green_routers_crash(annotations):
        if annotations.get(graph.LIVE_COLOUR_ANNOTATION) == "green":
            return PodFailure(reason="CrashLoopBackOff", message="back-off restarting router")
        return None

    with KServeStandIn(green_routers_crash) as standin, Predictors(standin) as predictors:
        _push_and_roll_out(tmp_path, standin, predictors, penguins_registry_texts)
        result = _push_and_roll_out(
            tmp_path, standin, predictors, penguins_registry_texts, rollout_timeout_seconds=0.3
        )
        assert _live(standin) == "blue"
    assert not result.rolled_out
    assert _steps(result)[-1] == ("switch to green", False)
    assert "CrashLoopBackOff" in result.steps[-1]["detail"]


def test_blue_green_needs_raw_deployment(tmp_path, penguins_registry_texts):
    with (
        KServeStandIn() as standin,
        Predictors(standin) as predictors,
        pytest.raises(ConfigurationError, match=r"blue-green .* RawDeployment"),
    ):
        _push_and_roll_out(
            tmp_path, standin, predictors, penguins_registry_texts, deployment_mode="Serverless"
        )
    assert ModelRegistry(f"file://{tmp_path}/store").versions("penguins") == []


def test_status_shows_the_live_colour_and_rollback_switches_to_the_warm_one(
    tmp_path, penguins_registry_texts
):
    with KServeStandIn() as standin, Predictors(standin) as predictors:
        for _ in range(2):
            _push_and_roll_out(tmp_path, standin, predictors, penguins_registry_texts)
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
    tmp_path, penguins_registry_texts, kubeconfig, capsys
):
    with KServeStandIn() as standin, Predictors(standin) as predictors:
        for _ in range(2):
            _push_and_roll_out(tmp_path, standin, predictors, penguins_registry_texts)
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


@pytest.fixture(scope="module")
def penguin_rows(penguins_csv) -> list[dict]:
    """Rows of the real penguins data as clients send them (the label left out)."""
    import pandas as pd

    frame = pd.read_csv(penguins_csv).dropna().drop(columns=[testdata.LABEL])
    return frame.to_dict("records")


def _canary(predictors, rows, percents=(10, 50), min_requests=20) -> blue_green.Canary:
    """The canary's plan with the step's wait replaced by the step's live traffic."""
    return blue_green.Canary(
        percents,
        step_seconds=60,
        gate=gates.CanaryGate(min_requests=min_requests),
        get=predictors.metrics,
        wait=lambda seconds: predictors.send(rows),
    )


CANARY = dict(rollout_strategy="canary", serving_runtime=kserve.PROJECT_RUNTIME)


def test_canary_whose_candidate_errors_on_half_the_rows_rolls_back(
    tmp_path, penguins_registry_texts, penguin_rows
):
    with KServeStandIn() as standin, Predictors(standin) as predictors:
        plan = _canary(predictors, penguin_rows)
        _push_and_roll_out(tmp_path, standin, predictors, penguins_registry_texts, plan, **CANARY)
        # Version 2 fails on every penguin not from Biscoe (the typical row's island, so the
        # smoke test passes): about half the rows.
        predictors.fails_on["penguins-green"] = lambda row: row["island"] != "Biscoe"
        result = _push_and_roll_out(
            tmp_path, standin, predictors, penguins_registry_texts, plan, **CANARY
        )
        root = standin.graphs[(ROUTING, "penguins")]["spec"]["nodes"]["root"]
        assert root["routerType"] == "Sequence" and root["steps"][0]["name"] == "blue"
        assert _version_of(standin, "blue") == 1
        predictors.send(penguin_rows[:20])
        after = [service for service, _ in predictors.seen[len(predictors.seen) - 20 :]]
    assert not result.rolled_out
    assert _steps(result) == [
        ("roll out green", True),
        ("smoke test green", True),
        ("canary 10 %", False),
        ("switch back to blue", True),
    ]
    gate = result.steps[2]
    assert gate["traffic"] == {"blue": 90, "green": 10}
    assert 0.4 < gate["values"]["candidate_error_rate"] < 0.6
    assert gate["values"]["stable_error_rate"] == 0
    assert gate["values"]["candidate_requests"] >= 20
    assert "error rate" in gate["detail"] and "canary at 10 % failed" in result.reason
    assert "version 1 still serves" in result.reason
    # The old version takes all traffic again; the candidate is out of the registry.
    assert set(after) == {"penguins-blue"}
    assert ModelRegistry(f"file://{tmp_path}/store").versions("penguins") == [1]


def test_healthy_canary_steps_through_its_shares_and_takes_all_traffic(
    tmp_path, penguins_registry_texts, penguin_rows
):
    with KServeStandIn() as standin, Predictors(standin) as predictors:
        plan = _canary(predictors, penguin_rows)
        first = _push_and_roll_out(
            tmp_path, standin, predictors, penguins_registry_texts, plan, **CANARY
        )
        result = _push_and_roll_out(
            tmp_path, standin, predictors, penguins_registry_texts, plan, **CANARY
        )
        assert _live(standin) == "green" and _version_of(standin, "green") == 2
    # A first rollout has nothing to compare with: it switches at once.
    assert [name for name, _ in _steps(first)] == [
        "roll out blue", "smoke test blue", "switch to blue", "smoke test through the graph",
    ]  # fmt: skip
    assert result.rolled_out and result.strategy == "canary"
    assert _steps(result) == [
        ("roll out green", True),
        ("smoke test green", True),
        ("canary 10 %", True),
        ("canary 50 %", True),
        ("switch to green", True),
        ("smoke test through the graph", True),
    ]
    ten, fifty = result.steps[2]["values"], result.steps[3]["values"]
    # The shares the candidate saw follow the weights (333 rows a step).
    assert 15 <= ten["candidate_requests"] <= 55 and 130 <= fifty["candidate_requests"] <= 200
    assert ten["candidate_error_rate"] == 0 and ten["candidate_p99_ms"] is not None


def test_canary_without_enough_traffic_is_not_promoted(
    tmp_path, penguins_registry_texts, penguin_rows
):
    with KServeStandIn() as standin, Predictors(standin) as predictors:
        plan = _canary(predictors, penguin_rows[:10])
        _push_and_roll_out(tmp_path, standin, predictors, penguins_registry_texts, plan, **CANARY)
        result = _push_and_roll_out(
            tmp_path, standin, predictors, penguins_registry_texts, plan, **CANARY
        )
        assert _live(standin) == "blue"
    assert not result.rolled_out
    assert "fewer than min_requests 20" in result.steps[2]["detail"]


def test_canary_needs_the_project_runtime(tmp_path, penguins_registry_texts):
    with (
        KServeStandIn() as standin,
        Predictors(standin) as predictors,
        pytest.raises(ConfigurationError, match="mlops-predictor runtime serves"),
    ):
        _push_and_roll_out(
            tmp_path, standin, predictors, penguins_registry_texts, rollout_strategy="canary"
        )


@pytest.mark.parametrize("steps", ["50,10", "0,50", "10,100", "ten"])
def test_canary_steps_must_be_rising_percents_below_100(steps):
    with pytest.raises(ConfigurationError, match="canary_steps"):
        _settings(canary_steps=steps, **CANARY).check()


def test_status_shows_the_shares_of_a_canary_step(tmp_path, penguins_registry_texts, penguin_rows):
    with KServeStandIn() as standin, Predictors(standin) as predictors:
        seen = []

        def look_during_the_step(seconds):
            api = ApiClient(Configuration(host=standin.host))
            seen.append(manage.status(api, NS, "penguins", ROUTING))
            predictors.send(penguin_rows)
            if len(seen) == 2:  # A person aborts the second canary by hand.
                seen.append(manage.rollback(api, NS, "penguins", 30, 0.01, ROUTING))

        plan = dataclasses.replace(
            _canary(predictors, penguin_rows, (25,)), wait=look_during_the_step
        )
        for _ in range(3):
            _push_and_roll_out(
                tmp_path, standin, predictors, penguins_registry_texts, plan, **CANARY
            )
        assert _live(standin) == "green" and _version_of(standin, "green") == 2
        final = manage.status(ApiClient(Configuration(host=standin.host)), NS, "penguins", ROUTING)
    assert [(s.version, s.percent, s.role) for s in seen[0].shares] == [
        (1, 75, "blue"),
        (2, 25, "green"),
    ]
    assert seen[0].mode == "canary step: green 25 %" and seen[0].rollback_to == 1
    # Rolling back mid-canary sends all traffic to the stable version, not to the candidate,
    # and the rollout step, finding the graph changed under it, stops there.
    assert seen[2].model_version == 2 and seen[2].previous_model_version == 3
    assert ModelRegistry(f"file://{tmp_path}/store").versions("penguins") == [1, 2]
    # The stopped rollout put blue back on version 1, the warm version a rollback goes to.
    assert [(share.version, share.percent) for share in final.shares] == [(2, 100), (1, 0)]
    assert final.rollback_to == 1


def test_a_switch_back_that_fails_keeps_the_version_that_may_serve(
    tmp_path, penguins_registry_texts
):
    blue_routers_crash = []

    def pod_failure(annotations):
        if blue_routers_crash and annotations.get(graph.LIVE_COLOUR_ANNOTATION) == "blue":
            return PodFailure(reason="CrashLoopBackOff", message="back-off restarting router")
        return None

    with KServeStandIn(pod_failure) as standin, Predictors(standin) as predictors:
        _push_and_roll_out(tmp_path, standin, predictors, penguins_registry_texts)
        predictors.router_down = True
        blue_routers_crash.append(True)
        with pytest.raises(blue_green.SwitchBackFailed, match="mlops rollout rollback penguins"):
            _push_and_roll_out(
                tmp_path, standin, predictors, penguins_registry_texts, rollout_timeout_seconds=0.5
            )
        assert _live(standin) == "blue"  # Written back; its routers do not come up.
        assert _version_of(standin, "green") == 2
    assert ModelRegistry(f"file://{tmp_path}/store").versions("penguins") == [1, 2]


def test_moving_from_replace_to_blue_green_keeps_what_the_old_service_serves(
    tmp_path, penguins_registry_texts
):
    with KServeStandIn() as standin, Predictors(standin) as predictors:
        _push_and_roll_out(
            tmp_path, standin, predictors, penguins_registry_texts, rollout_strategy="replace"
        )
        result = _push_and_roll_out(tmp_path, standin, predictors, penguins_registry_texts)
        old = standin.objects[(NS, "penguins")]["spec"]["predictor"]["model"]["storageUri"]
    assert result.rolled_out and result.colour == "blue"
    # The replace-mode service still loads version 1 from its served folder.
    assert old == f"file://{tmp_path}/store/_served/penguins/1/"
    assert (tmp_path / "store" / "_served" / "penguins" / "1" / "1" / "saved_model.pb").is_file()


def test_blue_green_refuses_a_model_name_too_long_for_kserves_labels(
    tmp_path, penguins_registry_texts
):
    name = "p" * (rollout_core.MAX_COLOUR_MODEL_NAME + 1)
    registry = f"file://{tmp_path}/store"
    schema, statistics = penguins_registry_texts
    pushed = deploy_core.deploy(
        _model(tmp_path), True, ["beats"], registry, name, {}, schema, statistics
    )
    with pytest.raises(ConfigurationError, match="at most 42 characters"):
        rollout_core.rollout(pushed.version, registry, name, _settings(), api=object())
    assert ModelRegistry(registry).versions(name) == []


@pytest.fixture
def served_log(tmp_path, penguins_splits, golden_model, golden_transform):
    """The eval split served by the golden model as version 1, in a prediction log."""
    from tests.unit.test_shadow import served_eval_log

    return served_eval_log(tmp_path, penguins_splits, golden_model, golden_transform)


def _push_real(tmp_path, penguins_registry_texts, model_dir: str) -> int:
    schema, statistics = penguins_registry_texts
    registry = f"file://{tmp_path}/store"
    return deploy_core.deploy(
        model_dir, True, ["beats"], registry, "penguins", {}, schema, statistics
    ).version


@pytest.mark.parametrize("candidate", ["same", "untrained"])
def test_the_shadow_gate_replays_the_log_before_any_traffic_moves(
    tmp_path, penguins_registry_texts, served_log, golden_model, golden_transform, candidate
):
    from tests.conftest import export_untrained

    log, rows = served_log
    with KServeStandIn() as standin, Predictors(standin) as predictors:
        _push_and_roll_out(
            tmp_path, standin, predictors, penguins_registry_texts
        )  # version 1, blue
        model_dir = (
            golden_model
            if candidate == "same"
            else export_untrained(golden_transform, str(tmp_path / "untrained"))
        )
        version = _push_real(tmp_path, penguins_registry_texts, model_dir)
        result = rollout_core.rollout(
            version,
            f"file://{tmp_path}/store",
            "penguins",
            # An untrained network can agree with the served labels on many penguins, whose
            # species some features nearly give away; demand nearly all.
            _settings(shadow_log=log, shadow_min_rows=10, shadow_min_agreement=0.99),
            api=ApiClient(Configuration(host=standin.host)),
            post=predictors.post,
        )
        green = standin.objects.get((NS, "penguins-green"))
    shadow = result.steps[0]
    assert shadow["name"] == "shadow replay" and shadow["values"]["rows"] == rows
    if candidate == "same":
        assert result.rolled_out and shadow["passed"] and shadow["values"]["agreement"] == 1.0
        assert [s["name"] for s in result.steps][1:3] == ["roll out green", "smoke test green"]
    else:
        # The untrained model disagrees with what was served: it never reaches the cluster.
        assert not result.rolled_out and not shadow["passed"] and len(result.steps) == 1
        assert "shadow replay says not to promote" in result.reason
        assert green is None
        assert ModelRegistry(f"file://{tmp_path}/store").versions("penguins") == [1]


def test_too_little_logged_traffic_lets_the_shadow_gate_pass_and_say_so(
    tmp_path, penguins_registry_texts, served_log
):
    log, rows = served_log
    with KServeStandIn() as standin, Predictors(standin) as predictors:
        result = _push_and_roll_out(
            tmp_path,
            standin,
            predictors,
            penguins_registry_texts,
            shadow_log=log,
            shadow_min_rows=rows + 1,
        )
    assert result.rolled_out
    assert result.steps[0]["passed"] and "not compared" in result.steps[0]["detail"]


def test_a_canary_left_running_is_ended_before_the_next_rollout_moves_anything(
    tmp_path, penguins_registry_texts, penguin_rows
):
    with KServeStandIn() as standin, Predictors(standin) as predictors:
        plan = _canary(predictors, penguin_rows)
        for _ in range(2):
            _push_and_roll_out(
                tmp_path, standin, predictors, penguins_registry_texts, plan, **CANARY
            )
        # A run killed during its canary step: green (v2) serves, blue (v3) takes 50 %.
        api = ApiClient(Configuration(host=standin.host))
        live = graph.InferenceGraphs(api, ROUTING).get("penguins")
        stable = graph.spec_of(live)
        blue_url = graph.predictor_url("penguins-blue", NS, "v2")
        split = dataclasses.replace(stable, canary_url=blue_url, canary_percent=50)
        graph.switch(api, split, 30, 0.01)
        predictors.broken.add("penguins-blue")  # The next version fails its smoke test.
        seen = len(predictors.seen)
        result = _push_and_roll_out(
            tmp_path, standin, predictors, penguins_registry_texts, plan, **CANARY
        )
        root = standin.graphs[(ROUTING, "penguins")]["spec"]["nodes"]["root"]
    assert _steps(result)[0] == ("end a canary left running", True)
    assert "{'green': 50, 'blue': 50}" in result.steps[0]["detail"]
    assert root["routerType"] == "Sequence" and root["steps"][0]["name"] == "green"
    # No live request reached the new version: only its smoke test did, after the split ended.
    assert [service for service, _ in predictors.seen[seen:]] == ["penguins-blue"]


def test_a_candidate_pod_that_restarts_during_a_step_fails_it(
    tmp_path, penguins_registry_texts, penguin_rows
):
    with KServeStandIn() as standin, Predictors(standin) as predictors:

        def traffic_and_a_crash(seconds):
            predictors.send(penguin_rows)
            for pod in standin.pods(NS):
                if pod["metadata"]["labels"][kserve.ISVC_LABEL] == "penguins-green":
                    pod["status"]["containerStatuses"][0]["restartCount"] += 1

        plan = dataclasses.replace(_canary(predictors, penguin_rows), wait=traffic_and_a_crash)
        _push_and_roll_out(tmp_path, standin, predictors, penguins_registry_texts, plan, **CANARY)
        result = _push_and_roll_out(
            tmp_path, standin, predictors, penguins_registry_texts, plan, **CANARY
        )
        assert _live(standin) == "blue"
    assert not result.rolled_out
    assert "restarted 1 time(s)" in result.steps[2]["detail"]


def test_a_canary_needs_a_stable_version_that_counts_its_requests(
    tmp_path, penguins_registry_texts, penguin_rows
):
    with KServeStandIn() as standin, Predictors(standin) as predictors:
        _push_and_roll_out(tmp_path, standin, predictors, penguins_registry_texts)  # TF Serving
        with pytest.raises(ConfigurationError, match="counts no requests"):
            _push_and_roll_out(
                tmp_path, standin, predictors, penguins_registry_texts,
                _canary(predictors, penguin_rows), **CANARY,
            )  # fmt: skip
        assert (NS, "penguins-green") not in standin.objects
    assert ModelRegistry(f"file://{tmp_path}/store").versions("penguins") == [1]


def test_a_graph_someone_else_changed_is_not_written_over(tmp_path, penguins_registry_texts):
    with KServeStandIn() as standin, Predictors(standin) as predictors:
        for _ in range(2):
            _push_and_roll_out(tmp_path, standin, predictors, penguins_registry_texts)
        api = ApiClient(Configuration(host=standin.host))
        graphs = graph.InferenceGraphs(api, ROUTING)
        read = graphs.get("penguins")  # green serves; blue is warm
        blue = graph.predictor_url("penguins-blue", NS, "v1")
        mine = dataclasses.replace(graph.spec_of(read), canary_percent=10, canary_url=blue)
        # Meanwhile a person switches back to blue by hand.
        manage.rollback(api, NS, "penguins", 30, 0.01, ROUTING)
        with pytest.raises(RolloutFailed, match="changed by someone else"):
            graphs.write(mine, read)
        assert _live(standin) == "blue"


def test_a_stable_version_that_counts_nothing_cannot_judge_a_canary(
    tmp_path, penguins_registry_texts, penguin_rows
):
    with KServeStandIn() as standin, Predictors(standin) as predictors:
        plan = _canary(predictors, penguin_rows)
        _push_and_roll_out(tmp_path, standin, predictors, penguins_registry_texts, plan, **CANARY)
        predictors.uncounted.add("penguins-blue")
        result = _push_and_roll_out(
            tmp_path, standin, predictors, penguins_registry_texts, plan, **CANARY
        )
        assert _live(standin) == "blue"
    assert not result.rolled_out
    assert "stable version 1 reported no requests" in result.steps[2]["detail"]
