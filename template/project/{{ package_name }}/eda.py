"""`eda`: stream over train and test images in worker processes, then report distributions, diversity,
outliers, duplicates, train/test shift (adversarial validation, orientation) and an augmentation proposal
(`configs/aug/suggested.yaml`, albumentations' own format) with the reason for each transform."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .config import Config
from .data import IMAGE_SUFFIXES, read_train_table
from .folds import read_folds
from .runs import RunPaths, atomic_path, write_json, write_text

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
        # phash resizes to 32x32 itself; shrinking with cv2 first saves PIL's slow Lanczos on large images.
        "phash": str(imagehash.phash(Image.fromarray(cv2.resize(gray, (32, 32), interpolation=cv2.INTER_AREA)))),
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
_NOISE_KERNEL = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float32)


def noise_sigma(gray: np.ndarray) -> float:
    """Estimated standard deviation of Gaussian noise in a gray image (0-255 scale); skimage's estimate_sigma
    gives the same kind of figure with a wavelet transform that costs ten times more."""
    height, width = gray.shape
    if height < 3 or width < 3:
        return 0.0
    response = cv2.filter2D(gray.astype(np.float32), -1, _NOISE_KERNEL)[1:-1, 1:-1]
    return float(np.abs(response).sum() * np.sqrt(np.pi / 2) / (6 * (width - 2) * (height - 2)))


def scan(paths: list[str], workers: int, description: str) -> pd.DataFrame:
    """Features of every image, computed in a process pool; only small records come back."""
    if workers <= 1:
        records = [image_features(p) for p in tqdm(paths, desc=description, disable=None)]
    else:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            iterator = pool.imap(image_features, paths, chunksize=32)
            records = list(tqdm(iterator, total=len(paths), desc=description, disable=None))
    frame = pd.DataFrame(records)
    return frame.reindex(columns=list(dict.fromkeys(["path", "readable", "error", *frame.columns])))


def duplicate_groups(hashes: pd.Series, max_distance: int = 0) -> list[list[int]]:
    """Row groups whose 64-bit hashes (hex strings) are equal, or within `max_distance` bits of each other
    (groups are the connected components of the near-pairs graph)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if max_distance == 0:
        rows = pd.Series(np.arange(len(hashes)), index=hashes.to_numpy())
        return [group.tolist() for _, group in rows.groupby(level=0) if len(group) > 1]
    values = np.array([int(h, 16) for h in hashes], dtype=np.uint64)
    pairs = []
    for start in range(0, len(values), 1024):  # blocks keep the pairwise distance matrix at a few MB
        rows, columns = np.nonzero(
            np.bitwise_count(values[start : start + 1024, None] ^ values[None, :]) <= max_distance
        )
        pairs.append((rows + start, columns))
    rows, columns = (np.concatenate(parts) for parts in zip(*pairs, strict=True)) if pairs else ([], [])
    graph = coo_matrix((np.ones(len(rows)), (rows, columns)), shape=(len(values), len(values)))
    _, labels = connected_components(graph, directed=False)
    groups = pd.Series(np.arange(len(values))).groupby(labels)
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


def recommend(stats: dict[str, Any]) -> list[tuple[dict[str, Any], str]]:
    """Rules from findings to (albumentations transform as a dict, reason)."""
    import albumentations as A

    proposals: list[tuple[Any, str]] = [
        (
            A.Affine(scale=(0.9, 1.1), translate_percent=(-0.05, 0.05), rotate=(-10, 10), p=0.5),
            "baseline: small geometric jitter",
        )
    ]
    if stats.get("orientation_mismatch"):
        proposals.append((A.RandomRotate90(p=0.5), "test images look rotated by 90 degrees relative to train"))
    if stats.get("test_blurrier"):
        proposals.append(
            (
                A.OneOf([A.GaussianBlur(blur_limit=(3, 7)), A.MotionBlur(blur_limit=(3, 7))], p=0.4),
                "test images are blurrier than train (variance of Laplacian)",
            )
        )
    if stats.get("test_noisier"):
        proposals.append((A.GaussNoise(std_range=(0.02, 0.1), p=0.4), "test images are noisier than train"))
    if stats.get("brightness_shift"):
        proposals.append(
            (
                A.RandomBrightnessContrast(brightness_limit=0.25, contrast_limit=0.25, p=0.6),
                "brightness or contrast differs between train and test",
            )
        )
    if stats.get("test_grayscale_share", 0) > stats.get("train_grayscale_share", 0) + 0.1:
        proposals.append((A.ToGray(p=0.3), "test has more grayscale images than train"))
    if stats.get("size_spread", 1) > 2:
        proposals.append(
            (
                A.RandomResizedCrop(size=(stats["image_size"],) * 2, scale=(0.6, 1.0), p=0.5),
                "image sizes vary widely: train on crops at several scales",
            )
        )
    return [(A.to_dict(transform)["transform"], reason) for transform, reason in proposals]


