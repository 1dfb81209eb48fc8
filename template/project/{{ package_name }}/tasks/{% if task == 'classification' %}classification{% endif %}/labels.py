"""Classification labels: a CSV of ids and labels (one column, tags, or 0/1 columns) or one folder per class."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ...config import DataConfig
from ...core.data import (
    IMAGE_SUFFIXES,
    LabelledTable,
    check_classes,
    check_images_exist,
    check_unique_ids,
    image_path,
    read_csv,
    require_columns,
    sorted_labels,
)
from ...core.errors import DataError


def _single_label_targets(frame: pd.DataFrame, column: str, config: DataConfig, source: Path) -> tuple:
    labels = frame[column].astype(str).str.strip()
    empty = np.flatnonzero(labels.to_numpy() == "")
    if len(empty):
        rows = ", ".join(str(int(row) + 2) for row in empty[:3]) + (
            f" and {len(empty) - 3} more" if len(empty) > 3 else ""
        )
        where = f"row {rows}" if len(empty) == 1 else f"rows {rows}"
        raise DataError(f"{source}: empty '{column}' at {where} ({len(empty)} of {len(labels)} rows)")
    classes = check_classes(sorted_labels(labels.unique().tolist()), config, source)
    index = {name: i for i, name in enumerate(classes)}
    return classes, labels.map(index).to_numpy(dtype=np.int64)


def _multi_label_targets(frame: pd.DataFrame, config: DataConfig, source: Path) -> tuple:
    columns = config.target_columns
    if len(columns) > 1:
        values = frame[columns].apply(pd.to_numeric, errors="coerce")
        bad = values.isna() | ~values.isin([0, 1])
        if bad.to_numpy().any():
            row, col = np.argwhere(bad.to_numpy())[0]
            raise DataError(f"{source}: column '{columns[col]}' row {row + 2}: expected 0 or 1")
        classes = check_classes(list(columns), config, source)
        return classes, values[classes].to_numpy(dtype=np.float32)
    tags = frame[columns[0]].astype(str).str.split(config.label_separator)
    found = sorted_labels(sorted({tag for row in tags for tag in row if tag}))
    classes = check_classes(found, config, source)
    index = {name: i for i, name in enumerate(classes)}
    targets = np.zeros((len(frame), len(classes)), dtype=np.float32)
    for row, row_tags in enumerate(tags):
        for tag in row_tags:
            if tag:
                targets[row, index[tag]] = 1.0
    return classes, targets


def read_csv_layout(config: DataConfig, check_images: bool = True) -> LabelledTable:
    source = config.root / config.train_csv
    frame = read_csv(source)
    require_columns(frame, [config.id_column, *config.target_columns], source)
    if config.multi_label:
        classes, targets = _multi_label_targets(frame, config, source)
    else:
        if len(config.target_columns) != 1:
            raise DataError(
                f"data.target_columns has {len(config.target_columns)} columns; single-label needs one "
                "(set data.multi_label=true for 0/1 columns)"
            )
        classes, targets = _single_label_targets(frame, config.target_columns[0], config, source)
    frame = frame.rename(columns={config.id_column: "id"}) if config.id_column != "id" else frame
    frame["id"] = frame["id"].astype(str)
    check_unique_ids(frame["id"], source)
    folder = config.root / config.train_images
    paths = [image_path(folder, image_id, config.image_ext) for image_id in frame["id"]]
    if check_images:
        check_images_exist(paths, source)
    frame["path"] = [str(path) for path in paths]
    return LabelledTable(frame, classes, targets, config.multi_label, source)


def read_folder_layout(config: DataConfig, check_images: bool = True) -> LabelledTable:
    folder = config.root / config.train_images
    if not folder.is_dir():
        raise DataError(f"{folder}: folder not found (expected one sub-folder per class)")
    if config.multi_label:
        raise DataError("data.layout=folders gives one class per image; set data.multi_label=false")
    class_dirs = sorted(path for path in folder.iterdir() if path.is_dir())
    if not class_dirs:
        raise DataError(f"{folder}: no class sub-folders found")
    classes = check_classes(sorted_labels([path.name for path in class_dirs]), config, folder)
    rows = []
    for class_dir in class_dirs:
        for path in sorted(class_dir.iterdir()):
            if path.suffix.lower() in IMAGE_SUFFIXES:
                rows.append({"id": f"{class_dir.name}/{path.stem}", "path": str(path), "label": class_dir.name})
    frame = pd.DataFrame(rows, columns=["id", "path", "label"])
    index = {name: i for i, name in enumerate(classes)}
    return LabelledTable(frame, classes, frame["label"].map(index).to_numpy(np.int64), False, folder)


LAYOUTS = {"csv": read_csv_layout, "folders": read_folder_layout}
