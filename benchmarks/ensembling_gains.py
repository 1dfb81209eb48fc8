"""Measure what ensembling, TTA, weight averaging and pseudo-labelling add on the digits demo competition.

Every row is the held-out test accuracy of one way of predicting, from the same competition and folds:
mean single fold, fold ensemble, + TTA, + SWA, greedy soup, seed ensemble (3 seeds), + one pseudo-label round.
python benchmarks/ensembling_gains.py [--folds 5 --epochs 15] [--dest DIR]   (about 15 minutes on 2 CPU cores)
    [--smoke]   (300 digits, 2 folds x 2 epochs of 2 steps, 2 seeds, any confidence pseudo-labelled: checks it runs)
The runs stay in --dest (and a second run with the same --dest reuses their training); without it, in a temporary
folder removed at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import tempfile
import time
from pathlib import Path

import pandas as pd
from _project import ProjectShell, demo_scale, one_thread_when, print_gains, smoke_training
from podium.demo import COMMON_OVERRIDES, DEMO_ANSWERS, write_digits_competition
from podium.render import create_project

PACKAGE = DEMO_ANSWERS["package_name"]


def accuracy(predictions: Path, truth: pd.Series) -> float:
    frame = pd.read_csv(predictions, dtype={"id": str}).set_index("id")
    classes = [c for c in frame.columns if c != "fold"]
    predicted = frame.loc[truth.index, classes].to_numpy().argmax(axis=1)
    labels = pd.Series(classes).astype(int).to_numpy()[predicted]
    return float((labels == truth.to_numpy()).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--dest", type=Path, default=None)
    parser.add_argument("--smoke", action="store_true", help="seconds a step: to check the benchmark runs")
    args = parser.parse_args()
    one_thread_when(args.smoke)
    if args.smoke:
        args.folds, args.epochs = 2, 2
    with contextlib.ExitStack() as stack:
        dest = args.dest or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="podium-gains-")))
        measure(args.folds, args.epochs, dest, args.smoke, keep=args.dest is not None)


def measure(folds_count: int, epochs: int, dest: Path, smoke: bool, keep: bool) -> None:
    started = time.perf_counter()
    project = dest / PACKAGE
    if not (project / "data" / "train.csv").is_file():
        create_project(project, data=DEMO_ANSWERS, defaults=True, quiet=True)
        with demo_scale(smoke):
            write_digits_competition(project / "data", dest / "holdout")
    truth = pd.read_csv(dest / "holdout" / "test_labels.csv", dtype={"id": str}).set_index("id")["label"]
    swa_start = max(epochs * 2 // 3, 1)
    seeds = (0, 1) if smoke else (0, 1, 2)
    base = [
        *COMMON_OVERRIDES,
        f"folds.n_splits={folds_count}",
        f"train.epochs={epochs}",
        "train.swa=true",
        f"train.swa_start_epoch={swa_start}",
        "train.swa_lr=0.0005",
        *smoke_training(DEMO_ANSWERS["task"], smoke),
    ]
    # Label smoothing 0.1 over 10 classes caps a confident prediction near 0.91; a smoke run's model is confident
    # of nothing, so it takes every image to go through the round at all.
    threshold = 0.0 if smoke else 0.85
    outputs = project / "outputs"
    rows: list[tuple[str, float]] = []
    with ProjectShell(project, PACKAGE, echo=True) as shell:

        def cli(*words: str) -> None:
            print("$ python -m", PACKAGE, " ".join(words), flush=True)
            shell.cli(*words)

        if not (outputs / "seed0" / "folds.csv").is_file():
            cli("folds", *base, "experiment=seed0")
        shared = f"folds.path={outputs / 'seed0' / 'folds.csv'}"
        for seed in seeds:
            if not (outputs / f"seed{seed}" / "metrics.json").is_file():  # a re-run with --dest reuses training
                cli("train", *base, f"seed={seed}", f"experiment=seed{seed}", shared)
            cli("predict", *base, f"experiment=seed{seed}", shared)
        run = outputs / "seed0" / "predictions"
        folds = sorted(run.glob("test_fold_*.csv"))
        rows.append(("mean single fold", sum(accuracy(f, truth) for f in folds) / len(folds)))
        rows.append((f"fold ensemble ({len(folds)} folds)", accuracy(run / "test.csv", truth)))
        cli("predict", *base, "experiment=seed0", shared, "predict.tta=[identity,scale_0.9,scale_1.1]")
        rows.append(("+ TTA (identity, scale 0.9, scale 1.1)", accuracy(run / "test.csv", truth)))
        cli("predict", *base, "experiment=seed0", shared, "predict.checkpoints=[swa]")
        rows.append((f"+ SWA (epochs {swa_start + 1}-{epochs}), no TTA", accuracy(run / "test.csv", truth)))
        cli("soup", *base, "experiment=seed0", shared, "soup.checkpoints=[best,last,swa]", "soup.method=greedy")
        cli("predict", *base, "experiment=seed0", shared, "predict.checkpoints=[soup]")
        rows.append(("greedy soup of best, last, SWA", accuracy(run / "test.csv", truth)))
        members = ",".join(str(outputs / f"seed{s}") for s in seeds)
        cli("ensemble", *base, "experiment=seeds", shared, f"ensemble.members=[{members}]")
        blend = outputs / "seeds" / "predictions" / "test.csv"
        rows.append((f"seed ensemble ({len(seeds)} seeds x folds)", accuracy(blend, truth)))
        cli("pseudo", *base, "experiment=seeds", shared, f"pseudo.threshold={threshold}", "seed=0")
    pseudo_run = outputs / "seeds-pseudo1"
    rows.append(
        ("+ one pseudo-label round (retrained seed 0)", accuracy(pseudo_run / "predictions" / "test.csv", truth))
    )
    report = json.loads((outputs / "seeds" / "pseudo.json").read_text())[0]

    print_gains(f"accuracy on digits ({len(truth)} images), {folds_count} folds x {epochs} epochs", rows, report, {})
    kept = f"; runs in {outputs}" if keep else ""
    print(f"  wall time {time.perf_counter() - started:.0f} s{kept}")
    (dest / "gains.json").write_text(json.dumps({"rows": dict(rows), "pseudo": report}, indent=2))


if __name__ == "__main__":
    main()
