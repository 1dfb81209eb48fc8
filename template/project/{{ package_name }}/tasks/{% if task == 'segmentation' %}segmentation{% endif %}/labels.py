"""Segmentation labels: mask PNG folders, run-length CSVs (Kaggle's convention) and COCO polygons read into one
table, checked image by image; RLE encoding and decoding."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
from PIL import Image

from ...config import DataConfig
from ...core.data import IMAGE_SUFFIXES, LabelledTable, check_classes, read_csv, require_columns, sorted_labels
from ...core.errors import DataError
from ...core.runs import atomic_path


def rle_encode(mask: np.ndarray, order: str = "F", start: int = 1) -> str:
    """Run-length encoding of a 2-D 0/1 mask: 'start length ...', pixels numbered from `start` in column-major
    ('F', Kaggle's usual) or row-major ('C') order. An empty mask gives ''."""
    pixels = np.concatenate([[0], np.asarray(mask, dtype=bool).flatten(order=order).astype(np.int8), [0]])
    runs = np.flatnonzero(pixels[1:] != pixels[:-1])
    runs[1::2] -= runs[::2]
    runs[::2] += start
    return " ".join(str(int(v)) for v in runs)


def rle_decode(rle: str, shape: tuple[int, int], order: str = "F", start: int = 1) -> np.ndarray:
    """The (height, width) uint8 mask of an RLE string; raises ValueError on an odd count, non-numbers or runs
    outside the image or overlapping."""
    text = str(rle).strip() if rle is not None else ""
    mask = np.zeros(shape[0] * shape[1], dtype=np.uint8)
    if not text or text.lower() == "nan":
        return mask.reshape(shape, order=order)
    try:
        numbers = np.array([int(v) for v in text.split()], dtype=np.int64)
    except ValueError as error:
        raise ValueError(f"RLE '{text[:40]}' holds a non-integer") from error
    if len(numbers) % 2:
        raise ValueError(f"RLE has {len(numbers)} numbers; expected start/length pairs")
    starts, lengths = numbers[::2] - start, numbers[1::2]
    if (starts < 0).any() or (lengths <= 0).any() or (starts + lengths > mask.size).any():
        raise ValueError(f"RLE run outside the {shape[1]}x{shape[0]} image or of non-positive length")
    if (starts[1:] < starts[:-1] + lengths[:-1]).any():
        raise ValueError("RLE runs overlap or are not in increasing order")
    for begin, length in zip(starts, lengths, strict=True):
        mask[begin : begin + length] = 1
    return mask.reshape(shape, order=order)


def read_mask_png(
    path: Path, shape: tuple[int, int], num_classes: int, binary: bool, ignore: int | None = None
) -> np.ndarray:
    """An index mask (0 background, k class k, `ignore` left out) checked against the image size and classes."""
    mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if mask is None:
        raise DataError(f"{path}: cannot decode mask")
    if mask.ndim == 3:
        mask = mask[:, :, 0]
    if mask.shape != shape:
        raise DataError(f"{path}: mask is {mask.shape[1]}x{mask.shape[0]} but its image is {shape[1]}x{shape[0]}")
    if binary:
        return (mask > 0).astype(np.uint8)
    largest = int(mask[mask != ignore].max(initial=0)) if ignore is not None else int(mask.max())
    if largest > num_classes:
        raise DataError(f"{path}: mask value {largest} is beyond the {num_classes} classes (0 is background)")
    return mask.astype(np.uint8)


def write_mask_png(path: Path, mask: np.ndarray) -> Path:
    """An index mask as a PNG, written atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temporary:
        cv2.imwrite(str(temporary) + ".png", mask)  # cv2 picks the format from the extension
        Path(str(temporary) + ".png").replace(temporary)
    return path


def _image_files(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        raise DataError(f"{folder}: image folder not found")
    files = {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES}
    if not files:
        raise DataError(f"{folder}: no images with extensions {sorted(IMAGE_SUFFIXES)}")
    return files


def _size(path: Path) -> tuple[int, int]:
    try:
        with Image.open(path) as image:
            return image.size
    except OSError as error:  # PIL's UnidentifiedImageError too: one line naming the file, not a traceback
        raise DataError(f"{path}: cannot read image size ({error.__class__.__name__})") from error


def presence_strata(presence: np.ndarray) -> np.ndarray:
    """Per-image class presence plus an empty-mask column, for multilabel stratification."""
    empty = (presence.sum(axis=1) == 0).astype(np.int64)[:, None]
    return np.concatenate([presence.astype(np.int64), empty], axis=1)


def _table(rows: list[dict], specs: list[Any], classes: list[str], presence: np.ndarray, source: Path) -> LabelledTable:
    if not rows:
        raise DataError(f"{source}: no training images")
    if not classes or not presence.any():
        raise DataError(f"{source}: all {len(rows)} masks are empty; a segmentation model needs labelled pixels")
    frame = pd.DataFrame(rows, columns=["id", "path", "width", "height"])
    targets = np.empty(len(specs), dtype=object)
    targets[:] = specs
    table = LabelledTable(frame, classes, targets, False, source)
    table.strata = presence_strata(presence)
    return table


def _check_mask_values(first_seen: dict[int, Path], config: DataConfig, binary: bool) -> None:
    """Without data.classes or data.num_classes the values must be the class indices 1..K: a 0/255 mask or stray
    values would otherwise become hundreds of classes."""
    values = sorted(value for value in first_seen if value > 0)
    if binary or config.classes is not None or config.num_classes is not None or not values:
        return
    if values != list(range(1, values[-1] + 1)):
        odd = values[-1]  # distinct positive values that are not 1..max: the largest is not an index
        raise DataError(
            f"{first_seen[odd]}: mask value {odd} is not a class index (values found: {values[:8]}); "
            "0/255 masks need data.mask_values=binary, other labels data.classes=[names of classes 1..K]"
        )


def read_mask_folder(config: DataConfig, check_images: bool = True) -> LabelledTable:
    """Masks as PNGs named like their images in data.masks: index values (0 background, k the k-th class of
    data.classes, default '1'..'K') or any non-zero value as one class (data.mask_values=binary)."""
    images = _image_files(config.root / config.train_images)
    folder = config.root / config.masks
    masks = _image_files(folder) if folder.is_dir() else None
    if masks is None:
        raise DataError(f"{folder}: mask folder not found")
    orphans = sorted(set(masks) - set(images))
    if orphans:
        raise DataError(f"{masks[orphans[0]]}: mask for a missing image '{orphans[0]}'")
    binary = config.mask_values == "binary"
    rows, specs, presences = [], [], []
    first_seen: dict[int, Path] = {}  # each mask value and the first file that holds it
    for image_id, path in images.items():
        width, height = _size(path)
        mask_path = masks.get(image_id)
        if mask_path is None:
            raise DataError(f"{path}: no mask {folder / (image_id + '.png')}")
        mask = read_mask_png(mask_path, (height, width), config.num_classes or 255, binary)
        for value in np.unique(mask).tolist():
            first_seen.setdefault(int(value), mask_path)
        presences.append(np.bincount(mask.ravel(), minlength=256)[1:])
        rows.append({"id": image_id, "path": str(path), "width": width, "height": height})
        specs.append({"mask": str(mask_path), "binary": binary})
    found = max(first_seen, default=0)
    _check_mask_values(first_seen, config, binary)
    count = 1 if binary else (len(config.classes) if config.classes else (config.num_classes or found))
    classes = list(config.classes) if config.classes else [str(k) for k in range(1, count + 1)]
    if found > len(classes):
        raise DataError(f"{folder}: mask value {found} is beyond the {len(classes)} classes of data.classes")
    presence = np.stack(presences)[:, : len(classes)] > 0
    return _table(rows, specs, classes, presence, folder)


def read_rle_csv(config: DataConfig, check_images: bool = True) -> LabelledTable:
    """A CSV of run-length encodings: id, optionally a class column (data.target_columns), and the RLE column;
    several rows per image for several classes, an empty RLE for an empty mask."""
    source = config.root / config.train_csv
    frame = read_csv(source)
    class_column = config.target_columns[0] if config.target_columns else None
    require_columns(frame, [config.id_column, config.rle_column, *([class_column] if class_column else [])], source)
    images = _image_files(config.root / config.train_images)
    labels = frame[class_column].astype(str).str.strip() if class_column else pd.Series(["1"] * len(frame))
    found = sorted_labels(sorted({label for label in labels if label}))
    classes = check_classes(found, config, source)
    index = {name: i for i, name in enumerate(classes)}
    by_image: dict[str, list] = {image_id: [] for image_id in images}
    for row, (image_id, label, rle) in enumerate(
        zip(frame[config.id_column], labels, frame[config.rle_column], strict=True)
    ):
        stem = Path(image_id).stem if Path(image_id).suffix.lower() in IMAGE_SUFFIXES else image_id
        if stem not in by_image:
            raise DataError(f"{source}: row {row + 2}: mask for a missing image '{image_id}'")
        if rle.strip():
            by_image[stem].append((index[label], rle, row + 2))
    rows, specs, presences = [], [], []
    for image_id, path in images.items():
        width, height = _size(path)
        for _, rle, row in by_image[image_id]:
            try:
                rle_decode(rle, (height, width), config.rle_order, config.rle_start)
            except ValueError as error:
                raise DataError(f"{source}: row {row}: {error}") from error
        presence = np.zeros(len(classes), dtype=bool)
        presence[[c for c, _, _ in by_image[image_id]]] = True
        presences.append(presence)
        rows.append({"id": image_id, "path": str(path), "width": width, "height": height})
        specs.append(
            {"rle": [(c, r) for c, r, _ in by_image[image_id]], "order": config.rle_order, "start": config.rle_start}
        )
    return _table(rows, specs, classes, np.stack(presences), source)


def read_coco_polygons(config: DataConfig, check_images: bool = True) -> LabelledTable:
    """COCO JSON with `segmentation` polygons (or RLE), rasterised by pycocotools when an image is loaded."""
    from ...core.coco import coco_annotations, coco_image_row

    source, images, classes, checked = coco_annotations(config)
    annotations: dict[int, list] = {image_id: [] for image_id in images}
    for name, annotation, class_index in checked:
        if not annotation.get("segmentation"):
            raise DataError(f"{name} has no segmentation")
        annotations[annotation["image_id"]].append((class_index, annotation["segmentation"]))
    rows, specs, presences = [], [], []
    for image_id, image in images.items():
        rows.append(coco_image_row(config, source, image_id, image, check_images))
        presence = np.zeros(len(classes), dtype=bool)
        presence[[c for c, _ in annotations[image_id]]] = True
        presences.append(presence)
        specs.append({"polygons": annotations[image_id]})
    return _table(rows, specs, classes, np.stack(presences), source)


def decode_target(spec: dict[str, Any], height: int, width: int, num_classes: int, multilabel: bool) -> np.ndarray:
    """The training mask of one image: (H, W) indices 0..K for multiclass, (H, W, K) 0/1 for multilabel."""
    channels = np.zeros((height, width, num_classes), dtype=np.uint8)
    if "mask" in spec:
        index = read_mask_png(
            Path(spec["mask"]), (height, width), num_classes, spec.get("binary", False), spec.get("ignore")
        )
        if not multilabel:
            return index
        for k in range(num_classes):
            channels[:, :, k] = index == k + 1
        return channels
    if "rle" in spec:
        for class_index, rle in spec["rle"]:
            channels[:, :, class_index] |= rle_decode(rle, (height, width), spec["order"], spec["start"])
    else:
        from pycocotools import mask as coco_mask

        for class_index, segmentation in spec["polygons"]:
            if isinstance(segmentation, list):
                encoded = coco_mask.merge(coco_mask.frPyObjects(segmentation, height, width))
            else:
                encoded = coco_mask.frPyObjects(segmentation, height, width)
            channels[:, :, class_index] |= coco_mask.decode(encoded).astype(np.uint8)
    if multilabel:
        return channels
    index = np.zeros((height, width), dtype=np.uint8)
    for k in range(num_classes):  # later classes win where multiclass masks overlap
        index[channels[:, :, k] > 0] = k + 1
    return index


LAYOUTS = {"masks": read_mask_folder, "rle_csv": read_rle_csv, "coco_polygons": read_coco_polygons}
