"""Bad inputs and run-integrity faults, one table: each row is one clear line naming the file, row or key, and
leaves nothing partial behind. Rows run on the project's own task."""

from __future__ import annotations

import fcntl
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from ..cli import app
from ..config import load_config
from .conftest import PROJECT_ROOT, TASK, WRITERS, task_overrides


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def snapshot(folder: Path, locks: str = "bytes") -> dict[str, tuple[int, bytes]]:
    """Every file under `folder` with its modification time and bytes. Lock files: `bytes` compares what they say
    (a stage may hold the run while it finds a data fault, and release it), `times` also when they were written
    (a stage refusing its settings must not even take the lock), `skip` leaves them out."""
    if not folder.is_dir():
        return {}
    found = {}
    for path in folder.rglob("*"):
        if not path.is_file() or (path.name == ".lock" and locks == "skip"):
            continue
        written = 0 if path.name == ".lock" and locks == "bytes" else path.stat().st_mtime_ns
        found[str(path.relative_to(folder))] = (written, path.read_bytes())
    return found


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One fast-dev training and prediction of the project's task, copied by each test that needs it."""
    os.chdir(PROJECT_ROOT)
    root = tmp_path_factory.mktemp("trained")
    WRITERS[TASK](root / "data")
    overrides = task_overrides(root / "data", root / "outputs")
    for stage in (["folds"], ["train"], ["predict"]):
        result = invoke(*stage, *overrides)
        assert result.exit_code == 0, result.output
    return root


@pytest.fixture
def run_copy(trained_run: Path, tmp_path: Path) -> Path:
    shutil.copytree(trained_run, tmp_path / "copy")
    return tmp_path / "copy"


@dataclass(frozen=True)
class Case:
    name: str
    args: list[str]  # the command and its extra overrides; the task's fast-dev overrides are added
    message: str  # a regular expression the one error line must match
    tasks: tuple[str, ...] = ("classification", "detection", "segmentation")
    prepare: Callable[[Path], None] | None = None  # changes the competition or run copy (root) first
    trained: bool = False  # start from a trained run (else only the competition's files)
    hold_lock: bool = False  # another process holds the run folder
    exit_code: int = 2
    marks: list = field(default_factory=list)

    def arguments(self, root: Path) -> list[str]:
        """The command's extra arguments; `{root}` names the competition and run copy."""
        return [arg.replace("{root}", str(root)) for arg in self.args[1:]]


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def truncate_images(root: Path) -> None:
    _truncate(sorted((root / "data" / "train").glob("*.png"))[1])
    _truncate(sorted((root / "data" / "test").glob("*.png"))[0])


def remove(relative: str) -> Callable[[Path], None]:
    def prepare(root: Path) -> None:
        target = root / relative
        shutil.rmtree(target) if target.is_dir() else target.unlink()

    return prepare


def sample_ids_with_duplicate(root: Path) -> None:
    sample = pd.read_csv(root / "data" / "sample_submission.csv", dtype=str, keep_default_na=False)
    pd.concat([sample, sample.iloc[:1]]).to_csv(root / "data" / "sample_submission.csv", index=False)


def header_only_boxes(root: Path) -> None:
    (root / "data" / "train.csv").write_text("id,bbox,class,source\n")


def empty_coco(root: Path) -> None:
    (root / "data" / "annotations.json").write_text('{"images": [], "annotations": [], "categories": []}')


def mask_with_255(root: Path) -> None:
    from PIL import Image

    path = sorted((root / "data" / "masks").glob("*.png"))[3]
    mask = np.array(Image.open(path))
    mask[:2, :2] = 255  # a stray value beside the class indices
    Image.fromarray(mask).save(path)


def empty_label_missing_and_truncated_image(root: Path) -> None:
    """Three faults at once: `check` must report them all, not stop at the label."""
    labels = pd.read_csv(root / "data" / "train.csv", dtype=str, keep_default_na=False)
    labels.loc[3, "label"] = ""
    labels.to_csv(root / "data" / "train.csv", index=False)
    (root / "data" / "train" / "tr005.png").unlink()
    _truncate(root / "data" / "train" / "tr007.png")


