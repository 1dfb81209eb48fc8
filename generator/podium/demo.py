"""`podium demo`: scikit-learn's digits as a Kaggle-format competition, scaffolded and run end to end."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from podium.errors import PodiumError

DEMO_ANSWERS: dict[str, Any] = {
    "project_name": "Digits Demo",
    "package_name": "digits_demo",
    "task": "classification",
    "data_layout": "csv",
    "id_column": "id",
    "target_columns": "label",
    "label_mode": "single_label",
    "metric": "accuracy",
    "backbone": "test_resnet",  # timm's tiny ResNet: from scratch, 8x8 digits need no ImageNet features
    "pretrained": False,  # nothing is downloaded in the demo
    "image_size": 32,
    "wandb_mode": "disabled",
}
# Digits are not flip-invariant: geometric jitter without flips, and no flip TTA.
COMMON_OVERRIDES = [
    "aug.train=configs/aug/no_flip.yaml",
    "predict.tta=[identity]",
    "data.num_workers=0",
    "train.batch_size=64",
    "train.lr=0.002",
    "train.warmup_epochs=1",
    "train.label_smoothing=0.1",
]
FULL_OVERRIDES = ["folds.n_splits=5", "train.epochs=15"]
FAST_OVERRIDES = ["folds.n_splits=2", "train.epochs=6"]
TEST_SHARE = 0.2
SEED = 0


def write_digits_competition(data_dir: Path, holdout_dir: Path) -> dict[str, int]:
    """train.csv + train/*.png, test/*.png, sample_submission.csv; the test labels go to `holdout_dir`."""
    import numpy as np
    import pandas as pd
    from PIL import Image
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = (digits.images * (255.0 / 16.0)).round().astype(np.uint8)
    ids = np.array([f"{i:05d}" for i in np.random.default_rng(SEED).permutation(len(images))])
    train_index, test_index = train_test_split(
        np.arange(len(images)), test_size=TEST_SHARE, stratify=digits.target, random_state=SEED
    )
    for split, index in (("train", train_index), ("test", test_index)):
        folder = data_dir / split
        folder.mkdir(parents=True, exist_ok=True)
        for i in index:
            Image.fromarray(images[i], mode="L").save(folder / f"{ids[i]}.png")
    pd.DataFrame({"id": ids[train_index], "label": digits.target[train_index]}).to_csv(
        data_dir / "train.csv", index=False
    )
    test_order = np.sort(ids[test_index])
    pd.DataFrame({"id": test_order, "label": 0}).to_csv(data_dir / "sample_submission.csv", index=False)
    holdout_dir.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"id": ids[test_index], "label": digits.target[test_index]}).sort_values("id").to_csv(
        holdout_dir / "test_labels.csv", index=False
    )
    return {"train": len(train_index), "test": len(test_index)}


def svc_baseline(data_dir: Path, folds_file: Path) -> float:
    """An RBF SVC's accuracy on the pixels over the project's own folds (the classic digits baseline)."""
    import numpy as np
    import pandas as pd
    from PIL import Image
    from sklearn.model_selection import PredefinedSplit, cross_val_score
    from sklearn.svm import SVC

    train = pd.read_csv(data_dir / "train.csv", dtype={"id": str})
    folds = pd.read_csv(folds_file, dtype={"id": str}).set_index("id").loc[train["id"], "fold"].to_numpy()
    pixels = np.stack(
        [np.asarray(Image.open(data_dir / "train" / f"{i}.png"), dtype=np.float64).ravel() for i in train["id"]]
    )
    scores = cross_val_score(
        SVC(kernel="rbf", gamma="scale"), pixels / 255.0, train["label"], cv=PredefinedSplit(folds)
    )
    return float(scores.mean())


def test_accuracy(submission: Path, holdout: Path) -> float:
    import pandas as pd

    predicted = pd.read_csv(submission, dtype={"id": str}).set_index("id")["label"]
    truth = pd.read_csv(holdout, dtype={"id": str}).set_index("id")["label"]
    return float((predicted.loc[truth.index].astype(int).to_numpy() == truth.to_numpy()).mean())


def _project_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {"HF_HUB_OFFLINE": "1", "NO_ALBUMENTATIONS_UPDATE": "1", "WANDB_MODE": "disabled", "PYTHONUNBUFFERED": "1"}
    )
    return env


def run_demo(dest: Path, *, task: str = "classification", fast: bool = False, force: bool = False) -> dict[str, Any]:
    """Make the competition, render a project for it, run `python -m <package> run`, print and save a summary."""
    from rich.console import Console
    from rich.table import Table

    from podium.project import create_project
    from podium.runs_io import write_json_atomic

    console = Console()
    dest = dest.expanduser().resolve()
    if dest.exists() and any(dest.iterdir()):
        if not force:
            raise PodiumError(f"{dest} is not empty; choose an empty folder or pass --force")
        shutil.rmtree(dest)
    started = time.perf_counter()
    package = DEMO_ANSWERS["package_name"]
    project = dest / package
    console.print(f"[bold]podium demo[/bold]: rendering {project}")
    create_project(project, data={**DEMO_ANSWERS, "task": task}, defaults=True, quiet=True)
    counts = write_digits_competition(project / "data", dest / "holdout")
    console.print(f"competition: {counts['train']} train and {counts['test']} test images of scikit-learn's digits")
    overrides = COMMON_OVERRIDES + (FAST_OVERRIDES if fast else FULL_OVERRIDES)
    command = [sys.executable, "-m", package, "run", *overrides]
    console.print(f"running: cd {project} && python -m {package} run {' '.join(overrides)}", markup=False)
    result = subprocess.run(command, cwd=project, env=_project_env(), check=False)
    if result.returncode != 0:
        raise PodiumError(f"the project pipeline failed (exit {result.returncode}); see its output above")
    run_dir = project / "outputs" / "baseline"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    submission = run_dir / "submissions" / "submission.csv"
    summary = {
        "task": task,
        "metric": metrics["metric"],
        "cv_mean": metrics["cv_mean"],
        "cv_std": metrics["cv_std"],
        "oof_score": metrics["oof_score"],
        "n_folds": len(metrics["folds"]),
        "test_score": test_accuracy(submission, dest / "holdout" / "test_labels.csv"),
        "baseline": {
            "name": "RBF SVC on pixels, same folds",
            "cv_mean": svc_baseline(project / "data", run_dir / "folds.csv"),
        },
        "submission": str(submission),
        "project_dir": str(project),
        "fast": fast,
        "seconds": round(time.perf_counter() - started, 1),
    }
    write_json_atomic(dest / "summary.json", summary)
    table = Table(title="podium demo: digits")
    table.add_column("")
    table.add_column("value", justify="right")
    table.add_row(
        f"CV {summary['metric']} ({summary['n_folds']} folds)", f"{summary['cv_mean']:.4f} ± {summary['cv_std']:.4f}"
    )
    table.add_row(f"baseline: {summary['baseline']['name']}", f"{summary['baseline']['cv_mean']:.4f}")
    table.add_row(f"test {summary['metric']} (held-out labels)", f"{summary['test_score']:.4f}")
    table.add_row("submission", str(submission))
    table.add_row("wall time", f"{summary['seconds']:.0f} s")
    console.print(table)
    console.print(f"summary: {dest / 'summary.json'}")
    return summary
