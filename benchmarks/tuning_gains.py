"""What `tune` finds on the demo competitions: the default config's CV and held-out test score, the best trial's
score on the tuned folds, the tuned config trained on every fold (CV and held-out test), the share of trials
pruned and the wall time of each step.

python benchmarks/tuning_gains.py [--tasks classification segmentation] [--trials 10] [--dest DIR]
(about 30 minutes on 2 CPU cores for both tasks)
    [--smoke]   (classification, 300 digits, 2 folds x 2 epochs of 2 steps, 2 trials: checks it runs)
The runs stay in --dest; without it, in a temporary folder removed at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import tempfile
import time
from pathlib import Path

import optuna
import yaml
from _project import SMOKE_TRAINING, ProjectShell, demo_scale, one_thread_when
from podium.demo import DEMOS, Demo
from podium.render import create_project

# Spaces for models trained from scratch on small images (the project's default space assumes ImageNet backbones).
SPACES = {
    "classification": {
        "train.lr": {"type": "float", "low": 5.0e-4, "high": 1.0e-2, "log": True},
        "train.weight_decay": {"type": "float", "low": 1.0e-5, "high": 0.1, "log": True},
        "train.batch_size": {"type": "categorical", "choices": [32, 64, 128]},
        "train.label_smoothing": {"type": "float", "low": 0.0, "high": 0.2},
        "model.drop_rate": {"type": "float", "low": 0.0, "high": 0.3},
        "train.mixup_alpha": {"type": "float", "low": 0.0, "high": 0.4},
    },
    "segmentation": {
        "train.lr": {"type": "float", "low": 1.0e-3, "high": 1.0e-2, "log": True},
        "train.weight_decay": {"type": "float", "low": 1.0e-5, "high": 1.0e-2, "log": True},
        "train.batch_size": {"type": "categorical", "choices": [8, 16, 32]},
        "train.warmup_epochs": {"type": "float", "low": 0.0, "high": 2.0},
    },
}
# Shorter than the demos' full runs where a run takes minutes; every trial validates each epoch so it can be pruned.
RUN_OVERRIDES = {"classification": ["folds.n_splits=5", "train.epochs=15"], "segmentation": ["train.epochs=8"]}
TUNE_OVERRIDES = ["tune.folds=[0]", "train.eval_every=1", "tune.startup_trials=3"]
SMOKE_OVERRIDES = ["folds.n_splits=2", "train.epochs=2", *SMOKE_TRAINING]


def measure(task: str, trials: int, dest: Path, smoke: bool = False) -> dict:
    demo = DEMOS[task]
    package = demo.answers["package_name"]
    project = dest / package
    create_project(project, data=dict(demo.answers), defaults=True, quiet=True)
    with demo_scale(smoke):
        demo.write(project / "data", dest / "holdout")
    holdout = dest / "holdout" / demo.holdout_file
    runs = SMOKE_OVERRIDES if smoke else RUN_OVERRIDES[task]
    base = [*[o for o in demo.full if not o.startswith("train.epochs")], *runs]
    with ProjectShell(project, package) as shell:
        return tune_and_score(shell, demo, base, trials, holdout)


def tune_and_score(shell: ProjectShell, demo: Demo, base: list[str], trials: int, holdout: Path) -> dict:
    project, package, task = shell.project, shell.package, demo.answers["task"]

    def cli(*words: str) -> str:
        print("$ python -m", package, " ".join(words), flush=True)
        return shell.cli(*words)

    def scored_run(*words: str) -> tuple[float, float, float, float]:
        started = time.perf_counter()
        cli("run", *words)
        run = project / "outputs" / ("tuned" if "tuned" in words else "baseline")
        metrics = json.loads((run / "metrics.json").read_text())
        score = demo.test_score(project, package, run / "submissions" / "submission.csv", holdout)
        score = score["score"] if isinstance(score, dict) else score
        return metrics["cv_mean"], metrics["cv_std"], float(score), time.perf_counter() - started

    default = scored_run(*base)
    space_file = project / "space.yaml"
    defaults_off = dict.fromkeys(yaml.safe_load((project / "configs" / "default.yaml").read_text())["tune"]["space"])
    space_file.write_text(yaml.safe_dump({"tune": {"space": {**defaults_off, **SPACES[task]}}}))
    started = time.perf_counter()
    cli("tune", "--config", str(space_file), *base, *TUNE_OVERRIDES, f"tune.n_trials={trials}")
    tune_seconds = time.perf_counter() - started
    study = optuna.load_study(
        study_name="baseline", storage=f"sqlite:///{project / 'outputs' / 'baseline' / 'tune' / 'study.db'}"
    )
    states = [trial.state for trial in study.trials]
    tuned = scored_run("-e", "tuned")  # the overlay holds the base's settings and the best trial's on top
    return {
        "default": default,
        "tuned": tuned,
        "best_trial_cv": study.best_value,
        "best_params": study.best_params,
        "trials": len(states),
        "pruned": sum(state == optuna.trial.TrialState.PRUNED for state in states),
        "tune_seconds": tune_seconds,
        "metric": "accuracy" if task == "classification" else "dice",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", nargs="+", default=["classification", "segmentation"])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--dest", type=Path, default=None)
    parser.add_argument("--smoke", action="store_true", help="seconds a step: to check the benchmark runs")
    args = parser.parse_args()
    one_thread_when(args.smoke)
    tasks, trials = (["classification"], 2) if args.smoke else (args.tasks, args.trials)
    with contextlib.ExitStack() as stack:
        dest = args.dest or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="podium-tuning-")))
        results = {task: measure(task, trials, dest / task, args.smoke) for task in tasks}
        (dest / "tuning.json").write_text(json.dumps(results, indent=2, default=str))
    print()
    print(f"{'task':<15}{'config':<30}{'CV':>18}{'test':>8}{'seconds':>9}")
    for task, result in results.items():
        for name in ("default", "tuned"):
            cv, std, test, seconds = result[name]
            label = "defaults (demo settings)" if name == "default" else "tuned, trained on all folds"
            print(f"{task:<15}{label:<30}{f'{cv:.4f} ± {std:.4f}':>18}{test:>8.4f}{seconds:>9.0f}")
        best, seconds = result["best_trial_cv"], result["tune_seconds"]
        print(
            f"{task:<15}{'best trial (fold 0)':<30}{best:>18.4f}{'':>8}{seconds:>9.0f}"
            f"   {result['pruned']}/{result['trials']} pruned; {result['best_params']}"
        )


if __name__ == "__main__":
    main()
