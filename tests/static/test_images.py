"""The Dockerfiles under images/: hadolint-clean, lock before source, non-root, exec form, and a
build stage that can build every locked package that PyPI has no wheel of for the image."""

import functools
import glob
import os
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from packaging import tags
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import Version
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

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


# The platform the images install the locks on: CPython 3.11 on manylinux x86_64, glibc up to 2.35
# (Ubuntu 22.04 in the GPU base; Debian 12 in the CPU base has 2.36).
IMAGE_PYTHON = (3, 11)
IMAGE_GLIBC_MINOR = 35
# PEP 691: the JSON form of PyPI's simple index lists every file of a project in one response.
PYPI_SIMPLE = "https://pypi.org/simple/{name}/"
PYPI_JSON = "application/vnd.pypi.simple.v1+json"
COMPILER = re.compile(r"\bapt-get install\b[^&;|]*\b(build-essential|gcc|g\+\+)\b")


@functools.cache
def _image_tags() -> frozenset[tags.Tag]:
    platforms = [
        *(f"manylinux_2_{minor}_x86_64" for minor in range(IMAGE_GLIBC_MINOR, 4, -1)),
        "manylinux2014_x86_64",
        "manylinux2010_x86_64",
        "manylinux1_x86_64",
    ]
    return frozenset(
        [
            *tags.cpython_tags(IMAGE_PYTHON, platforms=platforms),
            *tags.compatible_tags(IMAGE_PYTHON, "cp311", platforms),
        ]
    )


def _pins(lock: str) -> list[tuple[str, Version]]:
    """``name==version`` lines of a uv-compiled lock file."""
    with open(os.path.join(ROOT, lock)) as handle:
        found = (re.match(r"^([A-Za-z0-9._-]+)(?:\[[^\]]*\])?==(\S+)", line) for line in handle)
        return [(match[1], Version(match[2])) for match in found if match]


def _locks() -> dict[str, str]:
    """Dockerfile → the lock file it installs (its ``COPY requirements/<name>.lock``)."""
    locks = {}
    for dockerfile in DOCKERFILES:
        with open(dockerfile) as handle:
            match = re.search(r"^COPY (requirements/\S+\.lock) ", handle.read(), re.MULTILINE)
        assert match, f"{dockerfile} installs no requirements/*.lock"
        locks[dockerfile] = match[1]
    return locks


def _stages(text: str) -> dict[str, str]:
    """Stage name (``AS`` name, or its index) → its instructions, continuation lines joined."""
    stages: dict[str, str] = {}
    name = None
    for line in text.replace("\\\n", " ").splitlines():
        if match := re.match(r"^FROM\s+\S+(?:\s+AS\s+(\S+))?", line, re.IGNORECASE):
            name = match[1] or str(len(stages))
            stages[name] = ""
        elif name is not None:
            stages[name] += line + "\n"
    return stages


def _installs_a_compiler_before_the_lock(stage: str) -> bool:
    """Whether a stage apt-get installs a C compiler before it installs a lock file."""
    lock_install = stage.find("uv pip install --python /opt/venv/bin/python -r ")
    compiler = COMPILER.search(stage)
    return compiler is not None and (lock_install < 0 or compiler.start() < lock_install)


def _files(session: requests.Session, name: str) -> list[str]:
    response = session.get(
        PYPI_SIMPLE.format(name=canonicalize_name(name)), headers={"Accept": PYPI_JSON}, timeout=30
    )
    response.raise_for_status()
    return [entry["filename"] for entry in response.json()["files"]]


def _distributions(filenames: list[str], version: Version) -> tuple[bool, bool]:
    """(a wheel for the image platform, an sdist) among a project's files, for ``version``."""
    image_tags = _image_tags()
    wheel = sdist = False
    for filename in filenames:
        try:
            if filename.endswith(".whl"):
                _, found, _, wheel_tags = parse_wheel_filename(filename)
                wheel = wheel or (found == version and not wheel_tags.isdisjoint(image_tags))
            elif filename.endswith((".tar.gz", ".zip")):
                sdist = sdist or parse_sdist_filename(filename)[1] == version
        except (InvalidWheelFilename, InvalidSdistFilename):
            continue  # old uploads with names no installer accepts (e.g. "py36+")
    return wheel, sdist


