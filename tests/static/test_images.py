"""The Dockerfiles under images/: hadolint-clean, lock before source, non-root, exec form."""

import glob
import os
import re
import subprocess

import pytest

from tests.static.conftest import ROOT

DOCKERFILES = sorted(glob.glob(os.path.join(ROOT, "images", "*", "Dockerfile")))


def test_every_image_has_a_dockerfile():
    assert {os.path.basename(os.path.dirname(path)) for path in DOCKERFILES} == {
        "pipeline",
        "serving",
    }


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=os.path.dirname)
def test_hadolint_finds_nothing(tool, dockerfile):
    done = subprocess.run([tool("hadolint"), dockerfile], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=os.path.dirname)
def test_lock_file_is_copied_before_the_source(dockerfile):
    with open(dockerfile) as handle:
        text = handle.read()
    assert text.index("COPY requirements/") < text.index("COPY components")


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=os.path.dirname)
def test_runs_as_a_non_root_user_with_exec_form_commands(dockerfile):
    with open(dockerfile) as handle:
        lines = handle.read().splitlines()
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    for line in lines:
        if re.match(r"^(CMD|ENTRYPOINT) ", line):
            assert line.split(" ", 1)[1].startswith("["), line


def test_base_image_is_an_argument():
    for dockerfile in DOCKERFILES:
        with open(dockerfile) as handle:
            assert "ARG BASE_IMAGE=" in handle.read()
