"""The filesystem registry and the deploy step: whole versions or nothing."""

import os
import shutil
import threading

import pytest

from components import constants
from components.deploy import core as deploy_core
from components.errors import ConfigurationError
from components.registry import (
    CLAIM_PREFIX,
    SERVED_FOLDER,
    ModelRegistry,
    VersionClaimFailed,
    check_model_name,
)


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


@pytest.mark.parametrize("name", ["Penguins", "pen guins", "1st", "a" * 49, "../up", ""])
def test_invalid_model_names_are_rejected(name):
    # 49 characters: KServe's pod label app=isvc.<name>-predictor would pass 63.
    with pytest.raises(ConfigurationError, match="not valid"):
        check_model_name(name)


def test_unblessed_model_is_not_pushed(tmp_path):
    model = _fake_saved_model(tmp_path / "model")
    registry = str(tmp_path / "reg")
    result = deploy_core.deploy(model, False, ["accuracy 0.3 is below 0.9"], registry, "m", {}, "")
    assert not result.pushed
    assert "accuracy 0.3 is below 0.9" in result.reason
    assert not os.path.exists(tmp_path / "reg")


def test_blessed_model_is_pushed_with_its_metadata(tmp_path):
    model = _fake_saved_model(tmp_path / "model")
    result = deploy_core.deploy(
        model,
        True,
        ["beats"],
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


def test_blessed_model_goes_to_an_object_store_registry_the_same_way(tmp_path):
    model = _fake_saved_model(tmp_path / "model")
    registry = f"file://{tmp_path}/store"
    result = deploy_core.deploy(model, True, ["beats"], registry, "m", {}, "schema")
    assert result.pushed and result.version == 1
    assert result.destination == f"{registry}/m/1"
    assert ModelRegistry(registry).metadata("m", 1)["blessing"] == ["beats"]


def test_deploy_checks_the_model_name_even_for_an_unblessed_model(tmp_path):
    model = _fake_saved_model(tmp_path / "model")
    with pytest.raises(ConfigurationError, match="not valid"):
        deploy_core.deploy(model, False, ["weak"], str(tmp_path), "Bad Name", {}, "")


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


def test_served_uri_has_no_uri_options_and_ends_with_a_slash():
    # Without the slash KServe's S3 download takes every key with that prefix, so version 3
    # would also fetch 30/ (kserve v0.15.2 python/kserve/kserve/storage/storage.py:242).
    registry = ModelRegistry("s3://mlpipeline/registry?endpoint_override=localhost:9&scheme=http")
    assert registry.served_uri("penguins", 3) == "s3://mlpipeline/registry/_served/penguins/3/"


def test_served_folder_name_cannot_be_a_model_name():
    with pytest.raises(ConfigurationError, match="not valid"):
        check_model_name(SERVED_FOLDER)


def test_published_folder_holds_just_that_version(tmp_path):
    model = _fake_saved_model(tmp_path / "model")
    registry = ModelRegistry(f"file://{tmp_path}/store")
    registry.push("penguins", model, {"v": 1})
    registry.push("penguins", model, {"v": 2})
    uri = registry.publish("penguins", 2)
    served = tmp_path / "store" / SERVED_FOLDER / "penguins" / "2"
    assert uri == f"file://{tmp_path}/store/{SERVED_FOLDER}/penguins/2/"
    assert os.listdir(served) == ["2"]
    assert sorted(os.listdir(served / "2")) == [
        constants.REGISTRY_METADATA_FILE,
        "saved_model.pb",
        "variables",
    ]
    assert registry.versions("penguins") == [1, 2]


def test_discard_removes_the_served_folder_too(tmp_path):
    model = _fake_saved_model(tmp_path / "model")
    registry = ModelRegistry(f"file://{tmp_path}/store")
    registry.push("penguins", model, {})
    registry.publish("penguins", 1)
    registry.discard("penguins", 1)
    assert registry.versions("penguins") == []
    assert os.listdir(tmp_path / "store" / SERVED_FOLDER / "penguins") == []


def test_concurrent_object_store_pushes_take_distinct_complete_versions(tmp_path):
    model = _fake_saved_model(tmp_path / "model")
    root = f"file://{tmp_path}/store"  # pyarrow's filesystem: the object-store code path
    pushers = 8
    start = threading.Barrier(pushers)
    versions: dict[int, int] = {}

    def push(pusher: int) -> None:
        registry = ModelRegistry(root, backoff_seconds=0.05)
        start.wait()
        versions[pusher] = registry.push("penguins", model, {"pusher": pusher})

    threads = [threading.Thread(target=push, args=(n,)) for n in range(pushers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    registry = ModelRegistry(root)
    assert len(set(versions.values())) == pushers
    assert registry.versions("penguins") == sorted(versions.values())
    for pusher, version in versions.items():
        assert registry.metadata("penguins", version) == {"pusher": pusher}
        folder = tmp_path / "store" / "penguins" / str(version)
        assert (folder / "saved_model.pb").is_file()
        assert (folder / "variables" / "variables.index").is_file()
        assert len([f for f in os.listdir(folder) if f.startswith(CLAIM_PREFIX)]) == 1


def test_claims_written_before_either_listing_both_lose(tmp_path):
    first, second = (ModelRegistry(f"file://{tmp_path}/store") for _ in range(2))
    assert first._next_free_version("penguins") == second._next_free_version("penguins") == 1
    claim_a = first._write_claim("penguins", 1)
    claim_b = second._write_claim("penguins", 1)
    assert not first._owns("penguins", 1, claim_a)
    assert not second._owns("penguins", 1, claim_b)


def test_claim_listed_before_the_other_write_wins_and_the_other_moves_on(tmp_path):
    first, second = (ModelRegistry(f"file://{tmp_path}/store") for _ in range(2))
    assert first._next_free_version("penguins") == second._next_free_version("penguins") == 1
    claim_a = first._write_claim("penguins", 1)
    assert first._owns("penguins", 1, claim_a)
    claim_b = second._write_claim("penguins", 1)
    assert not second._owns("penguins", 1, claim_b)
    second.fs.delete_file(claim_b)
    assert second._next_free_version("penguins") == 2  # Fresh listing: 1 is taken.


def test_claiming_gives_up_after_its_attempts_and_leaves_no_claim(tmp_path, monkeypatch):
    model = _fake_saved_model(tmp_path / "model")
    pauses: list[float] = []
    registry = ModelRegistry(
        f"file://{tmp_path}/store", claim_attempts=3, backoff_seconds=0.5, sleep=pauses.append
    )
    monkeypatch.setattr(registry, "_owns", lambda *args: False)  # Someone else always there.
    with pytest.raises(VersionClaimFailed, match="after 3 attempts"):
        registry.push("penguins", model, {})
    assert len(pauses) == 3 and all(0 <= pause <= 0.5 for pause in pauses)
    claims = [name for _, _, files in os.walk(tmp_path / "store") for name in files]
    assert claims == []


def test_the_longest_model_name_fits_kserves_pod_label():
    name = "a" * 48
    assert check_model_name(name) == name
    assert len(f"isvc.{name}-predictor") == 63
