"""`podium demo`: scikit-learn's digits as a Kaggle-format competition (digits to classify, or digits placed on
canvases to detect), scaffolded and run end to end."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from podium.errors import Interrupted, PodiumError

if TYPE_CHECKING:
    from rich.console import Console

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


def holdout_accuracy(submission: Path, holdout: Path) -> float:
    import pandas as pd

    # Labels compared as written (digits, or class names such as a public case's): read as text on both sides.
    predicted = pd.read_csv(submission, dtype=str).set_index("id")["label"]
    truth = pd.read_csv(holdout, dtype=str).set_index("id")["label"]
    return float((predicted.loc[truth.index].to_numpy() == truth.to_numpy()).mean())


DETECTION_ANSWERS: dict[str, Any] = {
    **DEMO_ANSWERS,
    "project_name": "Digit Scenes Demo",
    "package_name": "digit_scenes_demo",
    "task": "detection",
    "data_layout": "boxes_csv",
    "target_columns": "class",
    "box_columns": "bbox",
    "box_format": "xywh",
    "metric": "map50",
    "architecture": "fasterrcnn",
    "backbone": "resnet10t",  # timm's smallest ResNet under an FPN, trained from scratch
    "image_size": 64,
}
DETECTION_OVERRIDES = [
    "aug.train=configs/aug/detection_no_flip.yaml",  # digits are not flip-invariant
    "predict.tta=[identity,scale_1.2]",
    "data.num_workers=0",
    # A light two-stage detector: the RoI head classifies each digit crop, which a one-stage head trained from
    # scratch learns far more slowly (FCOS: mAP@.5 0.70 after 10 epochs, this: 0.94 after 5, in fold 0).
    "detection.fpn_channels=64",
    "detection.roi_head_channels=256",
    "detection.rpn_batch_size=64",
    "detection.roi_batch_size=64",
    "detection.out_indices=[1,2,3]",  # strides 4-16: digits are 16-24 px
    "detection.aspect_ratios=[1.0]",  # digits are square
    "train.batch_size=16",
    "train.lr=0.003",
    "train.weight_decay=0.0001",
    "train.warmup_epochs=1",
    "train.eval_every=8",  # validation costs as much as 2 epochs here: the last epoch only
    "folds.n_splits=2",
]
DETECTION_FULL = ["train.epochs=8"]
DETECTION_FAST = ["train.epochs=1", "train.max_steps_per_epoch=8"]
SCENE_SIZE = 64
SCENES = {"train": 1000, "test": 300}
DIGIT_SCALES = (2, 3)  # each 8 px digit is pasted this many times larger (16-24 px)


def _place_digits(
    canvas: Any, digit_images: Any, digit_labels: Any, rng: Any, count: int
) -> list[tuple[int, int, int, int, int]]:
    """Paste `count` digits, each scaled by one of DIGIT_SCALES, where they do not overlap; returns (x, y, w, h,
    label)."""
    import numpy as np

    boxes: list[tuple[int, int, int, int, int]] = []
    size = canvas.shape[0]
    for _ in range(count):
        index = int(rng.integers(len(digit_images)))
        scale = int(rng.integers(DIGIT_SCALES[0], DIGIT_SCALES[1] + 1))
        digit = np.kron(digit_images[index], np.ones((scale, scale)))
        side = digit.shape[0]
        for _ in range(30):
            x, y = (int(v) for v in rng.integers(0, size - side, 2))
            if all(x + side <= bx or bx + bw <= x or y + side <= by or by + bh <= y for bx, by, bw, bh, _ in boxes):
                canvas[y : y + side, x : x + side] = np.maximum(canvas[y : y + side, x : x + side], digit)
                boxes.append((x, y, side, side, int(digit_labels[index])))
                break
    return boxes


def _digit_pools() -> tuple[Any, dict[str, Any]]:
    """scikit-learn's digits and disjoint train/test index pools, so that test scenes hold unseen digits."""
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    indices = np.arange(len(digits.images))
    split = train_test_split(indices, test_size=TEST_SHARE, stratify=digits.target, random_state=SEED)
    return digits, dict(zip(("train", "test"), split, strict=True))


