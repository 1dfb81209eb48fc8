"""`podium new --from` / `--kaggle`: answers proposed from competition folders laid out like the demos and like
three real competitions of each task (made here, tiny), then a project rendered on them whose `check` passes."""

from __future__ import annotations

import ast
import json
import os
import stat
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any
from unittest import mock

import copier
import numpy as np
import pandas as pd
import pytest
from PIL import Image
from podium import discover
from podium.cli import app
from podium.demo import write_digits_competition, write_masks_competition, write_scenes_competition
from podium.discover import box_format_from_values, inspect_competition
from podium.errors import PodiumError
from podium.render import Rendered
from typer.testing import CliRunner

from .conftest import TEMPLATE_DIR

runner = CliRunner()
RNG = np.random.default_rng(0)


def image(path: Path, size: tuple[int, int] = (48, 40), value: int | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = RNG.integers(0, 255, (size[1], size[0], 3)).astype(np.uint8) if value is None else None
    picture = Image.fromarray(pixels) if pixels is not None else Image.new("L", size, value)
    picture.save(path)


def mask(path: Path, values: list[int], size: tuple[int, int] = (48, 40)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.zeros((size[1], size[0]), dtype=np.uint8)
    for k, value in enumerate(values):
        pixels[k * 5 : k * 5 + 5, :10] = value
    Image.fromarray(pixels).save(path)


def dog_breeds(root: Path) -> None:
    """labels.csv (id, breed), train/ and test/ JPEGs, a probability sample submission with a column per breed."""
    breeds = ["beagle", "pug", "akita"]
    ids = [f"d{i:03d}" for i in range(12)]
    for image_id in ids:
        image(root / "train" / f"{image_id}.jpg")
    pd.DataFrame({"id": ids, "breed": [breeds[i % 3] for i in range(12)]}).to_csv(root / "labels.csv", index=False)
    tests = [f"t{i:03d}" for i in range(4)]
    for image_id in tests:
        image(root / "test" / f"{image_id}.jpg")
    pd.DataFrame({"id": tests, **{b: 1 / 3 for b in breeds}}).to_csv(root / "sample_submission.csv", index=False)


def plant_pathology(root: Path) -> None:
    """train.csv (image_id + one 0/1 column per class, exactly one 1), train and test images in one folder."""
    classes = ["healthy", "multiple_diseases", "rust", "scab"]
    rows = []
    for i in range(12):
        image(root / "images" / f"Train_{i}.jpg")
        rows.append({"image_id": f"Train_{i}", **{c: int(k == i % 4) for k, c in enumerate(classes)}})
    pd.DataFrame(rows).to_csv(root / "train.csv", index=False)
    for i in range(4):
        image(root / "images" / f"Test_{i}.jpg")
    pd.DataFrame({"image_id": [f"Test_{i}" for i in range(4)], **{c: 0.25 for c in classes}}).to_csv(
        root / "sample_submission.csv", index=False
    )


def cassava(root: Path) -> None:
    """ids carrying the extension, integer labels, train_images/ and test_images/ (Cassava Leaf Disease)."""
    ids = [f"{1000 + i}.jpg" for i in range(15)]  # 5 per class: check wants each class in all 5 folds
    for image_id in ids:
        image(root / "train_images" / image_id)
    pd.DataFrame({"image_id": ids, "label": [i % 3 for i in range(15)]}).to_csv(root / "train.csv", index=False)
    image(root / "test_images" / "2216849948.jpg")
    pd.DataFrame({"image_id": ["2216849948.jpg"], "label": [4]}).to_csv(root / "sample_submission.csv", index=False)


def planet(root: Path) -> None:
    """train_v2.csv (image_name, tags: space-separated), train-jpg/ and test-jpg/ (Planet: Understanding the Amazon)."""
    tags = ["clear primary", "haze primary water", "cloudy", "clear primary road"]
    names = [f"train_{i}" for i in range(8)]
    for name in names:
        image(root / "train-jpg" / f"{name}.jpg")
    pd.DataFrame({"image_name": names, "tags": [tags[i % 4] for i in range(8)]}).to_csv(
        root / "train_v2.csv", index=False
    )
    image(root / "test-jpg" / "test_0.jpg")
    pd.DataFrame({"image_name": ["test_0"], "tags": ["clear"]}).to_csv(root / "sample_submission_v2.csv", index=False)


def intel_scenes(root: Path) -> None:
    """One folder per class, no CSV (Intel image classification)."""
    for k, name in enumerate(["forest", "sea", "street"]):
        for i in range(4):
            image(root / "seg_train" / name / f"{k}{i}.jpg")
    for i in range(3):
        image(root / "seg_test" / f"t{i}.jpg")


def global_wheat(root: Path) -> None:
    """train.csv (image_id, width, height, bbox as [x, y, w, h], source): one class, no class column."""
    rows = []
    for i in range(8):
        image(root / "train" / f"w{i}.jpg", (64, 64))
        rows += [{"image_id": f"w{i}", "width": 64, "height": 64, "bbox": f"[{10 + i}.0, 20.0, 12.0, 8.0]",
                  "source": f"s{i % 2}"}, {"image_id": f"w{i}", "width": 64, "height": 64,
                  "bbox": "[40.0, 5.0, 10.0, 30.0]", "source": f"s{i % 2}"}]  # fmt: skip
    pd.DataFrame(rows).to_csv(root / "train.csv", index=False)
    for i in range(3):
        image(root / "test" / f"q{i}.jpg", (64, 64))
    pd.DataFrame({"image_id": [f"q{i}" for i in range(3)], "PredictionString": ""}).to_csv(
        root / "sample_submission.csv", index=False
    )


def vinbigdata(root: Path) -> None:
    """image_id, class_name, class_id, rad_id, x_min, y_min, x_max, y_max in pixels (VinBigData chest X-ray)."""
    rows = []
    for i in range(8):
        image(root / "train" / f"x{i}.png", (64, 64))
        rows.append({"image_id": f"x{i}", "class_name": ["Nodule", "Effusion"][i % 2], "class_id": i % 2,
                     "rad_id": "R1", "x_min": 5, "y_min": 6, "x_max": 30 + i, "y_max": 40})  # fmt: skip
    pd.DataFrame(rows).to_csv(root / "train.csv", index=False)
    image(root / "test" / "y0.png", (64, 64))
    pd.DataFrame({"image_id": ["y0"], "PredictionString": "14 1 0 0 1 1"}).to_csv(
        root / "sample_submission.csv", index=False
    )


def coco_detection(root: Path, polygons: bool = False) -> None:
    """annotations/instances_train.json (COCO) over train2017/, test images and a sample submission."""
    images, annotations = [], []
    for i in range(6):
        image(root / "train2017" / f"{i:06d}.jpg", (64, 48))
        images.append({"id": i, "file_name": f"{i:06d}.jpg", "width": 64, "height": 48})
        box = [4.0 + i, 5.0, 20.0, 16.0]
        annotation = {"id": i, "image_id": i, "category_id": 1 + i % 2, "bbox": box, "area": 320.0, "iscrowd": 0}
        if polygons:
            annotation["segmentation"] = [[4 + i, 5, 24 + i, 5, 24 + i, 21, 4 + i, 21]]
        annotations.append(annotation)
    categories = [{"id": 1, "name": "cell"}, {"id": 2, "name": "debris"}]
    (root / "annotations").mkdir(parents=True)
    data = {"images": images, "annotations": annotations, "categories": categories}
    (root / "annotations" / "instances_train.json").write_text(json.dumps(data))
    image(root / "test" / "z0.jpg", (64, 48))
    column = {"EncodedPixels": "1 3"} if polygons else {"PredictionString": ""}
    pd.DataFrame({"id": ["z0"], **column}).to_csv(root / "sample_submission.csv", index=False)


def face_masks_voc(root: Path) -> None:
    """annotations/*.xml (Pascal VOC) and images/*.png (Kaggle's face-mask detection)."""
    for i in range(6):
        image(root / "images" / f"maksssksksss{i}.png", (64, 64))
        xml = (
            f"<annotation><filename>maksssksksss{i}.png</filename><size><width>64</width><height>64</height>"
            "<depth>3</depth></size><object><name>with_mask</name><bndbox><xmin>5</xmin><ymin>5</ymin>"
            "<xmax>30</xmax><ymax>30</ymax></bndbox></object></annotation>"
        )
        (root / "annotations").mkdir(exist_ok=True)
        (root / "annotations" / f"maksssksksss{i}.xml").write_text(xml)


def square_rle(top: int, left: int, side: int, height: int, width: int, order: str) -> str:
    """A side x side square's runs, pixels numbered from 1 column-major (F) or row-major (C)."""
    if order == "F":
        return " ".join(f"{(left + k) * height + top + 1} {side}" for k in range(side))
    return " ".join(f"{(top + k) * width + left + 1} {side}" for k in range(side))


def severstal(root: Path, order: str = "F") -> None:
    """train.csv (ImageId, ClassId, EncodedPixels) rows per image and class; sample: ImageId, EncodedPixels, ClassId."""
    rows = []
    for i in range(8):
        image(root / "train_images" / f"{i:04x}.jpg", (64, 32))
        rle = square_rle(2 + i, 3 + i, 6, 32, 64, order)
        rows.append({"ImageId": f"{i:04x}.jpg", "ClassId": 1 + i % 4, "EncodedPixels": rle})
    pd.DataFrame(rows).to_csv(root / "train.csv", index=False)
    image(root / "test_images" / "ff00.jpg", (64, 32))
    pd.DataFrame({"ImageId": ["ff00.jpg"] * 4, "EncodedPixels": "1 1", "ClassId": [1, 2, 3, 4]}).to_csv(
        root / "sample_submission.csv", index=False
    )


def tgs_salt(root: Path) -> None:
    """train/images and train/masks (0/255 PNGs named like the images), train.csv (id, rle_mask), test/images."""
    rows = []
    for i in range(8):
        image(root / "train" / "images" / f"s{i}.png", (32, 32))
        mask(root / "train" / "masks" / f"s{i}.png", [255] if i % 2 else [], (32, 32))
        rows.append({"id": f"s{i}", "rle_mask": "1 5" if i % 2 else ""})
    pd.DataFrame(rows).to_csv(root / "train.csv", index=False)
    image(root / "test" / "images" / "u0.png", (32, 32))
    pd.DataFrame({"id": ["u0"], "rle_mask": "1 1"}).to_csv(root / "sample_submission.csv", index=False)


def salt_without_csv(root: Path) -> None:
    """TGS-like folders without train.csv: train/images and train/masks must not read as two class folders."""
    tgs_salt(root)
    (root / "train.csv").unlink()


def melanoma(root: Path) -> None:
    """SIIM melanoma: train.csv holds metadata, a diagnosis and the 0/1 `target` that the sample asks for."""
    diagnoses = ["nevus", "melanoma", "keratosis", "unknown"]
    rows = []
    for i in range(12):
        image(root / "train" / f"ISIC_{i:04d}.jpg")
        rows.append({"image_name": f"ISIC_{i:04d}", "patient_id": f"IP_{i // 2:03d}", "sex": ["male", "female"][i % 2],
                     "age": 30 + i, "diagnosis": diagnoses[i % 4], "target": int(i % 4 == 1)})  # fmt: skip
    pd.DataFrame(rows).to_csv(root / "train.csv", index=False)
    image(root / "test" / "ISIC_9000.jpg")
    pd.DataFrame({"image_name": ["ISIC_9000"], "target": [0]}).to_csv(root / "sample_submission.csv", index=False)


def metadata_csv(root: Path) -> None:
    """train.csv: metadata only (id, patient_id, age, site); the images are named by id."""
    for i in range(12):
        image(root / "train" / f"tr{i:03d}.png")
    pd.DataFrame({"id": [f"tr{i:03d}" for i in range(12)], "patient_id": [f"P{i % 7:03d}" for i in range(12)],
                  "age": [20 + i for i in range(12)], "site": [["head", "torso"][i % 2] for i in range(12)]}).to_csv(
        root / "train.csv", index=False)  # fmt: skip
    image(root / "test" / "te000.png")


def labels_beside_metadata(root: Path) -> None:
    """train.csv holds metadata, train_labels.csv the labels the sample asks for."""
    metadata_csv(root)
    pd.DataFrame({"id": [f"tr{i:03d}" for i in range(12)], "label": [["cat", "dog"][i % 2] for i in range(12)]}).to_csv(
        root / "train_labels.csv", index=False
    )
    pd.DataFrame({"id": ["te000"], "label": ["cat"]}).to_csv(root / "sample_submission.csv", index=False)


def unlabelled_metadata(root: Path) -> None:
    """No training table holds a column the sample asks for: the files cannot tell the label column."""
    metadata_csv(root)
    pd.DataFrame({"id": ["te000"], "score": [0.5]}).to_csv(root / "sample_submission.csv", index=False)


def blood_cells(root: Path) -> None:
    """BCCD-like boxes: image_id, xmin, ymin, xmax, ymax and a cell_type (three types, mixed within images)."""
    rows = []
    for i in range(8):
        image(root / "train" / f"b{i}.jpg", (64, 64))
        for k in range(3):
            rows.append({"image_id": f"b{i}", "xmin": 5 + 10 * k, "ymin": 4 + i, "xmax": 12 + 10 * k + i % 3,
                         "ymax": 20 + i, "cell_type": ["RBC", "WBC", "Platelets"][(i + k) % 3]})  # fmt: skip
    pd.DataFrame(rows).to_csv(root / "train.csv", index=False)
    image(root / "test" / "q0.jpg", (64, 64))
    pd.DataFrame({"image_id": ["q0"], "PredictionString": ""}).to_csv(root / "sample_submission.csv", index=False)


def x1_y1_w_h(root: Path) -> None:
    """Four box columns named x1, y1, w, h and a label column."""
    rows = [{"image_id": f"k{i}", "x1": 3 + i, "y1": 5, "w": 20, "h": 10 + i, "label": "car"} for i in range(6)]
    for i in range(6):
        image(root / "train" / f"k{i}.jpg", (64, 64))
    pd.DataFrame(rows).to_csv(root / "train.csv", index=False)
    image(root / "test" / "q0.jpg", (64, 64))
    pd.DataFrame({"image_id": ["q0"], "PredictionString": ""}).to_csv(root / "sample_submission.csv", index=False)


def wheat_large_boxes(root: Path) -> None:
    """Global Wheat's layout with boxes larger than their offsets (w > x, h > y): the numbers' order alone reads
    like x_min y_min x_max y_max."""
    global_wheat(root)
    offsets, sides = [2, 9, 4, 7, 3, 8, 5, 6], [30, 31, 50, 52, 40, 41, 35, 45]
    rows = [{"image_id": f"w{i}", "width": 64, "height": 64, "bbox": f"[{offsets[i]}, {offsets[-1 - i]}, {sides[i]}, "
             f"{sides[-1 - i]}]", "source": "s0"} for i in range(8)]  # fmt: skip
    pd.DataFrame(rows).to_csv(root / "train.csv", index=False)


def salt_with_sample(value: str, column: str = "rle") -> Any:
    """TGS's folders, a sample submission whose RLE column is named `column` and holds `value` (as Kaggle ships)."""

    def write(root: Path) -> None:
        tgs_salt(root)
        pd.DataFrame({"id": ["u0"], column: [value]}).to_csv(root / "sample_submission.csv", index=False)

    return write


EXPECTED: dict[str, tuple[Any, dict[str, Any]]] = {
    "dog-breed-identification": (dog_breeds, {
        "task": "classification", "data_layout": "csv", "train_csv": "labels.csv", "id_column": "id",
        "target_columns": "breed", "label_mode": "single_label", "image_dir": "train", "test_dir": "test",
        "image_ext": ".jpg", "image_size": 64}),
    "plant-pathology-2020": (plant_pathology, {
        "task": "classification", "data_layout": "csv", "id_column": "image_id", "image_dir": "images",
        "test_dir": "images", "target_columns": "healthy,multiple_diseases,rust,scab", "label_mode": "multi_label"}),
    "cassava-leaf-disease": (cassava, {
        "task": "classification", "data_layout": "csv", "id_column": "image_id", "target_columns": "label",
        "image_dir": "train_images", "test_dir": "test_images"}),
    "planet-amazon": (planet, {
        "task": "classification", "data_layout": "csv", "train_csv": "train_v2.csv", "id_column": "image_name",
        "target_columns": "tags", "label_mode": "multi_label", "image_dir": "train-jpg", "test_dir": "test-jpg",
        "sample_submission": "sample_submission_v2.csv"}),
    "intel-image-classification": (intel_scenes, {
        "task": "classification", "data_layout": "folders", "image_dir": "seg_train", "test_dir": "seg_test"}),
    "global-wheat-detection": (global_wheat, {
        "task": "detection", "data_layout": "boxes_csv", "box_columns": "bbox", "box_format": "xywh",
        "box_normalized": False, "target_columns": "", "id_column": "image_id", "image_size": 64}),
    "vinbigdata-chest-xray": (vinbigdata, {
        "task": "detection", "data_layout": "boxes_csv", "box_columns": "x_min,y_min,x_max,y_max",
        "box_format": "xyxy", "target_columns": "class_name", "image_ext": ".png"}),
    "coco-cells": (coco_detection, {
        "task": "detection", "data_layout": "coco", "annotations": "annotations/instances_train.json",
        "image_dir": "train2017", "test_dir": "test"}),
    "face-mask-detection": (face_masks_voc, {
        "task": "detection", "data_layout": "voc", "annotations": "annotations", "image_dir": "images"}),
    "severstal-steel-defect": (severstal, {
        "task": "segmentation", "data_layout": "rle_csv", "rle_column": "EncodedPixels", "target_columns": "ClassId",
        "segmentation_mode": "multilabel", "id_column": "ImageId", "image_dir": "train_images", "rle_order": "F"}),
    "carvana-row-major": (lambda root: severstal(root, "C"), {"data_layout": "rle_csv", "rle_order": "C"}),
    "tgs-salt-identification": (tgs_salt, {
        "task": "segmentation", "data_layout": "masks", "masks_dir": "train/masks", "mask_values": "binary",
        "image_dir": "train/images", "test_dir": "test/images", "rle_column": "rle_mask"}),
    "salt-without-csv": (salt_without_csv, {
        "task": "segmentation", "data_layout": "masks", "masks_dir": "train/masks", "image_dir": "train/images"}),
    "sartorius-polygons": (lambda root: coco_detection(root, polygons=True), {
        "task": "segmentation", "data_layout": "coco_polygons", "rle_column": "EncodedPixels"}),
    "siim-melanoma": (melanoma, {
        "task": "classification", "train_csv": "train.csv", "id_column": "image_name", "target_columns": "target",
        "label_mode": "single_label"}),
    "labels-beside-metadata": (labels_beside_metadata, {
        "task": "classification", "train_csv": "train_labels.csv", "id_column": "id", "target_columns": "label",
        "label_mode": "single_label"}),
    "bccd-cell-types": (blood_cells, {
        "task": "detection", "box_columns": "xmin,ymin,xmax,ymax", "box_format": "xyxy",
        "target_columns": "cell_type"}),
    "x1-y1-w-h-columns": (x1_y1_w_h, {
        "task": "detection", "box_columns": "x1,y1,w,h", "box_format": "xywh", "target_columns": "label"}),
    "wheat-large-boxes": (wheat_large_boxes, {
        "task": "detection", "box_columns": "bbox", "box_format": "xywh", "target_columns": ""}),
    "salt-sample-rle-empty": (salt_with_sample(""), {"rle_column": "rle", "target_columns": ""}),
    "salt-sample-rle-minus-one": (salt_with_sample("-1"), {"rle_column": "rle", "target_columns": ""}),
    "salt-sample-rle-one-one": (salt_with_sample("1 1"), {"rle_column": "rle", "target_columns": ""}),
    "salt-sample-pixels-by-name": (salt_with_sample("", "pixels"), {"rle_column": "pixels"}),
    "salt-sample-only-column": (salt_with_sample("-1", "prediction"), {"rle_column": "prediction"}),
}  # fmt: skip


@pytest.mark.parametrize("name", list(EXPECTED))
def test_inspection_proposes_the_layouts_answers(tmp_path: Path, name: str) -> None:
    write, expected = EXPECTED[name]
    write(tmp_path / name)
    found = inspect_competition(tmp_path / name)
    assert {key: found.answers.get(key) for key in expected} == expected
    assert all(": " in reason for reason in found.reasons)  # each answer says why


@pytest.mark.parametrize(
    ("writer", "expected"),
    [
        (write_digits_competition, {"task": "classification", "data_layout": "csv", "image_size": 32}),
        (write_scenes_competition, {"task": "detection", "box_format": "xywh", "target_columns": "class"}),
        (write_masks_competition, {"task": "segmentation", "data_layout": "masks", "mask_values": "index"}),
    ],
)
def test_inspection_of_the_demo_competitions(tmp_path: Path, writer: Any, expected: dict[str, Any]) -> None:
    writer(tmp_path / "data", tmp_path / "holdout")
    found = inspect_competition(tmp_path / "data")
    assert {key: found.answers.get(key) for key in expected} == expected


def test_box_format_from_value_ranges() -> None:
    assert box_format_from_values([[10, 20, 5, 5], [1, 1, 30, 40]])[:2] == ("xywh", False)
    assert box_format_from_values([[10, 20, 15, 25], [1, 1, 30, 40]])[:2] == ("xyxy", False)
    assert box_format_from_values([[0.5, 0.5, 0.2, 0.4], [0.3, 0.6, 0.1, 0.1]])[:2] == ("cxcywh", True)


def test_box_format_from_image_sizes_and_how_the_numbers_move() -> None:
    """Large x y w h boxes (w > x, h > y) keep the order of x_min y_min x_max y_max: the image sizes and the
    relation between the 1st and 3rd numbers tell them apart."""
    size = [(64, 64)] * 4
    # x + w passes the border in the 2nd box: x y w h would put it outside the image.
    outside = [[2, 3, 30, 40], [30, 20, 62, 60], [10, 10, 40, 44], [20, 5, 50, 30]]
    assert box_format_from_values(outside, size)[0] == "xyxy"
    assert "outside" in box_format_from_values(outside, size)[2]
    # Both fit; the 3rd number follows the 1st (x_max grows with x_min).
    follows = [[2, 3, 12, 13], [20, 20, 31, 29], [40, 10, 52, 21], [30, 5, 39, 18]]
    assert box_format_from_values(follows, size)[0] == "xyxy"
    # Both fit; the 3rd number does not follow the 1st: a width.
    widths = [[2, 9, 30, 40], [9, 2, 31, 35], [4, 6, 50, 41], [7, 3, 52, 45]]
    assert box_format_from_values(widths, size) == ("xywh", False, box_format_from_values(widths, size)[2])
    assert "width" in box_format_from_values(widths, size)[2]
    # Small boxes: a third number below the first is a width, whatever the sizes.
    assert box_format_from_values([[40, 30, 5, 6], [10, 12, 8, 4]], size[:2])[0] == "xywh"
    assert box_format_from_values([[0.5, 0.5, 0.2, 0.4], [0.3, 0.6, 0.1, 0.1]], [(1, 1)] * 2)[:2] == ("cxcywh", True)


def test_a_folder_without_a_layout_says_what_it_looked_for(tmp_path: Path) -> None:
    image(tmp_path / "loose" / "a.png")
    with pytest.raises(PodiumError, match="no layout fits .*COCO JSON, VOC XML"):
        inspect_competition(tmp_path / "loose")
    (tmp_path / "empty").mkdir()
    with pytest.raises(PodiumError, match="no image files"):
        inspect_competition(tmp_path / "empty")


def check_project(project: Path, package: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "NO_ALBUMENTATIONS_UPDATE": "1", "WANDB_MODE": "disabled"}
    command = [sys.executable, "-m", package, "check", "data.num_workers=0"]
    return subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, check=False)


@pytest.mark.parametrize("name", ["plant-pathology-2020", "global-wheat-detection", "severstal-steel-defect"])
def test_new_from_a_folder_links_the_data_and_check_passes(tmp_path: Path, name: str) -> None:
    write, expected = EXPECTED[name]
    write(tmp_path / name)
    project = tmp_path / "project"
    result = runner.invoke(app, ["new", str(project), "--from", str(tmp_path / name), "--defaults"])
    assert result.exit_code == 0, result.output
    assert f"task={expected['task']}:" in result.output and "Linked" in result.output
    answers = (project / ".copier-answers.yml").read_text()
    assert f"data_layout: {expected['data_layout']}" in answers
    assert (project / "data" / "sample_submission.csv").is_symlink()
    package = next(line.split(": ")[1] for line in answers.splitlines() if line.startswith("package_name"))
    checked = check_project(project, package)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tracked = subprocess.run(["git", "ls-files"], cwd=project, capture_output=True, text=True, check=True).stdout
    assert "data/sample_submission.csv" not in tracked  # the data stays out of git


def zip_folder(folder: Path) -> Path:
    """The folder's files in `<folder>.zip`, as Kaggle serves a competition (no top folder inside)."""
    archive = folder.with_suffix(".zip")
    with zipfile.ZipFile(archive, "w") as handle:
        for path in folder.rglob("*"):
            handle.write(path, path.relative_to(folder))
    return archive


def test_new_from_a_zip_unpacks_into_the_data_folder(tmp_path: Path) -> None:
    cassava(tmp_path / "cassava-leaf-disease")
    archive = zip_folder(tmp_path / "cassava-leaf-disease")
    project = tmp_path / "project"
    result = runner.invoke(
        app, ["new", str(project), "--from", str(archive), "--defaults", "-d", "package_name=cassava"]
    )
    assert result.exit_code == 0, result.output
    assert "Unpacked" in result.output and (project / "data" / "train_images" / "1000.jpg").is_file()
    assert not (project / "data" / "train.csv").is_symlink()
    assert "package_name: cassava" in (project / ".copier-answers.yml").read_text()  # -d wins over the proposal
    checked = check_project(project, "cassava")
    assert checked.returncode == 0, checked.stdout + checked.stderr


def fake_kaggle(folder: Path, body: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "kaggle"
    script.write_text(f"#!{sys.executable}\nimport sys, shutil, pathlib\n{body}\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)


def test_new_kaggle_downloads_through_the_cli_then_inspects(tmp_path: Path, monkeypatch) -> None:
    global_wheat(tmp_path / "wheat")
    archive = zip_folder(tmp_path / "wheat")
    calls = tmp_path / "calls.txt"
    fake_kaggle(
        tmp_path / "bin",
        f"pathlib.Path({str(calls)!r}).write_text(' '.join(sys.argv[1:]))\n"
        f"shutil.copy({str(archive)!r}, pathlib.Path(sys.argv[sys.argv.index('-p') + 1]) / 'g.zip')",
    )
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    project = tmp_path / "project"
    result = runner.invoke(app, ["new", str(project), "--kaggle", "global-wheat-detection", "--defaults"])
    assert result.exit_code == 0, result.output
    assert calls.read_text().startswith("competitions download -c global-wheat-detection -p ")
    assert "data_layout: boxes_csv" in (project / ".copier-answers.yml").read_text()
    assert (project / "data" / "train.csv").is_file()


def test_new_kaggle_without_credentials_is_one_line(tmp_path: Path, monkeypatch) -> None:
    fake_kaggle(tmp_path / "bin", "sys.stderr.write('Could not find kaggle.json. Make sure it is in ~/.kaggle\\n')\n"
                "sys.exit(1)")  # fmt: skip
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    result = runner.invoke(app, ["new", str(tmp_path / "p"), "--kaggle", "some-comp", "--defaults"])
    assert result.exit_code != 0
    assert "--kaggle some-comp: the download failed: Could not find kaggle.json" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "p").exists()
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    result = runner.invoke(app, ["new", str(tmp_path / "p"), "--kaggle", "some-comp", "--defaults"])
    assert "the kaggle CLI is not installed" in result.output


def test_task_that_contradicts_the_files_is_refused(tmp_path: Path) -> None:
    vinbigdata(tmp_path / "vin")
    result = runner.invoke(app, ["new", str(tmp_path / "p"), "--from", str(tmp_path / "vin"), "--task", "segmentation"])
    assert result.exit_code != 0 and "look like detection" in result.output


def test_bad_sources_are_one_line(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a zip")
    result = runner.invoke(app, ["new", str(tmp_path / "p"), "--from", str(tmp_path / "notes.txt"), "--defaults"])
    assert result.exit_code != 0 and "notes.txt: not a folder or a zip file" in result.output
    with zipfile.ZipFile(tmp_path / "evil.zip", "w") as handle:
        handle.writestr("../outside.txt", "x")
    result = runner.invoke(app, ["new", str(tmp_path / "p"), "--from", str(tmp_path / "evil.zip"), "--defaults"])
    assert "member '../outside.txt' would be written outside" in result.output
    assert not (tmp_path / "outside.txt").exists() and not (tmp_path / "p").exists()
    result = runner.invoke(app, ["new", str(tmp_path / "p"), "--from", str(tmp_path / "x"), "--kaggle", "c"])
    assert "give one of them" in result.output


def git_files(project: Path) -> list[str]:
    return subprocess.run(["git", "ls-files"], cwd=project, capture_output=True, text=True, check=True).stdout.split()


def test_a_source_folder_named_data_leaves_the_package_named_after_dest(tmp_path: Path) -> None:
    """`kaggle competitions download -p data`, then `podium new my-comp --from data`: the package is my_comp, and
    its code is committed (a package named like the data folder would be git-ignored with the data)."""
    cassava(tmp_path / "data")
    result = runner.invoke(app, ["new", str(tmp_path / "my-comp"), "--from", str(tmp_path / "data"), "--defaults"])
    assert result.exit_code == 0, result.output
    answers = (tmp_path / "my-comp" / ".copier-answers.yml").read_text()
    assert "package_name: my_comp" in answers and "project_name=" not in result.output
    assert "my_comp/cli.py" in git_files(tmp_path / "my-comp")


def test_a_competition_readme_is_placed_under_another_name(tmp_path: Path) -> None:
    """The template writes data/README.md itself: the competition's README.md becomes README.competition.md."""
    cassava(tmp_path / "comp")
    (tmp_path / "comp" / "README.md").write_text("# Cassava\nThe competition's own notes.\n")
    project = tmp_path / "project"
    result = runner.invoke(app, ["new", str(project), "--from", str(tmp_path / "comp"), "--defaults"])
    assert result.exit_code == 0, result.output
    assert "README.md as data/README.competition.md" in result.output
    assert (project / "data" / "README.competition.md").read_text() == "# Cassava\nThe competition's own notes.\n"
    assert (project / "data" / "README.md").read_text().startswith("# Competition data")
    assert "error:" not in result.output


def test_when_the_files_cannot_tell_the_label_column_copier_asks_or_d_answers(tmp_path: Path) -> None:
    """No training table holds the sample's column: no metadata column is guessed. -d answers; on a terminal the
    question is left to copier (with --defaults: one line, tabled in test_generator_bad_inputs.py)."""
    unlabelled_metadata(tmp_path / "comp")
    found = inspect_competition(tmp_path / "comp")
    assert "target_columns" not in found.answers
    assert "cannot tell the label column of train.csv (candidates: patient_id, age, site)" in found.unresolved[
        "target_columns"]  # fmt: skip

    def fake_render(dest: Path, **kwargs: Any) -> Rendered:
        dest.mkdir(parents=True, exist_ok=True)
        (dest / ".copier-answers.yml").write_text("package_name: fake\ndata_dir: data\n")
        return Rendered(dest, "fake")

    source = ["--from", str(tmp_path / "comp")]
    with mock.patch("podium.render.render_project", side_effect=fake_render) as render:
        given = runner.invoke(app, ["new", str(tmp_path / "a"), *source, "--defaults", "-d", "target_columns=site"])
        with mock.patch("podium.cli._stdin_is_a_terminal", return_value=True):
            asked = runner.invoke(app, ["new", str(tmp_path / "b"), *source])
    assert given.exit_code == 0 and asked.exit_code == 0, given.output + asked.output
    assert render.call_args_list[0].kwargs["data"]["target_columns"] == "site"
    assert "target_columns" not in render.call_args_list[1].kwargs["data"]
    assert render.call_args_list[1].kwargs["defaults"] is False  # copier asks it


def test_detection_and_segmentation_say_which_sample_column_they_fill(tmp_path: Path) -> None:
    global_wheat(tmp_path / "wheat")
    reasons = inspect_competition(tmp_path / "wheat").reasons
    assert any(r.startswith("PredictionString: ") and "sample_submission.csv" in r for r in reasons), reasons
    severstal(tmp_path / "steel")
    reasons = inspect_competition(tmp_path / "steel").reasons
    assert any(r.startswith("target_columns=ClassId: ") for r in reasons), reasons


def nested_kaggle_zip(folder: Path, archive: Path, top: str = "") -> Path:
    """A Kaggle download: a zip holding the image folders as inner zips (one with a folder inside, one without)
    and the CSVs, under `top` if given."""
    with zipfile.ZipFile(archive, "w") as outer:
        for path in sorted(folder.iterdir()):
            if path.is_dir():
                inner = folder.parent / f"{path.name}.zip"
                with zipfile.ZipFile(inner, "w") as handle:
                    for file in sorted(path.iterdir()):  # train_images.zip holds train_images/..., test's no folder
                        name = file.relative_to(folder) if path.name.startswith("train") else file.name
                        handle.write(file, name)
                outer.write(inner, f"{top}{inner.name}")
            else:
                outer.write(path, f"{top}{path.name}")
    return archive


@pytest.mark.parametrize("top", ["", "cassava-leaf-disease/"], ids=["flat", "top-folder"])
def test_new_from_a_nested_kaggle_zip_unpacks_the_inner_zips(tmp_path: Path, top: str) -> None:
    cassava(tmp_path / "comp")
    archive = nested_kaggle_zip(tmp_path / "comp", tmp_path / "cassava-leaf-disease.zip", top)
    project = tmp_path / "project"
    result = runner.invoke(app, ["new", str(project), "--from", str(archive), "--defaults"])
    assert result.exit_code == 0, result.output
    assert "data_layout=csv" in result.output and "image_dir=train_images" in result.output
    assert (project / "data" / "train_images" / "1000.jpg").is_file()
    assert (project / "data" / "test_images" / "2216849948.jpg").is_file()
    assert not list((project / "data").glob("*.zip"))
    assert "podium-from-" not in result.output


TEMPLATE_PACKAGE = TEMPLATE_DIR / "project" / "{{ package_name }}"


def _template_definitions(relative: str, names: set[str]) -> dict[str, Any]:
    """The template's own constants and self-contained functions `names`, read from its source (a template module
    cannot be imported outside a rendered project)."""
    tree = ast.parse((TEMPLATE_PACKAGE / relative).read_text())
    kept = [
        node
        for node in tree.body
        if (isinstance(node, ast.FunctionDef) and node.name in names)
        or (isinstance(node, ast.Assign) and any(getattr(t, "id", None) in names for t in node.targets))
    ]
    namespace: dict[str, Any] = {"np": np}
    exec(compile(ast.Module(body=kept, type_ignores=[]), relative, "exec"), namespace)
    return namespace


def test_discover_reads_suffixes_sizes_and_runs_as_the_template_does(tmp_path: Path) -> None:
    data = _template_definitions("core/data.py", {"IMAGE_SUFFIXES"})
    assert data["IMAGE_SUFFIXES"] == discover.IMAGE_SUFFIXES
    for task, size in discover.DEFAULT_IMAGE_SIZES.items():
        worker = copier.run_copy(
            str(TEMPLATE_DIR), tmp_path / task, data={"task": task}, defaults=True, pretend=True, quiet=True
        )
        assert worker.answers.combined["image_size"] == size, task
    labels = _template_definitions(
        "tasks/{% if task == 'segmentation' %}segmentation{% endif %}/labels.py", {"rle_encode", "rle_decode"}
    )
    masks = np.random.default_rng(0).random((6, 7, 9)) < 0.4
    for mask in masks:
        for order in ("F", "C"):
            runs = labels["rle_encode"](mask, order)
            decoded = labels["rle_decode"](runs, mask.shape, order).astype(bool)
            assert np.array_equal(discover.rle_mask(runs, 7, 9, order), decoded)
            assert np.array_equal(decoded, mask)


def test_layout_detectors_return_typed_findings_and_none_when_the_layout_does_not_fit(tmp_path: Path) -> None:
    for name in ("train/cat/a.png", "train/dog/b.png", "test/c.png"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8)).save(tmp_path / name)
    folders = discover.image_folders(tmp_path)
    evidence = discover.Evidence(tmp_path, "--from here", {}, folders, None, None)
    assert [detect(evidence) for detect in discover.LAYOUT_DETECTORS[:-1]] == [None] * 5  # no JSON, XML, CSV, masks
    found = discover._class_folders(evidence)
    assert found is not None and all(isinstance(finding, discover.Proposal) for finding in found)
    assert {finding.key: finding.value for finding in found} == {
        "task": "classification",
        "data_layout": "folders",
        "image_dir": "train",
        "image_ext": ".png",
        "test_dir": "test",
    }
    findings = discover.Findings(tmp_path)
    findings.add([found[0], discover.Note("x", "why"), discover.Unsettled("metric", "unknown", "give -d metric=...")])
    assert findings.answers == {"task": "classification"}
    assert findings.unresolved == {"metric": "give -d metric=..."}
    assert findings.reasons[1:] == ["x: why", "metric: unknown; copier asks"]
