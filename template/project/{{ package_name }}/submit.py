"""Submission: predictions in the sample submission's columns and id order, validated, never overwritten."""

from __future__ import annotations

import io
import shutil
from datetime import datetime
from pathlib import Path

import pandas as pd

from .config import Config
from .core.data import check_test_ids, read_sample_submission, read_test_table
from .core.errors import SubmissionError
from .core.runs import RunPaths, atomic_path, read_json, run_lock, write_csv
from .core.validate import require_valid_settings
from .tasks import create_task

LEDGER_COLUMNS = ["file", "time", "experiment", "cv", "public_lb", "kaggle", "message"]


def read_ledger(output_dir: Path) -> pd.DataFrame:
    """`output_dir/submissions.csv`: every submission written, its CV, and its public LB once recorded."""
    path = output_dir / "submissions.csv"
    if not path.is_file():
        return pd.DataFrame(columns=LEDGER_COLUMNS)
    ledger = pd.read_csv(path, dtype={"file": str, "experiment": str, "kaggle": str, "message": str})
    return ledger.reindex(columns=[*LEDGER_COLUMNS, *(c for c in ledger.columns if c not in LEDGER_COLUMNS)])


def _append_ledger(output_dir: Path, row: dict) -> None:
    ledger = read_ledger(output_dir)
    write_csv(output_dir / "submissions.csv", pd.concat([ledger, pd.DataFrame([row])], ignore_index=True))


def record_lb(output_dir: Path, submission: str, score: float) -> pd.DataFrame:
    """Set the public LB score of a submission in the ledger (matched by path or file name)."""
    ledger = read_ledger(output_dir)
    match = (ledger["file"] == submission) | (ledger["file"].map(lambda f: Path(f).name) == Path(submission).name)
    if not match.any():
        raise SubmissionError(f"{output_dir / 'submissions.csv'}: no submission '{submission}' (run submit first)")
    ledger.loc[match, "public_lb"] = score
    write_csv(output_dir / "submissions.csv", ledger)
    return ledger


def _kaggle(*words: str) -> str:
    """Run the kaggle CLI (installed and configured by the user: ~/.kaggle/kaggle.json or KAGGLE_USERNAME and
    KAGGLE_KEY); its output, or one line saying what failed."""
    import subprocess

    if shutil.which("kaggle") is None:
        raise SubmissionError("the kaggle CLI is not installed (pip install kaggle) or not on PATH")
    result = subprocess.run(["kaggle", *words], capture_output=True, text=True)
    if result.returncode != 0:
        reason = " ".join((result.stderr.strip() or result.stdout.strip()).split())[:200]
        raise SubmissionError(f"kaggle {' '.join(words[:4])}: {reason or f'exit code {result.returncode}'}")
    return result.stdout


def kaggle_message(config: Config, metrics: dict) -> str:
    """What the leaderboard shows beside a submission: the run and its CV."""
    cv = f"CV {metrics['metric']} {metrics['cv_mean']:.4f} ± {metrics['cv_std']:.4f}" if metrics else "no CV"
    return f"{config.experiment}: {config.model.backbone}, {cv}"


def upload_to_kaggle(config: Config, path: Path, competition: str, message: str) -> None:
    """Submit `path` through the kaggle CLI and note the competition and message in the ledger (`lb --kaggle`
    later fills its public score)."""
    _kaggle("competitions", "submit", "-c", competition, "-f", str(path), "-m", message)
    ledger = read_ledger(config.output_dir)
    match = ledger["file"] == str(path)
    ledger["kaggle"] = ledger["kaggle"].astype(object)
    ledger["message"] = ledger["message"].astype(object)
    ledger.loc[match, "kaggle"] = competition
    ledger.loc[match, "message"] = message
    write_csv(config.output_dir / "submissions.csv", ledger)


def kaggle_scores(competition: str) -> dict[str, float]:
    """File name -> public score from the kaggle CLI."""
    frame = pd.read_csv(io.StringIO(_kaggle("competitions", "submissions", "-c", competition, "--csv")))
    scored = frame.dropna(subset=["publicScore"])
    return dict(zip(scored["fileName"], scored["publicScore"].astype(float), strict=True))


def _unique_path(folder: Path, stamp: str) -> Path:
    path, counter = folder / f"submission_{stamp}.csv", 1
    while path.exists():
        path, counter = folder / f"submission_{stamp}_{counter}.csv", counter + 1
    return path


def submit(config: Config, predictions: Path | None = None) -> tuple[Path, dict]:
    """Write a timestamped submission and `submission.csv` (latest); return its path and the run's metrics."""
    require_valid_settings(config)
    paths = RunPaths.from_config(config)
    with run_lock(paths, "submit"):
        return _submit_locked(config, paths, predictions)


def _submit_locked(config: Config, paths: RunPaths, predictions: Path | None) -> tuple[Path, dict]:
    source = predictions or config.submit.predictions or paths.test_predictions
    if not source.is_file() and not source.with_suffix(".npz").is_file():  # segmentation keeps maps in .npz
        raise SubmissionError(f"{source}: predictions not found; run the `predict` command first")
    data = config.data
    sample = read_sample_submission(data, per_class=config.task == "segmentation")
    check_test_ids(sample, read_test_table(data)["id"], data.id_column, data.root / data.sample_submission)
    if paths.classes.is_file():
        classes = read_json(paths.classes)
    else:  # a prediction file from elsewhere: its class columns
        classes = [c for c in pd.read_csv(source, nrows=0).columns if c not in ("id", "fold")]
    task = create_task(config, classes)
    task.load_postprocessing(paths.root)
    submission = task.submission(sample, source)
    path = _unique_path(paths.submissions, datetime.now().strftime("%Y%m%d-%H%M%S"))
    write_csv(path, submission)
    task.write_submission_extras(source, paths.submissions)
    with atomic_path(paths.submissions / "submission.csv") as temporary:
        shutil.copyfile(path, temporary)
    metrics = read_json(paths.metrics) if paths.metrics.is_file() else {}
    _append_ledger(
        config.output_dir,
        {
            "file": str(path),
            "time": datetime.now().isoformat(timespec="seconds"),
            "experiment": config.experiment,
            "cv": metrics.get("cv_mean"),
            "public_lb": None,
        },
    )
    return path, metrics
