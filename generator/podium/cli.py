"""The `podium` command: parse options and delegate to one library function per command."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import typer

from podium import __version__
from podium.errors import PodiumError

TASKS = ("classification", "detection", "segmentation")

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


def _command(func: F) -> F:
    """Register a command whose PodiumError becomes one red line and the error's exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except PodiumError as error:
            typer.secho(f"error: {error}", fg="red", err=True)
            raise typer.Exit(error.exit_code) from None

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
    dest: Annotated[Path, typer.Argument(help="Folder to create the project in (must be empty).")],
    *,
    task: Annotated[str, typer.Option(help=f"Competition task: {', '.join(TASKS)}.")] = "classification",
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
    force: Annotated[bool, typer.Option("--force", help="Render into a non-empty folder.")] = False,
    trust: Annotated[
        bool, typer.Option("--trust", help="Allow the template's copier tasks and migrations to run.")
    ] = False,
) -> None:
    """Render a new competition project, initialise git and commit the first render."""
    from podium.project import create_project, load_answers_file, parse_data_pairs

    answers = load_answers_file(answers_file) if answers_file else {}
    answers.setdefault("task", _check_task(task))
    answers.update(parse_data_pairs(data or []))
    # Without a terminal copier cannot ask, so questions fall back to their defaults.
    ask = not defaults and sys.stdin.isatty()
    project = create_project(dest, data=answers, template=template, defaults=not ask, force=force, trust=trust)
    package = _package_name(project)
    typer.secho(f"Created {project}", fg="green")
    typer.echo(f"Next: cd {project} && python -m {package} run")


def _package_name(project: Path) -> str:
    from podium.project import read_answers

    return str(read_answers(project).get("package_name", "<package>"))


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
    from podium.project import update_project

    if conflict not in ("inline", "rej"):
        raise PodiumError(f"--conflict {conflict!r}: expected inline or rej")
    mode: Literal["inline", "rej"] = "inline" if conflict == "inline" else "rej"
    ref = update_project(path, pretend=pretend, conflict=mode, trust=trust)
    verb = "Would update" if pretend else "Updated"
    typer.secho(f"{verb} {path.resolve()} to template {ref}", fg="green")
    if not pretend:
        typer.echo("Review with `git diff`, resolve any conflict markers, then commit.")


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
