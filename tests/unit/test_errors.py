"""How steps report errors: one marked line for what people act on, and ``mlops`` printing it
without a traceback."""

import pytest

from components.errors import (
    ConfigurationError,
    RolloutFailed,
    find_reported_error,
    step,
)
from pipelines import cli
from pipelines.local import StepTimes, _failure_message


@pytest.mark.parametrize(
    "error", [ConfigurationError("bad label"), RolloutFailed("version 3 did not serve")]
)
def test_step_reports_errors_for_people_on_one_marked_line(capsys, error):
    with pytest.raises(type(error)), step("rollout"):
        raise error
    assert find_reported_error(capsys.readouterr().err) == {
        "step": "rollout",
        "message": str(error),
    }


def test_step_leaves_unexpected_errors_to_their_traceback(capsys):
    with pytest.raises(KeyError), step("rollout"):
        raise KeyError("bug")
    assert find_reported_error(capsys.readouterr().err) is None


def test_a_run_that_failed_in_the_rollout_says_so_in_one_line(tmp_path):
    log = tmp_path / "pipeline.log"
    log.write_text(
        "Executing task 'rollout'\n"
        'MLOPS-STEP-ERROR {"step": "rollout", "message": "InferenceService mlops-models/'
        'penguins did not serve"}\nTraceback (most recent call last):\n  ...\n'
    )
    message = _failure_message(str(log), StepTimes(), RuntimeError("task failed"))
    assert message.splitlines()[0] == (
        "The rollout step stopped: InferenceService mlops-models/penguins did not serve"
    )
    assert "Traceback" not in message


def test_mlops_prints_a_rollout_failure_without_a_traceback(monkeypatch, capsys):
    def fails(args):
        raise RolloutFailed("version 3 did not serve")

    monkeypatch.setattr(cli, "command_submit", fails)
    assert cli.main(["submit"]) == 1
    err = capsys.readouterr().err
    assert err == "error: version 3 did not serve\n"
