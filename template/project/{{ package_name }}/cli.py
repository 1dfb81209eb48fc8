"""The competition CLI: a command per stage; each loads the config and calls one function."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from .config import Config
from .core.commands import (
    ConfigFiles,
    Experiment,
    Experiments,
    Overrides,
    Resume,
    app,
    command,
    console,
    metrics_table,
)
from .core.console import cv_text, rate_text
from .core.errors import ProjectError
from .settings import load_all_settings, load_run_settings, load_settings


@command
def folds(overrides: Overrides = None, config: ConfigFiles = None, experiment: Experiment = None) -> None:
    """Split the training images into folds and write the fold file."""
    from .folds import make_folds

    path = make_folds(load_settings(overrides, config, experiment))
    console.print(f"fold file: {path}")


@command
def train(
    overrides: Overrides = None,
    config: ConfigFiles = None,
    experiment: Experiments = None,
    resume: Resume = False,
) -> None:
    """Train every fold (works under torchrun for DDP); prints CV mean ± std. seeds=[0,1,2] or several -e
    train one run each, sharing the first run's fold file."""
    from .config import explicit_changes
    from .core.run_config import resumed_config
    from .core.runs import expand_variants
    from .train import train as run_training

    variants, _ = expand_variants(load_all_settings(overrides, config, experiment))
    if resume:  # each run goes on with its own config.yaml and only this command's overrides
        variants = [resumed_config(variant, explicit_changes(overrides, config)) for variant in variants]
    for settings in variants:
        metrics = run_training(settings, resume=resume).metrics
        if metrics:  # empty on the other ranks of a distributed run
            console.print(metrics_table(metrics, f"{settings.experiment}: cross-validation"))


@command
def predict(overrides: Overrides = None, config: ConfigFiles = None, experiment: Experiment = None) -> None:
    """Predict the test images with every fold's checkpoint(s) and the configured TTA views."""
    from .predict import predict as run_prediction

    path = run_prediction(load_run_settings(overrides, config, experiment, "predict"))
    console.print(f"test predictions: {path}")


@command
def submit(
    overrides: Overrides = None,
    config: ConfigFiles = None,
    experiment: Experiment = None,
    predictions: Annotated[
        Path | None, typer.Option(help="Prediction CSV (id + class columns) to submit instead of the run's.")
    ] = None,
    kaggle: Annotated[
        str | None, typer.Option(help="Also upload it to this competition with the kaggle CLI: COMPETITION.")
    ] = None,
    message: Annotated[str | None, typer.Option(help="The upload's description (default: the run and its CV).")] = None,
) -> None:
    """Write a validated submission in the sample submission's format (and upload it with --kaggle)."""
    from .submit import kaggle_message, upload_to_kaggle
    from .submit import submit as write_submission

    settings = load_run_settings(overrides, config, experiment, "submit")
    path, metrics = write_submission(settings, predictions)
    console.print(f"submission: {path} ({cv_text(metrics)}); latest copy: {path.parent / 'submission.csv'}")
    if kaggle:
        text = message or kaggle_message(settings, metrics)
        upload_to_kaggle(settings, path, kaggle, text)
        console.print(f"uploaded to {kaggle}: {text!r}; `lb --kaggle {kaggle}` fetches its public score")


@command
def check(
    overrides: Overrides = None,
    config: ConfigFiles = None,
    experiment: Experiment = None,
    workers: Annotated[int | None, typer.Option(help="Processes decoding images (default: all cores).")] = None,
) -> None:
    """Preflight: config, labels, folds, sample submission and every image; lists every problem found."""
    _preflight(load_settings(overrides, config, experiment, validate=False), workers)


def _preflight(settings: Config, workers: int | None = None) -> None:
    from .check import run_check

    report = run_check(settings, workers)
    speed = f"{report.images} images decoded in {report.seconds:.1f} s ({rate_text(report.images_per_second)} images/s)"
    for advice in report.advice:
        console.print(f"check: advice: {advice}")
    if report.submission:
        console.print(f"check: the submission will hold {report.submission}", soft_wrap=True)
    if not report.problems:
        console.print(f"check: no problems; {speed}")
        return
    table = Table(title=f"check: {len(report.problems)} problem(s)")
    table.add_column("where", overflow="fold")
    table.add_column("problem", overflow="fold")
    for problem in report.problems[:50]:
        table.add_row(problem.where, problem.what)
    if len(report.problems) > 50:
        table.add_row("...", f"{len(report.problems) - 50} more")
    console.print(table)
    first = report.problems[0].line
    if len(report.problems) == 1:
        raise ProjectError(first)
    raise ProjectError(f"check found {len(report.problems)} problems, the first: {first}")


