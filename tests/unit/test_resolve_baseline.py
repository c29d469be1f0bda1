"""resolve_baseline: the registry's newest version, copied as the run's baseline."""

import os

from components.registry import CLAIM_PREFIX, ModelRegistry
from components.resolve_baseline import core


def _fake_saved_model(folder) -> str:
    os.makedirs(folder / "variables", exist_ok=True)
    (folder / "saved_model.pb").write_bytes(b"graph")
    (folder / "variables" / "variables.index").write_bytes(b"index")
    return str(folder)


def test_an_empty_registry_has_no_baseline(tmp_path):
    result = core.resolve_baseline(str(tmp_path / "registry"), "penguins", str(tmp_path / "out"))
    assert not result.found
    assert result.version is None and result.registry_path is None and result.metrics == {}
    assert "no version of 'penguins'" in result.reason
    assert os.listdir(tmp_path / "out") == []  # The artifact exists, empty.


def test_the_newest_version_is_copied_with_its_recorded_metrics(tmp_path):
    model = _fake_saved_model(tmp_path / "model")
    registry = ModelRegistry(str(tmp_path / "registry"))
    registry.push("penguins", model, {"metrics": {"accuracy": 0.9}})
    registry.push("penguins", model, {"metrics": {"accuracy": 0.95}})
    registry.push("other", model, {"metrics": {"accuracy": 0.99}})
    out = tmp_path / "out"
    result = core.resolve_baseline(str(tmp_path / "registry"), "penguins", str(out))
    assert result.found and result.version == 2
    assert result.registry_path == str(tmp_path / "registry" / "penguins" / "2")
    assert result.metrics == {"accuracy": 0.95}
    assert (out / "saved_model.pb").is_file()
    assert (out / "variables" / "variables.index").is_file()


def test_a_discarded_version_is_never_the_baseline(tmp_path):
    model = _fake_saved_model(tmp_path / "model")
    registry = ModelRegistry(f"file://{tmp_path}/store")
    registry.push("penguins", model, {})
    registry.push("penguins", model, {})
    registry.discard("penguins", 2)  # Its rollout failed.
    result = core.resolve_baseline(f"file://{tmp_path}/store", "penguins", str(tmp_path / "out"))
    assert result.version == 1


def test_an_object_store_version_is_copied_without_the_push_claim(tmp_path):
    model = _fake_saved_model(tmp_path / "model")
    registry = ModelRegistry(f"file://{tmp_path}/store")
    registry.push("penguins", model, {"metrics": {"rmse": 3.0}}, {"schema.pbtxt": "s"})
    out = tmp_path / "out"
    result = core.resolve_baseline(f"file://{tmp_path}/store", "penguins", str(out))
    assert result.registry_path == f"file://{tmp_path}/store/penguins/1"
    assert result.metrics == {"rmse": 3.0}
    assert (out / "saved_model.pb").is_file() and (out / "schema.pbtxt").is_file()
    assert not [name for name in os.listdir(out) if name.startswith(CLAIM_PREFIX)]


def test_serving_only_a_served_version_is_the_baseline(tmp_path):
    model = _fake_saved_model(tmp_path / "model")
    root = f"file://{tmp_path}/store"
    registry = ModelRegistry(root)
    registry.push("penguins", model, {})
    registry.publish("penguins", 1)
    registry.mark_served("penguins", 1)  # Rolled out.
    registry.push("penguins", model, {})
    registry.publish("penguins", 2)  # Its rollout step died before it finished.
    served = core.resolve_baseline(root, "penguins", str(tmp_path / "a"), served_only=True)
    pushed = core.resolve_baseline(root, "penguins", str(tmp_path / "b"))
    assert (served.version, pushed.version) == (1, 2)


def test_serving_only_with_nothing_served_there_is_no_baseline(tmp_path):
    root = f"file://{tmp_path}/store"
    ModelRegistry(root).push("penguins", _fake_saved_model(tmp_path / "model"), {})
    result = core.resolve_baseline(root, "penguins", str(tmp_path / "out"), served_only=True)
    assert not result.found and "has been served" in result.reason
