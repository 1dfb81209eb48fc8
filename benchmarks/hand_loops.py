"""Plain hand-written PyTorch loops, as a competent competitor writes them in a hundred lines: the whole dataset
decoded once into memory, AdamW with a cosine from LR to zero at its known deadline, a batch of 8 to 64 chosen by
the data's size, random crops of large segmentation images, no validation; training until the wall-clock budget is
spent (but for one prediction pass over the test set), then a submission in the competition's format."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from podium.demo_scoring import mask_value_offset

LR = 1e-3
CROP_FROM = 384  # segmentation images this large train on random crops of CROP
CROP = 256


def batch_size_for(count: int) -> int:
    """8 for a few hundred images, up to 64 for tens of thousands: enough updates an epoch either way."""
    return 8 if count < 256 else 16 if count < 1024 else 32 if count < 8192 else 64


def image_mode(folder: Path, image_id: str) -> str:
    return "L" if Image.open(folder / f"{image_id}.png").mode in ("L", "I;16", "1") else "RGB"


def load_images(folder: Path, ids: list[str], size: int, mode: str = "L") -> torch.Tensor:
    """Images (grey or RGB) resized to size x size, as an N x C x size x size float tensor in [0, 1]."""
    arrays = [np.asarray(Image.open(folder / f"{i}.png").convert(mode).resize((size, size))) for i in ids]
    stacked = torch.from_numpy(np.stack(arrays)).float().div(255)
    return stacked.unsqueeze(1) if mode == "L" else stacked.permute(0, 3, 1, 2).contiguous()


def load_masks(folder: Path, ids: list[str], size: int) -> torch.Tensor:
    """Index masks resized to size x size by nearest neighbour (class values kept), as an N x size x size tensor."""
    arrays = [np.asarray(Image.open(folder / f"{i}.png").resize((size, size), Image.NEAREST)) for i in ids]
    return torch.from_numpy(np.stack(arrays)).long()


def batches(count: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    order = torch.randperm(count, generator=generator)
    yield from order.split(batch_size_for(count))


def timed_training(
    seconds: float,
    predict: Callable[[], object],
    step: Callable[[torch.Tensor], None],
    count: int,
    optimizer: torch.optim.Optimizer,
    seed: int = 0,
) -> int:
    """Call step(indices) over shuffled batches until `seconds` have passed but for one prediction pass (timed
    first, as the final one will take about as long), the learning rate on a cosine from LR to 0 at the deadline;
    returns the epochs."""
    probe = time.perf_counter()
    predict()
    start = time.perf_counter()
    deadline = probe + seconds - (start - probe)
    epochs, generator = 0, torch.Generator().manual_seed(seed)
    while time.perf_counter() < deadline:
        for indices in batches(count, generator):
            now = time.perf_counter()
            if now >= deadline:
                return epochs
            for group in optimizer.param_groups:
                group["lr"] = LR * 0.5 * (1 + math.cos(math.pi * (now - start) / max(deadline - start, 1e-9)))
            step(indices)
        epochs += 1
    return epochs


def classification(data_dir: Path, submission: Path, seconds: float, backbone: str, size: int, seed: int = 0) -> int:
    """timm `backbone` from scratch on the train images; writes the sample submission's labels."""
    import timm

    started = time.perf_counter()
    torch.manual_seed(seed)
    table = pd.read_csv(data_dir / "train.csv", dtype={"id": str})
    classes = sorted(table["label"].unique())
    mode = image_mode(data_dir / "train", table["id"].iloc[0])
    images = load_images(data_dir / "train", list(table["id"]), size, mode)
    targets = torch.tensor(table["label"].map({c: k for k, c in enumerate(classes)}).to_numpy())
    test_ids = list(pd.read_csv(data_dir / "sample_submission.csv", dtype={"id": str})["id"])
    test_images = load_images(data_dir / "test", test_ids, size, mode)
    mean, std = images.mean(), images.std()
    model = timm.create_model(backbone, pretrained=False, num_classes=len(classes), in_chans=images.shape[1])
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.05)

    def predict() -> torch.Tensor:
        model.eval()
        with torch.inference_mode():
            return torch.cat([model((x - mean) / std).argmax(1) for x in test_images.split(256)])

    def step(indices: torch.Tensor) -> None:
        model.train()
        loss = torch.nn.functional.cross_entropy(model((images[indices] - mean) / std), targets[indices])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    epochs = timed_training(seconds - (time.perf_counter() - started), predict, step, len(images), optimizer, seed)
    labels = np.array(classes)[predict().numpy()]
    pd.DataFrame({"id": test_ids, "label": labels}).to_csv(submission, index=False)
    return epochs


