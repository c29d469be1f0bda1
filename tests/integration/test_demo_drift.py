"""``make demo-drift`` as a test: the whole loop after deploy, for real, on one machine."""

import os
import re

import pytest

from pipelines import demo_drift

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_shifted_traffic_retrains_and_the_server_swaps_without_a_failed_request(tmp_path, capsys):
    serve = os.environ.get("MLOPS_SERVE", os.path.join(demo_drift.ROOT, ".venv-serving", "bin",
                                                        "mlops-serve"))  # fmt: skip
    if not os.path.exists(serve):
        pytest.fail(f"{serve} is missing: the demo serves from .venv-serving; run make test")
    result = demo_drift.run(str(tmp_path / "demo"), epochs=10)
    assert result.calm == "none"  # traffic like the eval split: no drift
    assert [sorted(flagged.split(", ")) for flagged in result.shifted] == [
        ["body_mass_g", "island"],
        ["body_mass_g", "island"],
    ]  # exactly the shifted features, both windows
    assert result.labels > 100  # the first shifted window's species, through mlops feedback
    # Compared with the serving version on the labelled log rows in the candidate's eval split.
    assert re.search(r"on \d+ labelled rows of the prediction log, accuracy", result.blessing)
    assert result.pushed == 2  # retrained on the shifted data and the labels, blessed, pushed
    assert result.swapped and result.server_pid_kept  # the same server serves version 2
    assert result.answered > 1000 and result.failed == []
    # Lineage says which log's labelled rows joined the data of version 2, and their split.
    from pipelines.cli import main

    capsys.readouterr()
    runs = str(tmp_path / "demo" / "runs")
    assert main(["lineage", "penguins:2", "--runs-dir", runs]) == 0
    printed = capsys.readouterr().out
    assert f"joined     the labelled rows of {tmp_path / 'demo' / 'prediction-log'}" in printed
    assert re.search(r"labelled_eval \d+ rows", printed)
