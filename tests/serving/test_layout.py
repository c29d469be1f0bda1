"""The version layout the predictor reads (components.layout): which folders are versions."""

import os

import pytest

from components import layout


def _version(model_folder, name: str, graph: bool = True) -> None:
    os.makedirs(model_folder / name)
    if graph:
        (model_folder / name / layout.SAVED_MODEL_FILE).write_bytes(b"graph")


def test_versions_are_the_numbered_folders_with_a_graph_in_number_order(tmp_path):
    for name in ("2", "10", "1"):
        _version(tmp_path, name)
    assert layout.versions(str(tmp_path)) == [1, 2, 10]


def test_staging_incomplete_and_other_folders_are_not_versions(tmp_path):
    _version(tmp_path, "1")
    _version(tmp_path, ".staging-abc")
    _version(tmp_path, "2", graph=False)  # A discarded version keeps only its tombstone.
    _version(tmp_path, "_served")
    _version(tmp_path, "²")  # A digit to str.isdigit, not to int.
    (tmp_path / "3").write_bytes(b"a file")
    assert layout.versions(str(tmp_path)) == [1]


def test_a_missing_model_folder_has_no_versions(tmp_path):
    assert layout.versions(str(tmp_path / "absent")) == []


@pytest.mark.parametrize(("name", "version"), [("7", 7), ("007", 7), ("-1", None), ("1.5", None)])
def test_version_numbers_are_ascii_digits(name, version):
    assert layout.version_number(name) == version
