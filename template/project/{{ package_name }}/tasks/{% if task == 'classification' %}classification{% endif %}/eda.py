"""Classification's part of `eda`: class counts (per fold too), imbalance, multi-label co-occurrence, samples per
class, the base of the proposed augmentations and the image size for small images."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from ...core.data import LabelledTable
    from ...core.report.eda_context import EdaContext

IMBALANCE_RATIO = 10  # largest over smallest class count above which the loss is weighted
SIZE_SPREAD = 2  # largest over smallest image height above which crops at several scales are proposed
SMALL_IMAGE_NOTE = "model.stem_pool=drop also keeps a ResNet stem from halving them once more (4x the compute)"


def class_counts(table: LabelledTable, rows: np.ndarray | None = None) -> np.ndarray:
    """Images per class (of `rows` when given): 0/1 column sums for multi-label, a bincount otherwise."""
    targets = table.targets if rows is None else table.targets[rows]
    if table.multi_label:
        return np.asarray(targets).sum(axis=0).astype(int)
    return np.bincount(np.asarray(targets, dtype=int), minlength=len(table.classes))


def base_augmentations(stats: dict[str, Any]) -> list[tuple[Any, str]]:
    """The proposal's start: small geometric jitter, and crops at several scales when image sizes vary widely."""
    import albumentations as A

    base: list[tuple[Any, str]] = [
        (
            A.Affine(scale=(0.9, 1.1), translate_percent=(-0.05, 0.05), rotate=(-10, 10), p=0.5),
            "baseline: small geometric jitter",
        )
    ]
    if stats.get("size_spread", 1) > SIZE_SPREAD:
        base.append(
            (
                A.RandomResizedCrop(size=(stats["image_size"],) * 2, scale=(0.6, 1.0), p=0.5),
                "image sizes vary widely: train on crops at several scales",
            )
        )
    return base


def samples(context: EdaContext) -> list[dict[str, Any]]:
    """Up to 8 readable images of each of the first 10 classes."""
    table, figures = context.table, []
    paths = table.frame["path"].to_numpy()
    for index, name in enumerate(table.classes[:10]):
        in_class = table.targets[:, index] > 0 if table.multi_label else table.targets == index
        members = np.flatnonzero(in_class & context.readable)[:8]
        if len(members):
            titles = [name] * len(members)
            figures.append(
                {"kind": "samples", "name": f"samples_{index}", "paths": paths[members].tolist(), "titles": titles}
            )
    return [{"heading": "Samples per class", "figures": figures}] if figures else []


def explore(context: EdaContext) -> dict[str, Any]:
    """Class balance and what follows from it; see core/report/eda_context.py for the contract."""
    table, stats = context.table, {}
    counts = class_counts(table)
    stats["class_counts"] = dict(zip(table.classes, counts.tolist(), strict=True))
    stats["imbalance_ratio"] = float(counts.max() / max(counts.min(), 1))
    shares = {"train": counts / max(counts.sum(), 1)}
    section: dict[str, Any] = {
        "heading": "Class counts",
        "text": f"imbalance ratio (largest / smallest class) {stats['imbalance_ratio']:.1f}",
        "name": "class_counts",
        "table": pd.DataFrame({"class": table.classes, "images": counts}),
    }
    sections = [section]
    if context.folds is not None:
        per_fold = {}
        for fold in sorted(f for f in set(context.folds.tolist()) if f >= 0):
            fold_counts = class_counts(table, context.folds == fold)
            per_fold[str(fold)] = dict(zip(table.classes, fold_counts.tolist(), strict=True))
            shares[f"fold {fold}"] = fold_counts / max(fold_counts.sum(), 1)
        stats["class_counts_per_fold"] = per_fold
        per_fold_table = pd.DataFrame(per_fold).T.reset_index(names="fold")
        sections.append({"heading": "Class counts per fold", "name": "class_counts_per_fold", "table": per_fold_table})
    section["figures"] = [
        {"kind": "bars", "name": "class_shares", "series": shares, "labels": table.classes, "title": "class shares"}
    ]
    if table.multi_label:
        co = (table.targets.T @ table.targets).astype(int)
        stats["co_occurrence"] = co.tolist()
        frame = pd.DataFrame(co, columns=table.classes).assign(label=table.classes)
        sections.append({"heading": "Co-occurrence (images with both labels)", "name": "co_occurrence", "table": frame})
    findings = [f"{len(table.classes)} classes, imbalance ratio {stats['imbalance_ratio']:.1f}"]
    proposals: list[tuple[str | None, str]] = []
    if stats["imbalance_ratio"] > IMBALANCE_RATIO:
        stats["imbalance_advice"] = (
            f"heavy class imbalance (ratio {stats['imbalance_ratio']:.0f}): weight the loss "
            "(train.class_weights=balanced) and keep a stratified fold strategy"
        )
        proposals.append((None, stats["imbalance_advice"]))
    size = context.stats["image_size_proposal"]
    if size is not None:
        stats["image_size_advice"] = f"{size[1]}; {SMALL_IMAGE_NOTE}"
        proposals.insert(0, (f"model.image_size={size[0]}", stats["image_size_advice"]))
    return {
        "stats": stats,
        "findings": findings,
        "proposals": proposals,
        "sections": [*sections, *samples(context)],
        "augmentations": base_augmentations(context.stats),
    }