def write_scenes_competition(data_dir: Path, holdout_dir: Path) -> dict[str, int]:
    """Digit scenes: train.csv (id, bbox [x, y, w, h], class; one box per row), train/ and test/ PNGs,
    sample_submission.csv (id, PredictionString); the test boxes go to `holdout_dir`. Train and test scenes are
    built from disjoint digit images."""
    import numpy as np
    import pandas as pd
    from PIL import Image

    digits, pools = _digit_pools()
    rng = np.random.default_rng(SEED)
    tables: dict[str, list[dict[str, Any]]] = {"train": [], "test": []}
    for split, count in SCENES.items():
        folder = data_dir / split
        folder.mkdir(parents=True, exist_ok=True)
        pool = pools[split]
        for number in range(count):
            canvas = rng.normal(0.6, 0.3, (SCENE_SIZE, SCENE_SIZE)).clip(0, 16)  # faint background noise
            boxes = _place_digits(canvas, digits.images[pool], digits.target[pool], rng, int(rng.integers(1, 4)))
            image_id = f"{split}_{number:04d}"
            Image.fromarray((canvas * (255.0 / 16.0)).round().astype(np.uint8), mode="L").save(
                folder / f"{image_id}.png"
            )
            tables[split] += [
                {"id": image_id, "bbox": f"[{x}, {y}, {w}, {h}]", "class": label} for x, y, w, h, label in boxes
            ]
    pd.DataFrame(tables["train"]).to_csv(data_dir / "train.csv", index=False)
    test_ids = [f"test_{number:04d}" for number in range(SCENES["test"])]
    pd.DataFrame({"id": test_ids, "PredictionString": ""}).to_csv(data_dir / "sample_submission.csv", index=False)
    holdout_dir.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(tables["test"]).to_csv(holdout_dir / "test_boxes.csv", index=False)
    return {"train": SCENES["train"], "test": SCENES["test"]}


def holdout_map50(project: Path, package: str, submission: Path, holdout: Path) -> float:
    return _score_in_project(project, "detection", package, submission, holdout)


