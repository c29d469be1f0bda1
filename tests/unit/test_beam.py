"""The scratch folder the data steps share with their Beam workers: under ``--temp_location``
when given, else local; emptied and removed afterwards, also when the work fails."""

import pytest

from components import beam


def test_scratch_is_local_without_a_temp_location_and_removed_afterwards(tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with beam.scratch(()) as folder:
        with beam.open_path(f"{folder}/part", "wb") as handle:
            handle.write(b"scores")
        with beam.open_path(f"{folder}/part") as handle:
            assert handle.read() == b"scores"
        assert folder.startswith(str(tmp_path))
    assert not list(tmp_path.iterdir())


def test_scratch_is_under_the_runners_temp_location_and_emptied_after_a_failure(tmp_path):
    args = ["--runner=DirectRunner", f"--temp_location={tmp_path}"]
    with pytest.raises(RuntimeError, match="work failed"), beam.scratch(args) as folder:
        assert folder.startswith(f"{tmp_path}/mlops-")
        with beam.open_path(f"{folder}/run-1.bin", "wb") as handle:
            handle.write(b"x" * 10)
        raise RuntimeError("work failed")
    assert not list(tmp_path.iterdir())


def test_a_pipelines_result_comes_back_through_the_temp_location(tmp_path):
    args = ["--runner=DirectRunner", f"--temp_location={tmp_path}"]
    assert beam.run([1, 2, 3], _square, args) == [1, 4, 9]
    assert not list(tmp_path.iterdir())


def _square(value: int) -> int:
    return value * value
