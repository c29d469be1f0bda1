"""The filesystem registry and the deploy step: whole versions or nothing."""

import os
import shutil

import pytest

from components import constants
from components.deploy import core as deploy_core
from components.errors import ConfigurationError
from components.registry import ModelRegistry, check_model_name


def _fake_saved_model(folder) -> str:
    os.makedirs(folder / "variables", exist_ok=True)
    (folder / "saved_model.pb").write_bytes(b"graph")
    (folder / "variables" / "variables.index").write_bytes(b"index")
    return str(folder)


def test_push_writes_tf_serving_layout_with_counting_versions(tmp_path):
    model = _fake_saved_model(tmp_path / "model")
    registry = ModelRegistry(str(tmp_path / "registry"))
    assert registry.push("penguins", model, {"a": 1}) == 1
    assert registry.push("penguins", model, {"a": 2}) == 2
    assert registry.versions("penguins") == [1, 2]
    assert os.path.isfile(tmp_path / "registry" / "penguins" / "2" / "saved_model.pb")
    assert registry.metadata("penguins", 2) == {"a": 2}


def test_failed_push_leaves_no_version_and_no_staging(tmp_path, monkeypatch):
    model = _fake_saved_model(tmp_path / "model")
    registry = ModelRegistry(str(tmp_path / "registry"))

    def copy_then_fail(src, dst, **kwargs):
        shutil.copy(os.path.join(src, "saved_model.pb"), dst)
        raise OSError("disk full")

    monkeypatch.setattr(shutil, "copytree", copy_then_fail)
    with pytest.raises(OSError, match="disk full"):
        registry.push("penguins", model, {})
    assert os.listdir(tmp_path / "registry" / "penguins") == []
    assert registry.latest("penguins") is None


def test_incomplete_version_folders_are_not_versions(tmp_path):
    (tmp_path / "penguins" / "7").mkdir(parents=True)
    (tmp_path / "penguins" / ".staging-x").mkdir()
    assert ModelRegistry(str(tmp_path)).latest("penguins") is None


@pytest.mark.parametrize("name", ["Penguins", "pen guins", "1st", "a" * 64, "../up", ""])
def test_invalid_model_names_are_rejected(name):
    with pytest.raises(ConfigurationError, match="not valid"):
        check_model_name(name)


def test_unblessed_model_is_not_pushed(tmp_path):
    model = _fake_saved_model(tmp_path / "model")
    result = deploy_core.deploy(
        model, False, ["accuracy 0.3 is below 0.9"], "local", str(tmp_path / "reg"), "m", {}, ""
    )
    assert not result.pushed
    assert "accuracy 0.3 is below 0.9" in result.reason
    assert not os.path.exists(tmp_path / "reg")


def test_blessed_model_is_pushed_with_its_metadata(tmp_path):
    model = _fake_saved_model(tmp_path / "model")
    result = deploy_core.deploy(
        model,
        True,
        ["beats"],
        "local",
        str(tmp_path / "reg"),
        "m",
        {"metrics": {"accuracy": 1}},
        'feature { name: "x" }',
    )
    assert result.pushed and result.version == 1
    assert result.destination == str(tmp_path / "reg" / "m" / "1")
    metadata = ModelRegistry(str(tmp_path / "reg")).metadata("m", 1)
    assert metadata["metrics"] == {"accuracy": 1}
    assert metadata["blessing"] == ["beats"]
    assert "created" in metadata
    assert os.path.isfile(os.path.join(result.destination, constants.REGISTRY_METADATA_FILE))
    with open(os.path.join(result.destination, metadata["schema"])) as schema:
        assert schema.read() == 'feature { name: "x" }'


def test_unknown_target_is_rejected(tmp_path):
    with pytest.raises(ConfigurationError, match="Unknown deploy target"):
        deploy_core.deploy(str(tmp_path), True, [], "moon", str(tmp_path), "m", {}, "")