def _score_in_project(project: Path, task: str, package: str, submission: Path, holdout: Path) -> Any:
    """Score with the rendered project's own readers and metrics (podium.demo_scoring, run in the project); its
    last printed line (a number or a JSON mapping with a "score") is the result."""
    result = subprocess.run(
        [sys.executable, "-m", "podium.demo_scoring", task, package, str(submission), str(holdout)],
        cwd=project,
        env=_project_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise PodiumError(f"scoring the held-out labels failed: {result.stderr.strip().splitlines()[-1]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


SEGMENTATION_ANSWERS: dict[str, Any] = {
    **DEMO_ANSWERS,
    "project_name": "Digit Masks Demo",
    "package_name": "digit_masks_demo",
    "task": "segmentation",
    "data_layout": "masks",
    "masks_dir": "masks",
    "mask_values": "index",
    "rle_column": "EncodedPixels",
    "target_columns": "ClassId",
    "segmentation_mode": "multiclass",
    "segmentation_architecture": "Unet",
    "metric": "dice",
    "backbone": "resnet10t",
    "image_size": 64,
}
SEGMENTATION_OVERRIDES = [
    "aug.train=configs/aug/no_flip.yaml",  # digits are not flip-invariant
    "predict.tta=[identity,scale_1.5]",
    "data.num_workers=0",
    "data.classes=['0','1','2','3','4','5','6','7','8','9']",  # mask value k+1 is digit k
    "segmentation.decoder_channels=[64,32,32,16,16]",
    "train.batch_size=16",
    "train.lr=0.003",
    "train.weight_decay=0.0001",
    "train.warmup_epochs=1",
    "train.eval_every=10",
    "folds.n_splits=2",
]
SEGMENTATION_FULL = ["train.epochs=20"]
SEGMENTATION_FAST = ["train.epochs=1", "train.max_steps_per_epoch=8"]


def write_masks_competition(data_dir: Path, holdout_dir: Path) -> dict[str, int]:
    """Digit masks: train/ and test/ PNG scenes, masks/ index PNGs (0 background, k+1 digit k on the digit's
    strokes), sample_submission.csv (id, ClassId, EncodedPixels: a row per test image and digit); the test
    masks go to `holdout_dir`."""
    import numpy as np
    import pandas as pd
    from PIL import Image

    digits, pools = _digit_pools()
    rng = np.random.default_rng(SEED)
    (data_dir / "masks").mkdir(parents=True, exist_ok=True)
    (holdout_dir / "masks").mkdir(parents=True, exist_ok=True)
    for split, count in SCENES.items():
        folder = data_dir / split
        folder.mkdir(parents=True, exist_ok=True)
        pool = pools[split]
        for number in range(count):
            canvas = rng.normal(0.6, 0.3, (SCENE_SIZE, SCENE_SIZE)).clip(0, 16)
            placed = np.zeros_like(canvas)
            boxes = _place_digits(placed, digits.images[pool], digits.target[pool], rng, int(rng.integers(1, 4)))
            mask = np.zeros(canvas.shape, np.uint8)
            for x, y, w, h, label in boxes:
                strokes = placed[y : y + h, x : x + w] > 4  # the digit's ink, not its box
                mask[y : y + h, x : x + w][strokes] = label + 1
            image_id = f"{split}_{number:04d}"
            image = (np.maximum(canvas, placed) * (255.0 / 16.0)).round().astype(np.uint8)
            Image.fromarray(image, mode="L").save(folder / f"{image_id}.png")
            masks_folder = data_dir / "masks" if split == "train" else holdout_dir / "masks"
            Image.fromarray(mask).save(masks_folder / f"{image_id}.png")
    rows = [
        {"id": f"test_{n:04d}", "ClassId": str(d), "EncodedPixels": ""}
        for n in range(SCENES["test"])
        for d in range(10)
    ]
    pd.DataFrame(rows).to_csv(data_dir / "sample_submission.csv", index=False)
    return {"train": SCENES["train"], "test": SCENES["test"]}


def holdout_dice(project: Path, package: str, submission: Path, holdout: Path) -> dict[str, float]:
    return _score_in_project(project, "segmentation", package, submission, holdout.parent)


@dataclass(frozen=True)
class Demo:
    """One task's demo: its answers, run overrides, competition writer, test scorer and an optional baseline."""

    answers: dict[str, Any]
    full: list[str]
    fast: list[str]
    write: Callable[[Path, Path], dict[str, int]]
    holdout_file: str
    test_score: Callable[[Path, str, Path, Path], Any]  # a score, or a mapping with "score" and more figures
    baseline: tuple[str, Callable[[Path, Path], float]] | None
    title: str


DEMOS = {
    "classification": Demo(
        DEMO_ANSWERS,
        COMMON_OVERRIDES + FULL_OVERRIDES,
        COMMON_OVERRIDES + FAST_OVERRIDES,
        write_digits_competition,
        "test_labels.csv",
        lambda project, package, submission, holdout: holdout_accuracy(submission, holdout),
        ("RBF SVC on pixels, same folds", svc_baseline),
        "digits",
    ),
    "detection": Demo(
        DETECTION_ANSWERS,
        DETECTION_OVERRIDES + DETECTION_FULL,
        DETECTION_OVERRIDES + DETECTION_FAST,
        write_scenes_competition,
        "test_boxes.csv",
        holdout_map50,
        None,
        "digit scenes",
    ),
    "segmentation": Demo(
        SEGMENTATION_ANSWERS,
        SEGMENTATION_OVERRIDES + SEGMENTATION_FULL,
        SEGMENTATION_OVERRIDES + SEGMENTATION_FAST,
        write_masks_competition,
        "masks",
        holdout_dice,
        None,
        "digit masks",
    ),
}


def _project_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {"HF_HUB_OFFLINE": "1", "NO_ALBUMENTATIONS_UPDATE": "1", "WANDB_MODE": "disabled", "PYTHONUNBUFFERED": "1"}
    )
    return env


def run_demo(dest: Path, *, task: str = "classification", fast: bool = False, force: bool = False) -> dict[str, Any]:
    """Make the competition, render a project for it, run `python -m <package> run`, print and save a summary."""
    dest = dest.expanduser().resolve()
    try:
        return _run_demo(dest, task=task, fast=fast, force=force)
    except (KeyboardInterrupt, Interrupted):
        raise Interrupted(_resume_hint(dest, task, fast)) from None


def _resume_hint(dest: Path, task: str, fast: bool) -> str:
    """How to go on after Ctrl-C: start over, or (once the project exists) resume its training."""
    demo = DEMOS[task]
    package = demo.answers["package_name"]
    project = dest / package
    again = f"podium demo {shlex.quote(str(dest))} --task {task}{' --fast' if fast else ''} --force"
    hint = f"interrupted; start the demo again with `{again}`"
    if (project / "outputs").is_dir():  # the pipeline had started: its finished folds can be kept
        resume = f"cd {shlex.quote(str(project))} && python -m {package} run -e {OVERLAY} --resume"
        hint += f", or resume its training: {resume}"
    return hint


OVERLAY = "demo"  # configs/experiment/demo.yaml: the settings the demo trains with, in the project's own configs


def write_overlay(project: Path, overrides: list[str]) -> Path:
    """The demo's `key=value` settings as an experiment overlay committed in the project, so that `run -e demo`
    trains what the demo trained and every later command (predict, ensemble, analyze) reads the same settings.
    Its runs go to outputs/baseline, the folder a command without -e reads."""
    import yaml

    settings: dict[str, Any] = {"experiment": "baseline"}
    for override in overrides:
        key, _, value = override.partition("=")
        *parents, leaf = key.split(".")
        node = settings
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(value)
    path = project / "configs" / "experiment" / f"{OVERLAY}.yaml"
    header = f"# The settings `podium demo` trained with: python -m {project.name} run -e {OVERLAY}\n"
    path.write_text(header + yaml.safe_dump(settings, sort_keys=False))
    from podium.git import GIT_IDENTITY

    for command in (["add", str(path.relative_to(project))], ["commit", "-q", "-m", "The demo's settings"]):
        subprocess.run(["git", *GIT_IDENTITY, *command], cwd=project, check=True, capture_output=True)
    return path


def print_summary(summary: dict[str, Any], title: str, summary_file: Path, console: Console | None = None) -> None:
    """The demo's figures as a table, then the paths a user goes on with, each whole on its own line: a table cell
    at 80 columns would cut them ("submissions/submi…")."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    table = Table(title=f"podium demo: {title}")
    table.add_column("")
    table.add_column("value", justify="right")
    metric = summary["metric"]
    table.add_row(f"CV {metric} ({summary['n_folds']} folds)", f"{summary['cv_mean']:.4f} ± {summary['cv_std']:.4f}")
    if "oof_score_tuned" in summary:
        table.add_row("OOF after tuning thresholds and minimum areas", f"{summary['oof_score_tuned']:.4f}")
    if "baseline" in summary:
        table.add_row(f"baseline: {summary['baseline']['name']}", f"{summary['baseline']['cv_mean']:.4f}")
    table.add_row(f"test {metric} (held-out labels)", f"{summary['test_score']:.4f}")
    for key, value in summary.get("test_details", {}).items():
        table.add_row(f"test {key.replace('_', ' ')}", f"{value:.4f}")
    table.add_row("wall time", f"{summary['seconds']:.0f} s")
    console.print(table)
    for name, path in (
        ("submission", summary["submission"]),
        ("project", summary["project_dir"]),
        ("summary", summary_file),
    ):
        _print_line(console, f"{name}: {path}")


def _print_line(console: Console, text: str) -> None:
    """One line as it is: no markup, no highlighting, never folded at the console's width (a path stays whole)."""
    console.print(text, markup=False, highlight=False, soft_wrap=True)


def _run_demo(dest: Path, *, task: str, fast: bool, force: bool) -> dict[str, Any]:
    from rich.console import Console

    from podium.render import create_project
    from podium.runs_io import write_json_atomic

    console = Console()
    if dest.exists() and any(dest.iterdir()):
        if not force:
            raise PodiumError(f"{dest} is not empty; choose an empty folder or pass --force")
        shutil.rmtree(dest)
    started = time.perf_counter()
    demo = DEMOS[task]
    package = demo.answers["package_name"]
    project = dest / package
    _print_line(console, f"podium demo: rendering {project}")
    create_project(project, data=dict(demo.answers), defaults=True, quiet=True)
    counts = demo.write(project / "data", dest / "holdout")
    console.print(
        f"competition: {counts['train']} train and {counts['test']} test images made from scikit-learn's digits"
    )
    write_overlay(project, demo.fast if fast else demo.full)
    command = [sys.executable, "-m", package, "run", "-e", OVERLAY]
    _print_line(console, f"running: cd {shlex.quote(str(project))} && python -m {package} run -e {OVERLAY}")
    result = subprocess.run(command, cwd=project, env=_project_env(), check=False)
    if result.returncode != 0:
        raise PodiumError(f"the project pipeline failed (exit {result.returncode}); see its output above")
    run_dir = project / "outputs" / "baseline"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    submission = run_dir / "submissions" / "submission.csv"
    summary: dict[str, Any] = {
        "task": task,
        "metric": metrics["metric"],
        "cv_mean": metrics["cv_mean"],
        "cv_std": metrics["cv_std"],
        "oof_score": metrics["oof_score"],
        "n_folds": len(metrics["folds"]),
        **({"oof_score_tuned": metrics["oof_score_tuned"]} if "oof_score_tuned" in metrics else {}),
        "submission": str(submission),
        "project_dir": str(project),
        "fast": fast,
    }
    scored = demo.test_score(project, package, submission, dest / "holdout" / demo.holdout_file)
    summary["test_score"] = float(scored["score"] if isinstance(scored, dict) else scored)
    if isinstance(scored, dict):
        summary["test_details"] = {key: value for key, value in scored.items() if key != "score"}
    if demo.baseline is not None:
        name, score = demo.baseline
        summary["baseline"] = {"name": name, "cv_mean": score(project / "data", run_dir / "folds.csv")}
    summary["seconds"] = round(time.perf_counter() - started, 1)
    write_json_atomic(dest / "summary.json", summary)
    print_summary(summary, demo.title, dest / "summary.json", console)
    return summary
