"""Versioned template sources for copier: the bundled template, committed into a local git store.

copier can only update a project from a git template with tags, so every template content that podium
renders from gets a commit and a tag (`v<podium version>`, then `.postN` when the content changes under the
same version) in a store repository. The wheel carries every released template as a git bundle, fetched
into the store first, so any podium can update a project rendered by an earlier release. Projects record
`_src_path: podium` (not the store's path, which differs per machine) and the tag; `podium update` resolves
the marker to this machine's store and lets copier do the 3-way merge.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from podium import __version__
from podium.errors import PodiumError

IGNORED_NAMES = {"__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache", ".git"}
IGNORED_SUFFIXES = {".pyc", ".pyo"}
TEMPLATE_MARKER = "copier.yml"
# What projects rendered from the bundled template record as `_src_path`: the same on every machine.
STORE_SOURCE = "podium"
HISTORY_BUNDLE = "_template_history.bundle"
CONFIG_NAMES = ("copier.yml", "copier.yaml")
DATA_DIR = re.compile(r"^\{\{\s*data_dir\s*\}\}$")  # the template folder rendered as the project's data folder


def bundled_template_dir() -> Path:
    """The template shipped with this podium: inside the wheel, else the source checkout's `template/`."""
    package_dir = Path(__file__).resolve().parent
    for candidate in (package_dir / "_template", package_dir.parents[1] / "template"):
        if (candidate / TEMPLATE_MARKER).is_file():
            return candidate
    raise PodiumError(f"the bundled template is missing (looked in {package_dir / '_template'})")


def local_template_dir(template: str | None) -> Path | None:
    """The folder of the template `podium new --template` names (None: the bundled one), if it is on this machine;
    None for a git URL."""
    if template is None:
        return bundled_template_dir()
    local = Path(template).expanduser()
    return local if any((local / name).is_file() for name in CONFIG_NAMES) else None


def template_settings(folder: Path) -> dict[str, Any] | None:
    """A template folder's copier.yml as a mapping; None when it is not plain YAML (copier's `!include`)."""
    import yaml

    for path in (folder / name for name in CONFIG_NAMES):
        if path.is_file():
            try:
                loaded = yaml.safe_load(path.read_text())
            except (OSError, yaml.YAMLError):
                return None
            return loaded if isinstance(loaded, dict) else None
    return None


def template_questions(template: str | None) -> dict[str, dict[str, Any]] | None:
    """A template's questions (copier.yml's keys not starting with `_`), each as its settings (`key: default`
    shorthand as {"default": ...}); None when the template is not on this machine or not plain YAML."""
    folder = local_template_dir(template)
    settings = template_settings(folder) if folder else None
    if settings is None:
        return None
    return {
        str(key): value if isinstance(value, dict) else {"default": value}
        for key, value in settings.items()
        if not str(key).startswith("_")
    }


def data_folder_names(template: str | None) -> set[str] | None:
    """The top-level names a template writes into the project's data folder (its `{{ data_dir }}` folder, with the
    templates suffix dropped); None when the template is not on this machine."""
    folder = local_template_dir(template)
    settings = template_settings(folder) if folder else None
    if folder is None or settings is None:
        return None
    project = folder / str(settings.get("_subdirectory") or "")
    suffix = str(settings.get("_templates_suffix", ".jinja"))
    data_folders = [p for p in project.iterdir() if p.is_dir() and DATA_DIR.match(p.name)] if project.is_dir() else []
    return {
        path.name.removesuffix(suffix) if suffix else path.name
        for data in data_folders
        for path in data.iterdir()
        if path.name not in IGNORED_NAMES and path.suffix not in IGNORED_SUFFIXES
    }


def default_store_dir() -> Path:
    """Where template versions are kept: $PODIUM_HOME, else the XDG data folder."""
    if home := os.environ.get("PODIUM_HOME"):
        return Path(home).expanduser() / "templates"
    data_home = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return data_home / "podium" / "templates"


def bundled_history() -> Path | None:
    """The git bundle of released template versions that the wheel carries (None in a source checkout)."""
    bundle = Path(__file__).resolve().parent / HISTORY_BUNDLE
    return bundle if bundle.is_file() else None


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


