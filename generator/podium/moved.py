"""Template changes copier's update cannot bring: files the new template version changed that the project renamed
or deleted (git's rename detection over the project's history). Each is reported with a patch; nothing is merged."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PATCH_SUFFIX = ".template.patch"
ANSWERS_FILE = ".copier-answers.yml"


@dataclass(frozen=True)
class Moved:
    """A file the template changed (`template_path`, where it renders it) that the project keeps elsewhere
    (`project_path`) or deleted (None); `patch` is the template's change, written beside it."""

    template_path: str
    project_path: str | None
    patch: str

    @property
    def message(self) -> str:
        if self.project_path is None:
            return (
                f"the template changed {self.template_path}, which this project deleted: its change is in "
                f"{self.patch} (delete the patch if the file is gone on purpose)"
            )
        return (
            f"the template changed {self.template_path}, which this project renamed to {self.project_path}: "
            f"apply its change with `git apply {self.patch}`"
        )


def _git(project: Path, *args: str) -> str:
    command = ["git", "-c", "core.quotepath=off", *args]
    return subprocess.run(command, cwd=project, capture_output=True, text=True, check=True).stdout


def _files(root: Path) -> Iterator[str]:
    for folder, _, files in os.walk(root):
        for name in files:
            yield (Path(folder) / name).relative_to(root).as_posix()


def missing_files(project: Path, old_render: Path) -> list[str]:
    """Files the project's template version renders that HEAD does not track (renamed or deleted since), leaving
    out the answers file and what the project's .gitignore keeps out of git anyway."""
    tracked = set(_git(project, "ls-tree", "-r", "--name-only", "-z", "HEAD").split("\0"))
    missing = sorted(path for path in _files(old_render) if path not in tracked and path != ANSWERS_FILE)
    if not missing:
        return []
    ignored = subprocess.run(
        ["git", "check-ignore", "--no-index", "--stdin"],
        cwd=project,
        input="\n".join(missing),
        capture_output=True,
        text=True,
        check=False,
    ).stdout.splitlines()
    return [path for path in missing if path not in set(ignored)]


def current_path(project: Path, path: str) -> str | None:
    """Where HEAD keeps a file committed as `path`, following git's renames commit by commit; None if deleted."""
    tokens = iter(_git(project, "log", "--reverse", "-M", "--name-status", "-z", "--format=", "HEAD").split("\0"))
    current = path
    for token in tokens:
        status = token.strip()
        if status.startswith(("R", "C")):
            source, target = next(tokens, ""), next(tokens, "")
            if status.startswith("R") and source == current:
                current = target
        elif status:
            next(tokens, "")
    tracked = set(_git(project, "ls-tree", "-r", "--name-only", "-z", "HEAD").split("\0"))
    return current if current in tracked else None


def template_patch(old: Path, new: Path, path: str, scratch: Path) -> str:
    """The change from `old` to `new` as a patch of `path` that `git apply` takes in the project's root."""
    for side, source in (("a", old), ("b", new)):
        target = scratch / side / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(source.read_bytes())
    command = ["git", "diff", "--no-index", "--no-prefix", "--no-color", "--no-ext-diff", f"a/{path}", f"b/{path}"]
    return subprocess.run(command, cwd=scratch, capture_output=True, text=True, check=False).stdout


def moved_changes(project: Path, old_render: Path, new_render: Path, missing: list[str], scratch: Path) -> list[Moved]:
    """For each of `missing` that the new version changes: where the project keeps it, and its patch written there."""
    moved = []
    for path in missing:
        old, new = old_render / path, new_render / path
        if not new.is_file() or new.read_bytes() == old.read_bytes():
            continue
        kept = current_path(project, path)
        patch = f"{kept or path}{PATCH_SUFFIX}"
        (project / patch).parent.mkdir(parents=True, exist_ok=True)
        (project / patch).write_text(template_patch(old, new, kept or path, scratch / path))
        moved.append(Moved(path, kept, patch))
    return moved
