"""Generator test fixtures: an isolated template store, offline settings, git identity."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")

import shutil
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
TEMPLATE_DIR = REPO_ROOT / "template"
EXAMPLES_DIR = REPO_ROOT / "examples"


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist the workers share the cores: one torch thread each, in the worker and in the processes its
    tests start, or two processes' OpenMP threads spin waiting for each other (a resnet10t step at 64 px took 2.0 s, not
    0.07 s, on 2 cores)."""
    if hasattr(config, "workerinput"):
        os.environ.setdefault("OMP_NUM_THREADS", "1")


LONGEST_FIRST = ("tests/test_rendered_project.py", "tests/test_demo.py")  # the projects' own suites, the demos


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest tests first, so that no worker is left with one at the end."""
    items.sort(key=lambda item: next((rank for rank, f in enumerate(LONGEST_FIRST) if item.nodeid.startswith(f)), 9))


@pytest.fixture(autouse=True)
def isolated_store(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Each test gets its own template store (PODIUM_HOME) so versions never leak between tests."""
    home = tmp_path / "podium-home"
    monkeypatch.setenv("PODIUM_HOME", str(home))
    monkeypatch.setenv("GIT_AUTHOR_NAME", "tester")
    monkeypatch.setenv("GIT_AUTHOR_EMAIL", "tester@example.com")
    monkeypatch.setenv("GIT_COMMITTER_NAME", "tester")
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", "tester@example.com")
    return home


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout


@pytest.fixture
def template_copy(tmp_path: Path) -> Path:
    """A private copy of the bundled template, to change as a later template version would."""
    copy = tmp_path / "template-copy"
    shutil.copytree(TEMPLATE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return copy