def read_boxes(table: pd.DataFrame) -> tuple[pd.Series, torch.Tensor]:
    """The class column and x1 y1 x2 y2 boxes of a box-per-row CSV: `class` + `bbox` [x, y, w, h] (the demo's) or
    `class_name` + x_min, y_min, x_max, y_max."""
    if "bbox" in table:
        xywh = torch.tensor([json.loads(b) for b in table["bbox"]], dtype=torch.float32).reshape(-1, 4)
        return table["class"], torch.cat([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], 1)
    corners = torch.tensor(table[["x_min", "y_min", "x_max", "y_max"]].to_numpy(), dtype=torch.float32)
    return table["class_name"], corners.reshape(-1, 4)


def detection(data_dir: Path, submission: Path, seconds: float, size: int, seed: int = 0) -> int:
    """torchvision Faster R-CNN on a ResNet-18 FPN (64 channels) from scratch, anchors sized to the objects, on
    images resized to `size` (boxes scaled with them and back); writes PredictionString = "label score x y w h ..."
    per test image."""
    from torchvision.models import resnet18
    from torchvision.models.detection import FasterRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.backbone_utils import BackboneWithFPN
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead

    started = time.perf_counter()
    torch.manual_seed(seed)
    table = pd.read_csv(data_dir / "train.csv", dtype={"id": str})
    class_column, all_boxes = read_boxes(table)
    classes = sorted(class_column.unique())
    ids = sorted(table["id"].unique())
    mode = image_mode(data_dir / "train", ids[0])
    images = load_images(data_dir / "train", ids, size, mode).expand(-1, 3, -1, -1)
    targets = []
    for image_id in ids:
        rows = (table["id"] == image_id).to_numpy()
        width, height = Image.open(data_dir / "train" / f"{image_id}.png").size
        scale = torch.tensor([size / width, size / height] * 2)
        labels = torch.tensor([classes.index(c) + 1 for c in class_column[rows]], dtype=torch.int64)
        targets.append({"boxes": all_boxes[torch.from_numpy(rows)] * scale, "labels": labels})
    test_ids = list(pd.read_csv(data_dir / "sample_submission.csv", dtype={"id": str})["id"])
    test_images = load_images(data_dir / "test", test_ids, size, mode).expand(-1, 3, -1, -1)
    test_sizes = [Image.open(data_dir / "test" / f"{i}.png").size for i in test_ids]
    layers = {"layer1": "0", "layer2": "1", "layer3": "2", "layer4": "3"}
    backbone = BackboneWithFPN(resnet18(weights=None), layers, [64, 128, 256, 512], out_channels=64)
    anchors = AnchorGenerator(sizes=((16,), (32,), (64,), (128,), (256,)), aspect_ratios=((0.5, 1.0, 2.0),) * 5)
    # torchvision's defaults (256-channel FPN, 1024-wide box head, 512 RoIs an image, frozen batch norm) take a
    # minute a CPU step of 32 images and do not train from scratch: a light pyramid and head, as podium's demo has.
    model = FasterRCNN(
        backbone,
        rpn_anchor_generator=anchors,
        min_size=size,
        max_size=size,
        box_head=TwoMLPHead(backbone.out_channels * 7 * 7, 256),
        box_predictor=FastRCNNPredictor(256, len(classes) + 1),
        rpn_batch_size_per_image=64,
        box_batch_size_per_image=64,
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=1e-4)

    def predict() -> list[dict]:
        model.eval()
        with torch.inference_mode():
            return [out for x in test_images.split(64) for out in model(list(x))]

    def step(indices: torch.Tensor) -> None:
        model.train()
        losses = model([images[i] for i in indices], [targets[i] for i in indices])
        optimizer.zero_grad()
        sum(losses.values()).backward()
        optimizer.step()

    epochs = timed_training(seconds - (time.perf_counter() - started), predict, step, len(images), optimizer, seed)
    strings = []
    for output, (width, height) in zip(predict(), test_sizes, strict=True):
        tokens = []
        boxes = output["boxes"] * torch.tensor([width / size, height / size] * 2)
        for (x1, y1, x2, y2), score, label in zip(
            boxes.tolist(), output["scores"].tolist(), output["labels"].tolist(), strict=True
        ):
            tokens += [
                str(classes[label - 1]),
                f"{score:.4f}",
                f"{x1:.1f}",
                f"{y1:.1f}",
                f"{x2 - x1:.1f}",
                f"{y2 - y1:.1f}",
            ]
        strings.append(" ".join(tokens))
    pd.DataFrame({"id": test_ids, "PredictionString": strings}).to_csv(submission, index=False)
    return epochs