@command
def lb(
    submission: Annotated[
        str | None, typer.Argument(help="Submission file (path or name; submission.csv: the latest) to score.")
    ] = None,
    score: Annotated[float | None, typer.Argument(help="Its public leaderboard score.")] = None,
    overrides: Annotated[list[str] | None, typer.Option("--set", help="Config override key=value.")] = None,
    kaggle: Annotated[
        str | None, typer.Option(help="Fetch public scores of all submissions from the kaggle CLI: COMPETITION.")
    ] = None,
) -> None:
    """Record public leaderboard scores in outputs/submissions.csv (by hand, or --kaggle COMPETITION) and show the
    submissions with their CV and LB; without arguments, only show them."""
    from .submit import record_kaggle_scores, record_lb

    settings = load_settings(overrides, None, None, validate=False)
    if kaggle:
        synced = record_kaggle_scores(settings.output_dir, kaggle)
        console.print(f"lb: {len(synced.recorded)} of {synced.listed} scored submissions on {kaggle} recorded")
        if synced.unknown:
            more = len(synced.unknown) - 5
            shown = ", ".join(synced.unknown[:5]) + (f" and {more} more" if more > 0 else "")
            hint = "; a hand upload of the latest: lb submission.csv SCORE"
            console.print(f"lb: on Kaggle, not in the ledger: {shown}{hint}", soft_wrap=True)
    elif submission is not None and score is None:
        raise ProjectError(f"lb {submission}: give its score too, e.g. lb {submission} 0.912")
    elif submission is not None and score is not None:
        recorded = record_lb(settings.output_dir, submission, score)
        console.print(f"lb: public LB {score:g} recorded for {recorded}", soft_wrap=True)
    console.print(_ledger_table(settings.output_dir / "submissions.csv"))


def _ledger_table(path: Path) -> Table:
    """The ledger as a table: the file name `lb` takes (never cut), its run, CV and LB; blanks where none."""
    from .core.ledger import ledger_rows, read_ledger

    columns, rows = ledger_rows(read_ledger(path.parent))
    table = Table(title=f"{path}: {len(rows)} submission(s)")
    for index, column in enumerate(columns):
        if index == 0:
            table.add_column(column, no_wrap=True, min_width=max((len(row[0]) for row in rows), default=10))
        else:
            table.add_column(column, overflow="fold", justify="right" if column in ("CV", "public LB") else "left")
    for row in rows:
        table.add_row(*row)
    return table


