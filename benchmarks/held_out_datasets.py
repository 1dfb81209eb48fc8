"""The held-out public datasets (see public_datasets.py for the table): each fetched as a package from a registry
(`pip download --no-deps`, `apt-get download`) into a cache folder, read from the unpacked files, and written as a
Kaggle-format competition with the test labels in a holdout folder that podium.demo_scoring reads.

Cache: $PODIUM_BENCH_CACHE, else ~/.cache/podium-bench/ (reused when present). vs_hand_loop.py --suite held_out
writes and runs them.
"""

from __future__ import annotations

import gzip
import os
import pickle
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from sklearn.model_selection import GroupShuffleSplit, train_test_split

TEST_SHARE = 0.2
SEED = 0
Boxes = np.ndarray  # (n, 5) float: x_min, y_min, x_max, y_max (pixels), class index


def cache_dir() -> Path:
    return Path(os.environ.get("PODIUM_BENCH_CACHE", "~/.cache/podium-bench")).expanduser()


def _unpacked(name: str, download: list[str], unpack: str) -> Path:
    """The package `name` unpacked under the cache: `download` (run in cache/downloads/name) fetches the archive,
    `unpack` ("wheel", or the folder of a .deb to take) says what to unpack; nothing is fetched when it is there."""
    target = cache_dir() / "unpacked" / name
    if target.is_dir():
        return target
    folder = cache_dir() / "downloads" / name
    folder.mkdir(parents=True, exist_ok=True)
    if not any(folder.iterdir()):
        subprocess.run(download, cwd=folder, check=True, capture_output=True)
    archive = next(folder.iterdir())
    partial = target.with_name(name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    if unpack == "wheel":
        with zipfile.ZipFile(archive) as wheel:
            wheel.extractall(partial)
    else:
        files = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(archive)], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(partial), f"./{unpack}"], input=files, check=True)
    partial.rename(target)
    return target


def pip_package(requirement: str, *platform: str) -> Path:
    """A wheel from PyPI, unpacked (`platform`: pip's --platform/--python-version flags for a binary wheel)."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", *platform, requirement]
    return _unpacked(requirement.replace("==", "-"), [*command, "-d", "."], "wheel")


def deb_package(name: str, version: str, folder: str) -> Path:
    """`folder` of a Debian package, unpacked; apt-get download takes the pinned version, else the index's one."""
    command = ["sh", "-c", f"apt-get download {name}={version} 2>/dev/null || apt-get download {name}"]
    return _unpacked(f"{name}-{version}", command, folder) / folder


