"""EDA statistics, each a small function: per-image features (size, brightness, contrast, blur, noise, hash),
near-duplicates, adversarial validation of train against test, orientation shift."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from ..core.report.eda_context import parallel_map

FEATURES = [
    "height",
    "width",
    "aspect",
    "channels",
    "brightness",
    "contrast",
    "sharpness",
    "noise",
    "red",
    "green",
    "blue",
    "orientation",
]


HASH_SIDE = 16  # phash of 16x16 DCT signs: 256 bits
# Copies (JPEG q60, 0.7x resize, +20 brightness, noise) measured within 16 bits of their source on the scene
# demo and 4 on photos; distinct demo scenes 34 or more apart.
NEAR_DUPLICATE_BITS = 24


def image_features(path: str) -> dict[str, Any]:
    """Cheap statistics of one image; an unreadable file gives `readable=False` and the reason."""
    import imagehash
    from PIL import Image

    record: dict[str, Any] = {"path": path, "readable": False}
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        return {**record, "error": f"unreadable: {error.strerror}"}
    if not data:
        return {**record, "error": "empty file (0 bytes)"}
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        return {**record, "error": "cannot decode (corrupt or not an image)"}
    channels = 1 if image.ndim == 2 else image.shape[2]
    if image.dtype != np.uint8:
        image = cv2.convertScaleAbs(image, alpha=255.0 / max(float(image.max()), 1.0))
    colour = (
        cv2.cvtColor(image, cv2.COLOR_GRAY2RGB) if channels == 1 else cv2.cvtColor(image[:, :, :3], cv2.COLOR_BGR2RGB)
    )
    gray = cv2.cvtColor(colour, cv2.COLOR_RGB2GRAY)
    gx = np.abs(cv2.Sobel(gray, cv2.CV_32F, 1, 0)).mean()
    gy = np.abs(cv2.Sobel(gray, cv2.CV_32F, 0, 1)).mean()
    height, width = gray.shape
    return {
        "path": path,
        "readable": True,
        "md5": hashlib.md5(data).hexdigest(),
        # 256 bits: the 64-bit hash matched distinct scenes of small objects on dark canvases. phash resizes to
        # 64x64 itself; shrinking with cv2 first saves PIL's slow Lanczos on large images.
        "phash": str(
            imagehash.phash(
                Image.fromarray(cv2.resize(gray, (4 * HASH_SIDE, 4 * HASH_SIDE), interpolation=cv2.INTER_AREA)),
                hash_size=HASH_SIDE,
            )
        ),
        "height": height,
        "width": width,
        "aspect": width / height,
        "channels": channels,
        "brightness": float(gray.mean()),
        "contrast": float(gray.std()),
        "sharpness": float(cv2.Laplacian(gray, cv2.CV_64F).var()),  # variance of Laplacian: low = blurred
        "noise": noise_sigma(gray),
        "red": float(colour[:, :, 0].mean()),
        "green": float(colour[:, :, 1].mean()),
        "blue": float(colour[:, :, 2].mean()),
        # Horizontal over vertical gradient energy: text lines and horizons flip it when images are rotated.
        "orientation": float(np.log((gx + 1e-6) / (gy + 1e-6))),
    }


# Immerkaer (1996) fast noise variance estimation: the kernel cancels image structure up to second order.
NOISE_KERNEL = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float32)


def noise_sigma(gray: np.ndarray) -> float:
    """Estimated standard deviation of Gaussian noise in a gray image (0-255 scale); skimage's estimate_sigma
    gives the same kind of figure with a wavelet transform that costs ten times more."""
    height, width = gray.shape
    if height < 3 or width < 3:
        return 0.0
    response = cv2.filter2D(gray.astype(np.float32), -1, NOISE_KERNEL)[1:-1, 1:-1]
    return float(np.abs(response).sum() * np.sqrt(np.pi / 2) / (6 * (width - 2) * (height - 2)))


def scan(paths: list[str], workers: int, description: str) -> pd.DataFrame:
    """Features of every image, computed in a process pool; only small records come back."""
    frame = pd.DataFrame(parallel_map(image_features, paths, workers, description))
    if frame.empty:
        return pd.DataFrame(columns=["path", "readable", "error"])
    return frame.reindex(columns=list(dict.fromkeys(["path", "readable", "error", *frame.columns])))


def duplicate_groups(hashes: pd.Series, max_distance: int = 0) -> list[list[int]]:
    """Row groups whose hashes (hex strings of equal length) are equal, or within `max_distance` bits of each
    other (groups are the connected components of the near-pairs graph)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if max_distance == 0:
        rows = pd.Series(np.arange(len(hashes)), index=hashes.to_numpy())
        return [group.tolist() for _, group in rows.groupby(level=0) if len(group) > 1]
    bits = np.unpackbits(np.array([bytearray.fromhex(h) for h in hashes], dtype=np.uint8), axis=1)
    signs = bits.astype(np.float32) * 2 - 1  # Hamming distance = (bit count - a . b) / 2: one BLAS product per block
    least_dot = bits.shape[1] - 2 * max_distance
    block = max(1, 2**22 // max(1, len(signs)))  # rows per block: each product block stays near 16 MB
    pairs = []
    for start in range(0, len(signs), block):
        rows, columns = np.nonzero(signs[start : start + block] @ signs.T >= least_dot)
        pairs.append((rows + start, columns))
    rows, columns = (np.concatenate(parts) for parts in zip(*pairs, strict=True)) if pairs else ([], [])
    graph = coo_matrix((np.ones(len(rows)), (rows, columns)), shape=(len(signs), len(signs)))
    _, labels = connected_components(graph, directed=False)
    groups = pd.Series(np.arange(len(signs))).groupby(labels)
    return [group.tolist() for _, group in groups if len(group) > 1]


def adversarial_validation(train: pd.DataFrame, test: pd.DataFrame, seed: int = 0) -> tuple[float, pd.DataFrame]:
    """ROC AUC of a classifier telling test from train on cheap features (0.5: no shift), and each feature's
    own AUC distance from 0.5 (which features separate them)."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    # A few thousand images per side tell a shift as well as all of them, at a bounded cost.
    train = train.sample(min(len(train), 5000), random_state=seed)
    test = test.sample(min(len(test), 5000), random_state=seed)
    features = pd.concat([train[FEATURES], test[FEATURES]], ignore_index=True).to_numpy(np.float64)
    is_test = np.r_[np.zeros(len(train)), np.ones(len(test))]
    folds = min(3, int(min(len(train), len(test))))
    if folds < 2:
        return float("nan"), pd.DataFrame(columns=["feature", "separation"])
    # A forest with small leaves works from a few dozen images to hundreds of thousands.
    model = RandomForestClassifier(n_estimators=60, max_depth=10, n_jobs=-1, random_state=seed)
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    scores = cross_val_predict(model, features, is_test, cv=cv, method="predict_proba")[:, 1]
    auc = float(roc_auc_score(is_test, scores))
    separation = [abs(roc_auc_score(is_test, features[:, i]) - 0.5) * 2 for i in range(len(FEATURES))]
    ranking = pd.DataFrame({"feature": FEATURES, "separation": separation}).sort_values("separation", ascending=False)
    return auc, ranking


def orientation_mismatch(train: pd.DataFrame, test: pd.DataFrame, factor: float = 1.5) -> bool:
    """Whether test images look rotated by 90 degrees relative to train (gradient energy ratio flipped)."""
    return bool(abs(train["orientation"].median() - test["orientation"].median()) > np.log(factor))


def median_side(frame: pd.DataFrame) -> float:
    """Median of sqrt(height x width): one number for the size of a set of images."""
    return float(np.sqrt(frame["height"] * frame["width"]).median()) if len(frame) else 0.0


def compare(train: pd.DataFrame, test: pd.DataFrame, seed: int = 0) -> tuple[dict[str, Any], pd.DataFrame]:
    """Train against test (decoded images of both): per-feature medians and KS statistic, adversarial validation,
    and the flags the augmentation rules read (rotated, blurrier, noisier, brighter, more grayscale, resized)."""
    from scipy.stats import ks_2samp

    shift = pd.DataFrame(
        [
            {
                "feature": f,
                "train_median": train[f].median(),
                "test_median": test[f].median(),
                "ks_statistic": ks_2samp(train[f], test[f]).statistic,
            }
            for f in FEATURES
        ]
    )
    auc, ranking = adversarial_validation(train, test, seed)
    test_sizes = set(zip(test["width"], test["height"], strict=True))
    only_test = test_sizes - set(zip(train["width"], train["height"], strict=True))
    stats = {
        "shift": shift.to_dict("records"),
        "adversarial_auc": auc,
        "adversarial_features": ranking.to_dict("records"),
        "orientation_mismatch": orientation_mismatch(train, test),
        "test_blurrier": bool(test["sharpness"].median() < 0.6 * train["sharpness"].median()),
        "test_noisier": bool(test["noise"].median() > 1.5 * train["noise"].median() + 0.5),
        "brightness_shift": bool(
            abs(test["brightness"].median() - train["brightness"].median()) > 15
            or abs(test["contrast"].median() - train["contrast"].median()) > 10
        ),
        "test_grayscale_share": float((test["channels"] == 1).mean()),
        "test_median_side": median_side(test),
        "test_only_sizes": sorted(f"{w}x{h}" for w, h in only_test)[:10],
        "test_only_size_share": float(test.apply(lambda r: (r["width"], r["height"]) in only_test, axis=1).mean()),
    }
    return stats, ranking
