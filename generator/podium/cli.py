"""The `podium` command: parse options and delegate to one library function per command."""

from __future__ import annotations

import contextlib
import functools
import os
import shlex
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, NamedTuple, TypeVar

import typer

from podium import __version__
from podium.errors import PodiumError, UpdateConflicts

if TYPE_CHECKING:  # imported lazily where used: `podium --help` stays fast
    from podium.discover import Findings
    from podium.render import Rendered

TASKS = ("classification", "detection", "segmentation")
# The rendered project's install command, as its README's "Set up" says (template/project/README.md.jinja).
INSTALL = 'pip install -e ".[dev]"'

app = typer.Typer(
    name="podium",
    no_args_is_help=True,
    add_completion=False,
    # Plain click help: rich's formatter costs ~0.2 s of import, and `podium --help` must stay under 0.5 s.
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="Scaffold a Kaggle-style computer-vision competition project that trains and submits out of the box.",
)


F = TypeVar("F", bound=Callable[..., Any])


def _secho(message: str, *, fg: str | None = None, err: bool = False) -> None:
    """click drops colour where the stream is not a terminal; this also honours NO_COLOR (no-color.org), which
    click does not."""
    if fg is None or os.environ.get("NO_COLOR"):
        typer.echo(message, err=err)  # click.style adds a reset code even without a colour
    else:
        typer.secho(message, fg=fg, err=err)