@command
def export(
    overrides: Overrides = None,
    config: ConfigFiles = None,
    experiment: Experiment = None,
    push: Annotated[
        bool, typer.Option("--push", help="Upload the dataset and push the notebook (kaggle CLI).")
    ] = False,
    message: Annotated[str | None, typer.Option(help="Dataset version message for --push.")] = None,
    output_format: Annotated[
        str, typer.Option("--format", help="kaggle: dataset + offline notebook; onnx: each fold's model as ONNX.")
    ] = "kaggle",
    force: Annotated[bool, typer.Option("--force", help="Replace an exported notebook you edited.")] = False,
    image_manifest: Annotated[
        Path | None, typer.Option(help="The Kaggle image's manifest (default export.image_manifest).")
    ] = None,
) -> None:
    """Code competitions: the run's checkpoints, configs and wheels as a Kaggle dataset, and an offline inference
    notebook that writes submission.csv (export.* settings); --push uploads both. --format onnx: ONNX models."""
    from .core.runs import RunPaths
    from .export import export as build_bundle
    from .export import hand_commands
    from .export import push as push_bundle

    settings = load_run_settings(overrides, config, experiment, "export")
    if output_format not in ("kaggle", "onnx"):
        raise ProjectError(f"export --format {output_format!r}: expected kaggle or onnx")
    if output_format == "onnx":
        from .export_onnx import PARITY_TOLERANCE, export_onnx

        dest = (settings.export.dest or RunPaths.from_config(settings).root / "export") / "onnx"
        for model in export_onnx(settings, dest):
            console.print(
                f"{model.path}: onnxruntime vs PyTorch on {model.images} test images (not the traced batch), "
                f"max |difference| {model.max_difference:.2e} (tolerance {PARITY_TOLERANCE:g})",
                soft_wrap=True,
            )
        return
    bundle = build_bundle(settings, force=force, image_manifest=image_manifest)
    console.print(f"wheels for the image ({len(bundle.wheels)} besides the project's):")
    for wheel, path in bundle.wheels:
        console.print(f"  {wheel.name}=={wheel.version}  {path.stat().st_size / 2**20:.1f} MiB  {wheel.reason}")
    console.print(
        f"dataset {bundle.dataset} and notebook {bundle.notebook}: {len(bundle.files)} files, "
        f"{bundle.size / 2**20:.1f} MiB; predict took {bundle.seconds_per_image:.3f} s per test image here "
        f"(projected {bundle.projected_hours:.2f} h)"
    )
    for warning in bundle.warnings:
        console.print(f"warning: {warning}", style="yellow")
    if push:
        with console.status("uploading the dataset, waiting until Kaggle has processed it, pushing the notebook"):
            done = push_bundle(bundle, message or f"{settings.experiment}")
        console.print(f"pushed: {', '.join(done)}")
        return
    create, version, status, notebook = hand_commands(bundle, message or settings.experiment)
    console.print(  # a hand upload without --dir-mode zip leaves out the runs/, wheels/ and configs/ folders
        "upload it (or run export --push): the dataset with --dir-mode zip, which keeps its folders, then, once its "
        f"status prints ready, the notebook:\n  {create}\n  (a later export: {version})\n  {status}\n  {notebook}",
        soft_wrap=True,
    )


@command
def weights(
    folder: Annotated[Path, typer.Argument(help="Folder to save the weights into (upload it as a Kaggle dataset).")],
    overrides: Annotated[list[str] | None, typer.Option("--set", help="Config override key=value.")] = None,
    config: ConfigFiles = None,
    experiment: Experiment = None,
) -> None:
    """Download the pretrained weights the configured model starts from (where there is network) and save them
    into FOLDER; offline runs and code-competition notebooks then use model.weights=FOLDER/<file>."""
    from .core.weights import save_pretrained
    from .tasks import create_task

    settings = load_settings(overrides, config, experiment)
    task = create_task(settings, ["class_0", "class_1"])  # heads start random: their class count does not matter
    path, count = save_pretrained(task, folder)
    size = path.stat().st_size / 2**20
    console.print(f"saved {count} pretrained tensors ({size:.1f} MiB) to {path}; offline: model.weights={path}")


@command
def run(
    overrides: Overrides = None,
    config: ConfigFiles = None,
    experiment: Experiments = None,
    resume: Resume = False,
    skip_check: Annotated[bool, typer.Option("--skip-check", help="Do not run the `check` preflight first.")] = False,
) -> None:
    """All stages in order: check -> folds -> train -> predict -> submit, with a summary at the end. With
    seeds=[...] or several -e, every run is trained and predicted, then blended and the blend is submitted."""
    from .config import explicit_changes
    from .core.commands import next_steps
    from .core.runs import RunPaths
    from .pipeline import run_stages
    from .tools.run_plots import write_run_plots

    started = time.perf_counter()
    configs = load_all_settings(overrides, config, experiment)
    preflight = None if skip_check else (lambda settings: _preflight(settings, settings.data.num_workers or None))
    changes = explicit_changes(overrides, config)
    result, submission = run_stages(configs, resume=resume, preflight=preflight, changes=changes)
    final = result.config
    plots = write_run_plots(final)
    console.print(metrics_table(result.metrics, f"{final.experiment}: {final.model.backbone}"))
    root = RunPaths.from_config(final).root
    # Paths on lines of their own: a table cell would cut them at 80 columns.
    console.print(f"run folder ({time.perf_counter() - started:.0f} s):\n  {root}", soft_wrap=True)
    console.print(f"submission:\n  {submission}", soft_wrap=True)
    console.print(f"plots ({', '.join(path.stem for path in plots)}):\n  {root / 'plots'}", soft_wrap=True)
    console.print("\n".join(next_steps(final, root)), soft_wrap=True)


# Tool commands register on the same app after the stage commands (their order in --help).
from .tools import commands as _tool_commands  # noqa: E402, F401


def main() -> None:
    app()
