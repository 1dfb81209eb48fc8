"""Render and update competition projects: thin code over copier's `run_copy` and `run_update`."""

from __future__ import annotations

import importlib.machinery
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from podium import __version__
from podium.errors import Interrupted, PodiumError
from podium.moved import Moved, missing_files, moved_changes
from podium.templates import STORE_SOURCE, ensure_template_version, is_store_source, store_as_source, store_tags

ANSWERS_FILE = ".copier-answers.yml"
GIT_IDENTITY = ["-c", "user.name=podium", "-c", "user.email=podium@localhost", "-c", "commit.gpgsign=false"]
FIRST_COMMIT = "Render the competition project with podium"
# copier's ValueError for an answer its validators (question or choice) refuse.
_ANSWER_ERROR = re.compile(r"^(?:Validation error for question|Invalid choice for) '(?P<key>\w+)': (?P<detail>.*)$")
# A template given as a URL (scheme://, copier's gh:/gl: shortcuts, git@host: and user@host: scp-like forms).
_URL = re.compile(r"^([a-z][\w+.-]*://|gh:|gl:|git\+|[\w.-]+@[\w.-]+:)", re.IGNORECASE)
_SHOWN_PATHS = 5


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


@dataclass(frozen=True)
class Updated:
    """What `update_project` did: the template versions before and after, the files left with conflicts, and the
    template's changes to files the project renamed or deleted (each written as a patch)."""

    path: Path
    old: str
    new: str
    conflicts: tuple[str, ...] = ()
    moved: tuple[Moved, ...] = ()


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


