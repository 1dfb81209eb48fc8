"""COCO annotation files shared by detection (boxes) and segmentation (polygons): loaded, checked, iterated."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from PIL import Image

from ..config import DataConfig
from .data import (
    IMAGE_SUFFIXES,
    check_classes,
    sorted_labels,
)
from .errors import DataError


def folder_images(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        raise DataError(f"{folder}: image folder not found")
    return {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES}


def read_coco_file(source: Path) -> dict:
    """A COCO JSON file with images, annotations and categories, or one DataError line."""
    try:
        coco = json.loads(source.read_text())
    except FileNotFoundError as error:
        raise DataError(f"{source}: file not found") from error
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataError(f"{source}: not valid JSON ({error})") from error
    if not isinstance(coco, dict) or not all(key in coco for key in ("images", "annotations", "categories")):
        raise DataError(f"{source}: expected a COCO mapping with images, annotations and categories")
    return coco


def coco_annotations(config: DataConfig) -> tuple[Path, dict, list[str], Iterator[tuple[str, dict, int]]]:
    """(source, images by id, classes, checked annotations as (name, annotation, class index)) of a COCO file:
    every annotation names a known image and category, or one DataError line says which does not."""
    source = config.root / config.annotations
    coco = read_coco_file(source)
    categories = {category["id"]: str(category["name"]) for category in coco["categories"]}
    classes = check_classes(sorted_labels(list(categories.values())), config, source)
    class_index = {name: i for i, name in enumerate(classes)}
    images = {image["id"]: image for image in coco["images"]}

    def checked() -> Iterator[tuple[str, dict, int]]:
        for number, annotation in enumerate(coco["annotations"]):
            name = f"{source}: annotation {annotation.get('id', number)}"
            if annotation.get("image_id") not in images:
                raise DataError(f"{name} is for unknown image id {annotation.get('image_id')}")
            if annotation.get("category_id") not in categories:
                raise DataError(
                    f"{name} has unknown category_id {annotation.get('category_id')} (categories: {sorted(categories)})"
                )
            yield name, annotation, class_index[categories[annotation["category_id"]]]

    return source, images, classes, checked()


def coco_image_row(config: DataConfig, source: Path, image_id: int, image: dict, check_images: bool) -> dict:
    """The table row (id, path, width, height) of a COCO image; the size is read from the file when missing."""
    path = config.root / config.train_images / image["file_name"]
    if check_images and not path.is_file():
        raise DataError(f"{path}: image not found (image id {image_id} of {source})")
    width, height = image.get("width"), image.get("height")
    if width is None or height is None:
        width, height = read_image_size(path, source)
    return {"id": Path(image["file_name"]).stem, "path": str(path), "width": width, "height": height}


def read_image_size(path: Path, source: Path) -> tuple[int, int]:
    try:
        with Image.open(path) as image:
            return image.size
    except FileNotFoundError as error:
        raise DataError(f"{path}: image not found (annotated in {source})") from error
    except OSError as error:
        raise DataError(f"{path}: cannot read image size ({error})") from error
