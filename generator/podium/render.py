"""`podium new`: render the template into a project with copier's `run_copy`, commit it, and put the folder back as
it was on any failure; also where copier's errors become one line."""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from podium.answers import check_package_name, read_answers
from podium.errors import Interrupted, PodiumError
from podium.git import commit_render, git_failure
from podium.templates import STORE_SOURCE, ensure_template_version, store_as_source

# copier's ValueError for an answer its validators (question or choice) refuse.
_ANSWER_ERROR = re.compile(r"^(?:Validation error for question|Invalid choice for) '(?P<key>\w+)': (?P<detail>.*)$")
# A template given as a URL (scheme://, copier's gh:/gl: shortcuts, git@host: and user@host: scp-like forms).
_URL = re.compile(r"^([a-z][\w+.-]*://|gh:|gl:|git\+|[\w.-]+@[\w.-]+:)", re.IGNORECASE)


@dataclass(frozen=True)
class TemplateSource:
    """Where copier takes the template from, and which git ref (None: the template's latest tag).

    For podium's own template `path` is the marker `podium` and `store` this machine's store: copier runs inside
    `store_as_source(store)` (see `reading`), so projects record the marker, the same on every machine.
    """

    path: str
    ref: str | None
    store: Path | None = None

    @property
    def shown(self) -> str:
        """The source as error messages name it."""
        return str(self.store or self.path)

    def reading(self) -> AbstractContextManager[object]:
        """The context in which copier can read `path`."""
        return store_as_source(self.store) if self.store else nullcontext()


@dataclass(frozen=True)
class Rendered:
    """What `render_project` did: the project, its package, the files it replaced and the ones it left alone, each
    file the template wrote with what happened to it (copier's words), and the project's data folder."""

    path: Path
    package: str
    replaced: tuple[str, ...] = ()
    kept: int = 0  # files that were in the folder before and that the template does not write (not committed)
    files: tuple[tuple[str, str], ...] = ()  # (create | overwrite | identical, relative POSIX path), sorted by path
    data_dir: str = "data"


@dataclass
class _Listing:
    files: set[str] = field(default_factory=set)
    dirs: set[str] = field(default_factory=set)


def resolve_template(template: str | None) -> TemplateSource:
    """The bundled template (through the versioned store) unless a fork's path or git URL is given."""
    if template is None:
        store, tag = ensure_template_version()
        return TemplateSource(STORE_SOURCE, tag, store)
    local = Path(template).expanduser()
    if local.exists():
        if not (local / "copier.yml").is_file() and not (local / "copier.yaml").is_file():
            raise PodiumError(f"template {local}: no copier.yml found; expected a Copier template folder")
        if not (local / ".git").exists():
            print(
                f"warning: template {local} is not a git repository: the project can be created "
                "but `podium update` will not work until the template is a tagged git repository",
                file=sys.stderr,
            )
        return TemplateSource(str(local.resolve()), None)
    if not _URL.match(template):
        raise PodiumError(f"template {template}: no such folder, and not a git URL (https://..., git@host:..., gh:...)")
    return TemplateSource(template, None)


def _copier_error(error: Exception) -> PodiumError:
    from copier.errors import UnsafeTemplateError

    if isinstance(error, UnsafeTemplateError):
        return PodiumError(f"{error} Re-run with --trust if you trust this template.")
    return PodiumError(" ".join(str(error).split()))


def _answer_error(error: ValueError, answers: dict[str, Any]) -> PodiumError:
    """copier's "Validation error for question 'key': detail" as `key 'value': detail`."""
    text = " ".join(str(error).split())
    match = _ANSWER_ERROR.match(text)
    if not match:
        return PodiumError(text)
    key, detail = match["key"], match["detail"]
    value = f" {answers[key]!r}" if key in answers else ""
    return PodiumError(f"{key}{value}: {detail[:1].lower()}{detail[1:]}")


@contextmanager
def copier_errors(source: str, answers: dict[str, Any]) -> Iterator[None]:
    """Around a copier call: every failure but Ctrl-C becomes one PodiumError line."""
    from copier.errors import CopierError
    from plumbum.commands.processes import ProcessExecutionError

    try:
        yield
    except KeyboardInterrupt:
        raise  # copier's CopierAnswersInterrupt too: it is a KeyboardInterrupt as well as a CopierError
    except ProcessExecutionError as error:  # copier runs git through plumbum
        raise git_failure(f"template {source}", error) from error
    except CopierError as error:
        raise _copier_error(error) from error
    except ValueError as error:  # copier raises ValueError for answers its validators reject
        raise _answer_error(error, answers) from error
    except OSError as error:
        raise PodiumError(f"{error.filename or source}: {error.strerror or error}") from error


def _listing(root: Path) -> _Listing:
    """Files and folders under `root` (relative, POSIX), leaving out a top-level .git."""
    listing = _Listing()
    if not root.is_dir():
        return listing
    for folder, dirs, files in os.walk(root):
        relative = Path(folder).relative_to(root)
        if relative == Path("."):
            dirs[:] = [name for name in dirs if name != ".git"]
        listing.dirs.update((relative / name).as_posix() for name in dirs)
        listing.files.update((relative / name).as_posix() for name in files)
    return listing


