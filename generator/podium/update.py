"""`podium update`: copier's `run_update` (a 3-way merge) on a project, with the versions, conflicts, the
template's changes to files the project renamed or deleted, and the project's edits to files the template moved."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from podium import __version__
from podium.answers import ANSWERS_FILE, read_answers
from podium.errors import Interrupted, PodiumError
from podium.git import run_git, status_paths
from podium.moved import Carried, Moved, carry_edits, dropped_edits, missing_files, moved_changes
from podium.render import TemplateSource, copier_errors
from podium.templates import STORE_SOURCE, ensure_template_version, is_store_source, store_tags

_SHOWN_PATHS = 5


@dataclass(frozen=True)
class Updated:
    """What `update_project` did: the template versions before and after, the files left with conflicts, and the
    template's changes to files the project renamed or deleted (each written as a patch) and the project's edits to
    files the template moved or deleted (merged into the moved file, or the file kept)."""

    path: Path
    old: str
    new: str
    conflicts: tuple[str, ...] = ()
    moved: tuple[Moved, ...] = ()
    carried: tuple[Carried, ...] = ()


def _shown(paths: list[str]) -> str:
    more = f" and {len(paths) - _SHOWN_PATHS} more" if len(paths) > _SHOWN_PATHS else ""
    return ", ".join(paths[:_SHOWN_PATHS]) + more


def _relative(paths: Iterable[Path], project: Path) -> list[str]:
    return sorted({os.path.relpath(path, project) + ("/" if path.is_dir() else "") for path in paths})


def _conflicted(project: Path, conflict: Literal["inline", "rej"]) -> list[str]:
    """Files the update left with conflict markers (inline) or the .rej files beside them (rej)."""
    if conflict == "rej":
        rejects = [path for path in status_paths(project, "-uall", "--ignored") if path.suffix == ".rej"]
        return _relative(rejects, project)
    marked = []
    for path in status_paths(project, "-uall"):
        if path.is_file():
            with path.open("rb") as lines:
                if any(line.startswith(b"<<<<<<< ") for line in lines):
                    marked.append(path)
    return _relative(marked, project)


def _update_source(project: Path, recorded: str, old: str) -> TemplateSource:
    """The template a project's answers name: podium's own (through this machine's store), or a fork as recorded.

    The store first takes in every released template version the installed podium carries, then the installed
    template as the version to update to.
    """
    if is_store_source(recorded):
        store, tag = ensure_template_version()
        if old not in store_tags(store):
            raise PodiumError(
                f"{project} was rendered from template {old}, which podium {__version__} does not carry (it knows "
                f"{_shown(sorted(store_tags(store)))}); update with a podium release at least as new as the one "
                "that rendered it (a development build's version is only in the store of the machine that made it)"
            )
        return TemplateSource(STORE_SOURCE, tag, store)
    path = Path(recorded)
    if path.is_absolute() and not path.exists() and path.parts[-2:] == ("podium", "templates"):
        raise PodiumError(
            f"{project}/{ANSWERS_FILE} records _src_path {recorded}, another machine's podium template store; "
            f"replace it with `_src_path: {STORE_SOURCE}` (what podium records now), commit, and update again"
        )
    return TemplateSource(recorded, None)


def _record_store_source(project: Path) -> None:
    """Write the marker over this machine's store path: what a project rendered before the marker existed recorded.

    copier writes back the `_src_path` it read (and its `run_update` takes no `src_path` to change it).
    """
    answers = project / ANSWERS_FILE
    text = answers.read_text()
    marker = f"_src_path: {STORE_SOURCE}"
    recorded = re.search(r"^_src_path: (.*)$", text, flags=re.M)
    if recorded and recorded[0] != marker and is_store_source(str(yaml.safe_load(recorded[1]))):
        answers.write_text(text[: recorded.start()] + marker + text[recorded.end() :])


def update_project(
    project: Path,
    *,
    pretend: bool = False,
    conflict: Literal["inline", "rej"] = "inline",
    trust: bool = False,
    quiet: bool = False,
) -> Updated:
    """Bring the template's changes into `project` with copier's 3-way merge; report versions and conflicts."""
    import copier

    project = project.expanduser().resolve()
    answers = read_answers(project)
    inside = run_git(project, "rev-parse", "--is-inside-work-tree", check=False)
    if inside.returncode != 0:
        raise PodiumError(f"{project} is not a git repository; copier updates only git-tracked projects")
    if dirty := _relative(status_paths(project), project):
        raise PodiumError(
            f"{project} has uncommitted changes ({_shown(dirty)}); commit or stash them, then run podium update"
        )
    old = str(answers.get("_commit", "?"))
    source = _update_source(project, str(answers.get("_src_path", "")), old)
    try:
        with copier_errors(source.shown, {}), source.reading():
            worker = copier.run_update(
                project,
                vcs_ref=source.ref,
                pretend=pretend,
                conflict=conflict,
                overwrite=True,
                defaults=True,
                skip_answered=True,
                unsafe=trust,
                quiet=quiet,
            )
    except KeyboardInterrupt:
        raise Interrupted(
            f"interrupted; nothing was committed: `git status` in {project} shows the partial update, "
            "`git stash -u` sets it aside"
        ) from None
    if pretend:
        try:
            target = worker.template.commit
        except Exception:  # the template's clone is gone once copier's Worker has closed
            target = None
        return Updated(project, old, str(target or source.ref or "the latest tag"))
    if source.store:
        _record_store_source(project)
    new = str(read_answers(project).get("_commit", source.ref or "?"))
    moved, carried = _moved(project, source, answers, new, trust) if new != old else ([], [])
    return Updated(project, old, new, tuple(_conflicted(project, conflict)), tuple(moved), tuple(carried))


def _moved(
    project: Path, source: TemplateSource, answers: dict[str, Any], new: str, trust: bool
) -> tuple[list[Moved], list[Carried]]:
    """What copier's merge drops, found by rendering both versions with the project's answers: the template's
    changes (from the project's version to `new`) to files the project renamed or deleted, written as patches, and
    the project's edits to files the template moved or deleted, carried over. The update is done by now: a check
    that cannot run is a warning, not an error."""
    with tempfile.TemporaryDirectory(prefix="podium-moved-") as scratch:
        try:
            old_render = _render_version(source, Path(scratch) / "old", answers, str(answers.get("_commit")), trust)
            missing, dropped = missing_files(project, old_render), dropped_edits(project, old_render)
            if not missing and not dropped:
                return [], []
            new_render = _render_version(source, Path(scratch) / "new", answers, new, trust)
            moved = moved_changes(project, old_render, new_render, missing, Path(scratch) / "patches")
            return moved, carry_edits(project, old_render, new_render, dropped, Path(scratch) / "carried")
        except (PodiumError, subprocess.CalledProcessError) as error:
            print(f"warning: template changes to renamed or deleted files were not checked: {error}", file=sys.stderr)
            return [], []


def _render_version(source: TemplateSource, dest: Path, answers: dict[str, Any], ref: str, trust: bool) -> Path:
    import copier

    data = {key: value for key, value in answers.items() if not key.startswith("_")}
    with copier_errors(source.shown, data), source.reading():
        copier.run_copy(
            source.path, dest, data=data, vcs_ref=ref, defaults=True, quiet=True, skip_tasks=True, unsafe=trust
        )
    return dest