def two_malformed_box_rows(root: Path) -> None:
    boxes = pd.read_csv(root / "data" / "train.csv", dtype=str, keep_default_na=False)
    boxes.loc[1, "bbox"] = "[1, 2, three, 4]"
    boxes.loc[4, "bbox"] = "[1, 2, 3]"
    boxes.to_csv(root / "data" / "train.csv", index=False)


def class_name_with_a_space(root: Path) -> None:
    boxes = pd.read_csv(root / "data" / "train.csv", dtype=str, keep_default_na=False)
    boxes["class"] = boxes["class"].replace({"red": "red box"})
    boxes.to_csv(root / "data" / "train.csv", index=False)


def sample_with_other_columns(root: Path) -> None:
    sample = pd.read_csv(root / "data" / "sample_submission.csv", dtype=str, keep_default_na=False)
    sample.assign(cat=0.5, dog=0.5)[["id", "cat", "dog"]].to_csv(root / "data" / "sample_submission.csv", index=False)


def empty_prediction_file(root: Path) -> None:
    (root / "empty.csv").write_text("")
    (root / "empty.npz").write_text("")  # segmentation reads maps from the .npz beside the CSV


def empty_masks(root: Path) -> None:
    from PIL import Image

    for path in (root / "data" / "masks").glob("*.png"):
        Image.fromarray(np.zeros_like(np.asarray(Image.open(path)))).save(path)