def _restore(dest: Path, existed: bool, before: _Listing, backup: Path, had_git: bool) -> None:
    """Put `dest` back as it was before rendering: remove what was added, bring back what was replaced."""
    if not existed:
        shutil.rmtree(dest, ignore_errors=True)
        return
    after = _listing(dest)
    for relative in after.files - before.files:
        (dest / relative).unlink(missing_ok=True)
    for relative in sorted(after.dirs - before.dirs, key=lambda path: path.count("/"), reverse=True):
        shutil.rmtree(dest / relative, ignore_errors=True)
    for saved in (path for path in backup.rglob("*") if path.is_file()):
        target = dest / saved.relative_to(backup)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(saved, target)
    if not had_git:
        shutil.rmtree(dest / ".git", ignore_errors=True)


def render_project(
    dest: Path,
    *,
    data: dict[str, Any] | None = None,
    template: str | None = None,
    defaults: bool = False,
    force: bool = False,
    trust: bool = False,
    init_git: bool = True,
    quiet: bool = False,
) -> Rendered:
    """Render the template into `dest` with copier, then initialise git and commit what the template wrote.

    Answers are validated by copier's own validators on every path: given answers directly, asked ones by rendering
    once into a scratch folder (questions asked there), then again into `dest` with every answer as data. The scratch
    render also tells which files the template writes, so a non-empty `dest` (`force`) gets only those committed and
    the files it replaces listed. Any failure or Ctrl-C puts `dest` back as it was.

    Args:
        dest: The project folder; created if missing.
        data: Answers to copier's questions (copier.yml); the others are asked, or take their defaults.
        template: A fork's folder or git URL; None renders the bundled template's current version.
        defaults: Ask nothing: unanswered questions take their defaults.
        force: Render into a non-empty folder, replacing the files the template writes.
        trust: Let the template run its copier tasks and migrations.
        init_git: Run `git init` (unless `dest` is a repository already) and commit the render.
        quiet: Keep copier from printing each file.
    """
    dest = dest.expanduser().resolve()
    try:
        return _render_project(dest, dict(data or {}), template, defaults, force, trust, init_git, quiet)
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted; nothing was committed and {dest} is as it was before") from None


def _render_project(
    dest: Path,
    answers: dict[str, Any],
    template: str | None,
    defaults: bool,
    force: bool,
    trust: bool,
    init_git: bool,
    quiet: bool,
) -> Rendered:
    import copier

    if dest.exists() and not dest.is_dir():
        raise PodiumError(f"{dest} exists and is not a folder")
    existed = dest.is_dir()
    non_empty = existed and any(dest.iterdir())
    if non_empty and not force:
        raise PodiumError(f"{dest} is not empty; choose an empty folder or pass --force")
    if "package_name" in answers:
        check_package_name(answers["package_name"])
    source = resolve_template(template)
    before = _listing(dest)
    had_git = (dest / ".git").exists()
    # The folder name is the default project name, so `podium new my-comp` gives package my_comp.
    common = {"user_defaults": {"project_name": dest.name}, "vcs_ref": source.ref, "unsafe": trust}
    with tempfile.TemporaryDirectory(prefix="podium-") as scratch:
        rendered: set[str] | None = None
        replaced: list[str] = []
        backup = Path(scratch) / "replaced"
        if not defaults or non_empty:
            staged = Path(scratch) / "render" / dest.name
            with copier_errors(source.shown, answers), source.reading():
                worker = copier.run_copy(
                    source.path, staged, data=answers, defaults=defaults, quiet=True, skip_tasks=True, **common
                )
            # Every answer, asked or given, goes to the real render as data: copier validates each one there.
            answers = {key: value for key, value in worker.answers.user.items() if not key.startswith("_")}
            check_package_name(answers.get("package_name"))
            rendered = _listing(staged).files
            for relative in sorted(rendered & before.files):
                if (staged / relative).read_bytes() != (dest / relative).read_bytes():
                    replaced.append(relative)
                    (backup / relative).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(dest / relative, backup / relative)
        try:
            with copier_errors(source.shown, answers), source.reading():
                copier.run_copy(source.path, dest, data=answers, defaults=True, overwrite=force, quiet=quiet, **common)
            recorded = read_answers(dest)
            package = str(recorded.get("package_name", ""))
            if rendered is None:  # derived from the project name: known only now
                check_package_name(package)
            added = _listing(dest).files - before.files
            written = None if rendered is None else rendered | added
            if init_git:
                commit_render(dest, None if not non_empty else written, had_git)
        except BaseException:
            _restore(dest, existed, before, backup, had_git)
            raise
    kept = len(before.files - (written or set())) if non_empty else 0
    files = _actions(added if rendered is None else rendered, before.files, replaced)
    return Rendered(dest, package, tuple(replaced), kept, files, str(recorded.get("data_dir", "data")))


def _actions(written: set[str], existing: set[str], replaced: list[str]) -> tuple[tuple[str, str], ...]:
    """Each file the template wrote with copier's word for it: created, overwritten (replaced) or left identical."""
    return tuple(
        ("overwrite" if path in replaced else "identical" if path in existing else "create", path)
        for path in sorted(written)
    )


def create_project(dest: Path, **options: Any) -> Path:
    """`render_project` (same keyword options), returning the project folder."""
    return render_project(dest, **options).path