def rle_encode(mask: np.ndarray) -> str:
    """Kaggle's run-length encoding: column-major pixel numbers from 1, "start length" pairs."""
    pixels = np.concatenate([[0], mask.flatten(order="F"), [0]])
    runs = np.flatnonzero(pixels[1:] != pixels[:-1]) + 1
    runs[1::2] -= runs[::2]
    return " ".join(str(r) for r in runs)


def segmentation(data_dir: Path, submission: Path, seconds: float, encoder: str, size: int, seed: int = 0) -> int:
    """smp U-Net on a timm encoder from scratch, cross-entropy + Dice, on images and masks resized to `size` (from
    CROP_FROM px, trained on random CROP-px crops, predicted whole); writes one RLE row per (image, class) of the
    sample submission (class ids from 0: mask value k + 1 is class k; from 1: the mask value) at each test image's
    own size."""
    import segmentation_models_pytorch as smp

    started = time.perf_counter()
    torch.manual_seed(seed)
    ids = sorted(p.stem for p in (data_dir / "train").glob("*.png"))
    mode = image_mode(data_dir / "train", ids[0])
    images = load_images(data_dir / "train", ids, size, mode)
    masks = load_masks(data_dir / "masks", ids, size)  # at the images' size: scenes larger than `size` shrink too
    sample = pd.read_csv(data_dir / "sample_submission.csv", dtype=str, keep_default_na=False)
    test_ids = sorted(sample["id"].unique())
    test_images = load_images(data_dir / "test", test_ids, size, mode)
    test_sizes = {i: Image.open(data_dir / "test" / f"{i}.png").size for i in test_ids}
    offset = mask_value_offset(sample["ClassId"])  # ids from 1 are mask values, from 0 one less
    num_classes = int(sample["ClassId"].astype(int).max()) + offset + 1
    mean, std = images.mean(), images.std()
    model = smp.Unet(encoder, encoder_weights=None, in_channels=images.shape[1], classes=num_classes)
    crop = CROP if size >= CROP_FROM else size
    generator = torch.Generator().manual_seed(seed)
    dice = smp.losses.DiceLoss("multiclass")
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=1e-4)

    def predict() -> np.ndarray:
        model.eval()
        with torch.inference_mode():
            return torch.cat([model((x - mean) / std).argmax(1) for x in test_images.split(64)]).numpy()

    def step(indices: torch.Tensor) -> None:
        model.train()
        top, left = (int(v) for v in torch.randint(0, size - crop + 1, (2,), generator=generator))
        window = (slice(None), slice(top, top + crop), slice(left, left + crop))
        batch, truth = images[indices][(slice(None), *window)], masks[indices][window]
        logits = model((batch - mean) / std)
        loss = torch.nn.functional.cross_entropy(logits, truth) + dice(logits, truth)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    epochs = timed_training(seconds - (time.perf_counter() - started), predict, step, len(images), optimizer, seed)
    # The submission is scored at each test image's own size: predictions go back to it by nearest neighbour.
    predicted = {
        i: np.asarray(Image.fromarray(mask.astype(np.uint8)).resize(test_sizes[i], Image.NEAREST))
        for i, mask in zip(test_ids, predict(), strict=True)
    }
    sample["EncodedPixels"] = [
        rle_encode((predicted[row.id] == int(row.ClassId) + offset).astype(np.uint8)) for row in sample.itertuples()
    ]
    sample.to_csv(submission, index=False)
    return epochs
