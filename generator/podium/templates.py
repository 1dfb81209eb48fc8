"""Versioned template sources for copier: the bundled template, committed into a local git store.

copier can only update a project from a git template with tags, so every template content that podium
renders from gets a commit and a tag (`v<podium version>`, then `.postN` when the content changes under the
same version) in a store repository. Projects record the store path and tag; `podium update` adds the
installed template as a newer tag and lets copier do the 3-way merge.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

from podium import __version__
from podium.errors import PodiumError

IGNORED_NAMES = {"__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache", ".git"}
IGNORED_SUFFIXES = {".pyc", ".pyo"}
TEMPLATE_MARKER = "copier.yml"


def bundled_template_dir() -> Path:
    """The template shipped with this podium: inside the wheel, else the source checkout's `template/`."""
    package_dir = Path(__file__).resolve().parent
    for candidate in (package_dir / "_template", package_dir.parents[1] / "template"):
        if (candidate / TEMPLATE_MARKER).is_file():
            return candidate
    raise PodiumError(f"the bundled template is missing (looked in {package_dir / '_template'})")


def default_store_dir() -> Path:
    """Where template versions are kept: $PODIUM_HOME, else the XDG data folder."""
    if home := os.environ.get("PODIUM_HOME"):
        return Path(home).expanduser() / "templates"
    data_home = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return data_home / "podium" / "templates"


def _template_files(root: Path) -> list[Path]:
    files = []
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if any(part in IGNORED_NAMES for part in relative.parts) or path.suffix in IGNORED_SUFFIXES:
            continue
        if path.is_file():
            files.append(relative)
    return files


def content_hash(root: Path) -> str:
    """A hash of the template's files (names and bytes), stable across machines."""
    digest = hashlib.sha256()
    for relative in _template_files(root):
        digest.update(relative.as_posix().encode() + b"\0" + (root / relative).read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _git(store: Path, *args: str) -> str:
    identity = ["-c", "user.name=podium", "-c", "user.email=podium@localhost", "-c", "commit.gpgsign=false"]
    result = subprocess.run(["git", *identity, *args], cwd=store, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise PodiumError(f"git {args[0]} failed in template store {store}: {result.stderr.strip()}")
    return result.stdout


def _tags_by_hash(store: Path) -> dict[str, str]:
    listing = _git(store, "for-each-ref", "refs/tags", "--format=%(refname:short) %(contents:subject)")
    tags = {}
    for line in listing.splitlines():
        tag, _, subject = line.partition(" ")
        if subject.startswith("content "):
            tags[subject.removeprefix("content ")] = tag
    return tags


def _next_tag(existing: set[str], version: str) -> str:
    tag = f"v{version}"
    post = 0
    while tag in existing:
        post += 1
        tag = f"v{version}.post{post}"
    return tag


def ensure_template_version(
    template_dir: Path | None = None, store: Path | None = None, version: str = __version__
) -> tuple[Path, str]:
    """Commit `template_dir` into the store unless that content is already tagged; return (store, tag)."""
    template_dir = template_dir or bundled_template_dir()
    store = store or default_store_dir()
    if not (store / ".git").is_dir():
        store.mkdir(parents=True, exist_ok=True)
        _git(store, "init", "-q", "-b", "main")
    digest = content_hash(template_dir)
    known = _tags_by_hash(store)
    if digest in known:
        return store, known[digest]
    for child in store.iterdir():
        if child.name != ".git":
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    for relative in _template_files(template_dir):
        target = store / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(template_dir / relative, target)
    existing = set(_git(store, "tag", "--list").split())
    tag = _next_tag(existing, version)
    _git(store, "add", "-A")
    _git(store, "commit", "-q", "--allow-empty", "-m", f"template {tag}")
    _git(store, "tag", "-a", tag, "-m", f"content {digest}")
    return store, tag
