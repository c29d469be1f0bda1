"""serving/shadow.py and `mlops shadow`: the comparison of a shadow version with the served one,
on logs written by the real prediction log writer, and a replay by real SavedModels."""

import json
import time

import numpy as np
import pyarrow.parquet as pq
import pytest

from pipelines.cli import main
from serving import prediction_log as pl
from serving import shadow
from serving.shadow import ShadowConfig

KINDS = {"island": pl.STRING, "bill_length_mm": pl.NUMBER}


def _served(log: str, answers: list[str], version: int = 1, latency_ms: float = 1.0) -> None:
    writer = pl.PredictionLog(log, window_seconds=3600)
    for index, answer in enumerate(answers):
        writer.log(pl.Prediction("penguins", version, f"r{index}", time.time(), latency_ms,
                                 {"island": ["Biscoe"], "bill_length_mm": [40.0 + index % 9]},
                                 KINDS, {"label": [answer]}))  # fmt: skip
    writer.close()


def _shadowed(log: str, answers: list[str | None], latency_ms: float = 1.0) -> None:
    """Shadow rows of version 2 as the live shadow writes them; None: it failed."""
    writer = pl.PredictionLog(log, window_seconds=3600, kind=pl.SHADOW)
    for index, answer in enumerate(answers):
        outputs = {"error": ["ValueError: no"]} if answer is None else {"label": [answer]}
        writer.log(pl.Prediction("penguins", 2, f"r{index}", time.time(), latency_ms, {}, {},
                                 outputs))  # fmt: skip
    writer.close()


def _report(log: str, **config) -> shadow.ShadowReport:
    return shadow.report(
        pl.read(log, pl.PREDICTIONS, "penguins"),
        pl.read(log, pl.SHADOW, "penguins"),
        pl.read(log, pl.LABELS, "penguins"),
        ShadowConfig(**config),
    )


def test_a_shadow_that_mostly_agrees_and_never_fails_may_be_promoted(tmp_path):
    log = str(tmp_path)
    _served(log, ["Adelie"] * 300)
    _shadowed(log, ["Adelie"] * 270 + ["Gentoo"] * 30)
    found = _report(log)
    assert (found.rows, found.errors, found.agreement) == (300, 0, pytest.approx(0.9))
    assert found.served_versions == [1] and found.shadow_version == 2
    assert found.promote
    assert found.reasons == ["300 rows shadowed, 0 failed; agreement 90.00%"]


def test_failures_disagreement_and_slowness_each_stop_a_promotion(tmp_path):
    log = str(tmp_path)
    _served(log, ["Adelie"] * 300, latency_ms=1.0)
    _shadowed(log, ["Gentoo"] * 290 + [None] * 10, latency_ms=5.0)
    found = _report(log)
    assert not found.promote and found.errors == 10
    assert found.reasons == [
        "the candidate failed on 10 of 300 rows (3.33% > 0.00%)",
        "it answers the served label on 0.00% of rows (< 80%)",
        "its p99 latency 5.00 ms is over 2x the served version's 1.00 ms",
    ]


def test_on_labelled_rows_a_candidate_that_is_worse_is_not_promoted(tmp_path):
    log = str(tmp_path)
    _served(log, ["Adelie"] * 300)
    _shadowed(log, ["Adelie"] * 250 + ["Gentoo"] * 50)
    pl.write_labels(log, "penguins", [(f"r{i}", 0, "Adelie") for i in range(300)])
    found = _report(log)
    assert found.labelled == {"rows": 300, "metric": "accuracy", "served": 1.0,
                              "shadow": pytest.approx(250 / 300)}  # fmt: skip
    assert not found.promote
    assert "on 300 labelled rows its accuracy 0.8333 is worse" in found.reasons[0]


def test_too_few_rows_decide_nothing(tmp_path):
    log = str(tmp_path)
    _served(log, ["Adelie"] * 20)
    _shadowed(log, ["Adelie"] * 20)
    assert _report(log).reasons == ["too few shadowed rows to decide: 20 < 200"]


def test_the_live_shadow_counts_agreement_and_failures_and_writes_its_rows(tmp_path):
    answers = iter([{"label": np.array([b"Adelie", b"Gentoo"])}, ValueError("bad input")])

    def candidate(columns):
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    log = pl.PredictionLog(str(tmp_path), window_seconds=3600, kind=pl.SHADOW)
    live = shadow.Shadow(candidate, 2, "penguins", log)
    served = {"label": np.array([b"Adelie", b"Adelie"])}
    assert live.submit("a", {"x": [1.0, 2.0]}, served)
    assert live.submit("b", {"x": [1.0, 2.0]}, served)
    live.close()
    log.close()
    counts = live.counts
    assert (counts.requests, counts.compared, counts.agreed, counts.errors) == (2, 2, 1, 2)
    rows = pl.read(str(tmp_path), pl.SHADOW, "penguins").sort_by([("request_id", "ascending"),
                                                                 ("row", "ascending")])  # fmt: skip
    assert rows.column("label").to_pylist() == ["Adelie", "Gentoo", None, None]
    assert rows.column("error").to_pylist()[2:] == ["ValueError: bad input"] * 2
    assert set(rows.column("version").to_pylist()) == {2}


