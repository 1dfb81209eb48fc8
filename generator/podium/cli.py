"""The `podium` command: parse options and delegate to one library function per command."""

from __future__ import annotations

import contextlib
import functools
import shlex
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import typer

from podium import __version__
from podium.errors import PodiumError, UpdateConflicts

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
        except KeyboardInterrupt:  # library code says what was left behind (Interrupted); this is the fallback
            typer.secho("error: interrupted", fg="red", err=True)
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
) -> None:
    """Render a new competition project, initialise git and commit the first render."""
    if from_path is not None and kaggle is not None:
        raise PodiumError("--from and --kaggle: give one of them")
    with _competition_source(from_path, kaggle) as source:
        _new(dest, task, template, defaults, data, answers_file, force, trust, source, copy_data)


@contextlib.contextmanager
def _competition_source(from_path: Path | None, kaggle: str | None) -> Iterator[tuple[Any, bool] | None]:
    """(findings, unpacked) for --from or --kaggle, with a scratch folder for zips kept while the project is made."""
    if from_path is None and kaggle is None:
        yield None
        return
    from podium.discover import inspect_competition
    from podium.sources import download_competition, stage_source

    with tempfile.TemporaryDirectory(prefix="podium-from-") as scratch:
        source = from_path if from_path is not None else download_competition(str(kaggle), Path(scratch) / "zip")
        root, unpacked = stage_source(source.expanduser(), Path(scratch) / "unpacked")
        findings = inspect_competition(root)
        typer.echo(f"From {source}:")
        for reason in findings.reasons:
            typer.echo(f"  {reason}")
        yield findings, unpacked


def _new(
    dest: Path,
    task: str | None,
    template: str | None,
    defaults: bool,
    data: list[str] | None,
    answers_file: Path | None,
    force: bool,
    trust: bool,
    source: tuple[Any, bool] | None,
    copy_data: bool,
) -> None:
    from podium.project import load_answers_file, parse_data_pairs, render_project

    answers = dict(source[0].answers) if source else {}
    if task is not None and answers.get("task", task) != task:
        raise PodiumError(f"--task {task}: the competition's files look like {answers['task']} (see above)")
    answers.update(load_answers_file(answers_file) if answers_file else {})
    # Without a terminal copier cannot ask, so questions fall back to their defaults.
    ask = not defaults and _stdin_is_a_terminal()
    if task is not None or not ask:  # else copier asks it, first, and offers only the layouts and metrics that fit
        answers.setdefault("task", _check_task(task or TASKS[0]))
    answers.update(parse_data_pairs(data or []))
    result = render_project(dest, data=answers, template=template, defaults=not ask, force=force, trust=trust)
    typer.secho(f"Created {result.path}", fg="green")
    if result.replaced:
        typer.secho(
            f"warning: --force replaced {len(result.replaced)} existing file(s) with the template's: "
            + ", ".join(result.replaced),
            fg="yellow",
            err=True,
        )
    if result.kept:
        typer.echo(f"The first commit holds only the template's files; {result.kept} file(s) already there are kept.")
    if source is not None:
        from podium.sources import data_folder, place_data

        findings, unpacked = source
        folder = data_folder(result.path)
        mode = "move" if unpacked else "copy" if copy_data else "link"
        names = place_data(findings.root, folder, mode)
        verb = {"move": "Unpacked", "copy": "Copied", "link": "Linked"}[mode]
        typer.echo(
            f"{verb} {len(names)} item(s) into {folder}: {', '.join(names[:6])}{' ...' if len(names) > 6 else ''}"
        )
        typer.echo(f"Check them: cd {shlex.quote(str(result.path))} && python -m {result.package} check")
    typer.echo(f"Next: cd {shlex.quote(str(result.path))} && python -m {result.package} run")


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
    from podium.project import update_project

    if conflict not in ("inline", "rej"):
        raise PodiumError(f"--conflict {conflict!r}: expected inline or rej")
    mode: Literal["inline", "rej"] = "inline" if conflict == "inline" else "rej"
    result = update_project(path, pretend=pretend, conflict=mode, trust=trust)
    if result.old == result.new:
        typer.secho(f"{result.path} already uses template {result.new}", fg="green")
    else:
        verb = "Would update" if pretend else "Updated"
        typer.secho(f"{verb} {result.path} from template {result.old} to {result.new}", fg="green")
    if result.conflicts:
        how = (
            "resolve the markers in these files, then git add and commit"
            if mode == "inline"
            else "apply these rejected hunks by hand, delete the .rej files, then git add and commit"
        )
        raise UpdateConflicts(f"conflicts in {len(result.conflicts)} file(s): {', '.join(result.conflicts)}; {how}")
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