def _command(func: F) -> F:
    """Register a command whose PodiumError becomes one red line and the error's exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except PodiumError as error:
            _secho(f"error: {error}", fg="red", err=True)
            raise typer.Exit(error.exit_code) from None
        except KeyboardInterrupt:  # library code says what was left behind (Interrupted); this is the fallback
            _secho("error: interrupted", fg="red", err=True)
            raise typer.Exit(130) from None

    app.command()(wrapper)
    return func


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"podium {__version__}")
        raise typer.Exit()


def _check_task(task: str) -> str:
    if task not in TASKS:
        raise PodiumError(f"--task {task!r}: expected one of {', '.join(TASKS)}")
    return task


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version_callback, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """podium: competition repositories from a Copier template."""


@_command
def new(
    dest: Annotated[Path, typer.Argument(help="Folder to create the project in (empty or missing, unless --force).")],
    *,
    task: Annotated[
        str | None,
        typer.Option(help=f"Competition task: {', '.join(TASKS)} (asked first; with --defaults, classification)."),
    ] = None,
    template: Annotated[
        str | None, typer.Option(help="Path or git URL of a fork of the template (default: bundled).")
    ] = None,
    defaults: Annotated[bool, typer.Option("--defaults", help="Take every default; ask nothing.")] = False,
    data: Annotated[
        list[str] | None, typer.Option("--data", "-d", help="Answer a question: -d key=value (repeatable).")
    ] = None,
    answers_file: Annotated[
        Path | None, typer.Option("--answers-file", help="YAML file of answers, e.g. from examples/.")
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Render into a non-empty folder: files the template writes are overwritten (each one is listed); "
            "other files are kept as they are and left out of the first commit.",
        ),
    ] = False,
    trust: Annotated[
        bool, typer.Option("--trust", help="Allow the template's copier tasks and migrations to run.")
    ] = False,
    from_path: Annotated[
        Path | None,
        typer.Option(
            "--from",
            help="A competition's folder or zip: propose the answers from its files (each with its reason), then "
            "link its files into the project's data folder (a zip is unpacked there).",
        ),
    ] = None,
    kaggle: Annotated[
        str | None,
        typer.Option(help="A Kaggle competition: download its files with the kaggle CLI, then as --from."),
    ] = None,
    copy_data: Annotated[
        bool, typer.Option("--copy-data", help="With --from: copy the files instead of linking them.")
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", help="List every file the template wrote (create, overwrite, ...).")
    ] = False,
) -> None:
    """Render a new competition project, initialise git and commit the first render."""
    if from_path is not None and kaggle is not None:
        raise PodiumError("--from and --kaggle: give one of them")
    with _competition_source(from_path, kaggle) as source:
        _new(dest, task, template, defaults, data, answers_file, force, trust, source, copy_data, verbose)


class Competition(NamedTuple):
    """A competition given by --from or --kaggle: what its files tell, whether it was unpacked, its name as given."""

    findings: Findings
    unpacked: bool
    name: str


@contextlib.contextmanager
def _competition_source(from_path: Path | None, kaggle: str | None) -> Iterator[Competition | None]:
    """The competition of --from or --kaggle, with a scratch folder for zips kept while the project is made."""
    if from_path is None and kaggle is None:
        yield None
        return
    from podium.discover import inspect_competition
    from podium.sources import download_competition, stage_source

    shown = f"--from {from_path}" if from_path is not None else f"--kaggle {kaggle}"
    with tempfile.TemporaryDirectory(prefix="podium-from-") as scratch:
        source = from_path if from_path is not None else download_competition(str(kaggle), Path(scratch) / "zip")
        root, unpacked = stage_source(source.expanduser(), Path(scratch) / "unpacked", shown)
        yield Competition(inspect_competition(root, shown), unpacked, str(from_path or kaggle))


def _new(
    dest: Path,
    task: str | None,
    template: str | None,
    defaults: bool,
    data: list[str] | None,
    answers_file: Path | None,
    force: bool,
    trust: bool,
    source: Competition | None,
    copy_data: bool,
    verbose: bool,
) -> None:
    from podium.answers import check_answers, load_answers_file, parse_data_pairs
    from podium.render import render_project
    from podium.templates import template_questions

    questions = template_questions(template)
    given = load_answers_file(answers_file) if answers_file else {}
    check_answers(given, questions, f"answers file {answers_file}")
    given.update(parse_data_pairs(data or [], questions))
    # Without a terminal copier cannot ask, so questions fall back to their defaults.
    ask = not defaults and _stdin_is_a_terminal()
    answers = dict(source.findings.answers) if source else {}
    if source and task is not None and answers.get("task", task) != task:
        why = next((reason for reason in source.findings.reasons if reason.startswith("task=")), "")
        raise PodiumError(f"--task {task}: the competition's files look like {answers['task']} ({why})")
    answers.update(given)
    names = _settle_source(source, given, ask, template, str(answers.get("data_dir", "data"))) if source else None
    if task is not None or not ask:  # else copier asks it, first, and offers only the layouts and metrics that fit
        answers.setdefault("task", _check_task(task or TASKS[0]))
    # copier stays quiet: its per-file lines carry colour codes even when piped, and its closing message (the
    # template's _message_after_copy) cannot know whether the data was placed; podium lists and advises itself.
    result = render_project(
        dest, data=answers, template=template, defaults=not ask, force=force, trust=trust, quiet=True
    )
    _secho(f"Created {result.path} ({len(result.files)} files)", fg="green")
    if verbose:
        _list_files(result)
    if result.replaced:
        _secho(
            f"warning: --force replaced {len(result.replaced)} existing file(s) with the template's: "
            + ", ".join(result.replaced),
            fg="yellow",
            err=True,
        )
    if result.kept:
        typer.echo(f"The first commit holds only the template's files; {result.kept} file(s) already there are kept.")
    placed = _place(source, names, result.path, copy_data) if source is not None and names is not None else False
    _next_steps(result, data_placed=placed)


_ACTION_COLOURS = {"create": "green", "overwrite": "yellow", "identical": "cyan"}  # copier's own colours


def _list_files(result: Rendered) -> None:
    """Each file the template wrote, as copier would list it, without colour where the output is not a terminal."""
    for action, path in result.files:
        _secho(f"{action:>10}  {path}", fg=_ACTION_COLOURS.get(action))


def _next_steps(result: Rendered, *, data_placed: bool) -> None:
    """The one block of what to do next: commands to paste in order, each with what it is for."""
    command = result.package.replace("_", "-")  # the console script of the project's pyproject.toml
    data = result.data_dir
    steps = [
        (f"cd {shlex.quote(str(result.path))}", ""),
        (INSTALL, "the project and its dependencies"),
        *(() if data_placed else [(f"# put the competition's files in {data}/ ({data}/README.md lists them)", "")]),
        (f"{command} check", "preflight: files and config, every problem at once"),
        (f"{command} eda", "look at the data: reports/eda.html"),
        (f"{command} run -e smoke", "the whole pipeline in a minute, on CPU"),
        (f"{command} run", "folds, train, predict (TTA), submit"),
    ]
    width = max(len(line) for line, why in steps if why)
    typer.echo("\nNext steps:")
    for line, why in steps:
        typer.echo(f"  {line:<{width}}  # {why}" if why else f"  {line}")


def _settle_source(
    source: Competition, given: dict[str, Any], ask: bool, template: str | None, data_dir: str
) -> dict[str, str]:
    """Before anything is rendered: refuse what the files cannot tell when nobody can be asked (unless -d or the
    answers file tells), and plan the data folder's names around the template's own files there; then print the
    proposals with their reasons."""
    from podium.sources import placement
    from podium.templates import data_folder_names

    findings = source.findings
    for key, refusal in findings.unresolved.items():
        if key not in given and not ask:
            raise PodiumError(refusal)
    # A template that is not on this machine (a git URL): podium's templates write the data folder's README.md.
    taken = data_folder_names(template)
    names = placement(findings.root, {"README.md"} if taken is None else taken, findings.shown, data_dir)
    answered = tuple(f"{key}: " for key in findings.unresolved if key in given)
    typer.echo(f"From {source.name}:")
    for reason in findings.reasons:
        if not reason.startswith(answered):  # what -d or the answers file settled
            typer.echo(f"  {reason}")
    return names


def _place(source: Competition, names: dict[str, str], project: Path, copy_data: bool) -> bool:
    """Link, copy or move (an unpacked zip) the competition's files into the data folder; say so; whether any
    were placed."""
    from podium.sources import data_folder, place_data

    folder = data_folder(project)
    relative = folder.relative_to(project).as_posix()
    mode = "move" if source.unpacked else "copy" if copy_data else "link"
    placed = place_data(source.findings.root, folder, mode, names)
    verb = {"move": "Unpacked", "copy": "Copied", "link": "Linked"}[mode]
    shown = f"{', '.join(placed[:6])}{' ...' if len(placed) > 6 else ''}"
    typer.echo(f"{verb} {len(placed)} item(s) from {source.name} into {relative}/: {shown}")
    for name, target in names.items():
        if target != name:
            typer.echo(
                f"Placed the competition's {name} as {relative}/{target} (the template writes {relative}/{name})"
            )
    return bool(placed)


def _stdin_is_a_terminal() -> bool:
    return sys.stdin.isatty()


@_command
def update(
    path: Annotated[Path, typer.Argument(help="The project to update.")] = Path("."),
    *,
    pretend: Annotated[bool, typer.Option("--pretend", help="Show what would change; write nothing.")] = False,
    conflict: Annotated[
        str, typer.Option(help="How to show merge conflicts: inline markers or .rej files.")
    ] = "inline",
    trust: Annotated[
        bool, typer.Option("--trust", help="Allow the template's copier tasks and migrations to run.")
    ] = False,
) -> None:
    """Take the installed template's improvements into a project, keeping its own edits (3-way merge)."""
    from podium.update import update_project

    if conflict not in ("inline", "rej"):
        raise PodiumError(f"--conflict {conflict!r}: expected inline or rej")
    mode: Literal["inline", "rej"] = "inline" if conflict == "inline" else "rej"
    result = update_project(path, pretend=pretend, conflict=mode, trust=trust)
    if result.old == result.new:
        _secho(f"{result.path} already uses template {result.new}", fg="green")
    else:
        verb = "Would update" if pretend else "Updated"
        _secho(f"{verb} {result.path} from template {result.old} to {result.new}", fg="green")
    for moved in result.moved:
        _secho(f"warning: {moved.message}", fg="yellow", err=True)
    for carried in result.carried:
        _secho(f"warning: {carried.message}", fg="yellow", err=True)
    problems = []
    if result.conflicts:
        how = (
            "resolve the markers in these files, then git add and commit"
            if mode == "inline"
            else "apply these rejected hunks by hand, delete the .rej files, then git add and commit"
        )
        problems.append(f"conflicts in {len(result.conflicts)} file(s): {', '.join(result.conflicts)}; {how}")
    if result.moved:
        patches = ", ".join(moved.patch for moved in result.moved)
        problems.append(
            f"the template changed {len(result.moved)} file(s) this project renamed or deleted: {patches}; apply each "
            "patch (git apply PATCH) or drop it, delete the patches, then git add and commit"
        )
    if problems:
        raise UpdateConflicts("; also ".join(problems))
    if not pretend:
        typer.echo("Review with `git diff`, then commit.")


@_command
def demo(
    dest: Annotated[Path, typer.Argument(help="Folder for the demo competition and project.")] = Path("podium-demo"),
    *,
    task: Annotated[str, typer.Option(help=f"Competition task: {', '.join(TASKS)}.")] = "classification",
    fast: Annotated[bool, typer.Option("--fast", help="A minutes-shorter run (fewer folds and epochs).")] = False,
    force: Annotated[bool, typer.Option("--force", help="Reuse a non-empty DEST.")] = False,
) -> None:
    """Make a Kaggle-format competition from scikit-learn's digits, scaffold a project and run it end to end."""
    from podium.demo import run_demo

    run_demo(dest, task=_check_task(task), fast=fast, force=force)


def main() -> None:
    """Console-script entry point."""
    app()
