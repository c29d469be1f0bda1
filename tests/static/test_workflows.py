"""The GitHub workflows under .github/workflows/ (what a hosted runner can hold)."""

import os

import yaml

from tests.static.conftest import ROOT

E2E = os.path.join(ROOT, ".github", "workflows", "e2e.yaml")


def _steps() -> list[dict]:
    with open(E2E) as handle:
        return yaml.safe_load(handle)["jobs"]["kind"]["steps"]


def _index(steps: list[dict], text: str) -> int:
    found = [i for i, step in enumerate(steps) if text in step.get("run", "")]
    assert found, f"no step of {E2E} runs {text!r}"
    return found[0]


def test_e2e_frees_the_runners_disk_before_it_builds_anything():
    steps = _steps()
    assert _index(steps, "rm -rf /usr/share/dotnet") < _index(steps, "make e2e")


def test_e2e_runs_on_a_standard_hosted_runner():
    with open(E2E) as handle:
        assert yaml.safe_load(handle)["jobs"]["kind"]["runs-on"] == "ubuntu-latest"
