"""Fixtures: a tiny competition made in tmp_path (coloured squares), offline settings, config builders."""

from __future__ import annotations

import os

# huggingface_hub reads these when first imported, before any fixture runs: set them first.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from ..config import Config, load_config

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PACKAGE = __package__.split(".")[0]
# The tiny competition's layout, whatever layout the project was rendered with.
CSV_LAYOUT = [
    "task=classification",
    "data.layout=csv",
    "data.train_csv=train.csv",
    "data.train_images=train",
    "data.test_images=test",
    "data.image_ext=.png",
    "data.id_column=id",
    "data.target_columns=[label]",
    "data.multi_label=false",
    "data.sample_submission=sample_submission.csv",
]
COLOURS = {"red": (220, 40, 40), "green": (40, 200, 60), "blue": (40, 60, 220)}


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist the workers share the cores: one torch thread each, in the worker and in the processes its
    tests start, or two processes' OpenMP threads spin waiting for each other (a resnet10t step at 64 px took 2.0 s, not
    0.07 s, on 2 cores)."""
    if hasattr(config, "workerinput"):
        os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No network, W&B off unless a test turns it on, caches in tmp, configs resolved from the project."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("NO_ALBUMENTATIONS_UPDATE", "1")
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb-cache"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    monkeypatch.chdir(PROJECT_ROOT)


def _image(colour: tuple[int, int, int], rng: np.random.Generator, size: int = 24) -> np.ndarray:
    image = rng.integers(0, 40, (size, size, 3)).astype(np.int16)
    top, left = rng.integers(0, size // 2, 2)
    image[top : top + size // 2, left : left + size // 2] += np.array(colour, dtype=np.int16)
    return np.clip(image, 0, 255).astype(np.uint8)


def write_competition(root: Path, n_train: int = 24, n_test: int = 6, multi_label: bool = False) -> Path:
    """train.csv (id,label or id,tags), train/ and test/ PNGs, sample_submission.csv (id,label)."""
    rng = np.random.default_rng(0)
    names = list(COLOURS)
    (root / "train").mkdir(parents=True)
    (root / "test").mkdir()
    rows = []
    for i in range(n_train):
        label = names[i % len(names)]
        Image.fromarray(_image(COLOURS[label], rng)).save(root / "train" / f"tr{i:03d}.png")
        tags = f"{label} {names[(i + 1) % 3]}" if multi_label and i % 2 else label
        rows.append({"id": f"tr{i:03d}", "label": tags, "site": f"s{i % 6}"})
    pd.DataFrame(rows).to_csv(root / "train.csv", index=False)
    for i in range(n_test):
        Image.fromarray(_image(COLOURS[names[i % 3]], rng)).save(root / "test" / f"te{i:03d}.png")
    pd.DataFrame({"id": [f"te{i:03d}" for i in range(n_test)], "label": "red"}).to_csv(
        root / "sample_submission.csv", index=False
    )
    return root


DETECTION_CLASSES = ["red", "green"]


def write_detection_competition(root: Path, n_train: int = 16, n_test: int = 4, size: int = 64) -> dict:
    """Coloured rectangles on noise: train/ and test/ PNGs, train.csv (one box per row: id, bbox [x, y, w, h],
    class; image 0 has no box, a negative), sample_submission.csv (id, PredictionString). Returns the boxes."""
    rng = np.random.default_rng(1)
    (root / "train").mkdir(parents=True)
    (root / "test").mkdir()
    rows, truth = [], {}
    for split, count in (("train", n_train), ("test", n_test)):
        for i in range(count):
            image_id = f"{split[:2]}{i:03d}"
            image = rng.integers(0, 40, (size, size, 3)).astype(np.int16)
            boxes = []
            for k in range(0 if (split == "train" and i == 0) else 1 + i % 2):
                w, h = (int(v) for v in rng.integers(12, 24, 2))
                x, y = (20 * k + int(rng.integers(0, 8)), int(rng.integers(0, size - h)))
                label = DETECTION_CLASSES[(i + k) % 2]
                image[y : y + h, x : x + w] += np.array(COLOURS[label], dtype=np.int16)
                boxes.append((x, y, w, h, label))
                if split == "train":
                    rows.append(
                        {"id": image_id, "bbox": f"[{x}, {y}, {w}, {h}]", "class": label, "source": f"s{i % 4}"}
                    )
            Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(root / split / f"{image_id}.png")
            truth[image_id] = boxes
    pd.DataFrame(rows).to_csv(root / "train.csv", index=False)
    test_ids = [f"te{i:03d}" for i in range(n_test)]
    pd.DataFrame({"id": test_ids, "PredictionString": ""}).to_csv(root / "sample_submission.csv", index=False)
    return truth


DETECTION_LAYOUT = [
    "task=detection",
    "metric=map50",
    "data.layout=boxes_csv",
    "data.train_csv=train.csv",
    "data.train_images=train",
    "data.test_images=test",
    "data.id_column=id",
    "data.target_columns=[class]",
    "data.box_columns=[bbox]",
    "data.box_format=xywh",
    "data.box_normalized=false",
    "data.annotations=annotations.json",
    "data.sample_submission=sample_submission.csv",
    "aug.train=configs/aug/detection.yaml",
    "detection.architecture=fcos",
    "detection.fpn_channels=32",
    "detection.head_convs=1",
    "detection.anchor_sizes=[8,16,32,64,128]",
    "folds.strategy=multilabel_stratified_kfold",
    "predict.tta=[identity,hflip]",  # boxes have no rot90 inverse
]


SEGMENTATION_CLASSES = ["red", "green"]


def write_segmentation_competition(root: Path, n_train: int = 12, n_test: int = 4, size: int = 64) -> dict:
    """Coloured rectangles on noise: train/ and test/ PNGs, masks/ index PNGs (0 background, 1 red, 2 green;
    image 0 is empty), train.csv with the same masks as RLE rows (id, ClassId, EncodedPixels), and
    sample_submission.csv (id, ClassId, EncodedPixels: one row per test image and class). Returns the masks."""
    from ..tasks.segmentation.labels import rle_encode

    rng = np.random.default_rng(2)
    for folder in ("train", "test", "masks"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    truth, rows = {}, []
    for split, count in (("train", n_train), ("test", n_test)):
        for i in range(count):
            image_id = f"{split[:2]}{i:03d}"
            image = rng.integers(0, 40, (size, size, 3)).astype(np.int16)
            mask = np.zeros((size, size), np.uint8)
            for k in range(0 if (split == "train" and i == 0) else 1 + i % 2):
                w, h = (int(v) for v in rng.integers(10, 22, 2))
                x, y = 30 * k + int(rng.integers(0, 8)), int(rng.integers(0, size - h))
                label = (i + k) % 2
                image[y : y + h, x : x + w] += np.array(COLOURS[SEGMENTATION_CLASSES[label]], dtype=np.int16)
                mask[y : y + h, x : x + w] = label + 1
            Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(root / split / f"{image_id}.png")
            truth[image_id] = mask
            if split == "train":
                Image.fromarray(mask).save(root / "masks" / f"{image_id}.png")
                for k, name in enumerate(SEGMENTATION_CLASSES):
                    rows.append({"id": image_id, "ClassId": name, "EncodedPixels": rle_encode(mask == k + 1)})
    pd.DataFrame(rows).to_csv(root / "train.csv", index=False)
    sample = [
        {"id": f"te{i:03d}", "ClassId": name, "EncodedPixels": ""}
        for i in range(n_test)
        for name in SEGMENTATION_CLASSES
    ]
    pd.DataFrame(sample).to_csv(root / "sample_submission.csv", index=False)
    return truth


SEGMENTATION_LAYOUT = [
    "task=segmentation",
    "metric=dice",
    "data.layout=masks",
    "data.masks=masks",
    "data.mask_values=index",
    "data.classes=[red,green]",
    "data.train_csv=train.csv",
    "data.train_images=train",
    "data.test_images=test",
    "data.id_column=id",
    "data.target_columns=[ClassId]",
    "data.rle_column=EncodedPixels",
    "data.sample_submission=sample_submission.csv",
    "aug.train=configs/aug/segmentation.yaml",
    "segmentation.architecture=Unet",
    "segmentation.mode=multiclass",
    "segmentation.decoder_channels=[32,16,16,8,8]",
    "folds.strategy=multilabel_stratified_kfold",
]


def fast_overrides(data_root: Path, output_dir: Path) -> list[str]:
    """A fast-dev run: tiny images, 2 folds, 1 epoch of 2 batches, no pretrained weights."""
    return [
        f"data.root={data_root}",
        f"output_dir={output_dir}",
        "data.num_workers=0",
        "data.num_classes=null",
        "data.classes=null",
        "model.backbone=test_resnet",
        "model.pretrained=false",
        "model.image_size=32",
        "folds.strategy=stratified_kfold",
        "folds.n_splits=2",
        "train.epochs=1",
        "train.batch_size=4",
        "train.max_steps_per_epoch=2",
        "train.warmup_epochs=0",
        "predict.batch_size=4",
        "predict.tta=[identity,hflip,rot90]",
        "wandb.mode=disabled",
        "metric=accuracy",
    ]


@pytest.fixture
def competition(tmp_path: Path) -> Path:
    return write_competition(tmp_path / "data")


@pytest.fixture
def make_config(tmp_path: Path, competition: Path) -> Callable[..., Config]:
    def build(*overrides: str, data_root: Path | None = None) -> Config:
        base = fast_overrides(data_root or competition, tmp_path / "outputs")
        # The rendered data layout may differ from the tiny competition's: pin it here.
        return load_config([*CSV_LAYOUT, *base, *overrides])

    return build


# The project's own task (configs/default.yaml) and a fast-dev run of it on its tiny competition.
TASK = load_config(base=PROJECT_ROOT / "configs" / "default.yaml").task
WRITERS: dict[str, Callable[[Path], object]] = {
    "classification": write_competition,
    "detection": write_detection_competition,
    "segmentation": write_segmentation_competition,
}


def task_overrides(root: Path, outputs: Path) -> list[str]:
    """A fast-dev run of this project's task on its tiny competition."""
    base = fast_overrides(root, outputs)
    layouts = {"classification": [*CSV_LAYOUT, *base], "detection": [*base, *DETECTION_LAYOUT]}
    return layouts.get(TASK, [*base, *SEGMENTATION_LAYOUT])