@pytest.fixture(scope="session")
def distributions() -> dict[str, dict[str, tuple[bool, bool]]]:
    """Lock → ``name==version`` → (has a wheel for the image platform, has an sdist), from PyPI.

    One request per project, eight at a time over kept-alive connections (about 2 s for both
    locks); skips when PyPI cannot be reached.
    """
    pins = {lock: _pins(lock) for lock in sorted(set(_locks().values()))}
    names = sorted({name for locked in pins.values() for name, _ in locked})
    session = requests.Session()
    retries = Retry(total=3, backoff_factor=0.5, status_forcelist=(429, 500, 502, 503, 504))
    session.mount("https://", HTTPAdapter(max_retries=retries, pool_maxsize=8))
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            files = dict(
                zip(names, pool.map(lambda name: _files(session, name), names), strict=True)
            )
    except requests.HTTPError as err:
        if err.response is not None and err.response.status_code == 404:
            pytest.fail(f"{err.request.url} is not on PyPI: a locked package that cannot install")
        pytest.skip(f"PyPI answered {err}: cannot tell which locked packages lack a wheel")
    except requests.RequestException as err:
        pytest.skip(f"PyPI is unreachable ({err}): cannot tell which locked packages lack a wheel")
    finally:
        session.close()
    return {
        lock: {
            f"{name}=={version}": _distributions(files[name], version) for name, version in locked
        }
        for lock, locked in pins.items()
    }


@pytest.mark.parametrize("lock", ["requirements/pipeline.lock", "requirements/serving.lock"])
def test_every_locked_package_has_a_wheel_or_an_sdist(distributions, lock):
    missing = [
        pin for pin, (wheel, sdist) in distributions[lock].items() if not wheel and not sdist
    ]
    assert not missing, (
        f"{lock}: no wheel for CPython 3.11 manylinux x86_64 and no sdist: {missing}"
    )


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=os.path.dirname)
def test_build_stage_can_build_the_locked_packages_that_have_no_wheel(distributions, dockerfile):
    lock = _locks()[dockerfile]
    sdist_only = sorted(pin for pin, (wheel, _) in distributions[lock].items() if not wheel)
    with open(dockerfile) as handle:
        stages = _stages(handle.read())
    assert "build" in stages, f"{dockerfile} has no stage named build"
    assert not sdist_only or _installs_a_compiler_before_the_lock(stages["build"]), (
        f"{lock} has packages without a wheel for CPython 3.11 manylinux x86_64, built from "
        f"source at install: {sdist_only}; the build stage of {dockerfile} must apt-get install a "
        "C compiler (build-essential) before it installs the lock"
    )


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=os.path.dirname)
def test_final_stage_installs_no_compiler(dockerfile):
    with open(dockerfile) as handle:
        final = list(_stages(handle.read()).values())[-1]
    assert not COMPILER.search(final), f"the final stage of {dockerfile} installs a compiler"


def test_compiler_check_sees_a_build_stage_without_one():
    without = _stages(
        "FROM python:3.11-slim AS build\n"
        "RUN apt-get update && apt-get install -y --no-install-recommends curl\n"
        "RUN uv pip install --python /opt/venv/bin/python -r /tmp/pipeline.lock\n"
        "FROM python:3.11-slim\nRUN apt-get install -y gcc\n"
    )
    assert not _installs_a_compiler_before_the_lock(without["build"])
    assert COMPILER.search(without["1"])


def test_wheel_check_tells_a_linux_wheel_from_other_platforms():
    version = Version("0.3.2")
    assert _distributions(["pyfarmhash-0.3.2.tar.gz"], version) == (False, True)
    assert _distributions(["pyfarmhash-0.3.2-cp311-cp311-win_amd64.whl"], version) == (False, False)
    assert _distributions(
        ["pyfarmhash-0.3.2-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"], version
    ) == (True, False)
    assert _distributions(["x-0.3.2-cp311-cp311-manylinux_2_39_x86_64.whl"], version) == (
        False,
        False,
    )


def test_build_context_leaves_out_the_object_store_credentials():
    with open(os.path.join(ROOT, ".dockerignore")) as handle:
        patterns = {line.strip() for line in handle if line.strip() and not line.startswith("#")}
    assert patterns & {"manifests", "manifests/**/object-store.env", "**/object-store.env"}
