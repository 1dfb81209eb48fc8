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
    load_all_settings,
    load_run_settings,
    load_settings,
    metrics_table,
)
from .core.errors import ProjectError


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
        metrics = run_training(settings, resume=resume)
        if metrics:
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
    cv = f"CV {metrics['metric']} {metrics['cv_mean']:.4f} ± {metrics['cv_std']:.4f}" if metrics else "no CV found"
    console.print(f"submission: {path} ({cv}); latest copy: {path.parent / 'submission.csv'}")
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
    speed = f"{report.images} images decoded in {report.seconds:.1f} s ({report.images_per_second:.0f} images/s)"
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
    submission: Annotated[str | None, typer.Argument(help="Submission file (path or name) to score.")] = None,
    score: Annotated[float | None, typer.Argument(help="Its public leaderboard score.")] = None,
    overrides: Annotated[list[str] | None, typer.Option("--set", help="Config override key=value.")] = None,
    kaggle: Annotated[
        str | None, typer.Option(help="Fetch public scores of all submissions from the kaggle CLI: COMPETITION.")
    ] = None,
) -> None:
    """Record public leaderboard scores in outputs/submissions.csv (by hand, or --kaggle COMPETITION)."""
    from .submit import kaggle_scores, read_ledger, record_lb

    settings = load_settings(overrides, None, None, validate=False)
    if kaggle:
        scores = kaggle_scores(kaggle)
        known = set(read_ledger(settings.output_dir)["file"].map(lambda f: Path(f).name))
        for name, value in scores.items():
            if name in known:
                record_lb(settings.output_dir, name, value)
    elif submission is None or score is None:
        raise ProjectError("lb: give SUBMISSION SCORE, or --kaggle COMPETITION")
    else:
        record_lb(settings.output_dir, submission, score)
    console.print(read_ledger(settings.output_dir).to_string(index=False))


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
) -> None:
    """Code competitions: the run's checkpoints, configs and wheels as a Kaggle dataset, and an offline inference
    notebook that writes submission.csv (export.* settings); --push uploads both. --format onnx: ONNX models."""
    from .core.runs import RunPaths
    from .export import export as build_bundle
    from .export import push as push_bundle

    settings = load_run_settings(overrides, config, experiment, "export")
    if output_format not in ("kaggle", "onnx"):
        raise ProjectError(f"export --format {output_format!r}: expected kaggle or onnx")
    if output_format == "onnx":
        from .export_onnx import export_onnx

        dest = (settings.export.dest or RunPaths.from_config(settings).root / "export") / "onnx"
        for model in export_onnx(settings, dest):
            console.print(f"{model.path}: onnxruntime vs PyTorch, max |difference| {model.max_difference:.2e}")
        return
    bundle = build_bundle(settings, force=force)
    wheels = {name: size for name, size in bundle.files.items() if name.endswith(".whl")}
    for name, size in wheels.items():
        console.print(f"  {name}  {size / 2**20:.1f} MiB")
    console.print(
        f"dataset {bundle.dataset} and notebook {bundle.notebook}: {len(bundle.files)} files, "
        f"{bundle.size / 2**20:.1f} MiB; predict took {bundle.seconds_per_image:.3f} s per test image here "
        f"(projected {bundle.projected_hours:.2f} h)"
    )
    for warning in bundle.warnings:
        console.print(f"warning: {warning}", style="yellow")
    if push:
        done = push_bundle(bundle, message or f"{settings.experiment}")
        console.print(f"pushed: {', '.join(done)}")


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
    from .core.runs import RunPaths
    from .pipeline import run_stages

    started = time.perf_counter()
    configs = load_all_settings(overrides, config, experiment)
    preflight = None if skip_check else (lambda settings: _preflight(settings, settings.data.num_workers or None))
    changes = explicit_changes(overrides, config)
    final, metrics, submission = run_stages(configs, resume=resume, preflight=preflight, changes=changes)
    table = metrics_table(metrics, f"{final.experiment}: {final.model.backbone}")
    table.add_section()
    table.add_row("test predictions", str(RunPaths.from_config(final).test_predictions), "")
    table.add_row("submission", str(submission), "")
    table.add_row("seconds", f"{time.perf_counter() - started:.1f}", "")
    console.print(table)


# Tool commands register on the same app after the stage commands (their order in --help).
from .tools import commands as _tool_commands  # noqa: E402, F401


def main() -> None:
    app()
