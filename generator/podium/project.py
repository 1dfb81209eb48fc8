"""Render and update competition projects: thin code over copier's `run_copy` and `run_update`."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from podium.errors import PodiumError
from podium.templates import default_store_dir, ensure_template_version

ANSWERS_FILE = ".copier-answers.yml"
GIT_IDENTITY = ["-c", "user.name=podium", "-c", "user.email=podium@localhost", "-c", "commit.gpgsign=false"]


@dataclass(frozen=True)
class TemplateSource:
    """Where copier takes the template from, and which git ref (None: the template's latest tag)."""

    path: str
    ref: str | None


def resolve_template(template: str | None) -> TemplateSource:
    """The bundled template (through the versioned store) unless a fork's path or git URL is given."""
    if template is None:
        store, tag = ensure_template_version()
        return TemplateSource(str(store), tag)
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
    return TemplateSource(template, None)


def parse_data_pairs(pairs: list[str]) -> dict[str, Any]:
    """`key=value` strings into answers; values are parsed as YAML so numbers and booleans keep their type."""
    data: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise PodiumError(f"-d {pair!r}: expected key=value")
        data[key.strip()] = yaml.safe_load(value) if value else ""
    return data


def load_answers_file(path: Path) -> dict[str, Any]:
    """Answers from a YAML file (see examples/); keys starting with `_` are copier's own and dropped."""
    try:
        loaded = yaml.safe_load(path.read_text())
    except OSError as error:
        raise PodiumError(f"answers file {path}: cannot read ({error.strerror})") from error
    except yaml.YAMLError as error:
        raise PodiumError(f"answers file {path}: not valid YAML ({error})") from error
    if not isinstance(loaded, dict):
        raise PodiumError(f"answers file {path}: expected a mapping of question: answer")
    return {key: value for key, value in loaded.items() if not str(key).startswith("_")}


def _git(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["git", *GIT_IDENTITY, *args], cwd=cwd, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise PodiumError(f"git {args[0]} failed in {cwd}: {result.stderr.strip()}")
    return result


def _commit_all(project: Path, message: str) -> None:
    _git(project, "add", "-A")
    _git(project, "commit", "-q", "--allow-empty", "-m", message)


def _copier_error(error: Exception) -> PodiumError:
    from copier.errors import UnsafeTemplateError

    if isinstance(error, UnsafeTemplateError):
        return PodiumError(f"{error} Re-run with --trust if you trust this template.")
    return PodiumError(" ".join(str(error).split()))


def create_project(
    dest: Path,
    *,
    data: dict[str, Any] | None = None,
    template: str | None = None,
    defaults: bool = False,
    force: bool = False,
    trust: bool = False,
    init_git: bool = True,
    quiet: bool = False,
) -> Path:
    """Render the template into `dest` with copier, then initialise git and commit the first render."""
    import copier
    from copier.errors import CopierError

    dest = dest.expanduser().resolve()
    if dest.exists() and not dest.is_dir():
        raise PodiumError(f"{dest} exists and is not a folder")
    if dest.is_dir() and any(dest.iterdir()) and not force:
        raise PodiumError(f"{dest} is not empty; choose an empty folder or pass --force")
    source = resolve_template(template)
    try:
        copier.run_copy(
            source.path,
            dest,
            data=data or {},
            # The folder name is the default project name, so `podium new my-comp` gives package my_comp.
            user_defaults={"project_name": dest.name},
            vcs_ref=source.ref,
            defaults=defaults,
            overwrite=force,
            unsafe=trust,
            quiet=quiet,
        )
    except CopierError as error:
        raise _copier_error(error) from error
    except ValueError as error:  # copier raises ValueError for answers its validators reject
        raise PodiumError(" ".join(str(error).split())) from error
    if init_git and not (dest / ".git").exists():
        _git(dest, "init", "-q", "-b", "main")
        _commit_all(dest, "Render the competition project with podium")
    return dest


def read_answers(project: Path) -> dict[str, Any]:
    answers = project / ANSWERS_FILE
    if not answers.is_file():
        raise PodiumError(f"{project}: no {ANSWERS_FILE}; is this a project made by podium new?")
    return yaml.safe_load(answers.read_text()) or {}


def update_project(
    project: Path,
    *,
    pretend: bool = False,
    conflict: Literal["inline", "rej"] = "inline",
    trust: bool = False,
    quiet: bool = False,
) -> str:
    """Bring the installed template's changes into `project` with copier's 3-way merge; return the new ref."""
    import copier
    from copier.errors import CopierError

    project = project.expanduser().resolve()
    answers = read_answers(project)
    inside = _git(project, "rev-parse", "--is-inside-work-tree", check=False)
    if inside.returncode != 0:
        raise PodiumError(f"{project} is not a git repository; copier updates only git-tracked projects")
    if _git(project, "status", "--porcelain").stdout.strip():
        raise PodiumError(f"{project} has uncommitted changes; commit or stash them, then run podium update")
    source_path = str(answers.get("_src_path", ""))
    ref: str | None = None
    if Path(source_path).resolve() == default_store_dir().resolve():
        _, ref = ensure_template_version()
    try:
        copier.run_update(
            project,
            vcs_ref=ref,
            pretend=pretend,
            conflict=conflict,
            overwrite=True,
            defaults=True,
            skip_answered=True,
            unsafe=trust,
            quiet=quiet,
        )
    except CopierError as error:
        raise _copier_error(error) from error
    return str(read_answers(project).get("_commit", ref or ""))
