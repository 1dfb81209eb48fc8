"""What every task reads: the training table type and its shared row checks, test images, the sample
submission, pseudo-labels, images (with the RAM/disk cache) and the image Dataset. Label readers are per task."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from ..config import DataConfig
from .errors import DataError
from .runs import atomic_path

PSEUDO_FOLD = -2  # fold of pseudo-labelled rows: in every fold's training part, never validated
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


@dataclass
class LabelledTable:
    """Training images: `frame` has `id` and `path` columns (plus the CSV's), `targets` is aligned."""

    frame: pd.DataFrame
    classes: list[str]
    targets: np.ndarray  # (N,) class indices, or (N, C) 0/1 for multi-label
    multi_label: bool
    source: Path
    strata: np.ndarray | None = None  # what stratified splitters balance, when not the targets (detection)

    @property
    def ids(self) -> np.ndarray:
        return self.frame["id"].to_numpy()


def read_csv(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as error:
        raise DataError(f"{path}: cannot read as CSV ({' '.join(str(error).split())})") from error


def require_columns(frame: pd.DataFrame, columns: list[str], source: Path) -> None:
    for column in columns:
        if column not in frame.columns:
            raise DataError(f"{source}: missing column '{column}' (columns: {', '.join(map(str, frame.columns))})")


def check_unique_ids(ids: pd.Series, source: Path) -> None:
    duplicated = ids[ids.duplicated(keep=False)]
    if len(duplicated):
        first = duplicated.iloc[0]
        rows = [int(i) + 2 for i in np.flatnonzero(ids.to_numpy() == first)[:2]]  # +2: header, 1-based
        raise DataError(f"{source}: duplicate id '{first}' at rows {rows[0]} and {rows[1]}")


def id_stem(image_id: str) -> str:
    """An image id without its image extension: sample submissions may list `te000.png` for image `te000`."""
    path = Path(str(image_id))
    return str(image_id)[: -len(path.suffix)] if path.suffix.lower() in IMAGE_SUFFIXES else str(image_id)


def image_path(folder: Path, image_id: str, ext: str) -> Path:
    return folder / (image_id if Path(image_id).suffix.lower() in IMAGE_SUFFIXES else f"{image_id}{ext}")


def check_images_exist(paths: list[Path], source: Path) -> None:
    for row, path in enumerate(paths):
        if not path.is_file():
            raise DataError(f"{path}: image not found (row {row + 2} of {source})")


def sorted_labels(values: list[str]) -> list[str]:
    try:
        return sorted(values, key=float)
    except ValueError:
        return sorted(values)


def check_classes(found: list[str], config: DataConfig, source: Path) -> list[str]:
    if config.num_classes is not None and len(found) != config.num_classes and config.classes is None:
        raise DataError(
            f"{source}: {len(found)} classes found ({', '.join(found[:10])}) "
            f"but data.num_classes is {config.num_classes}"
        )
    if config.classes is None:
        return found
    unknown = sorted(set(found) - set(config.classes))
    if unknown:
        raise DataError(f"{source}: labels {unknown} are not in data.classes {config.classes}")
    if config.num_classes is not None and len(config.classes) != config.num_classes:
        raise DataError(f"data.classes has {len(config.classes)} names but data.num_classes is {config.num_classes}")
    return list(config.classes)


def listed_train_images(config: DataConfig) -> list[str]:
    """The training images a config names, read without their labels (so `check` still decodes them when a label
    is malformed): the id column of a train CSV, else every image under data.train_images."""
    source = config.root / config.train_csv
    if config.layout in ("csv", "boxes_csv", "rle_csv") and source.is_file():
        try:
            ids = read_csv(source)[config.id_column].astype(str).unique()
        except (DataError, KeyError):
            return []
        folder = config.root / config.train_images
        return [str(image_path(folder, image_id, config.image_ext)) for image_id in ids]
    folder = config.root / config.train_images
    if not folder.is_dir():
        return []
    return sorted(str(p) for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def read_test_table(config: DataConfig) -> pd.DataFrame:
    """Test images as a frame of `id` (file stem) and `path`, sorted by id. When train and test images share one
    folder (Plant Pathology's images/), the test images are those the sample submission lists."""
    folder = config.root / config.test_images
    if not folder.is_dir():
        raise DataError(f"{folder}: test image folder not found")
    paths = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if Path(config.test_images) == Path(config.train_images):
        sample = read_csv(config.root / config.sample_submission)
        require_columns(sample, [config.id_column], config.root / config.sample_submission)
        listed = set(sample[config.id_column].astype(str).map(id_stem))
        paths = [p for p in paths if p.stem in listed]
    if not paths:
        raise DataError(f"{folder}: no images with extensions {sorted(IMAGE_SUFFIXES)}")
    return pd.DataFrame({"id": [p.stem for p in paths], "path": [str(p) for p in paths]})


def read_sample_submission(config: DataConfig, per_class: bool = False) -> pd.DataFrame:
    """The sample submission; ids are unique, or with `per_class` (segmentation's one row per image and class)
    unique together with the class column."""
    source = config.root / config.sample_submission
    frame = read_csv(source)
    require_columns(frame, [config.id_column], source)
    keys = frame[config.id_column]
    class_columns = [c for c in config.target_columns if c in frame.columns] if per_class else []
    if class_columns:
        keys = keys.str.cat(frame[class_columns[0]], sep="/")
    elif per_class and keys.duplicated().any():
        repeated = keys[keys.duplicated()].iloc[0]
        others = [c for c in frame.columns if c not in (config.id_column, config.rle_column)]
        raise DataError(
            f"{source}: id '{repeated}' has several rows, one per class: name the sample's class column in "
            f"data.target_columns (e.g. data.target_columns=[{others[0] if others else 'ClassId'}])"
        )
    check_unique_ids(keys, source)
    return frame


def check_test_ids(sample: pd.DataFrame, test_ids: pd.Series, id_column: str, sample_source: Path) -> None:
    """The sample submission must list exactly the test folder's images (ids with or without the extension)."""
    sample_ids = set(sample[id_column].astype(str).map(id_stem))
    test_set = set(test_ids.astype(str).map(id_stem))
    if sample_ids != test_set:
        only_sample, only_test = sorted(sample_ids - test_set), sorted(test_set - sample_ids)
        example = (
            f"'{only_sample[0]}' has no test image" if only_sample else f"test image '{only_test[0]}' is not listed"
        )
        raise DataError(f"{sample_source}: ids differ from the test folder ({example})")


def with_pseudo_rows(
    table: LabelledTable, folds: np.ndarray, frame: pd.DataFrame, targets: np.ndarray, source: Path
) -> tuple[LabelledTable, np.ndarray]:
    """The table with pseudo-labelled rows (`frame`: id, path, ...; `targets` in the table's form) appended in
    fold PSEUDO_FOLD: every fold trains on them and none validates on them."""
    if frame.empty:
        raise DataError(f"{source}: no pseudo-labelled rows")
    clash = sorted(set(frame["id"]) & set(table.ids))
    if clash:
        raise DataError(f"{source}: id '{clash[0]}' is also a training id")
    check_images_exist([Path(p) for p in frame["path"]], source)
    frame = frame.copy()
    for column in {"width", "height"} & set(frame.columns):  # read as text like every CSV here
        numbers = pd.to_numeric(frame[column], errors="coerce")
        if numbers.isna().any() or (numbers <= 0).any():
            row = int(np.flatnonzero(numbers.isna() | (numbers <= 0))[0]) + 2
            raise DataError(f"{source}: row {row}: {column} must be a positive number")
        frame[column] = numbers
    extended = LabelledTable(
        pd.concat([table.frame, frame], ignore_index=True),
        table.classes,
        np.concatenate([table.targets, targets]),
        table.multi_label,
        table.source,
    )
    return extended, np.concatenate([folds, np.full(len(frame), PSEUDO_FOLD, dtype=np.int64)])


def read_image(path: str, channels: int = 3) -> np.ndarray:
    """An HxWxC uint8 array (RGB for 3 channels); a corrupt file raises DataError naming it."""
    flag = cv2.IMREAD_GRAYSCALE if channels == 1 else cv2.IMREAD_COLOR
    image = cv2.imread(path, flag)
    if image is None:
        raise DataError(f"{path}: cannot decode image (corrupt, empty or not an image)")
    if channels == 1:
        return image[:, :, None]
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


class ImageCache:
    """Decoded uint8 images, resized to `size` when given (exactly as the transform's first Resize would), kept in
    RAM or as .npy files in `folder`. Keys hold the file's path, modification time and byte size, the size and the
    channels, so a changed file or image size misses the cache. Filled before the DataLoader forks its workers,
    the RAM cache is shared with them (copy-on-write) and reused by every fold and by predict in one process."""

    def __init__(self, mode: str, folder: Path, size: int | None, channels: int) -> None:
        self.mode, self.folder, self.size, self.channels = mode, folder, size, channels
        self.images: dict[str, np.ndarray] = {}
        self.misses = 0  # images decoded (not served from the cache)

    @property
    def settings(self) -> tuple[str, Path, int | None, int]:
        return self.mode, self.folder, self.size, self.channels

    def key(self, path: str) -> str:
        import hashlib

        stat = os.stat(path)
        text = f"{os.path.abspath(path)}|{stat.st_mtime_ns}|{stat.st_size}|{self.size}|{self.channels}"
        return hashlib.sha1(text.encode()).hexdigest()

    def _decode(self, path: str) -> np.ndarray:
        self.misses += 1
        image = read_image(path, self.channels)
        if self.size is None:
            return image
        import albumentations as A

        return A.Resize(self.size, self.size)(image=image)["image"]

    def get(self, path: str) -> np.ndarray:
        key = self.key(path)
        if self.mode == "ram":
            if key not in self.images:
                self.images[key] = self._decode(path)
            return self.images[key]
        file = self.folder / f"{key}.npy"
        if file.is_file():
            return np.load(file)
        image = self._decode(path)
        with atomic_path(file) as temporary, open(temporary, "wb") as handle:
            np.save(handle, image)
        return image

    def fill(self, paths: list[str], workers: int = 4) -> None:
        """Decode every image now, in threads (OpenCV releases the GIL), before loader workers fork."""
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max(workers, 1)) as pool:
            list(pool.map(self.get, paths))


_ACTIVE_CACHE: ImageCache | None = None


def activate_cache(mode: str, folder: Path, size: int | None, channels: int) -> ImageCache | None:
    """Make datasets read through a cache (data.cache) in this process; an equal cache stays as it is. auto, which
    train settles before it reads images, means none where a stage reads a config train has not settled."""
    global _ACTIVE_CACHE
    if mode in ("none", "auto"):
        _ACTIVE_CACHE = None
    elif _ACTIVE_CACHE is None or _ACTIVE_CACHE.settings != (mode, folder, size, channels):
        _ACTIVE_CACHE = ImageCache(mode, folder, size, channels)
    return _ACTIVE_CACHE


def load_image(path: str, channels: int = 3) -> np.ndarray:
    """A dataset's image: from the active cache when there is one (already resized for classification)."""
    cache = _ACTIVE_CACHE
    if cache is not None and cache.channels == channels:
        return cache.get(path)
    return read_image(path, channels)


class ImageDataset(Dataset):
    """Images with optional targets through an albumentations transform that ends in ToTensorV2."""

    def __init__(
        self,
        paths: list[str],
        targets: np.ndarray | None,
        transform: Callable[..., dict[str, Any]],
        channels: int = 3,
    ) -> None:
        self.paths = list(paths)
        self.targets = targets
        self.transform = transform
        self.channels = channels

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = self.transform(image=load_image(self.paths[index], self.channels))["image"]
        if self.targets is None:
            return image, torch.tensor(index)
        return image, torch.as_tensor(self.targets[index])


def object_array(items: list[Any]) -> np.ndarray:
    array = np.empty(len(items), dtype=object)
    array[:] = items
    return array
