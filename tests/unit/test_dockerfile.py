"""The Dockerfile against pyproject.toml, without a Docker engine: the image copies every
package pyproject installs and the build's files (else ``pip install .`` in the image
misses one), and its processes run as a user that is not root."""

from __future__ import annotations

import shlex
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


def packages(pyproject: str) -> set[str]:
    """The top-level packages pyproject's ``packages.find`` includes."""
    found = tomllib.loads(pyproject)["tool"]["setuptools"]["packages"]["find"]["include"]
    return {name.split(".")[0] for name in found}


def instructions(dockerfile: str) -> list[tuple[str, list[str]]]:
    """(INSTRUCTION, arguments) per line, continuations joined, comments left out."""
    lines = dockerfile.replace("\\\n", " ").splitlines()
    parsed = [
        shlex.split(line) for line in lines if line.strip() and not line.lstrip().startswith("#")
    ]
    return [(words[0].upper(), words[1:]) for words in parsed]


def copied(dockerfile: str) -> set[str]:
    """What COPY and ADD take from the build context (not from another stage)."""
    sources: set[str] = set()
    for name, args in instructions(dockerfile):
        paths = [a.rstrip("/") for a in args if not a.startswith("--")]
        if name in ("COPY", "ADD") and not any(a.startswith("--from") for a in args):
            sources.update(paths[:-1])  # the last is the destination
    return sources


def missing(dockerfile: str, pyproject: str) -> set[str]:
    return packages(pyproject) - copied(dockerfile)


def runs_as(dockerfile: str) -> str:
    """The user of the final stage ("root" when it sets none)."""
    user = "root"
    for name, args in instructions(dockerfile):
        if name == "FROM":
            user = "root"
        elif name == "USER":
            user = args[0].split(":")[0]
    return user


DOCKERFILE = (ROOT / "Dockerfile").read_text()
PYPROJECT = (ROOT / "pyproject.toml").read_text()


def test_image_copies_every_package_of_pyproject() -> None:
    assert packages(PYPROJECT) == {"federation", "ingest", "alerts"}
    assert missing(DOCKERFILE, PYPROJECT) == set()


def test_image_copies_what_the_build_reads() -> None:
    assert {"pyproject.toml", "setup.py"} <= copied(DOCKERFILE)


@pytest.mark.parametrize("package", ["federation", "ingest", "alerts"])
def test_a_dockerfile_missing_a_package_is_caught(package: str) -> None:
    without = DOCKERFILE.replace(f"COPY {package} {package}\n", "")
    assert missing(without, PYPROJECT) == {package}


def test_image_runs_as_a_user_that_is_not_root() -> None:
    assert runs_as(DOCKERFILE) not in ("root", "0")


@pytest.mark.parametrize(
    "text",
    ["FROM python:3.11-slim\nCOPY x x\n", "FROM a\nUSER app\nFROM b\n", "FROM a\nUSER 0:0\n"],
    ids=["no-user", "user-of-an-earlier-stage", "uid-0"],
)
def test_a_dockerfile_running_as_root_is_caught(text: str) -> None:
    assert runs_as(text) in ("root", "0")
