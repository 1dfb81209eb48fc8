"""Detection labels: COCO JSON, one-box-per-row CSV and Pascal VOC XML read into one table of xyxy pixel boxes,
checked box by box; box formats and Kaggle PredictionStrings."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ...config import DataConfig
from ...core.coco import coco_annotations, coco_image_row, folder_images, read_image_size
from ...core.data import (
    IMAGE_SUFFIXES,
    LabelledTable,
    check_classes,
    image_path,
    read_csv,
    require_columns,
    sorted_labels,
)
from ...core.errors import DataError
from .boxes import SHOWN, BoxAudit, check_audit, check_boxes, format_hint, to_xyxy


def _target(boxes: list, labels: list, segmentations: list | None = None) -> dict[str, Any]:
    target: dict[str, Any] = {
        "boxes": np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
        "labels": np.asarray(labels, dtype=np.int64).reshape(-1),
    }
    if segmentations and any(segmentation for segmentation in segmentations):
        target["segmentations"] = segmentations  # COCO polygons or RLE per box: Copy-Paste cuts objects with them
    return target


def box_strata(targets: np.ndarray, num_classes: int, count_bins: int = 4) -> np.ndarray:
    """Per-image class presence plus a one-hot box-count bin (quantiles), for multilabel stratification."""
    presence = np.zeros((len(targets), num_classes), dtype=np.int64)
    counts = np.array([len(target["labels"]) for target in targets])
    for row, target in enumerate(targets):
        presence[row, target["labels"]] = 1
    edges = np.unique(np.quantile(counts, np.linspace(0, 1, count_bins + 1)[1:-1]))
    bins = np.eye(len(edges) + 1, dtype=np.int64)[np.searchsorted(edges, counts, side="right")]
    return np.concatenate([presence, bins], axis=1)


def _table(
    rows: list[dict], targets: list[dict], classes: list[str], source: Path, audit: BoxAudit, hint: str = ""
) -> LabelledTable:
    if not rows:
        raise DataError(f"{source}: no training images")
    check_audit(audit, source, hint)
    if not classes or not any(len(target["labels"]) for target in targets):
        raise DataError(f"{source}: no labelled boxes in {len(rows)} images; a detector needs at least one box")
    if audit.clipped:
        print(f"{source}: clipped {audit.clipped} boxes to their image borders (data.out_of_bounds=clip)")
    frame = pd.DataFrame(rows)
    target_array = np.empty(len(targets), dtype=object)
    target_array[:] = targets
    table = LabelledTable(frame, classes, target_array, False, source)
    table.strata = box_strata(target_array, len(classes))
    return table


def read_coco(config: DataConfig, check_images: bool = True) -> LabelledTable:
    """COCO JSON: images, annotations (bbox xywh pixels) and categories; images without boxes are negatives."""
    source, images, classes, annotations = coco_annotations(config)
    boxes: dict[int, list] = {image_id: [] for image_id in images}
    labels: dict[int, list] = {image_id: [] for image_id in images}
    where: dict[int, list] = {image_id: [] for image_id in images}
    segmentations: dict[int, list] = {image_id: [] for image_id in images}
    for name, annotation, class_index in annotations:
        if "bbox" not in annotation or len(annotation["bbox"]) != 4:
            raise DataError(f"{name} has no 4-number bbox")
        image_id = annotation["image_id"]
        boxes[image_id].append(to_xyxy(np.array(annotation["bbox"]), "xywh")[0])
        labels[image_id].append(class_index)
        where[image_id].append(name)
        segmentations[image_id].append(annotation.get("segmentation") or None)
    rows, targets, audit = [], [], BoxAudit()
    for image_id, image in images.items():
        row = coco_image_row(config, source, image_id, image, check_images)
        width, height = row["width"], row["height"]
        image_boxes, keep = check_boxes(
            np.array(boxes[image_id]), width, height, where[image_id], config.out_of_bounds, audit
        )
        rows.append(row)
        kept_segmentations = [s for s, kept in zip(segmentations[image_id], keep, strict=True) if kept]
        targets.append(_target(image_boxes, np.asarray(labels[image_id], dtype=np.int64)[keep], kept_segmentations))
    return _table(rows, targets, classes, source, audit)


def _parse_box_cell(value: str, where: str) -> list[float]:
    try:
        numbers = json.loads(value.replace("(", "[").replace(")", "]"))
    except json.JSONDecodeError:
        numbers = value.replace(",", " ").split()
    try:
        numbers = [float(number) for number in numbers]
    except (TypeError, ValueError) as error:
        raise DataError(f"{where}: box {value!r} is not four numbers") from error
    if len(numbers) != 4:
        raise DataError(f"{where}: box {value!r} is not four numbers")
    return numbers


def read_boxes_csv(config: DataConfig, check_images: bool = True) -> LabelledTable:
    """One box per row: image id, box (4 columns or one '[a, b, c, d]' column) and class. Rows with an empty box
    and images of the train folder with no row are negatives."""
    source = config.root / config.train_csv
    frame = read_csv(source)
    if not config.target_columns:  # one class, as in Global Wheat: every box is data.classes[0] (or "object")
        frame["_class"] = (config.classes or ["object"])[0]
    class_column = config.target_columns[0] if config.target_columns else "_class"
    require_columns(frame, [config.id_column, *config.box_columns, class_column], source)
    if len(config.box_columns) not in (1, 4):
        raise DataError(f"data.box_columns has {len(config.box_columns)} names; expected 4 columns or 1 column")
    folder = config.root / config.train_images
    on_disk = folder_images(folder)
    ids = (
        frame[config.id_column]
        .astype(str)
        .map(lambda i: Path(i).stem if Path(i).suffix.lower() in IMAGE_SUFFIXES else i)
    )
    empty_box = frame[config.box_columns].apply(lambda column: column.str.strip() == "").all(axis=1)
    found = sorted({label.strip() for label, empty in zip(frame[class_column], empty_box, strict=True) if not empty})
    if config.classes is not None:
        for row, (label, empty) in enumerate(zip(frame[class_column], empty_box, strict=True)):
            if not empty and label.strip() not in config.classes:
                raise DataError(
                    f"{source}: row {row + 2}: class '{label.strip()}' is not in data.classes {config.classes}"
                )
    classes = check_classes(sorted_labels(found), config, source)
    image_ids = sorted(set(ids) | set(on_disk))
    by_image: dict[str, list[int]] = {image_id: [] for image_id in image_ids}
    for row, (image_id, empty) in enumerate(zip(ids, empty_box, strict=True)):
        if image_id not in on_disk and check_images:
            raise DataError(f"{source}: row {row + 2} annotates image '{image_id}', which is not in {folder}")
        if not empty:
            by_image[image_id].append(row)
    rows, targets, audit, malformed, pixels = [], [], BoxAudit(), [], []
    reserved = {config.id_column, class_column, *config.box_columns, "id", "path", "width", "height"}
    extra_columns = [column for column in frame.columns if column not in reserved]
    for image_id in image_ids:
        path = on_disk.get(image_id, image_path(folder, image_id, config.image_ext))
        width, height = read_image_size(path, source)
        raw, labels, where, wrong = _image_rows(
            frame, by_image[image_id], config.box_columns, class_column, classes, source
        )
        malformed.extend(wrong)
        boxes = np.array(raw, dtype=np.float64).reshape(-1, 4)
        if config.box_normalized:
            boxes = boxes * np.array([width, height, width, height])
        pixels.append((boxes, width, height))
        checked, keep = check_boxes(
            to_xyxy(boxes, config.box_format), width, height, where, config.out_of_bounds, audit
        )
        # Other columns (a source for group folds, ...) from the image's first row; negatives without rows get "".
        first = frame.iloc[by_image[image_id][0]] if by_image[image_id] else None
        extra = {column: "" if first is None else first[column] for column in extra_columns}
        rows.append({"id": image_id, "path": str(path), "width": width, "height": height, **extra})
        targets.append(_target(checked, np.asarray(labels, dtype=np.int64)[keep]))
    if malformed:
        more = f" and {len(malformed) - SHOWN} more" if len(malformed) > SHOWN else ""
        rows = "row" if len(malformed) == 1 else "rows"
        raise DataError(f"{source}: {len(malformed)} malformed {rows}: {'; '.join(malformed[:SHOWN])}{more}")
    return _table(rows, targets, classes, source, audit, format_hint(pixels, config.box_format, audit))


def _image_rows(
    frame: pd.DataFrame, rows: list[int], box_columns: list[str], class_column: str, classes: list[str], source: Path
) -> tuple[list[list[float]], list[int], list[str], list[str]]:
    """One image's boxes and class indices from its CSV rows, where each came from ("<csv>: row N"), and what was
    wrong with each malformed row (a box that is not four numbers, an unknown class)."""
    raw, labels, where, malformed = [], [], [], []
    for row in rows:
        here = f"{source}: row {row + 2}"
        try:
            numbers = _row_box(frame.iloc[row], box_columns, here)
        except DataError as error:
            malformed.append(str(error).removeprefix(f"{source}: "))
            continue
        label = frame.iloc[row][class_column].strip()
        if label not in classes:
            malformed.append(f"row {row + 2}: class '{label}' is not in data.classes {classes}")
            continue
        raw.append(numbers)
        labels.append(classes.index(label))
        where.append(here)
    return raw, labels, where, malformed


def _row_box(values: pd.Series, columns: list[str], here: str) -> list[float]:
    if len(columns) == 1:
        return _parse_box_cell(values[columns[0]], here)
    try:
        return [float(values[column]) for column in columns]
    except ValueError as error:
        raise DataError(f"{here}: box columns {columns} must hold numbers") from error


def _voc_number(node: ET.Element, tag: str, where: str) -> float:
    text = node.findtext(tag)
    try:
        return float(text)
    except (TypeError, ValueError) as error:
        raise DataError(f"{where}: <{tag}> is {text!r}, expected a number") from error


def read_voc(config: DataConfig, check_images: bool = True) -> LabelledTable:
    """Pascal VOC: one XML per image in data.annotations (filename, size, object/name, bndbox in pixels)."""
    folder = config.root / config.annotations
    if not folder.is_dir():
        raise DataError(f"{folder}: VOC annotation folder not found")
    images = config.root / config.train_images
    parsed = []
    for xml_path in sorted(folder.glob("*.xml")):
        try:
            root = ET.parse(xml_path).getroot()
        except ET.ParseError as error:
            raise DataError(f"{xml_path}: malformed XML ({error})") from error
        parsed.append((xml_path, root))
    if not parsed:
        raise DataError(f"{folder}: no .xml annotation files")
    found = sorted({(obj.findtext("name") or "").strip() for _, root in parsed for obj in root.iter("object")})
    classes = check_classes(sorted_labels([name for name in found if name]), config, folder)
    class_index = {name: i for i, name in enumerate(classes)}
    rows, targets, audit = [], [], BoxAudit()
    for xml_path, root in parsed:
        filename = root.findtext("filename") or f"{xml_path.stem}{config.image_ext}"
        path = images / filename
        if check_images and not path.is_file():
            raise DataError(f"{xml_path}: image {path} not found")
        size = root.find("size")
        if size is not None and size.findtext("width"):
            width, height = (
                int(_voc_number(size, "width", str(xml_path))),
                int(_voc_number(size, "height", str(xml_path))),
            )
        else:
            width, height = read_image_size(path, xml_path)
        boxes, labels, where = [], [], []
        for number, obj in enumerate(root.iter("object")):
            here = f"{xml_path}: object {number + 1}"
            name = (obj.findtext("name") or "").strip()
            if name not in class_index:
                raise DataError(f"{here}: class '{name}' is not in data.classes {classes}")
            box = obj.find("bndbox")
            if box is None:
                raise DataError(f"{here}: no <bndbox>")
            boxes.append([_voc_number(box, tag, here) for tag in ("xmin", "ymin", "xmax", "ymax")])
            labels.append(class_index[name])
            where.append(here)
        checked, keep = check_boxes(np.array(boxes), width, height, where, config.out_of_bounds, audit)
        rows.append({"id": Path(filename).stem, "path": str(path), "width": width, "height": height})
        targets.append(_target(checked, np.asarray(labels, dtype=np.int64)[keep]))
    return _table(rows, targets, classes, folder, audit)


LAYOUTS = {"coco": read_coco, "boxes_csv": read_boxes_csv, "voc": read_voc}
