"""`podium new --from` / `--kaggle`: answers proposed from competition folders laid out like the demos and like
three real competitions of each task (made here, tiny), then a project rendered on them whose `check` passes."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from podium.cli import app
from podium.demo import write_digits_competition, write_masks_competition, write_scenes_competition
from podium.discover import box_format_from_values, inspect_competition
from podium.errors import PodiumError
from typer.testing import CliRunner

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
