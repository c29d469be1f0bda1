"""pipelines.lineage's answers on a real SQLite store holding the records the steps write."""

from components.lineage import recording, store
from components.lineage.mlmd import sqlite_store
from pipelines import lineage


def _record(
    path: str, run: str, step: str, inputs: dict, outputs: dict, error: str | None = None
) -> None:
    execution = recording.execution(
        step,
        {"model_name": "penguins", recording.ERROR: error},
        inputs,
        outputs,
        1.0,
        2.0,
        state=store.FAILED if error else store.COMPLETE,
        model_name="penguins",
    )
    sqlite_store(path).record(store.with_context(execution, (store.RUN_CONTEXT, run)))


def _push_and_roll_out(path: str, run: str, version: int, url: str, **result) -> None:
    blessing = store.Artifact(store.MODEL_BLESSING, f"/{run}/blessing", {"blessed": True})
    push = store.Artifact(store.PUSHED_MODEL, f"/{run}/push", {"pushed": True, "version": version})
    _record(
        path,
        run,
        "deploy",
        {
            "model": store.Artifact(store.MODEL, f"/{run}/model"),
            "blessing": blessing,
            "train_data": store.Artifact(store.EXAMPLES, f"/{run}/train"),
            "schema": store.Artifact(store.SCHEMA, f"/{run}/schema"),
        },
        {"push_result": push},
    )
    served = {
        "rolled_out": True,
        "version": version,
        "url": url,
        "revision": f"penguins-predictor-{version}",
        "inference_service": "penguins",
        "namespace": "mlops-models",
        "served_uri": f"s3://r/_served/penguins/{version}/",
        "traffic_percent": 100,
        **result,
    }
    _record(
        path,
        run,
        "rollout",
        {"push_result": push},
        {"rollout_result": store.Artifact(store.DEPLOYMENT, f"/{run}/rollout", served)},
    )


def test_where_a_version_is_deployed_follows_the_newest_rollout(tmp_path):
    path = str(tmp_path / "m.sqlite")
    _push_and_roll_out(path, "run-a", 1, "http://one")
    _push_and_roll_out(path, "run-b", 2, "http://two")
    _record(path, "run-c", "rollout", {}, {}, error="RolloutFailed: CrashLoopBackOff")
    lineage_store = sqlite_store(path)
    first = lineage.provenance(lineage_store, "penguins", 1)
    assert first["deployed"] == {
        "serving": False,
        "status": "served from run run-a; version 2 serves instead (run run-b)",
        "steps": [],
    }
    newest = lineage.provenance(lineage_store, "penguins", None)
    assert newest["version"] == 2
    assert newest["deployed"]["serving"] is True
    assert newest["deployed"]["url"] == "http://two"
    assert newest["deployed"]["storage_uri"] == "s3://r/_served/penguins/2/"
    assert newest["failed"] == [
        {"run": "run-c", "step": "rollout", "error": "RolloutFailed: CrashLoopBackOff"}
    ]
    text = lineage.render_provenance(newest)
    assert "├─ deployed      InferenceService mlops-models/penguins at http://two" in text
    assert "├─ not pushed    0 other run(s) of penguins" in text
    assert text.splitlines()[-2:] == [
        "└─ failed        1 step(s) of runs of penguins",
        "   └─ run-c rollout: RolloutFailed: CrashLoopBackOff",
    ]


BLUE_GREEN_STEPS = [
    {"name": "roll out green", "passed": True, "detail": "", "traffic": {"blue": 100},
     "values": {"revision": "penguins-green-predictor revision 1"}},
    {"name": "smoke test green", "passed": False, "detail": "answered 500",
     "traffic": {"blue": 100}, "values": {"status": 500, "latency_ms": 12.5}},
]  # fmt: skip


def test_a_blue_green_rollback_says_which_step_failed(tmp_path):
    path = str(tmp_path / "m.sqlite")
    _push_and_roll_out(path, "run-a", 1, "http://front", strategy="blue-green", colour="blue")
    _push_and_roll_out(
        path, "run-b", 2, "", rolled_out=False, strategy="blue-green", steps=BLUE_GREEN_STEPS,
        reason="version 2 was rolled back: the smoke test of green failed",
    )  # fmt: skip
    lineage_store = sqlite_store(path)
    second = lineage.provenance(lineage_store, "penguins", 2)
    assert second["deployed"]["serving"] is False
    assert second["deployed"]["status"] == (
        "rolled back (run run-b): version 2 was rolled back: the smoke test of green failed"
    )
    text = lineage.render_provenance(second)
    assert "│  ├─ roll out green: passed (revision penguins-green-predictor revision 1)" in text
    assert "│  └─ smoke test green: FAILED (latency_ms 12.5, status 500)" in text
    first = lineage.render_provenance(lineage.provenance(lineage_store, "penguins", 1))
    assert (
        "deployed      InferenceGraph mlops-models/penguins, colour blue at http://front" in first
    )
