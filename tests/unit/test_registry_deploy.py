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
    target = deploy_core.LocalRegistryTarget(str(tmp_path / "reg"))
    result = deploy_core.deploy(model, False, ["accuracy 0.3 is below 0.9"], target, "m", {}, "")
    assert not result.pushed
    assert "accuracy 0.3 is below 0.9" in result.reason
    assert not os.path.exists(tmp_path / "reg")


def test_blessed_model_is_pushed_with_its_metadata(tmp_path):
    model = _fake_saved_model(tmp_path / "model")
    result = deploy_core.deploy(
        model,
        True,
        ["beats"],
        deploy_core.LocalRegistryTarget(str(tmp_path / "reg")),
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
        deploy_core.make_target("moon", str(tmp_path), deploy_core.KServeSettings())


def test_object_store_registry_counts_a_version_once_its_metadata_is_written(tmp_path):
    model = _fake_saved_model(tmp_path / "model")
    registry = ModelRegistry(f"file://{tmp_path}/store")
    assert registry.push("penguins", model, {"v": 1}, {"schema.pbtxt": "s"}) == 1
    # An interrupted push: the model's files but no metadata file yet.
    shutil.copytree(model, tmp_path / "store" / "penguins" / "2")
    assert registry.versions("penguins") == [1]
    assert registry.push("penguins", model, {"v": 3}) == 3
    assert registry.versions("penguins") == [1, 3]
    assert registry.metadata("penguins", 3) == {"v": 3}
    assert registry.path("penguins", 3) == f"file://{tmp_path}/store/penguins/3"
    copy = registry.local_copy("penguins", 1, str(tmp_path / "scratch"))
    assert os.path.isfile(os.path.join(copy, "saved_model.pb"))
    assert os.path.isfile(os.path.join(copy, "schema.pbtxt"))


def test_registry_uri_options_stay_out_of_model_paths():
    registry = ModelRegistry("s3://mlpipeline/registry?endpoint_override=localhost:9&scheme=http")
    assert registry.path("penguins", 3) == "s3://mlpipeline/registry/penguins/3"