def parse_data_pairs(pairs: list[str], questions: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """`key=value` strings into answers, each checked against the template's `questions` (when known): an unknown
    key or a value of the wrong type is refused in one line naming the pair."""
    from podium.answers import check_answer, parse_value

    data: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise PodiumError(f"-d {pair!r}: expected key=value")
        data[key] = parse_value(text, (questions or {}).get(key))
        check_answer(key, data[key], questions, f"-d {pair}")
    return data


def load_answers_file(path: Path) -> dict[str, Any]:
    """Answers from a YAML file (see examples/); keys starting with `_` are copier's own and dropped."""
    try:
        loaded = yaml.safe_load(path.read_text())
    except OSError as error:
        raise PodiumError(f"answers file {path}: cannot read ({error.strerror})") from error
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or "cannot parse"
        raise PodiumError(f"answers file {path}: not valid YAML{where} ({problem})") from error
    if not isinstance(loaded, dict):
        raise PodiumError(f"answers file {path}: expected a mapping of question: answer")
    return {key: value for key, value in loaded.items() if not str(key).startswith("_")}


def check_package_name(name: object) -> None:
    """Refuse a package name that would shadow the standard library or an installed module.

    copier.yml's validator knows the standard library and the project's dependencies; this also catches any other
    module installed where podium runs. Folders on the path that are not packages (namespace packages) and the
    current folder do not count: `python -m podium new my_comp` run beside `my_comp/` must still work.
    """
    if not isinstance(name, str) or not name.isidentifier():
        return  # copier's validator explains what a package name must look like
    if name in sys.stdlib_module_names or name in sys.builtin_module_names:
        where = "the standard-library module"
    elif _installed_module(name):
        where = "the installed module"
    else:
        return
    raise PodiumError(
        f"package_name {name!r}: it would shadow a library ({where} {name}); choose another (e.g. {name}_comp)"
    )


def _installed_module(name: str) -> bool:
    cwd = Path.cwd().resolve()
    search = [entry for entry in sys.path if entry and Path(entry).resolve() != cwd]
    spec = importlib.machinery.PathFinder.find_spec(name, search)
    return spec is not None and spec.origin not in (None, "namespace")


def _git(cwd: Path, *args: str, check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["git", *GIT_IDENTITY, *args], cwd=cwd, capture_output=True, text=True, input=stdin)
    if check and result.returncode != 0:
        raise PodiumError(f"git {args[0]} failed in {cwd}: {' '.join(result.stderr.split())}")
    return result


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


def _git_failure(where: str, error: Exception) -> PodiumError:
    """plumbum's ProcessExecutionError (copier runs git through plumbum) as one line: git's own `fatal:` line."""
    lines = [line.strip() for line in str(getattr(error, "stderr", "") or "").splitlines() if line.strip()]
    fatal = [line for line in lines if line.lower().startswith(("fatal:", "error:"))]
    argv = [str(arg) for arg in getattr(error, "argv", [])]
    command = " ".join(Path(argv[0]).name.split() + argv[1:2]) if argv else "git"
    detail = (fatal or lines or [f"exit {getattr(error, 'retcode', '?')}"])[-1]
    return PodiumError(f"{where}: {command} failed ({detail})")


@contextmanager
def _copier_errors(source: str, answers: dict[str, Any]) -> Iterator[None]:
    """Around a copier call: every failure but Ctrl-C becomes one PodiumError line."""
    from copier.errors import CopierError
    from plumbum.commands.processes import ProcessExecutionError

    try:
        yield
    except KeyboardInterrupt:
        raise  # copier's CopierAnswersInterrupt too: it is a KeyboardInterrupt as well as a CopierError
    except ProcessExecutionError as error:  # copier runs git through plumbum
        raise _git_failure(f"template {source}", error) from error
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


def _commit(dest: Path, paths: Iterable[str] | None, had_git: bool) -> None:
    """Commit the first render: everything in a folder that was empty, else only `paths` (what the template wrote)."""
    if not had_git:
        _git(dest, "init", "-q", "-b", "main")
    if paths is None:
        _git(dest, "add", "-A")
        _git(dest, "commit", "-q", "--allow-empty", "-m", FIRST_COMMIT)
        return
    wanted = sorted(paths)
    ignored = set(_git(dest, "check-ignore", "--stdin", check=False, stdin="\n".join(wanted)).stdout.splitlines())
    spec = "\n".join(path for path in wanted if path not in ignored)
    _git(dest, "add", "--pathspec-from-file=-", stdin=spec)
    if _git(dest, "diff", "--cached", "--quiet", "--pathspec-from-file=-", check=False, stdin=spec).returncode:
        _git(dest, "commit", "-q", "-m", FIRST_COMMIT, "--pathspec-from-file=-", stdin=spec)


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
            with _copier_errors(source.shown, answers), source.reading():
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
            with _copier_errors(source.shown, answers), source.reading():
                copier.run_copy(source.path, dest, data=answers, defaults=True, overwrite=force, quiet=quiet, **common)
            recorded = read_answers(dest)
            package = str(recorded.get("package_name", ""))
            if rendered is None:  # derived from the project name: known only now
                check_package_name(package)
            added = _listing(dest).files - before.files
            written = None if rendered is None else rendered | added
            if init_git:
                _commit(dest, None if not non_empty else written, had_git)
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


def read_answers(project: Path) -> dict[str, Any]:
    answers = project / ANSWERS_FILE
    if not answers.is_file():
        raise PodiumError(f"{project}: no {ANSWERS_FILE}; is this a project made by podium new?")
    return yaml.safe_load(answers.read_text()) or {}


def _status_paths(project: Path, *extra: str) -> list[Path]:
    """Paths `git status` reports (porcelain, root-relative), as absolute paths."""
    top = Path(_git(project, "rev-parse", "--show-toplevel").stdout.strip())
    entries = iter(_git(project, "status", "--porcelain", "-z", *extra).stdout.split("\0"))
    paths = []
    for entry in entries:
        if len(entry) < 4:
            continue
        paths.append(top / entry[3:])
        if entry[0] in "RC":
            next(entries, None)  # a rename's or copy's source path follows
    return paths


def _shown(paths: list[str]) -> str:
    more = f" and {len(paths) - _SHOWN_PATHS} more" if len(paths) > _SHOWN_PATHS else ""
    return ", ".join(paths[:_SHOWN_PATHS]) + more


def _relative(paths: Iterable[Path], project: Path) -> list[str]:
    return sorted({os.path.relpath(path, project) + ("/" if path.is_dir() else "") for path in paths})


def _conflicted(project: Path, conflict: Literal["inline", "rej"]) -> list[str]:
    """Files the update left with conflict markers (inline) or the .rej files beside them (rej)."""
    if conflict == "rej":
        rejects = [path for path in _status_paths(project, "-uall", "--ignored") if path.suffix == ".rej"]
        return _relative(rejects, project)
    marked = []
    for path in _status_paths(project, "-uall"):
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
    inside = _git(project, "rev-parse", "--is-inside-work-tree", check=False)
    if inside.returncode != 0:
        raise PodiumError(f"{project} is not a git repository; copier updates only git-tracked projects")
    if dirty := _relative(_status_paths(project), project):
        raise PodiumError(
            f"{project} has uncommitted changes ({_shown(dirty)}); commit or stash them, then run podium update"
        )
    old = str(answers.get("_commit", "?"))
    source = _update_source(project, str(answers.get("_src_path", "")), old)
    try:
        with _copier_errors(source.shown, {}), source.reading():
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
    moved = _moved(project, source, answers, new, trust) if new != old else []
    return Updated(project, old, new, tuple(_conflicted(project, conflict)), tuple(moved))


def _moved(project: Path, source: TemplateSource, answers: dict[str, Any], new: str, trust: bool) -> list[Moved]:
    """The template's changes (from the project's version to `new`) to files the project renamed or deleted, which
    copier's merge drops: found by rendering both versions with the project's answers, written as patches. The
    update is done by now: a check that cannot run is a warning, not an error."""
    with tempfile.TemporaryDirectory(prefix="podium-moved-") as scratch:
        try:
            old_render = _render_version(source, Path(scratch) / "old", answers, str(answers.get("_commit")), trust)
            missing = missing_files(project, old_render)
            if not missing:
                return []
            new_render = _render_version(source, Path(scratch) / "new", answers, new, trust)
            return moved_changes(project, old_render, new_render, missing, Path(scratch) / "patches")
        except (PodiumError, subprocess.CalledProcessError) as error:
            print(f"warning: template changes to renamed or deleted files were not checked: {error}", file=sys.stderr)
            return []


def _render_version(source: TemplateSource, dest: Path, answers: dict[str, Any], ref: str, trust: bool) -> Path:
    import copier

    data = {key: value for key, value in answers.items() if not key.startswith("_")}
    with _copier_errors(source.shown, data), source.reading():
        copier.run_copy(
            source.path, dest, data=data, vcs_ref=ref, defaults=True, quiet=True, skip_tasks=True, unsafe=trust
        )
    return dest
