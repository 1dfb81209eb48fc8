"""Submission: predictions in the sample submission's columns and id order, validated, never overwritten."""

from __future__ import annotations

import io
import shutil
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from .config import Config
from .data import check_test_ids, id_stem, read_sample_submission, read_test_table
from .errors import SubmissionError
from .runs import RunPaths, atomic_path, read_json, run_lock, write_csv
from .tasks import create_task


def submission_format(sample: pd.DataFrame, id_column: str, classes: list[str], requested: str) -> str:
    """`probabilities` when the sample has a column per class, `labels` when it has one target column."""
    if requested != "auto":
        return requested
    targets = [column for column in sample.columns if column != id_column]
    if set(targets) == set(classes) and len(targets) > 1:
        return "probabilities"
    if len(targets) == 1:
        return "labels"
    raise SubmissionError(
        f"sample submission columns {targets} are neither one label column nor one column per class {classes}"
    )


def _label_values(labels: list[str], template: pd.Series) -> list:
    # Keep the sample's look: numeric labels stay numbers when the sample's column is numeric.
    numeric = pd.to_numeric(template, errors="coerce")
    if len(template) and numeric.notna().all():
        converted = pd.to_numeric(pd.Series(labels), errors="coerce")
        if converted.notna().all():
            return [int(v) if float(v).is_integer() else float(v) for v in converted]
    return labels


def build_submission(
    sample: pd.DataFrame,
    predictions: pd.DataFrame,
    classes: list[str],
    *,
    id_column: str,
    fmt: str,
    multi_label: bool = False,
    threshold: float = 0.5,
) -> pd.DataFrame:
    """Rows in the sample's id order and its columns, filled from `predictions` (id + class columns)."""
    by_id = predictions.set_index(predictions["id"].astype(str).map(id_stem))
    sample_ids = sample[id_column].astype(str).map(id_stem)  # sample ids may carry the image extension
    missing = sample_ids[~sample_ids.isin(by_id.index)]
    if len(missing):
        raise SubmissionError(f"predictions have no row for sample id '{missing.iloc[0]}' ({len(missing)} ids)")
    probabilities = by_id.loc[sample_ids, classes].to_numpy(dtype=np.float64)
    submission = pd.DataFrame({id_column: sample[id_column].to_numpy()})
    if fmt == "probabilities":
        for index, name in enumerate(classes):
            submission[name] = probabilities[:, index]
        return submission[list(sample.columns)]
    target = next(column for column in sample.columns if column != id_column)
    if multi_label:
        labels = [" ".join(np.asarray(classes)[row >= threshold]) for row in probabilities]
    else:
        labels = [classes[i] for i in probabilities.argmax(axis=1)]
    submission[target] = _label_values(labels, sample[target])
    return submission


def validate_submission(submission: pd.DataFrame, sample: pd.DataFrame, *, id_column: str, fmt: str) -> None:
    """Raise SubmissionError for anything the competition would reject."""
    if list(submission.columns) != list(sample.columns):
        raise SubmissionError(f"columns {list(submission.columns)} differ from the sample's {list(sample.columns)}")
    if len(submission) != len(sample):
        raise SubmissionError(f"{len(submission)} rows but the sample submission has {len(sample)}")
    ids, expected = submission[id_column].astype(str), sample[id_column].astype(str)
    if ids.duplicated().any():
        raise SubmissionError(f"duplicate id '{ids[ids.duplicated()].iloc[0]}'")
    if set(ids) != set(expected):
        odd = sorted(set(ids) ^ set(expected))[0]
        raise SubmissionError(f"ids differ from the sample submission (e.g. '{odd}')")
    values = submission.drop(columns=[id_column])
    if values.isna().to_numpy().any():
        row, col = np.argwhere(values.isna().to_numpy())[0]
        raise SubmissionError(f"empty value in column '{values.columns[col]}' at row {row + 2}")
    if fmt == "probabilities":
        numbers = values.to_numpy(dtype=np.float64)
        if not np.isfinite(numbers).all() or (numbers < 0).any() or (numbers > 1).any():
            raise SubmissionError("probabilities must be finite numbers in [0, 1]")


LEDGER_COLUMNS = ["file", "time", "experiment", "cv", "public_lb"]


def read_ledger(output_dir: Path) -> pd.DataFrame:
    """`output_dir/submissions.csv`: every submission written, its CV, and its public LB once recorded."""
    path = output_dir / "submissions.csv"
    if not path.is_file():
        return pd.DataFrame(columns=LEDGER_COLUMNS)
    return pd.read_csv(path, dtype={"file": str, "experiment": str})


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


def kaggle_scores(competition: str) -> dict[str, float]:
    """File name -> public score from the kaggle CLI (installed and configured by the user)."""
    import subprocess

    if shutil.which("kaggle") is None:
        raise SubmissionError("the kaggle CLI is not installed (pip install kaggle) or not on PATH")
    result = subprocess.run(
        ["kaggle", "competitions", "submissions", "-c", competition, "--csv"], capture_output=True, text=True
    )
    if result.returncode != 0:
        raise SubmissionError(f"kaggle competitions submissions -c {competition}: {result.stderr.strip()[:200]}")
    frame = pd.read_csv(io.StringIO(result.stdout))
    scored = frame.dropna(subset=["publicScore"])
    return dict(zip(scored["fileName"], scored["publicScore"].astype(float), strict=True))


def _unique_path(folder: Path, stamp: str) -> Path:
    path, counter = folder / f"submission_{stamp}.csv", 1
    while path.exists():
        path, counter = folder / f"submission_{stamp}_{counter}.csv", counter + 1
    return path


def submit(config: Config, predictions: Path | None = None) -> tuple[Path, dict]:
    """Write a timestamped submission and `submission.csv` (latest); return its path and the run's metrics."""
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
    submission = create_task(config, classes).submission(sample, source)
    path = _unique_path(paths.submissions, datetime.now().strftime("%Y%m%d-%H%M%S"))
    write_csv(path, submission)
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