CASES = [
    # The run's own settings: a later stage cannot change how the checkpoints see images.
    Case(
        "predict at another image size",
        ["predict", "model.image_size=48"],
        r"config\.yaml: predict with model\.image_size=48 \(run: 32\) would not match how the checkpoints were",
        trained=True,
    ),
    Case(
        "resume with another backbone",
        ["train", "--resume", "model.backbone=resnet10t"],
        r"config\.yaml: --resume with model\.backbone=resnet10t \(run: test_resnet\)",
        trained=True,
    ),
    Case(
        "predict before training finished",
        ["predict"],
        r"metrics\.json: not found; training has not finished",
        trained=True,
        prepare=remove("outputs/baseline/metrics.json"),
    ),
    Case(
        "a second run into a busy run folder",
        ["train"],
        r"outputs/baseline is in use by `train` \(pid 4242 on elsewhere",
        trained=True,
        hold_lock=True,
    ),
    Case(
        "train with a backbone timm lacks: the finished training stays where it is",
        ["train", "model.backbone=resnet5O"],
        r"model\.backbone 'resnet5O' is not a timm model; did you mean 'resnet50'",
        trained=True,
    ),
    Case(
        "new folds under a trained run",
        ["folds", "folds.n_splits=3"],
        r"folds\.csv: the training in \S+baseline used these folds; new folds would make its OOF",
        trained=True,
    ),
    Case(
        "folds while another process holds the run",
        ["folds"],
        r"outputs/baseline is in use by `train` \(pid 4242 on elsewhere",
        trained=True,
        hold_lock=True,
    ),
    Case(
        "train with another fold count than the fold file",
        ["train", "folds.n_splits=3"],
        r"folds\.csv: 2 folds, but folds\.n_splits=3; write new folds with `run`",
        trained=True,
    ),
    Case(
        "a bracketed hint prints with its brackets",
        ["train", "folds.train_folds=[5]"],
        r"folds\.train_folds \[5\]: the fold file has folds \[0, 1\]",
        trained=True,
    ),
    Case(
        "pseudo-labels from an empty prediction file",
        ["pseudo", "pseudo.source={root}/empty.csv"],
        r"empty\.(csv|npz): (empty file|no test predictions|not a prediction file)",
        trained=True,
        prepare=empty_prediction_file,
    ),
    Case(
        "a soup of no checkpoints",
        ["soup", "soup.checkpoints=[]"],
        r"config key 'soup\.checkpoints': list should have at least 1 item",
        trained=True,
    ),
    Case(
        "TTA view without a box inverse",
        ["predict", "predict.tta=[identity,rot90]"],
        r"predict\.tta view 'rot90' has no inverse for detection; expected identity, hflip, vflip or scale_<factor>",
        tasks=("detection",),
        trained=True,
    ),
    # Config values: refused when the config loads.
    Case(
        "unknown key",
        ["train", "train.epoch=3"],
        r"config key 'train\.epoch' is not known; did you mean 'train\.epochs'",
    ),
    Case(  # another trainer's name for a key, with or without its section: the alias table, not difflib
        "another trainer's key name",
        ["train", "train.learning_rate=3e-4", "bs=8"],
        r"^error: config key 'train\.learning_rate' is not known; did you mean 'train\.lr'\?$",
    ),
    Case("out of range", ["train", "train.lr=-1"], r"config key 'train\.lr': input should be greater than 0, got -1"),
    Case(
        "metric of another task",
        ["train", f"metric={'dice' if TASK != 'segmentation' else 'accuracy'}"],
        rf"metric=\w+ is not a {TASK} metric; expected one of",
    ),
    Case(
        "a crop as large as the image",
        ["train", "segmentation.train_crop=64", "model.image_size=64"],
        r"segmentation\.train_crop=64 is not smaller than model\.image_size=64: it would crop nothing",
        tasks=("segmentation",),
    ),
    Case(
        "tune space with an empty range",
        ["tune", "tune.space={train.lr: {type: float, low: 0.01, high: 0.01}}"],
        r"config key 'tune\.space\.train\.lr': value error, empty range: low 0\.01 is not below high 0\.01",
    ),
    Case(
        "tune space with a value the key does not take",
        ["tune", "tune.space={train.epochs: {type: float, low: 1.5, high: 3}}"],
        r"tune\.space\.train\.epochs: 1\.5 is not a value it takes \(config key 'train\.epochs': input should be a "
        r"valid integer",
    ),
    Case(
        "tune space with an unknown key",
        ["tune", "tune.space={train.lrr: {type: float, low: 0.1, high: 1}}"],
        r"tune\.space: config key 'train\.lrr' is not known; did you mean 'train\.lr'\?",
    ),
    Case(
        "no GPU for train.device=cuda",
        ["run", "train.device=cuda"],
        r"train\.device=cuda: no CUDA GPU is visible here; use train\.device=auto or cpu",
        marks=[pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible")],
    ),
    # Competition files: the preflight (first step of `run`) names every problem.
    Case(
        "truncated images",
        ["run"],
        r"check found 2 problems, the first: \S+/train/\w+\.png: cannot decode image \(image file is truncated",
        prepare=truncate_images,
    ),
    Case("truncated images, check", ["check"], r"check found 2 problems", prepare=truncate_images),
    Case(
        "a group split without its column",
        ["check", "folds.strategy=group_kfold"],
        r"folds\.strategy=group_kfold needs folds\.group_column",
    ),
    Case(
        "a group column the labels lack",
        ["run", "folds.strategy=group_kfold", "folds.group_column=patient"],
        r": missing group column 'patient'",
    ),
    Case(
        "no test folder",
        ["run"],
        r"data/test: test image folder not found",
        prepare=remove("data/test"),
    ),
    Case(
        "duplicate sample id",
        ["run"],
        r"sample_submission\.csv: duplicate id '\w+' at rows 2 and \d+",
        tasks=("classification", "detection"),
        prepare=sample_ids_with_duplicate,
    ),
    Case(
        "missing train CSV",
        ["run"],
        r"train\.csv: file not found",
        tasks=("classification", "detection"),
        prepare=remove("data/train.csv"),
    ),
    Case(
        "detection CSV with only a header",
        ["run"],
        r"train\.csv: no labelled boxes in \d+ images; a detector needs at least one box",
        tasks=("detection",),
        prepare=header_only_boxes,
    ),
    Case(
        "empty COCO JSON",
        ["run", "data.layout=coco"],
        r"annotations\.json: no training images",
        tasks=("detection",),
        prepare=empty_coco,
    ),
    Case(
        "mask of 0/255",
        ["run", "data.classes=null"],
        r"masks/tr003\.png: mask value 255 is not a class index \(values found: \[1, 2, 255\]\); 0/255 masks need "
        r"data\.mask_values=binary",
        tasks=("segmentation",),
        prepare=mask_with_255,
    ),
    Case(
        "all masks empty",
        ["run"],
        r"masks: all 12 masks are empty; a segmentation model needs labelled pixels",
        tasks=("segmentation",),
        prepare=empty_masks,
    ),
    Case(
        "an empty label, a missing image and a truncated one: check names all three",
        ["check"],
        r"check found 3 problems, the first: \S+train\.csv: empty 'label' at row 5 \(1 of 24 rows\)",
        tasks=("classification",),
        prepare=empty_label_missing_and_truncated_image,
    ),
    Case(
        "a sample whose columns are neither a label nor the classes",
        ["check"],
        r"sample_submission\.csv: sample submission columns \['cat', 'dog'\] are neither one label column nor one",
        tasks=("classification",),
        prepare=sample_with_other_columns,
    ),
    Case(
        "boxes read in another format than theirs",
        ["check", "data.box_format=cxcywh"],
        r"train\.csv: the boxes do not fit their images; with data\.box_format=cxcywh \d+ of 23 boxes \(\d+%\) are "
        r"empty or cross their image's border, with data\.box_format=xywh 0: set data\.box_format=xywh",
        tasks=("detection",),
    ),
    Case(
        "xywh boxes read as xyxy",
        ["check", "data.box_format=xyxy"],
        r"set data\.box_format=xywh",
        tasks=("detection",),
    ),
    Case(
        "malformed box rows are counted and named",
        ["check"],
        r"train\.csv: 2 malformed rows: row 3: box '\[1, 2, three, 4\]' is not four numbers; row 6: box",
        tasks=("detection",),
        prepare=two_malformed_box_rows,
    ),
    Case(
        "class names a PredictionString cannot carry",
        ["check", "detection.submission_label=name"],
        r"class name 'red box' holds a space or comma",
        tasks=("detection",),
        prepare=class_name_with_a_space,
    ),
    Case(
        "a sample without the RLE column the config names",
        ["check", "data.rle_column=rle"],
        r"sample_submission\.csv: sample submission lacks the RLE column 'rle' \(data\.rle_column\); its columns: "
        r"id, ClassId, EncodedPixels",
        tasks=("segmentation",),
    ),
    Case(
        "per-class sample without its class column",
        ["run", "data.target_columns=[]"],
        r"sample_submission\.csv: id 'te000' has several rows, one per class: name the sample's class column in "
        r"data\.target_columns \(e\.g\. data\.target_columns=\[ClassId\]\)",
        tasks=("segmentation",),
    ),
    Case("an ensemble without members", ["ensemble"], r"ensemble\.members is empty: name run folders"),
    Case("a member folder that is not there", ["ensemble", "ensemble.members=[outputs/nope]"], r"nope: folder not"),
    Case("pseudo-labels before training", ["pseudo"], r"outputs/baseline: no such run; train it first"),
    Case("a blend method of another task", ["ensemble", "ensemble.method=majority_of_boxes"], r"ensemble\.method"),
]
CASES = [case for case in CASES if TASK in case.tasks]


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name, marks=c.marks) for c in CASES])
def test_bad_input_is_one_line_and_writes_nothing(case: Case, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    if case.trained:
        root = request.getfixturevalue("run_copy")
    else:
        root = tmp_path
        WRITERS[TASK](root / "data")
    if case.prepare is not None:
        case.prepare(root)
    outputs = root / "outputs"
    before = snapshot(outputs, "skip" if case.hold_lock else "bytes")
    holder = None
    if case.hold_lock:
        holder = open(outputs / "baseline" / ".lock", "w")  # noqa: SIM115 - another process's lock, held here
        holder.write("`train` (pid 4242 on elsewhere, since 10:00:00)\n")
        holder.flush()
        fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
    try:
        result = invoke(case.args[0], *task_overrides(root / "data", outputs), *case.arguments(root))
    finally:
        if holder is not None:
            holder.close()
    assert result.exit_code == case.exit_code, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    assert re.search(case.message, errors[0]), errors[0]
    assert snapshot(outputs, "skip" if case.hold_lock else "bytes") == before  # nothing written or half-written


# One value no stage can run with (its config loads), per stage: refused before the run folder is touched.
BAD_BACKBONE, BAD_VIEW = "model.backbone=resnet5O", "predict.tta=[identity,rot45]"
STAGE_FAULTS = {
    "folds": BAD_BACKBONE,
    "train": BAD_BACKBONE,
    "run": BAD_BACKBONE,
    "tune": BAD_BACKBONE,
    "predict": BAD_VIEW,
    "submit": BAD_VIEW,
    "soup": BAD_VIEW,
    "pseudo": BAD_VIEW,
    "export": BAD_VIEW,
    "analyze": BAD_VIEW,
    "ensemble": BAD_VIEW,
}


@pytest.mark.parametrize("stage", list(STAGE_FAULTS))
def test_every_stage_validates_before_it_touches_the_run(stage: str, run_copy: Path) -> None:
    outputs = run_copy / "outputs"
    before = snapshot(outputs, "times")
    extra = ["ensemble.members=[{}]".format(outputs / "baseline"), "experiment=blend"] if stage == "ensemble" else []
    result = invoke(stage, *task_overrides(run_copy / "data", outputs), STAGE_FAULTS[stage], *extra)
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    key = STAGE_FAULTS[stage].split("=")[0]
    assert key in errors[0] and ("resnet5O" in errors[0] or "rot45" in errors[0]), errors[0]
    assert snapshot(outputs, "times") == before  # byte for byte, and the lock was not even taken


def test_later_stages_start_from_the_runs_own_config(run_copy: Path) -> None:
    """configs/default.yaml says one image size, the run was trained at another: predict takes the run's."""
    from ..core.run_config import load_run_config

    overrides = [f"output_dir={run_copy / 'outputs'}"]
    assert load_config(overrides).model.image_size != 32
    assert load_run_config(overrides).model.image_size == 32
    assert load_run_config([*overrides, "predict.batch_size=2"]).predict.batch_size == 2


def test_predict_uses_exactly_the_folds_of_the_last_training(run_copy: Path) -> None:
    overrides = task_overrides(run_copy / "data", run_copy / "outputs")
    run = run_copy / "outputs" / "baseline"
    (run / "export" / "notebook").mkdir(parents=True)  # an export of the earlier training goes with it
    result = invoke("train", *overrides, "folds.train_folds=[0]")
    assert result.exit_code == 0, result.output
    assert "an earlier training was there; moved it to" in result.output
    previous = next((run / "previous").iterdir())
    assert sorted(p.name for p in previous.glob("fold_*")) == ["fold_0", "fold_1"]
    assert (previous / "export" / "notebook").is_dir() and not (run / "export").exists()
    assert (previous / "folds.csv").read_bytes() == (run / "folds.csv").read_bytes()
    assert not (run / "fold_1").exists()
    result = invoke("predict", *overrides)
    assert result.exit_code == 0, result.output
    assert f"predict: folds 0 of {run}" in result.output
    assert {p.name.split(".")[0].removesuffix("_coco") for p in (run / "predictions").glob("test_fold_*")} == {
        "test_fold_0"
    }


def test_an_overlay_is_not_applied_again_after_training(run_copy: Path, tmp_path: Path) -> None:
    """`run -e quick model.image_size=48`, then `predict -e quick`: -e selects the run, whose config.yaml already
    holds the overlay and the override; `--resume` goes on with the same settings without blaming anyone."""
    overlay = tmp_path / "quick.yaml"
    overlay.write_text("model:\n  image_size: 64\ntrain:\n  epochs: 1\n")
    outputs = run_copy / "outputs"
    base = [o for o in task_overrides(run_copy / "data", outputs) if not o.startswith("model.image_size=")]
    result = invoke("run", "-e", str(overlay), *base, "model.image_size=48", "--skip-check")
    assert result.exit_code == 0, result.output
    run = outputs / "quick"
    result = invoke("predict", "-e", str(overlay), *base)
    assert result.exit_code == 0, result.output
    assert load_config(base=run / "config.predict.yaml").model.image_size == 48
    (run / "metrics.json").unlink()  # as if the training had been interrupted in fold 1
    shutil.rmtree(run / "fold_1")
    result = invoke("train", "--resume", "-e", str(overlay), *base)
    assert result.exit_code == 0, result.output
    assert "fold 0: already trained, skipped (--resume)" in result.output
    assert load_config(base=run / "config.yaml").model.image_size == 48
    result = invoke("train", "--resume", "-e", str(overlay), *base, "model.image_size=40")
    assert result.exit_code == 2  # an override the user did pass is named
    assert "--resume with model.image_size=40 (run: 48)" in result.output


def test_a_blend_takes_its_members_settings_or_names_their_disagreement(run_copy: Path) -> None:
    """Members trained with data.classes given on the command line (as `podium demo` does): `ensemble` without it
    reads the labels as they did. Members that read them differently are refused in one line."""
    outputs = run_copy / "outputs"
    overrides = [o for o in task_overrides(run_copy / "data", outputs) if not o.startswith("data.classes=")]
    names = {"classification": "[red,green,blue]", "detection": "[red,green]", "segmentation": "[red,green]"}[TASK]
    result = invoke("train", *overrides, f"data.classes={names}", "seeds=[0,1]")
    assert result.exit_code == 0, result.output
    members = f"ensemble.members=[{outputs / 'baseline-seed0'},{outputs / 'baseline-seed1'}]"
    blend = [o for o in overrides if not o.startswith(("data.classes=", "data.num_classes="))]
    result = invoke("ensemble", *blend, members, "experiment=blend", "ensemble.require_test=false")
    assert result.exit_code == 0, result.output
    assert load_config(base=outputs / "blend" / "config.ensemble.yaml").data.classes == names[1:-1].split(",")
    saved = outputs / "baseline-seed1" / "config.yaml"
    other = {"classification": "f1_macro", "detection": "map", "segmentation": "iou"}[TASK]
    saved.write_text(saved.read_text().replace(f"metric: {load_config(base=saved).metric}", f"metric: {other}"))
    result = invoke("ensemble", *blend, members, "experiment=blend2")
    assert result.exit_code == 2, result.output
    assert f"ensemble members disagree on metric: {outputs / 'baseline-seed0'} has" in result.output
    assert not (outputs / "blend2").exists()


def test_sample_ids_with_extension_are_submitted(run_copy: Path) -> None:
    """Cassava and Severstal list `te000.png`: the submission keeps the sample's ids and gets every prediction."""
    sample_path = run_copy / "data" / "sample_submission.csv"
    sample = pd.read_csv(sample_path, dtype=str, keep_default_na=False)
    sample[sample.columns[0]] = sample[sample.columns[0]] + ".png"
    sample.to_csv(sample_path, index=False)
    result = invoke("submit", *task_overrides(run_copy / "data", run_copy / "outputs"))
    assert result.exit_code == 0, result.output
    submission = pd.read_csv(run_copy / "outputs" / "baseline" / "submissions" / "submission.csv", dtype=str)
    assert submission[submission.columns[0]].tolist() == sample[sample.columns[0]].tolist()


def test_interrupt_prints_how_to_resume(monkeypatch: pytest.MonkeyPatch) -> None:
    from .. import train as train_stage

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(train_stage, "train", interrupted)
    result = invoke("train")
    assert result.exit_code == 130
    assert "interrupted: files already written are whole; continue with: python -m" in result.output
    assert "train --resume (same options)" in result.output


def test_environment_wandb_mode_wins_over_the_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from ..core.tracking import NullTracker, create_tracker

    monkeypatch.setenv("WANDB_MODE", "disabled")
    config = load_config(["wandb.mode=offline"])
    assert isinstance(create_tracker(config, tmp_path, "fold0", "train"), NullTracker)


def test_check_decodes_in_parallel_and_lists_every_broken_image(tmp_path: Path) -> None:
    from PIL import Image

    from ..check import scan_images

    paths = []
    for index in range(80):
        path = tmp_path / f"im{index:02d}.jpg"
        Image.fromarray(np.full((16, 16, 3), index, np.uint8)).save(path)
        paths.append(str(path))
    for broken in (paths[5], paths[70]):
        _truncate(Path(broken))
    problems, sides = scan_images([*paths, str(tmp_path / "missing.png")], workers=2)
    assert sides[0] == 16 and sides[5] == sides[-1] == 0  # the side of what decodes; 0 for what does not
    assert [(Path(p.where).name, p.what.split(" (")[0]) for p in problems] == [
        ("im05.jpg", "cannot decode image"),
        ("im70.jpg", "cannot decode image"),
        ("missing.png", "image not found"),
    ]


def test_check_advises_an_image_size_near_small_images(tmp_path: Path) -> None:
    from ..check import run_check

    WRITERS[TASK](tmp_path / "data")
    overrides = task_overrides(tmp_path / "data", tmp_path / "outputs")
    report = run_check(load_config([*overrides, "model.image_size=512"]), workers=1)
    fitted = [line for line in report.advice if line.startswith("train will fit to the data: ")]
    advice = [line for line in report.advice if line not in fitted]
    assert report.problems == [] and len(advice) == 1
    assert any(line.startswith("train will fit to the data: data.cache=") for line in fitted)  # data.cache=auto
    assert not any(line.startswith("train will time a training step") for line in report.advice)
    budget = [*overrides, "train.time_budget_minutes=5", "train.min_updates_per_epoch=null", "train.batch_size=32"]
    budgeted = run_check(load_config(budget), workers=1).advice
    timing = "train will time a training step and lower train.batch_size (from 32) where the budget would buy"
    assert any(line.startswith(timing) and "at most 1.25x" in line for line in budgeted)
    at_floor = run_check(load_config([*budget, "train.batch_size=8"]), workers=1).advice  # nothing left to halve
    assert not any(line.startswith("train will time a training step") for line in at_floor)
    side = 24 if TASK == "classification" else 64  # the test competitions' images
    assert advice[0].startswith(f"train images are about {side} px: model.image_size=512 upsamples them")
    assert advice[0].endswith(f"the compute of model.image_size={32 if side == 24 else 64}")
    checked = run_check(load_config([*overrides, "model.image_size=32"]), workers=1).advice
    small = [line for line in checked if not line.startswith("train will fit to the data: ")]
    if TASK == "segmentation":  # 64 px masks shrunk to 32 px: training at full size on crops is proposed
        assert small == [
            "train images are about 64 px: model.image_size=32 shrinks them 2x and thin structures vanish; train at "
            "full size on crops: model.image_size=64 segmentation.train_crop=32"
        ]
    else:
        assert small == []


TOOLS = ("ensemble", "soup", "pseudo", "eda")


def test_every_task_has_the_whole_toolbox() -> None:
    registered = {(command.name or command.callback.__name__).replace("_", "-") for command in app.registered_commands}
    for tool in TOOLS:
        assert (Path(__file__).parents[1] / "tools" / f"{tool}.py").is_file(), tool
        assert tool in registered, tool
