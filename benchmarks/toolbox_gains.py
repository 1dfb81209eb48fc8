"""Measure what the toolbox adds on the detection and segmentation demos, each row scored on the same held-out
test set: mean single fold, fold ensemble, + TTA, a blend of two seeds with WBF against NMS (detection) or soft
against hard voting (segmentation), and one pseudo-label round from the better blend.
python benchmarks/toolbox_gains.py --task detection [--epochs N] [--dest DIR]   (about 25 minutes on 2 CPU cores)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from podium.demo import DEMOS, _project_env
from podium.project import create_project

BLENDS = {"detection": ("wbf", "nms"), "segmentation": ("soft", "hard")}
PSEUDO = {"detection": ["pseudo.threshold=0.7", "pseudo.uncertain=0.3"], "segmentation": ["pseudo.threshold=0.9"]}
SUFFIX = {"detection": ".csv", "segmentation": ".npz"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--task", choices=sorted(BLENDS), default="detection")
    parser.add_argument("--epochs", type=int, default=None, help="default: the demo's")
    parser.add_argument("--dest", type=Path, default=None)
    args = parser.parse_args()
    demo = DEMOS[args.task]
    package = demo.answers["package_name"]
    dest = args.dest or Path(tempfile.mkdtemp(prefix=f"podium-toolbox-{args.task}-"))
    started = time.perf_counter()
    project = dest / package
    if not (project / "data").is_dir():
        create_project(project, data=demo.answers, defaults=True, quiet=True)
        demo.write(project / "data", dest / "holdout")
    holdout = dest / "holdout" / demo.holdout_file
    base = [*demo.full, *([f"train.epochs={args.epochs}"] if args.epochs else [])]
    outputs = project / "outputs"

    def cli(*words: str) -> None:
        print("$ python -m", package, " ".join(words), flush=True)
        subprocess.run([sys.executable, "-m", package, *words], cwd=project, env=_project_env(), check=True)

    def test_score(experiment: str, predictions: Path | None = None) -> float:
        """Submit a run's (or one prediction file's) test predictions and score them on the held-out labels."""
        chosen = [f"submit.predictions={predictions}"] if predictions else []
        cli("submit", *base, f"experiment={experiment}", *chosen)
        score = demo.test_score(project, package, outputs / experiment / "submissions" / "submission.csv", holdout)
        return float(score["score"] if isinstance(score, dict) else score)

    if not (outputs / "seed0" / "folds.csv").is_file():
        cli("folds", *base, "experiment=seed0")
    shared = f"folds.path={outputs / 'seed0' / 'folds.csv'}"
    for seed in (0, 1):
        if not (outputs / f"seed{seed}" / "metrics.json").is_file():  # a re-run with --dest reuses training
            cli("train", *base, f"seed={seed}", f"experiment=seed{seed}", shared)
    rows: list[tuple[str, float]] = []
    cli("predict", *base, "experiment=seed0", shared, "predict.tta=[identity]")
    folds = sorted((outputs / "seed0" / "predictions").glob(f"test_fold_*{SUFFIX[args.task]}"))
    singles = [test_score("seed0", fold) for fold in folds]
    rows.append(("mean single fold", sum(singles) / len(singles)))
    rows.append((f"fold ensemble ({len(folds)} folds)", test_score("seed0")))
    for seed in (0, 1):
        cli("predict", *base, f"experiment=seed{seed}", shared)  # the demo's TTA views, kept if OOF holds
    chosen = json.loads((outputs / "seed0" / "tta.json").read_text())["chosen"]
    rows.append((f"+ TTA (kept on OOF: {', '.join(chosen)})", test_score("seed0")))
    members = f"ensemble.members=[{outputs / 'seed0'},{outputs / 'seed1'}]"
    blends = {}
    for method in BLENDS[args.task]:
        cli("ensemble", *base, f"experiment=blend-{method}", members, f"ensemble.method={method}")
        report = json.loads((outputs / f"blend-{method}" / "ensemble.json").read_text())
        blends[method] = report
        rows.append((f"seed blend, {method} (OOF {report['oof_score']:.4f})", test_score(f"blend-{method}")))
    best = max(blends, key=lambda method: blends[method]["oof_score"])
    cli("pseudo", *base, f"experiment=blend-{best}", shared, "seed=0", *PSEUDO[args.task])
    pseudo = json.loads((outputs / f"blend-{best}" / "pseudo.json").read_text())[0]
    rows.append((f"+ one pseudo-label round from the {best} blend (seed 0)", test_score(f"blend-{best}-pseudo1")))

    width = max(len(name) for name, _ in rows)
    print(f"\nHeld-out test {demo.answers['metric']} on {demo.title}, 2 seeds x {len(folds)} folds")
    for name, value in rows:
        print(f"  {name:<{width}}  {value:.4f}")
    print(
        f"  pseudo round: {pseudo['selected']}/{pseudo['of']} test images labelled, "
        f"CV {pseudo['cv_before']:.4f} -> {pseudo['cv_after']:.4f}"
    )
    for method, report in blends.items():
        members_oof = ", ".join(f"{value:.4f}" for value in report["member_oof_scores"].values())
        print(f"  {method}: members' OOF {members_oof}, blend {report['oof_score']:.4f}, params {report['params']}")
    print(f"  wall time {time.perf_counter() - started:.0f} s; runs in {outputs}")
    (dest / "gains.json").write_text(json.dumps({"rows": dict(rows), "pseudo": pseudo, "blends": blends}, indent=2))


if __name__ == "__main__":
    main()
