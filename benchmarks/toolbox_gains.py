"""Measure what the toolbox adds on the detection and segmentation demos, each row scored on the same held-out
test set: mean single fold, fold ensemble, + TTA, a blend of two seeds with WBF against NMS (detection) or soft
against hard voting (segmentation), and one pseudo-label round from the better blend.
python benchmarks/toolbox_gains.py --task detection [--epochs N] [--dest DIR]   (about 25 minutes on 2 CPU cores)
    [--smoke]   (48 scenes, 2 folds x 2 epochs of 2 steps, no TTA, every box pseudo-labelled: checks it runs)
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

from _project import ProjectShell, demo_scale, demo_test_score, one_thread_when, print_gains, smoke_training
from podium.demo import DEMOS
from podium.render import create_project

BLENDS = {"detection": ("wbf", "nms"), "segmentation": ("soft", "hard")}
PSEUDO = {"detection": ["pseudo.threshold=0.7", "pseudo.uncertain=0.3"], "segmentation": ["pseudo.threshold=0.9"]}
SUFFIX = {"detection": ".csv", "segmentation": ".npz"}
# --smoke: an untrained model is sure of nothing; these thresholds take what it finds, so that the round runs.
SMOKE_PSEUDO = {"detection": ["pseudo.threshold=0.0", "pseudo.uncertain=0.0"], "segmentation": ["pseudo.threshold=0.0"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=sorted(BLENDS), default="detection")
    parser.add_argument("--epochs", type=int, default=None, help="default: the demo's")
    parser.add_argument("--dest", type=Path, default=None)
    parser.add_argument("--smoke", action="store_true", help="seconds a step: to check the benchmark runs")
    args = parser.parse_args()
    one_thread_when(args.smoke)
    with contextlib.ExitStack() as stack:
        dest = args.dest or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=f"podium-{args.task}-")))
        measure(args.task, 2 if args.smoke else args.epochs, dest, args.smoke, keep=args.dest is not None)


def measure(task: str, epochs: int | None, dest: Path, smoke: bool, keep: bool) -> None:
    demo = DEMOS[task]
    package = demo.answers["package_name"]
    started = time.perf_counter()
    project = dest / package
    if not (project / "data").is_dir():
        create_project(project, data=demo.answers, defaults=True, quiet=True)
        with demo_scale(smoke):
            demo.write(project / "data", dest / "holdout")
    holdout = dest / "holdout" / demo.holdout_file
    base = [*demo.full, *([f"train.epochs={epochs}"] if epochs else []), *smoke_training(demo.answers["task"], smoke)]
    outputs = project / "outputs"
    with ProjectShell(project, package, echo=True) as shell:

        def cli(*words: str) -> None:
            print("$ python -m", package, " ".join(words), flush=True)
            shell.cli(*words)

        def test_score(experiment: str, predictions: Path | None = None) -> float:
            """Submit a run's (or one prediction file's) test predictions and score them on the held-out labels,
            with the project's own readers and metrics (podium.demo_scoring)."""
            chosen = [f"submit.predictions={predictions}"] if predictions else []
            cli("submit", *base, f"experiment={experiment}", *chosen)
            return demo_test_score(shell, task, outputs / experiment / "submissions" / "submission.csv", holdout)

        if not (outputs / "seed0" / "folds.csv").is_file():
            cli("folds", *base, "experiment=seed0")
        shared = f"folds.path={outputs / 'seed0' / 'folds.csv'}"
        for seed in (0, 1):
            if not (outputs / f"seed{seed}" / "metrics.json").is_file():  # a re-run with --dest reuses training
                cli("train", *base, f"seed={seed}", f"experiment=seed{seed}", shared)
        rows: list[tuple[str, float]] = []
        cli("predict", *base, "experiment=seed0", shared, "predict.tta=[identity]")
        folds = sorted((outputs / "seed0" / "predictions").glob(f"test_fold_*{SUFFIX[task]}"))
        singles = [test_score("seed0", fold) for fold in folds]
        rows.append(("mean single fold", sum(singles) / len(singles)))
        rows.append((f"fold ensemble ({len(folds)} folds)", test_score("seed0")))
        for seed in (0, 1):
            cli("predict", *base, f"experiment=seed{seed}", shared)  # the demo's TTA views, kept if OOF holds
        chosen = json.loads((outputs / "seed0" / "tta.json").read_text())["chosen"]
        rows.append((f"+ TTA (kept on OOF: {', '.join(chosen)})", test_score("seed0")))
        members = f"ensemble.members=[{outputs / 'seed0'},{outputs / 'seed1'}]"
        blends = {}
        for method in BLENDS[task]:
            cli("ensemble", *base, f"experiment=blend-{method}", members, f"ensemble.method={method}")
            report = json.loads((outputs / f"blend-{method}" / "ensemble.json").read_text())
            blends[method] = report
            rows.append((f"seed blend, {method} (OOF {report['oof_score']:.4f})", test_score(f"blend-{method}")))
        best = max(blends, key=lambda method: blends[method]["oof_score"])
        pseudo_settings = SMOKE_PSEUDO[task] if smoke else PSEUDO[task]
        cli("pseudo", *base, f"experiment=blend-{best}", shared, "seed=0", *pseudo_settings)
        pseudo = json.loads((outputs / f"blend-{best}" / "pseudo.json").read_text())[0]
        rows.append((f"+ one pseudo-label round from the {best} blend (seed 0)", test_score(f"blend-{best}-pseudo1")))

    print_gains(f"{demo.answers['metric']} on {demo.title}, 2 seeds x {len(folds)} folds", rows, pseudo, blends)
    kept = f"; runs in {outputs}" if keep else ""
    print(f"  wall time {time.perf_counter() - started:.0f} s{kept}")
    (dest / "gains.json").write_text(json.dumps({"rows": dict(rows), "pseudo": pseudo, "blends": blends}, indent=2))


if __name__ == "__main__":
    main()
