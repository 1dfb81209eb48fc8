"""What copier's update cannot merge: the template's changes to files the project renamed or deleted (git's rename
detection over the project's history; each reported with a patch), and the project's edits to files the template
moved or deleted (merged into the moved file with git merge-file, or the edited file kept)."""

from __future__ import annotations

import difflib
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


# How alike (difflib's ratio of lines) the template's new file must be to the one it replaced to count as its move.
MOVE_SIMILARITY = 0.5


@dataclass(frozen=True)
class Carried:
    """A file the project had edited and the new template version moved (to `new_path`) or deleted (None): copier's
    update drops such edits, so they are merged into the moved file (`conflicted` when markers were left) or the
    edited file is kept where it was."""

    old_path: str
    new_path: str | None
    conflicted: bool = False

    @property
    def message(self) -> str:
        if self.new_path is None:
            return (
                f"the template deleted {self.old_path}, which this project had edited: your copy is kept; "
                "delete it if nothing imports it any more"
            )
        merged = "with conflict markers to resolve" if self.conflicted else "cleanly"
        return (
            f"the template moved {self.old_path} to {self.new_path}: this project's edits to it were merged there "
            f"{merged}"
        )


def _head_bytes(project: Path, path: str) -> bytes:
    command = ["git", "show", f"HEAD:{path}"]
    return subprocess.run(command, cwd=project, capture_output=True, check=True).stdout


def dropped_edits(project: Path, old_render: Path) -> list[str]:
    """Files HEAD tracks at the path the project's template version renders them, edited since (HEAD differs from
    that render), which the update removed from the working tree."""
    tracked = set(_git(project, "ls-tree", "-r", "--name-only", "-z", "HEAD").split("\0"))
    return sorted(
        path
        for path in _files(old_render)
        if path in tracked
        and path != ANSWERS_FILE
        and not (project / path).exists()
        and _head_bytes(project, path) != (old_render / path).read_bytes()
    )


def _lines(path: Path) -> list[str]:
    return path.read_text(errors="replace").splitlines()


def new_location(path: str, old_render: Path, new_render: Path) -> str | None:
    """Where the new template version moved `path`: its new file most like the old one, among those the old
    version lacks, with the same suffix and at least MOVE_SIMILARITY alike."""
    old_lines = _lines(old_render / path)
    best, best_ratio = None, MOVE_SIMILARITY
    for candidate in _files(new_render):
        if Path(candidate).suffix != Path(path).suffix or (old_render / candidate).exists():
            continue
        ratio = difflib.SequenceMatcher(None, old_lines, _lines(new_render / candidate), autojunk=False).ratio()
        if ratio >= best_ratio:
            best, best_ratio = candidate, ratio
    return best


def carry_edits(project: Path, old_render: Path, new_render: Path, dropped: list[str], scratch: Path) -> list[Carried]:
    """Each of `dropped` (edited files the update removed): its edits merged into where the template moved it
    (git merge-file: this project's file, with the template's change from the old render to the new applied), or
    the edited file restored where the template deleted it outright."""
    carried = []
    for path in dropped:
        edited = _head_bytes(project, path)
        target = new_location(path, old_render, new_render)
        if target is None:
            (project / path).parent.mkdir(parents=True, exist_ok=True)
            (project / path).write_bytes(edited)
            carried.append(Carried(path, None))
            continue
        ours = scratch / "ours" / path
        ours.parent.mkdir(parents=True, exist_ok=True)
        ours.write_bytes(edited)
        labels = ["-L", "before updating", "-L", "last update", "-L", "after updating"]
        theirs = project / target if (project / target).is_file() else new_render / target
        command = ["git", "merge-file", "-p", *labels, str(ours), str(old_render / path), str(theirs)]
        merge = subprocess.run(command, capture_output=True, check=False)
        if merge.returncode < 0 or merge.returncode > 127:
            raise subprocess.CalledProcessError(merge.returncode, command, merge.stdout, merge.stderr)
        (project / target).write_bytes(merge.stdout)
        carried.append(Carried(path, target, conflicted=merge.returncode > 0))
    return carried
