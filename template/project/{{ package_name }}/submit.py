"""Submission: predictions in the sample submission's columns and id order, validated, never overwritten."""

from __future__ import annotations

import io
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd

from .config import Config
from .core.console import cv_text
from .core.data import check_test_ids, read_sample_submission, read_test_table
from .core.errors import SubmissionError
from .core.ledger import read_ledger
from .core.runs import RunPaths, atomic_path, read_json, run_lock, validation_score, write_csv
from .settings import require_valid_settings
from .tasks import SPEC, create_task


def _append_ledger(output_dir: Path, row: dict) -> None:
    ledger = read_ledger(output_dir)
    write_csv(output_dir / "submissions.csv", pd.concat([ledger, pd.DataFrame([row])], ignore_index=True))


LATEST = "submission.csv"  # the copy of the latest submission `submit` writes beside the timestamped files


def _ledger_match(ledger: pd.DataFrame, submission: str) -> pd.Series:
    """The ledger rows `submission` names: by path or file name; `submission.csv` (`submit`'s copy of its latest,
    alone or in a run's submissions folder) is the latest submission of the ledger (of that folder)."""
    files = ledger["file"].astype(str)
    named = (files == submission) | (files.map(lambda f: Path(f).name) == Path(submission).name)
    if named.any() or Path(submission).name != LATEST or ledger.empty:
        return named
    folder = Path(submission).parent
    if folder != Path("."):
        in_folder = files.map(lambda f: Path(f).parent.resolve() == folder.resolve())
        files = files[in_folder]
    return pd.Series(ledger.index == files.index[-1], index=ledger.index) if len(files) else named


def record_lb(output_dir: Path, submission: str, score: float) -> str:
    """Set the public LB score of a submission in the ledger (matched by path or file name, `submission.csv` is the
    latest); returns the file it was recorded for."""
    ledger = read_ledger(output_dir)
    match = _ledger_match(ledger, submission)
    if not match.any():
        raise SubmissionError(f"{output_dir / 'submissions.csv'}: no submission '{submission}' (run submit first)")
    ledger.loc[match, "public_lb"] = score
    write_csv(output_dir / "submissions.csv", ledger)
    return str(ledger.loc[match, "file"].iloc[-1])


def _kaggle(*words: str, extras: tuple[str, ...] = ()) -> str:
    """Run the kaggle CLI (installed and configured by the user: ~/.kaggle/kaggle.json or KAGGLE_USERNAME and
    KAGGLE_KEY) without its out-of-date warning, which it prints into the output; its output, or one line saying what
    failed. An older CLI without --no-warn or the `extras` options runs the command without them."""
    import subprocess

    if shutil.which("kaggle") is None:
        raise SubmissionError("the kaggle CLI is not installed (pip install kaggle) or not on PATH")
    result = subprocess.run(["kaggle", "--no-warn", *words, *extras], capture_output=True, text=True)
    if result.returncode != 0 and "unrecognized arguments" in result.stderr:  # argparse: an option it lacks
        result = subprocess.run(["kaggle", *words], capture_output=True, text=True)
    if result.returncode != 0:
        reason = " ".join((result.stderr.strip() or result.stdout.strip()).split())[:200]
        raise SubmissionError(f"kaggle {' '.join(words[:4])}: {reason or f'exit code {result.returncode}'}")
    return result.stdout


def kaggle_message(config: Config, metrics: dict) -> str:
    """What the leaderboard shows beside a submission: the run and its CV."""
    return f"{config.experiment}: {config.model.backbone}, {cv_text(metrics)}"


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


# `kaggle competitions submissions` lists 20 rows unless given --page-size (at most 200) and --page-token, options
# of the kaggle CLI since 1.8. Its other list commands print the next page's token as below; for submissions
# kaggle 1.8 prints none, so lb follows a token when one is printed and otherwise has the latest 200.
PAGE_SIZE = 200
NEXT_PAGE = "Next Page Token = "


def _submissions_page(text: str, competition: str) -> tuple[pd.DataFrame, str | None]:
    """One page of `kaggle competitions submissions --csv` and the token of the next (printed when there is one)."""
    lines = text.splitlines()
    token = next((line.removeprefix(NEXT_PAGE).strip() for line in lines if line.startswith(NEXT_PAGE)), None)
    start = next((i for i, line in enumerate(lines) if line.startswith("fileName,")), None)
    if start is None:
        if "no submissions" in text.lower():
            return pd.DataFrame(columns=["fileName", "publicScore"]), None
        first = next((line.strip() for line in lines if line.strip()), "no output")
        raise SubmissionError(f"kaggle competitions submissions -c {competition}: no CSV in its output ({first[:120]})")
    rows = [line for line in lines[start:] if line and not line.startswith(NEXT_PAGE)]
    return pd.read_csv(io.StringIO("\n".join(rows)), dtype={"fileName": str}), token or None


def kaggle_submissions(competition: str, max_pages: int = 50) -> pd.DataFrame:
    """Every submission the kaggle CLI lists for `competition`, newest first, page after page of 200 (an older CLI
    without --page-size lists its latest 20)."""
    pages, token = [], None
    for _ in range(max_pages):
        extras = (f"--page-size={PAGE_SIZE}", *((f"--page-token={token}",) if token else ()))
        page, token = _submissions_page(
            _kaggle("competitions", "submissions", "-c", competition, "--csv", extras=extras), competition
        )
        pages.append(page)
        if not token or page.empty:
            break
    return pd.concat(pages, ignore_index=True)


def kaggle_scores(competition: str) -> dict[str, float]:
    """File name -> public score from the kaggle CLI (a file uploaded twice: its latest score)."""
    frame = kaggle_submissions(competition)
    frame = frame.assign(publicScore=pd.to_numeric(frame["publicScore"], errors="coerce"))
    frame = frame.dropna(subset=["publicScore"])  # pending, failed
    frame = frame.drop_duplicates("fileName", keep="first")  # the CLI lists the newest first
    return dict(zip(frame["fileName"], frame["publicScore"].astype(float), strict=True))


@dataclass
class KaggleSync:
    recorded: dict[str, float]  # ledger file name -> public score set
    listed: int  # scored submissions the CLI listed
    unknown: list[str]  # scored file names the ledger does not hold (uploaded by hand, or from elsewhere)


def record_kaggle_scores(output_dir: Path, competition: str) -> KaggleSync:
    """Fill the ledger's public LB of every submission the kaggle CLI lists with a score, by file name."""
    scores = kaggle_scores(competition)
    ledger = read_ledger(output_dir)
    names = ledger["file"].astype(str).map(lambda f: Path(f).name)
    known = names.isin(list(scores))
    if known.any():
        ledger.loc[known, "public_lb"] = names[known].map(scores)
        write_csv(output_dir / "submissions.csv", ledger)
    recorded = {name: scores[name] for name in names[known]}
    return KaggleSync(recorded, len(scores), sorted(set(scores) - set(names)))


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
    sample = read_sample_submission(data, per_class=SPEC.sample_rows_per_class)
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
            "cv": validation_score(metrics),
            "public_lb": None,
        },
    )
    return path, metrics
