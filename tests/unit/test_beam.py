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


def test_a_scratch_folder_that_cannot_be_removed_is_a_warning_not_the_steps_error(
    tmp_path, monkeypatch, caplog
):
    from apache_beam.io.filesystems import FileSystems

    def unreachable(*_):
        raise OSError("the object store is unreachable")

    monkeypatch.setattr(FileSystems, "match", unreachable)
    with beam.scratch(["--runner=DirectRunner", f"--temp_location={tmp_path}"]) as folder:
        assert folder.startswith(str(tmp_path))
    assert "Could not remove the scratch folder" in caplog.text
    assert "unreachable" in caplog.text


@pytest.mark.parametrize(
    "args, refused",
    [
        (["--runner=FlinkRunner"], True),
        (["--runner=SparkRunner", "--environment_type=DOCKER"], True),
        (["--runner=FlinkRunner", "--temp_location=s3://bucket/tmp"], False),
        (["--runner=FlinkRunner", "--environment_type=LOOPBACK"], False),
        (["--runner=DirectRunner", "--direct_running_mode=multi_processing"], False),
    ],
)
def test_a_runner_whose_workers_are_elsewhere_needs_a_temp_location(args, refused):
    """Its workers write the results (and evaluate's ranked scores) where this step reads
    them: a folder of this machine's is not theirs."""
    from components.errors import ConfigurationError

    if refused:
        with pytest.raises(ConfigurationError, match="give --temp_location="):
            beam.pipeline_options(args)
    else:
        beam.pipeline_options(args)
