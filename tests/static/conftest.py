"""The static checkers (hadolint, kubernetes-validate, checkov) live in .venv-tools."""

import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="session")
def tool():
    """Path of a checker in .venv-tools (or MLOPS_TOOLS_BIN); fails when `make test` did not
    install them."""
    folder = os.environ.get("MLOPS_TOOLS_BIN", os.path.join(ROOT, ".venv-tools", "bin"))

    def path(name: str) -> str:
        found = os.path.join(folder, name)
        if not os.path.exists(found):
            pytest.fail(f"{found} is missing: `make test` installs the checkers into .venv-tools")
        return found

    return path