def _split(count: int, labels: np.ndarray | None = None, groups: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Indices of the train and test items: ~20% test, seed 0, stratified by `labels` or kept whole by `groups`."""
    index = np.arange(count)
    if groups is not None:
        train, test = next(GroupShuffleSplit(1, test_size=TEST_SHARE, random_state=SEED).split(index, groups=groups))
    else:
        train, test = train_test_split(index, test_size=TEST_SHARE, stratify=labels, random_state=SEED)
    return {"train": np.sort(train), "test": np.sort(test)}


def _ids(count: int) -> np.ndarray:
    """Shuffled ids, so that an id says nothing of the source order (tile position, left or right view)."""
    return np.array([f"{i:05d}" for i in np.random.default_rng(SEED).permutation(count)])


def _save(images: list[np.ndarray], ids: np.ndarray, split: dict[str, np.ndarray], data_dir: Path) -> None:
    for name, index in split.items():
        (data_dir / name).mkdir(parents=True, exist_ok=True)
        for i in index:
            Image.fromarray(images[i]).save(data_dir / name / f"{ids[i]}.png")


def write_classification_arrays(
    images: np.ndarray, labels: np.ndarray, data_dir: Path, holdout_dir: Path
) -> dict[str, int]:
    """train.csv (id, label) + train/*.png, test/*.png, sample_submission.csv; holdout_dir/test_labels.csv."""
    ids, split = _ids(len(images)), _split(len(images), labels)
    _save(list(images), ids, split, data_dir)
    train, test = split["train"], split["test"]
    pd.DataFrame({"id": ids[train], "label": labels[train]}).to_csv(data_dir / "train.csv", index=False)
    pd.DataFrame({"id": np.sort(ids[test]), "label": 0}).to_csv(data_dir / "sample_submission.csv", index=False)
    holdout_dir.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"id": ids[test], "label": labels[test]}).sort_values("id").to_csv(
        holdout_dir / "test_labels.csv", index=False
    )
    return {"train": len(train), "test": len(test)}


def write_boxes_arrays(
    images: list[np.ndarray], boxes: list[Boxes], data_dir: Path, holdout_dir: Path, groups: np.ndarray | None = None
) -> dict[str, int]:
    """train.csv (id, class_name, x_min, y_min, x_max, y_max; pixels, one box per row; class_name the class index,
    as podium.demo_scoring reads predicted classes as numbers), train/ and test/ PNGs, sample_submission.csv (id,
    PredictionString); holdout_dir/test_boxes.csv (id, bbox [x, y, w, h], class) as the demo's scenes write it."""
    ids, split = _ids(len(images)), _split(len(images), groups=groups)
    _save(images, ids, split, data_dir)
    columns = ["x_min", "y_min", "x_max", "y_max"]
    rows = [
        {"id": ids[i], "class_name": int(box[4]), **dict(zip(columns, np.round(box[:4], 1).tolist(), strict=True))}
        for i in split["train"]
        for box in boxes[i]
    ]
    pd.DataFrame(rows, columns=["id", "class_name", *columns]).to_csv(data_dir / "train.csv", index=False)
    test = split["test"]
    pd.DataFrame({"id": np.sort(ids[test]), "PredictionString": ""}).to_csv(
        data_dir / "sample_submission.csv", index=False
    )
    truth = [
        {"id": ids[i], "bbox": f"[{x0:.1f}, {y0:.1f}, {x1 - x0:.1f}, {y1 - y0:.1f}]", "class": int(k)}
        for i in test
        for x0, y0, x1, y1, k in boxes[i]
    ]
    holdout_dir.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(truth, columns=["id", "bbox", "class"]).to_csv(holdout_dir / "test_boxes.csv", index=False)
    return {"train": len(split["train"]), "test": len(test)}


def write_masks_arrays(
    images: list[np.ndarray],
    masks: list[np.ndarray],
    classes: int,
    data_dir: Path,
    holdout_dir: Path,
    groups: np.ndarray | None = None,
) -> dict[str, int]:
    """train/ and test/ PNGs, masks/ index PNGs (0 background, k+1 class k), sample_submission.csv (id, ClassId,
    EncodedPixels: a row per test image and class, ClassId k + 1); the test masks go to holdout_dir/masks, as the
    demo's do."""
    ids, split = _ids(len(images)), _split(len(images), groups=groups)
    _save(images, ids, split, data_dir)
    for name, folder in (("train", data_dir / "masks"), ("test", holdout_dir / "masks")):
        folder.mkdir(parents=True, exist_ok=True)
        for i in split[name]:
            Image.fromarray(masks[i].astype(np.uint8)).save(folder / f"{ids[i]}.png")
    test = np.sort(ids[split["test"]])
    # ClassId is the mask value (1..classes), as podium names the classes it finds in index masks.
    rows = [{"id": i, "ClassId": str(k + 1), "EncodedPixels": ""} for i in test for k in range(classes)]
    pd.DataFrame(rows).to_csv(data_dir / "sample_submission.csv", index=False)
    return {"train": len(split["train"]), "test": len(split["test"])}


# --- the datasets -------------------------------------------------------------------------------------------------


def fetch_animal_mnist() -> tuple[np.ndarray, np.ndarray]:
    """Animal-MNIST (animal-mnist 0.4 on PyPI): 10,000 28x28 grey animal silhouettes, 10 classes of 1,000."""
    folder = pip_package("animal-mnist==0.4") / "animal_mnist" / "data" / "Animal_MNIST"
    with gzip.open(folder / "animal_data_version_3.gz") as data, gzip.open(folder / "animal_label_version_3.gz") as y:
        return np.asarray(pickle.load(data), np.uint8), np.asarray(pickle.load(y), int)


def write_animal_mnist(data_dir: Path, holdout_dir: Path) -> dict[str, int]:
    return write_classification_arrays(*fetch_animal_mnist(), data_dir, holdout_dir)


def fetch_elpv() -> tuple[np.ndarray, np.ndarray]:
    """ELPV (elpv-dataset 1.0.0.post1 on PyPI): 2,624 300x300 grey electroluminescence crops of solar cells from 44
    modules, each with an annotated defect probability (0, 1/3, 2/3, 1); labelled `defective` from 0.5 up, else
    `functional`."""
    folder = pip_package("elpv-dataset==1.0.0.post1") / "elpv_dataset" / "data"
    labels = pd.read_csv(folder / "labels.csv", sep=r"\s+", header=None, names=["path", "probability", "type"])
    images = np.stack([np.asarray(Image.open(folder / path).convert("L")) for path in labels["path"]])
    return images, np.where(labels["probability"].to_numpy() >= 0.5, "defective", "functional")


def write_elpv(data_dir: Path, holdout_dir: Path) -> dict[str, int]:
    return write_classification_arrays(*fetch_elpv(), data_dir, holdout_dir)


TREE_SCENES = (  # deepforest's annotated airborne RGB scenes (NEON), with their Pascal VOC box files
    "2019_YELL_2_528000_4978000_image_crop2",
    "2019_YELL_2_541000_4977000_image_crop",
    "OSBS_029",
    "SOAP_061",
)
TREE_TILE = 400


def _clip_boxes(boxes: Boxes, x: int, y: int, size: int) -> Boxes:
    """The boxes of a tile at (x, y), clipped to it; a box keeps when at least half of its area is inside."""
    clipped = boxes.copy()
    clipped[:, [0, 2]] = np.clip(boxes[:, [0, 2]] - x, 0, size)
    clipped[:, [1, 3]] = np.clip(boxes[:, [1, 3]] - y, 0, size)
    area = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1])
    whole = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return clipped[area >= 0.5 * whole]


def fetch_tree_crowns() -> tuple[list[np.ndarray], list[Boxes], np.ndarray]:
    """deepforest 2.1.0's four annotated scenes in 400 px tiles (a 400 px scene is one tile): (tiles, boxes, the
    scene of each tile). Every crown is class 0 ("Tree"; SOAP_061's Alive/Dead are merged)."""
    folder = pip_package("deepforest==2.1.0") / "deepforest" / "data"
    Image.MAX_IMAGE_PIXELS = None
    tiles: list[np.ndarray] = []
    boxes: list[Boxes] = []
    scenes: list[int] = []
    for number, scene in enumerate(TREE_SCENES):
        objects = ET.parse(folder / f"{scene}.xml").getroot().iter("object")
        corners = [[float(o.findtext(f"bndbox/{k}", "")) for k in ("xmin", "ymin", "xmax", "ymax")] for o in objects]
        scene_boxes = np.array([[*c, 0.0] for c in corners], float).reshape(-1, 5)
        picture = np.asarray(Image.open(folder / f"{scene}.png").convert("RGB"))
        for y in range(0, picture.shape[0] - TREE_TILE + 1, TREE_TILE):
            for x in range(0, picture.shape[1] - TREE_TILE + 1, TREE_TILE):
                tiles.append(picture[y : y + TREE_TILE, x : x + TREE_TILE])
                boxes.append(_clip_boxes(scene_boxes, x, y, TREE_TILE))
                scenes.append(number)
    return tiles, boxes, np.array(scenes)


def write_tree_crowns(data_dir: Path, holdout_dir: Path) -> dict[str, int]:
    tiles, boxes, _ = fetch_tree_crowns()
    return write_boxes_arrays(tiles, boxes, data_dir, holdout_dir)


CHESSBOARD_CORNERS = (9, 6)  # inner corners of OpenCV's calibration board: 10 x 7 squares


def fetch_chessboards() -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """The 26 calibration photos of Debian's opencv-doc 4.6.0 (left01-14, right01-14 without 10; 640x480 grey)
    with a mask per square (1 dark, 2 light) found by OpenCV: its chessboard corners, a homography from the board's
    grid, each inner square drawn through it (the printed rim squares stay background). Returns (images, masks,
    stereo pair number) so that a pair stays on one side."""
    import cv2

    folder = deb_package("opencv-doc", "4.6.0+dfsg-12", "usr/share/doc/opencv-doc/examples/data")
    images, masks, pairs = [], [], []
    for path in sorted(folder.glob("left[0-9][0-9].jpg")) + sorted(folder.glob("right[0-9][0-9].jpg")):
        image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        found, corners = cv2.findChessboardCorners(image, CHESSBOARD_CORNERS)
        if not found:
            continue
        columns, rows = CHESSBOARD_CORNERS
        grid = np.array([[c, r] for r in range(rows) for c in range(columns)], np.float32)
        homography, _ = cv2.findHomography(grid, corners.reshape(-1, 2))
        squares = np.zeros(image.shape, np.uint8)  # 1 and 2 by parity, then named dark and light by brightness
        for r in range(rows - 1):  # the 8 x 5 squares whose four corners OpenCV found (the rim's are cut short)
            for c in range(columns - 1):
                square = np.array([[c, r], [c + 1, r], [c + 1, r + 1], [c, r + 1]], np.float32)[None]
                outline = cv2.perspectiveTransform(square, homography)[0]
                cv2.fillConvexPoly(squares, np.round(outline).astype(np.int32), 1 + (r + c) % 2)
        dark_is_one = image[squares == 1].mean() < image[squares == 2].mean()
        masks.append(squares if dark_is_one else np.choose(squares, [0, 2, 1]).astype(np.uint8))
        images.append(image)
        pairs.append(int(path.stem[-2:]))
    return images, masks, np.array(pairs)


def write_chessboard_masks(data_dir: Path, holdout_dir: Path) -> dict[str, int]:
    images, masks, pairs = fetch_chessboards()
    return write_masks_arrays(images, masks, 2, data_dir, holdout_dir, groups=pairs)


def write_chessboard_boxes(data_dir: Path, holdout_dir: Path) -> dict[str, int]:
    """One box per photo, class 0: the board's grid of inner squares (their extent in the mask)."""
    images, masks, pairs = fetch_chessboards()
    boxes = []
    for mask in masks:
        ys, xs = np.nonzero(mask)
        boxes.append(np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1, 0]], float))
    return write_boxes_arrays(images, boxes, data_dir, holdout_dir, groups=pairs)


NUCLEI_TILE = 128
STARDIST_WHEEL = ("--platform", "manylinux_2_28_x86_64", "--python-version", "3.11")


def fetch_nuclei() -> tuple[list[np.ndarray], list[np.ndarray]]:
    """stardist 0.9.2's 2-D test image (512x512 fluorescence nuclei, a DSB 2018 image) and its instance labels,
    in 16 tiles of 128 px with binary masks (1 nucleus)."""
    folder = pip_package("stardist==0.9.2", *STARDIST_WHEEL) / "stardist" / "data" / "images"
    image = np.asarray(Image.open(folder / "img2d.tif")).astype(np.float64)
    image = (255 * (image - image.min()) / max(np.ptp(image), 1)).round().astype(np.uint8)
    labels = np.asarray(Image.open(folder / "mask2d.tif"))
    spots = [(y, x) for y in range(0, 512, NUCLEI_TILE) for x in range(0, 512, NUCLEI_TILE)]
    tiles = [image[y : y + NUCLEI_TILE, x : x + NUCLEI_TILE] for y, x in spots]
    return tiles, [(labels[y : y + NUCLEI_TILE, x : x + NUCLEI_TILE] > 0).astype(np.uint8) for y, x in spots]


def write_nuclei(data_dir: Path, holdout_dir: Path) -> dict[str, int]:
    tiles, masks = fetch_nuclei()
    return write_masks_arrays(tiles, masks, 1, data_dir, holdout_dir)
