"""The training loop a competent competitor writes by hand, for podium's loop to be measured against: a Dataset that
reads and resizes the images (no augmentation), a DataLoader with workers and pinned memory, AdamW, autocast (bf16
where the GPU runs it natively, else fp16 with a GradScaler) and channels-last on CUDA. Only the model comes from the
rendered project (the same network both loops train); the data, loss, precision and step are plain PyTorch."""

from __future__ import annotations

import json
import statistics
import time
from importlib import import_module
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def read_rgb(path: Path, size: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """The image as a 3 x size x size uint8 tensor, and its own (width, height)."""
    image = Image.open(path).convert("RGB")
    resized = np.array(image.resize((size, size), Image.BILINEAR))  # a writable copy, as torch wants
    return torch.from_numpy(resized).permute(2, 0, 1).contiguous(), image.size


class Images(Dataset):
    """Classification: (image, class index)."""

    def __init__(self, paths: list[Path], labels: list[int], size: int) -> None:
        self.paths, self.labels, self.size = paths, labels, size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return read_rgb(self.paths[index], self.size)[0], self.labels[index]


class Boxes(Images):
    """Detection: (image, {"boxes": xyxy in resized pixels, "labels": class + 1, 0 being background})."""

    def __getitem__(self, index: int) -> tuple[torch.Tensor, Any]:
        image, (width, height) = read_rgb(self.paths[index], self.size)
        boxes, labels = self.labels[index]
        scale = torch.tensor([self.size / width, self.size / height] * 2)
        return image, {"boxes": boxes * scale, "labels": labels}


class Masks(Images):
    """Segmentation: (image, mask of class indices, 0 background), the mask resized by nearest neighbour."""

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        mask = Image.open(self.labels[index]).resize((self.size, self.size), Image.NEAREST)
        return read_rgb(self.paths[index], self.size)[0], torch.from_numpy(np.array(mask, dtype=np.int64))


def box_collate(batch: list[tuple[torch.Tensor, Any]]) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
    return torch.stack([image for image, _ in batch]), [target for _, target in batch]


def training_set(task: str, config: Any, ids: list[str], classes: list[str]) -> Dataset:
    """The rows `ids` of the demo competitions' layouts (train.csv with a label column, one box per row, mask PNGs)."""
    data, size = config.data, config.model.image_size
    root = Path(data.root)
    paths = [root / data.train_images / f"{image_id}{data.image_ext}" for image_id in ids]
    if task == "segmentation":
        return Masks(paths, [root / data.masks / f"{image_id}.png" for image_id in ids], size)
    frame = pd.read_csv(root / data.train_csv, dtype={data.id_column: str})
    column = data.target_columns[0]
    index = {name: k for k, name in enumerate(classes)}
    if task == "classification":
        labels = dict(zip(frame[data.id_column], frame[column].astype(str).map(index), strict=True))
        return Images(paths, [int(labels[image_id]) for image_id in ids], size)
    groups = {key: rows for key, rows in frame.groupby(data.id_column)}
    targets = []
    for image_id in ids:
        rows = groups[image_id]
        xywh = torch.tensor([json.loads(box) for box in rows[data.box_columns[0]]], dtype=torch.float32)
        boxes = torch.cat([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], dim=1)
        targets.append((boxes, torch.tensor([index[str(name)] + 1 for name in rows[column]])))
    return Boxes(paths, targets, size)


def loss_function(task: str) -> Any:
    if task == "classification":
        return lambda model, images, targets: F.cross_entropy(model(images), targets)
    if task == "detection":  # torchvision detectors return their losses in training mode
        return lambda model, images, targets: sum(model(list(images), targets).values())
    import segmentation_models_pytorch as smp

    dice = smp.losses.DiceLoss("multiclass")

    def segmentation_loss(model: torch.nn.Module, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits = model(images)
        return F.cross_entropy(logits, targets) + dice(logits, targets)

    return segmentation_loss


def images_per_second(package: str, run: Path, epochs: int, device: str | None = None) -> float:
    """Training images/s of the plain loop on fold 0's training part of the run `run` (its resolved config, classes
    and folds), with the run's model, batch size, workers and learning rate: the median over the epochs after the
    first, each timed as podium times its epochs (first batch to last step, the device synchronised)."""
    config = import_module(f"{package}.config").load_config(base=run / "config.yaml")
    classes = json.loads((run / "classes.json").read_text())
    folds = pd.read_csv(run / "folds.csv", dtype={"id": str})
    ids = list(folds.loc[folds["fold"] != 0, "id"])
    task = config.task
    target = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    cuda = target.type == "cuda"
    torch.manual_seed(0)
    model = import_module(f"{package}.tasks").create_task(config, classes).create_model(pretrained=False).to(target)
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    workers = config.data.num_workers
    loader = DataLoader(
        training_set(task, config, ids, classes),
        batch_size=config.train.batch_size,
        shuffle=True,
        num_workers=workers,
        pin_memory=cuda,
        drop_last=len(ids) > config.train.batch_size,
        persistent_workers=workers > 0,
        collate_fn=box_collate if task == "detection" else None,
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.train.lr, weight_decay=config.train.weight_decay)
    amp = (
        (torch.bfloat16 if torch.cuda.is_bf16_supported(including_emulation=False) else torch.float16) if cuda else None
    )
    scaler = torch.amp.GradScaler(target.type, enabled=amp == torch.float16)
    # Detectors normalise inside (model.transform); the others get ImageNet's statistics, as a timm model expects.
    mean, std = (torch.tensor(v, device=target).view(1, 3, 1, 1) for v in IMAGENET)
    normalise = task != "detection"
    compute = loss_function(task)
    steps = config.train.max_steps_per_epoch or len(loader)
    rates = []
    model.train()
    for _ in range(epochs):
        started, seen = None, 0
        for step, (images, targets) in enumerate(loader):
            if step >= steps:
                break
            started = started or time.perf_counter()
            images = images.to(target, non_blocking=True).float().div_(255)
            images = (images - mean) / std if normalise else images
            if cuda:
                images = images.contiguous(memory_format=torch.channels_last)
            if task == "detection":
                targets = [{key: value.to(target, non_blocking=True) for key, value in t.items()} for t in targets]
            else:
                targets = targets.to(target, non_blocking=True)
            with torch.autocast(target.type, dtype=amp or torch.float32, enabled=amp is not None):
                loss = compute(model, images, targets)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            seen += len(images)
        if cuda:
            torch.cuda.synchronize(target)
        rates.append(seen / (time.perf_counter() - started))
    return statistics.median(rates[1:] or rates)
