"""Detection samples: images with boxes through bbox-aware albumentations, Copy-Paste, and the collate function."""

from __future__ import annotations

from typing import Any

import albumentations as A
import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision.ops import box_iou

from ...config import Config
from ...core.data import (
    load_image,
)
from ...core.errors import ConfigError


def raw_sample(path: str, target: dict[str, Any], channels: int) -> dict[str, Any]:
    sample = {
        "image": load_image(path, channels),
        "bboxes": target["boxes"].astype(np.float32).reshape(-1, 4),
        "labels": target["labels"],
    }
    if "segmentations" in target:
        sample["segmentations"] = target["segmentations"]
    return sample


def object_mask(segmentation: Any, height: int, width: int) -> np.ndarray:
    """An instance's (H, W) 0/1 mask from COCO polygons or RLE (pycocotools)."""
    from pycocotools import mask as coco_mask

    encoded = coco_mask.frPyObjects(segmentation, height, width)
    if isinstance(encoded, list):
        encoded = coco_mask.merge(encoded)
    return coco_mask.decode(encoded)


def copy_paste(
    sample: dict[str, Any], donor: dict[str, Any], rng: np.random.Generator, max_objects: int, max_iou: float = 0.1
) -> dict[str, Any]:
    """Paste up to `max_objects` objects cut from `donor` at random places of `sample` where they overlap existing
    boxes by at most `max_iou`; the pasted boxes and labels join the sample's. An object with a COCO mask is cut
    along it; otherwise its whole box is pasted."""
    image = sample["image"].copy()
    height, width = image.shape[:2]
    boxes, labels = list(sample["bboxes"]), list(sample["labels"])
    order = rng.permutation(len(donor["bboxes"]))[:max_objects]
    for index in order:
        x1, y1, x2, y2 = (round(float(v)) for v in donor["bboxes"][index])
        patch = donor["image"][y1:y2, x1:x2]
        ph, pw = patch.shape[:2]
        if ph < 2 or pw < 2 or ph >= height or pw >= width:
            continue
        segmentation = (donor.get("segmentations") or [None] * len(donor["bboxes"]))[index]
        if segmentation is not None:
            shape = donor["image"].shape[:2]
            inside = object_mask(segmentation, shape[0], shape[1])[y1:y2, x1:x2] > 0
        else:
            inside = np.ones((ph, pw), dtype=bool)
        for _ in range(10):
            x, y = int(rng.integers(0, width - pw)), int(rng.integers(0, height - ph))
            new = torch.tensor([[x, y, x + pw, y + ph]], dtype=torch.float32)
            if not boxes or float(box_iou(new, torch.tensor(np.array(boxes), dtype=torch.float32)).max()) <= max_iou:
                image[y : y + ph, x : x + pw][inside] = patch[inside]
                boxes.append(np.array([x, y, x + pw, y + ph], dtype=np.float32))
                labels.append(int(donor["labels"][index]))
                break
    return {
        "image": image,
        "bboxes": np.array(boxes, dtype=np.float32).reshape(-1, 4),
        "labels": np.array(labels, dtype=np.int64),
    }


class DetectionDataset(Dataset):
    """Training/validation items (image, target dict with boxes, labels, original size) or, without targets,
    test items (image, original width and height)."""

    def __init__(
        self, paths: list[str], targets: np.ndarray | None, transform: A.Compose, config: Config, train: bool
    ) -> None:
        self.paths, self.targets, self.transform = list(paths), targets, transform
        self.channels = config.model.in_chans
        self.config = config.detection
        self.train = train

    def __len__(self) -> int:
        return len(self.paths)

    def _donors(self, count: int, rng: np.random.Generator) -> list[dict[str, Any]]:
        picks = rng.integers(0, len(self.paths), size=count)
        return [raw_sample(self.paths[i], self.targets[i], self.channels) for i in picks]

    def _mosaic_items(self, count: int, rng: np.random.Generator) -> list[dict[str, Any]]:
        return [
            {key: value for key, value in item.items() if key != "segmentations"} for item in self._donors(count, rng)
        ]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, Any]:
        if self.targets is None:
            image = load_image(self.paths[index], self.channels)
            height, width = image.shape[:2]
            return self.transform(image=image, bboxes=np.zeros((0, 4)), labels=np.zeros(0))["image"], torch.tensor(
                [width, height], dtype=torch.float64
            )
        sample = raw_sample(self.paths[index], self.targets[index], self.channels)
        height, width = sample["image"].shape[:2]
        sample.pop("segmentations", None)  # Copy-Paste cuts donors along their masks; the sample's own are unused
        # Seeded from torch's per-worker, per-epoch seed: workers differ, runs repeat.
        rng = np.random.default_rng((torch.initial_seed() + index) % 2**32)
        if self.train and "keep" in self.targets[index]:  # soft pseudo-labels: a box stays with its score's odds
            kept = rng.random(len(sample["labels"])) < self.targets[index]["keep"]
            sample["bboxes"], sample["labels"] = sample["bboxes"][kept], sample["labels"][kept]
        if self.train and self.config.copy_paste_p > 0 and rng.random() < self.config.copy_paste_p:
            sample = copy_paste(sample, self._donors(1, rng)[0], rng, self.config.copy_paste_max)
        if self.train and self.config.mosaic_p > 0:
            sample["mosaic_metadata"] = self._mosaic_items(3, rng)
        out = self.transform(**sample)
        boxes = np.asarray(out["bboxes"], dtype=np.float32).reshape(-1, 4)
        target = {
            "boxes": torch.from_numpy(boxes),
            "labels": torch.as_tensor(np.asarray(out["labels"], dtype=np.int64) + 1),  # 0 is background
            "size": torch.tensor([width, height], dtype=torch.float64),
        }
        return out["image"], target


def collate(batch: list[tuple[torch.Tensor, Any]]) -> tuple[torch.Tensor, Any]:
    images = torch.stack([image for image, _ in batch])
    metas = [meta for _, meta in batch]
    return images, (torch.stack(metas) if isinstance(metas[0], torch.Tensor) else metas)


def flatten_transforms(augmentations: Any) -> list[Any]:
    # A preset file is a Compose: its transforms join ours so that bbox_params reach every one of them.
    if augmentations is None:
        return []
    if isinstance(augmentations, A.Compose):
        return list(augmentations.transforms)
    if isinstance(augmentations, A.BasicTransform | A.BaseCompose):
        return [augmentations]
    raise ConfigError("detection augmentations must be albumentations transforms (no torchvision backend)")