def test_a_candidate_that_answers_otherwise_or_takes_other_features_fails_and_the_shadow_goes_on(
    tmp_path,
):
    calls = []

    def regressor(columns):  # answers a prediction where the served model answered a label
        calls.append(sorted(columns))
        return {"prediction": np.array([0.5])}

    live = shadow.Shadow(regressor, 2, "penguins", None, features={"x"})
    served = {"label": np.array([b"Adelie"])}
    live.submit("a", {"x": [1.0], "dropped": [2.0]}, served)  # it takes x alone
    live.submit("b", {"y": [1.0]}, served)  # without x
    live.submit("c", {"x": [1.0]}, served)
    live.close()
    assert live.counts.requests == 3 and live.counts.errors == 3 and live.counts.dropped == 0
    assert calls == [["x"], ["x"]]  # b never reached the model


@pytest.fixture
def logged(tmp_path, penguins_splits, golden_model, golden_transform):
    """The eval split served by the golden model (version 1), one row per request."""
    return served_eval_log(tmp_path, penguins_splits, golden_model, golden_transform)


def served_eval_log(tmp_path, penguins_splits, golden_model, golden_transform) -> tuple[str, int]:
    """Writes the eval split as the golden model (version 1) served it, one row per request,
    with the real prediction log writer; returns the log and its row count."""
    from components.features import load_spec, read_split
    from tests.whole_split import predict

    spec = load_spec(golden_transform)
    features, _ = read_split(penguins_splits["eval"], spec)
    answers = predict(golden_model, features)["label"].ravel()
    rows = pq.read_table(penguins_splits["eval"]).to_pylist()
    kinds = {f.name: pl.NUMBER for f in spec.numeric} | {
        f.name: pl.STRING for f in spec.categorical
    }
    writer = pl.PredictionLog(str(tmp_path / "log"), window_seconds=3600)
    for index, (row, answer) in enumerate(zip(rows, answers, strict=True)):
        served = {name: [row[name]] for name in kinds}
        writer.log(pl.Prediction("penguins", 1, f"r{index}", time.time(), 1.0, served, kinds,
                                 {"label": [answer]}))  # fmt: skip
    writer.close()
    return str(tmp_path / "log"), len(rows)


def _push(registry: str, model_dir: str) -> None:
    from components.registry import ModelRegistry

    ModelRegistry(registry).push("penguins", model_dir, {})


def test_a_replay_of_the_same_model_agrees_everywhere_and_an_untrained_one_does_not(
    tmp_path, logged, golden_model, golden_transform, capsys
):
    from tests.conftest import export_untrained

    log, rows = logged
    registry = str(tmp_path / "registry")
    _push(registry, golden_model)  # version 1: the served one
    _push(registry, golden_model)  # version 2: the same model again
    _push(registry, export_untrained(golden_transform, str(tmp_path / "untrained")))  # 3
    base, decide = ["--log", log], ["--min-rows", "10"]
    assert main(["shadow", "replay", *base, "--registry", registry, "--version", "2"]) == 0
    assert main(["shadow", "report", *base, *decide, "--json"]) == 0
    same = json.loads(capsys.readouterr().out.split("\n", 3)[3])
    assert same["rows"] == rows and same["agreement"] == 1.0 and same["latency_ms"]["shadow"] == {}
    # Version 2 again, then 3: a report is of one version (the newest by default), each row once.
    assert main(["shadow", "replay", *base, "--registry", registry, "--version", "2"]) == 0
    assert main(["shadow", "replay", *base, "--registry", registry, "--version", "3"]) == 0
    assert main(["shadow", "report", *base, *decide]) == shadow_cli_not_promoted()
    printed = capsys.readouterr().out
    assert "**Do not promote**" in printed and "of rows (< 80%)" in printed
    assert f"Rows compared: {rows};" in printed
    assert main(["shadow", "report", *base, *decide, "--version", "2", "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["rows"] == rows and again["agreement"] == 1.0 and again["shadow_version"] == 2


def shadow_cli_not_promoted() -> int:
    from pipelines.shadow import NOT_PROMOTED

    return NOT_PROMOTED


def test_a_replay_of_a_version_the_registry_lacks_says_so(tmp_path, logged, capsys):
    log, _ = logged
    args = ["shadow", "replay", "--log", log, "--registry", str(tmp_path), "--version", "9"]
    assert main(args) == 1
    assert "has no version 9" in capsys.readouterr().err