def _git(store: Path, *args: str, env: dict[str, str] | None = None) -> str:
    identity = ["-c", "user.name=podium", "-c", "user.email=podium@localhost", "-c", "commit.gpgsign=false"]
    result = subprocess.run(["git", *identity, *args], cwd=store, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise PodiumError(f"git {args[0]} failed in {store}: {' '.join(result.stderr.split())}")
    return result.stdout


def store_tags(store: Path) -> set[str]:
    """The template versions the store holds."""
    return set(_git(store, "tag", "--list").split())


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


def import_history(store: Path, bundle: Path) -> list[str]:
    """Fetch the bundle's tags that the store lacks; a tag the store has already keeps its commit."""
    missing = []
    for line in _git(store, "bundle", "list-heads", str(bundle)).splitlines():
        ref = line.partition(" ")[2]
        if ref.startswith("refs/tags/") and not ref.endswith("^{}"):
            missing.append(ref)
    have = {f"refs/tags/{tag}" for tag in store_tags(store)}
    missing = [ref for ref in missing if ref not in have]
    if missing:
        _git(store, "fetch", "-q", "--no-tags", str(bundle), *(f"{ref}:{ref}" for ref in missing))
    return [ref.removeprefix("refs/tags/") for ref in missing]


def ensure_template_version(
    template_dir: Path | None = None,
    store: Path | None = None,
    version: str = __version__,
    history: Path | None = None,
) -> tuple[Path, str]:
    """Commit `template_dir` into the store unless that content is already tagged; return (store, tag).

    Args:
        template_dir: The template to add; default: the one this podium ships.
        store: The store repository; default: `default_store_dir()`.
        version: The version its tag names, if the content is new to the store.
        history: A git bundle of earlier template versions, fetched first; default: the wheel's own, if any.
    """
    template_dir = template_dir or bundled_template_dir()
    store = store or default_store_dir()
    if not (store / ".git").is_dir():
        store.mkdir(parents=True, exist_ok=True)
        _git(store, "init", "-q", "-b", "main")
    if bundle := history or bundled_history():
        import_history(store, bundle)
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
    tag = _next_tag(store_tags(store), version)
    _git(store, "add", "-A")
    _git(store, "commit", "-q", "--allow-empty", "-m", f"template {tag}")
    _git(store, "tag", "-a", tag, "-m", f"content {digest}")
    return store, tag


def is_store_source(src_path: str) -> bool:
    """Whether a project's `_src_path` means podium's own template: the marker, or this machine's store path.

    Projects rendered before the marker existed recorded the store's absolute path.
    """
    if src_path == STORE_SOURCE:
        return True
    return bool(src_path) and Path(src_path).is_absolute() and Path(src_path).resolve() == default_store_dir().resolve()


@contextmanager
def store_as_source(store: Path) -> Iterator[str]:
    """Let copier read `store` under the name `STORE_SOURCE`, so that projects record the name, not the path.

    copier takes a relative `src_path` (passed in, or the `_src_path` of a project it updates) relative to the
    working folder, and writes it back to the answers as given. Inside a scratch folder holding a link named
    `podium` to the store, the marker resolves to this machine's store for every copier step, including the old
    version's render during an update. The process's working folder is restored afterwards.
    """
    previous = Path.cwd()
    with tempfile.TemporaryDirectory(prefix="podium-source-") as scratch:
        (Path(scratch) / STORE_SOURCE).symlink_to(store.resolve(), target_is_directory=True)
        os.chdir(scratch)
        try:
            yield STORE_SOURCE
        finally:
            os.chdir(previous)


def _version_key(tag: str) -> tuple[int, ...] | None:
    """`v1.2.3` as (1, 2, 3); None for a tag that is not a plain release version."""
    parts = tag.removeprefix("v").split(".")
    if not tag.startswith("v") or not all(part.isdigit() for part in parts):
        return None
    return tuple(int(part) for part in parts)


def build_history_bundle(repo: Path, bundle: Path, subdir: str = "template") -> list[str]:
    """Write a git bundle of the template as it was at each release tag (`v*`) reachable from `repo`'s HEAD.

    Each release becomes one commit of a store, tagged with its version in version order, exactly as
    `ensure_template_version` would tag it, so the bundle's tags and a store's agree on names and contents.
    Releases whose template did not change keep the earlier tag. Used at wheel build time (hatch_build.py).

    Args:
        repo: A git checkout of podium's source.
        bundle: The bundle file to write; not written when there is no release tag.
        subdir: The template's folder inside the repository.

    Returns:
        The tags the bundle holds.
    """
    listed = _git(repo, "tag", "--list", "v*", "--merged", "HEAD").split()
    releases = sorted((key, tag) for tag in listed if (key := _version_key(tag)) is not None)
    with tempfile.TemporaryDirectory(prefix="podium-history-") as scratch:
        store = Path(scratch) / "store"
        for _, tag in releases:
            if subprocess.run(["git", "cat-file", "-e", f"{tag}:{subdir}"], cwd=repo, capture_output=True).returncode:
                continue  # a release from before the template lived in `subdir`
            # The tree at the tag, through a scratch index: the checkout's own index and files stay untouched.
            tree = Path(scratch) / tag
            index = {**os.environ, "GIT_INDEX_FILE": str(Path(scratch) / "index")}
            _git(repo, "read-tree", f"{tag}:{subdir}", env=index)
            _git(repo, "checkout-index", "-a", f"--prefix={tree}/", env=index)
            ensure_template_version(tree, store, tag.removeprefix("v"))
            shutil.rmtree(tree)
        if not (store / ".git").is_dir():
            return []
        tags = sorted(store_tags(store), key=lambda tag: _version_key(tag) or ())
        bundle.parent.mkdir(parents=True, exist_ok=True)
        _git(store, "bundle", "create", "-q", str(bundle.resolve()), "--tags")
    return tags