def eda(
    config: Config,
    output_dir: Path = Path("reports"),
    workers: int | None = None,
    suggested: Path = Path("configs/aug/suggested.yaml"),
) -> Path:
    """Write reports/eda.html, reports/eda.json and configs/aug/suggested.yaml; returns the HTML path."""
    import albumentations as A

    from .tasks import require_task

    require_task(config, "eda")

    from .report import Report, bar_chart, image_grid

    workers = workers if workers is not None else max(os.cpu_count() or 1, 1)
    table = read_train_table(config.data, check_images=False)
    test_dir = config.data.root / config.data.test_images
    test_paths = (
        sorted(str(p) for p in test_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if test_dir.is_dir() else []
    )
    train = scan(table.frame["path"].tolist(), workers, "eda train")
    test = scan(test_paths, workers, "eda test") if test_paths else pd.DataFrame(columns=["path", "readable"])
    report = Report("Exploratory data analysis")
    stats: dict[str, Any] = {
        "train_images": len(train),
        "test_images": len(test),
        "image_size": config.model.image_size,
    }

    issues = pd.concat([train.assign(split="train"), test.assign(split="test")], ignore_index=True)
    issues = issues.loc[~issues["readable"].astype(bool), ["split", "path", "error"]]
    stats["issues"] = issues.to_dict("records")
    report.section("Unreadable files", f"{len(issues)} file(s)")
    report.table("issues", issues)
    train_ok = train[train["readable"].astype(bool)].reset_index(drop=True)
    test_ok = test[test["readable"].astype(bool)].reset_index(drop=True) if len(test) else test

    # Classes.
    targets = table.targets
    counts = targets.sum(axis=0) if table.multi_label else np.bincount(targets, minlength=len(table.classes))
    stats["class_counts"] = dict(zip(table.classes, counts.astype(int).tolist(), strict=True))
    stats["imbalance_ratio"] = float(counts.max() / max(counts.min(), 1))
    report.section("Class counts", f"imbalance ratio (largest / smallest class) {stats['imbalance_ratio']:.1f}")
    shares = {"train": counts / counts.sum()}
    fold_file = RunPaths.from_config(config).folds
    if fold_file.is_file():  # class counts per fold, once the folds exist
        folds = read_folds(fold_file, table)
        per_fold = {}
        for fold in sorted(f for f in set(folds.tolist()) if f >= 0):
            members = targets[folds == fold]
            fold_counts = (
                members.sum(axis=0) if table.multi_label else np.bincount(members, minlength=len(table.classes))
            )
            per_fold[str(fold)] = dict(zip(table.classes, np.asarray(fold_counts).astype(int).tolist(), strict=True))
            shares[f"fold {fold}"] = fold_counts / max(fold_counts.sum(), 1)
        stats["class_counts_per_fold"] = per_fold
        report.table("class_counts_per_fold", pd.DataFrame(per_fold).T.reset_index(names="fold"))
    report.image("class_counts", bar_chart(shares, table.classes, "class shares"))
    if table.multi_label:
        co = (targets.T @ targets).astype(int)
        stats["co_occurrence"] = co.tolist()
        report.table("co_occurrence", pd.DataFrame(co, columns=table.classes).assign(label=table.classes))

    # Diversity and outliers.
    describe = train_ok[FEATURES].describe().T.reset_index().rename(columns={"index": "feature"})
    stats["train_features"] = describe.to_dict("records")
    report.section("Image statistics (train)")
    report.table("train_features", describe)
    stats["sizes"] = (
        train_ok.groupby(["height", "width"])
        .size()
        .sort_values(ascending=False)
        .head(10)
        .reset_index(name="count")
        .to_dict("records")
    )
    stats["size_spread"] = float(train_ok["height"].max() / max(train_ok["height"].min(), 1)) if len(train_ok) else 1.0
    stats["train_grayscale_share"] = float((train_ok["channels"] == 1).mean()) if len(train_ok) else 0.0
    blur_limit = float(train_ok["sharpness"].median() / 10) if len(train_ok) else 0.0
    blurred = train_ok[train_ok["sharpness"] < blur_limit]
    stats["blurred"] = blurred["path"].tolist()
    report.section("Blurred images", f"variance of Laplacian below {blur_limit:.1f} (a tenth of the median)")
    report.table("blurred", blurred[["path", "sharpness"]])
    for feature in ("brightness", "contrast", "noise"):
        extremes = pd.concat([train_ok.nsmallest(3, feature), train_ok.nlargest(3, feature)])[["path", feature]]
        stats[f"{feature}_extremes"] = extremes.to_dict("records")
        report.section(f"{feature.capitalize()} extremes")
        report.table(f"{feature}_extremes", extremes)

    # Duplicates: exact (same bytes) and near (perceptual hash within a few bits), also across train and test.
    both = pd.concat([train_ok.assign(split="train"), test_ok.assign(split="test")], ignore_index=True)
    exact = duplicate_groups(both["md5"]) if len(both) else []
    near = duplicate_groups(both["phash"], max_distance=4) if len(both) else []
    stats["exact_duplicates"] = [both.loc[g, "path"].tolist() for g in exact]
    stats["near_duplicates"] = [both.loc[g, "path"].tolist() for g in near]
    stats["train_test_duplicates"] = [both.loc[g, "path"].tolist() for g in near if both.loc[g, "split"].nunique() > 1]
    report.section(
        "Duplicates",
        f"{len(exact)} exact group(s), {len(near)} near-duplicate group(s), "
        f"{len(stats['train_test_duplicates'])} shared by train and test",
    )
    report.table("near_duplicates", pd.DataFrame({"group": [" | ".join(g) for g in stats["near_duplicates"]]}))

    # Train versus test.
    if len(test_ok) >= 2 and len(train_ok) >= 2:
        from scipy.stats import ks_2samp

        shift = pd.DataFrame(
            [
                {
                    "feature": f,
                    "train_median": train_ok[f].median(),
                    "test_median": test_ok[f].median(),
                    "ks_statistic": ks_2samp(train_ok[f], test_ok[f]).statistic,
                }
                for f in FEATURES
            ]
        )
        stats["shift"] = shift.to_dict("records")
        auc, ranking = adversarial_validation(train_ok, test_ok, config.seed)
        stats["adversarial_auc"] = auc
        stats["adversarial_features"] = ranking.to_dict("records")
        stats["orientation_mismatch"] = orientation_mismatch(train_ok, test_ok)
        stats["test_blurrier"] = bool(test_ok["sharpness"].median() < 0.6 * train_ok["sharpness"].median())
        stats["test_noisier"] = bool(test_ok["noise"].median() > 1.5 * train_ok["noise"].median() + 0.5)
        stats["brightness_shift"] = bool(
            abs(test_ok["brightness"].median() - train_ok["brightness"].median()) > 15
            or abs(test_ok["contrast"].median() - train_ok["contrast"].median()) > 10
        )
        stats["test_grayscale_share"] = float((test_ok["channels"] == 1).mean())
        report.section(
            "Train versus test",
            f"adversarial validation AUC {auc:.3f} (0.5: indistinguishable); "
            f"orientation mismatch: {stats['orientation_mismatch']}",
        )
        report.table("shift", shift)
        report.table("adversarial_features", ranking)

    # Samples per class.
    for index, name in enumerate(table.classes[:10]):
        readable = table.frame["path"].isin(set(train_ok["path"])).to_numpy()
        in_class = targets[:, index] > 0 if table.multi_label else targets == index
        members = np.flatnonzero(in_class & readable)[:8]
        if len(members):
            report.section(f"Samples: {name}")
            report.image(
                f"samples_{index}", image_grid(table.frame["path"].to_numpy()[members].tolist(), [name] * len(members))
            )

    # Augmentation proposal.
    proposals = recommend(stats)
    if stats["imbalance_ratio"] > 10:
        stats["imbalance_advice"] = (
            f"heavy class imbalance (ratio {stats['imbalance_ratio']:.0f}): weight the loss "
            "(train.class_weights=balanced) and keep a stratified fold strategy"
        )
        report.section("Class imbalance", stats["imbalance_advice"])
    stats["recommendations"] = [{"transform": t["__class_fullname__"], "reason": r} for t, r in proposals]
    pipeline = A.Compose([A.from_dict({"transform": t}) for t, _ in proposals])
    with atomic_path(suggested) as temporary:
        A.save(pipeline, str(temporary), data_format="yaml")
    stats["suggested_aug"] = str(suggested)
    report.section("Proposed augmentations", f"written to {suggested}; adopt with aug.train={suggested}")
    report.table("recommendations", pd.DataFrame(stats["recommendations"]))

    write_json(output_dir / "eda.json", stats)
    return write_text(output_dir / "eda.html", report.html())
