"""`eda`: image statistics shared by every task (sizes, colour, blur, noise, duplicates, train/test shift) and the
task's own part (`tasks/<task>/eda.py`: labels, boxes or masks) in one report that opens with key findings and the
proposed overrides, each with its reason; `configs/aug/suggested.yaml` when an augmentation proposal applies."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..config import Config
from ..core.data import IMAGE_SUFFIXES, LabelledTable
from ..core.fold_file import read_folds
from ..core.recipe import propose_image_size
from ..core.report.eda_context import EdaContext
from ..core.report.eda_figures import box_positions, labelled_samples
from ..core.report.page import Report, bar_chart, histograms, image_grid, image_rows
from ..core.runs import RunPaths, atomic_path, read_json, write_json, write_text
from ..tasks import SPEC, read_train_table
from .eda_stats import FEATURES, NEAR_DUPLICATE_BITS, compare, duplicate_groups, median_side, scan

MAX_DUPLICATE_ROWS = 8  # near-duplicate groups drawn as thumbnails


def shift_augmentations(stats: dict[str, Any]) -> list[tuple[Any, str]]:
    """Transforms that bring train closer to what the test images look like, with the finding behind each."""
    import albumentations as A

    proposals: list[tuple[Any, str]] = []
    if stats.get("orientation_mismatch"):
        proposals.append((A.RandomRotate90(p=0.5), "test images look rotated by 90 degrees relative to train"))
    if stats.get("test_blurrier"):
        blur = A.OneOf([A.GaussianBlur(blur_limit=(3, 7)), A.MotionBlur(blur_limit=(3, 7))], p=0.4)
        proposals.append((blur, "test images are blurrier than train (variance of Laplacian)"))
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
    return proposals


def augmentation_pipeline(config: Config, base: list[tuple[Any, str]] | None, stats: dict) -> list[tuple[Any, str]]:
    """The proposed pipeline: the task's base (or, when it gives none, the transforms of aug.train, and only if the
    shift asks for more) followed by the shift's transforms it lacks; empty when nothing applies."""
    from ..core.augment import load_augmentations

    shift = shift_augmentations(stats)
    keep_base = base is not None
    if base is None:
        current = load_augmentations(config.aug.train, "aug.train") if shift else None
        base = [(t, f"already in aug.train ({config.aug.train})") for t in getattr(current, "transforms", [])]
    present = {type(t).__name__ for t, _ in base}
    added = [(t, r) for t, r in shift if type(t).__name__ not in present]
    return [*base, *added] if keep_base or added else []


FIGURES: dict[str, Callable[[dict], bytes]] = {
    "histograms": lambda spec: histograms(spec["panels"]),
    "bars": lambda spec: bar_chart(spec["series"], spec["labels"], spec["title"]),
    "samples": lambda spec: image_grid(spec["paths"], spec["titles"]),
    "rows": lambda spec: image_rows(spec["rows"], spec["titles"]),
    "labelled": lambda spec: labelled_samples(spec["rows"], spec["names"]),
    "box_positions": lambda spec: box_positions(spec["boxes"], spec["names"]),
}


def run_class_names(config: Config, table: LabelledTable) -> tuple[LabelledTable, str | None]:
    """The table under the class names of the run's classes.json (those `analyze` shows) when the labels came without
    names (data.classes unset, classes numbered '1'..'K' by mask value) and it holds as many: the run may have been
    trained with data.classes set. A note whenever the two differ."""
    path = RunPaths.from_config(config).classes
    names = [str(n) for n in read_json(path)] if path.is_file() else table.classes
    if names == table.classes:
        return table, None
    shown = lambda values: ", ".join(values[:6]) + (", ..." if len(values) > 6 else "")  # noqa: E731
    numbered = [str(k) for k in range(1, len(names) + 1)]
    if config.data.classes is None and table.classes == numbered:
        note = f"classes named as in {path}, as the analysis names them: {shown(names)} (the labels number them "
        return dataclasses.replace(table, classes=names), note + f"{shown(table.classes)})"
    return table, f"{path} names the classes {shown(names)}, the labels {shown(table.classes)}: retrain or align them"


def render(report: Report, sections: list[dict[str, Any]]) -> None:
    """Sections as data: heading, text, figures ({kind, name, ...} from FIGURES), a table (name, table, empty)."""
    for section in sections:
        report.section(section["heading"], section.get("text", ""))
        for figure in section.get("figures", []):
            report.image(figure["name"], FIGURES[figure["kind"]](figure))
        if "table" in section:
            report.table(section["name"], section["table"], empty=section.get("empty", "none found"))


def shown(frame: pd.DataFrame, root: Path) -> pd.DataFrame:
    """A table's `path` column relative to the data folder, as people look it up."""
    paths = [os.path.relpath(path, root) if str(path).startswith(str(root)) else path for path in frame["path"]]
    return frame.assign(path=paths)


def image_sections(train: pd.DataFrame, test: pd.DataFrame, stats: dict[str, Any], root: Path) -> list[dict]:
    """Distributions, blur, extremes and duplicates of the decoded images (both splits for duplicates)."""
    sets = {"train": train, **({"test": test} if len(test) else {})}
    panels = [
        {
            "title": "image side (sqrt h*w, px)",
            "values": {k: np.sqrt(f["height"] * f["width"]) for k, f in sets.items()},
        },
        {"title": "brightness (mean gray)", "values": {k: f["brightness"] for k, f in sets.items()}},
        {"title": "sharpness (variance of Laplacian)", "values": {k: f["sharpness"] + 1 for k, f in sets.items()}},
    ]
    panels[2]["log"] = True
    describe = train[FEATURES].describe().T.reset_index().rename(columns={"index": "feature"})
    stats["train_features"] = describe.to_dict("records")
    sizes = train.groupby(["width", "height"]).size().sort_values(ascending=False).head(10).reset_index(name="images")
    stats["sizes"] = sizes.to_dict("records")
    blur_limit = float(train["sharpness"].median() / 10) if len(train) else 0.0
    blurred = train[train["sharpness"] < blur_limit]
    stats["blurred"] = blurred["path"].tolist()
    sections = [
        {
            "heading": "Image statistics (train)",
            "figures": [{"kind": "histograms", "name": "images", "panels": panels}],
        },
        {"heading": "Image sizes (train, the 10 most common)", "name": "sizes", "table": sizes},
        {"heading": "Statistics per feature (train)", "name": "train_features", "table": describe},
        {
            "heading": "Blurred images",
            "text": f"variance of Laplacian below {blur_limit:.1f} (a tenth of the median)",
            "name": "blurred",
            "table": shown(blurred[["path", "sharpness"]], root),
        },
    ]
    for feature in ("brightness", "contrast", "noise"):
        extremes = pd.concat([train.nsmallest(3, feature), train.nlargest(3, feature)])[["path", feature]]
        extremes = extremes.drop_duplicates("path")
        stats[f"{feature}_extremes"] = extremes.to_dict("records")
        sections.append(
            {
                "heading": f"{feature.capitalize()} extremes",
                "name": f"{feature}_extremes",
                "table": shown(extremes, root),
            }
        )
    return [*sections, duplicate_section(train, test, stats)]


def duplicate_section(train: pd.DataFrame, test: pd.DataFrame, stats: dict[str, Any]) -> dict[str, Any]:
    """Exact (same bytes) and near (perceptual hashes within NEAR_DUPLICATE_BITS) duplicates, also across train
    and test."""
    both = pd.concat([train.assign(split="train"), test.assign(split="test")], ignore_index=True)
    exact = duplicate_groups(both["md5"]) if len(both) else []
    near = duplicate_groups(both["phash"], max_distance=NEAR_DUPLICATE_BITS) if len(both) else []
    stats["exact_duplicates"] = [both.loc[g, "path"].tolist() for g in exact]
    stats["near_duplicates"] = [both.loc[g, "path"].tolist() for g in near]
    stats["train_test_duplicates"] = [both.loc[g, "path"].tolist() for g in near if both.loc[g, "split"].nunique() > 1]
    section: dict[str, Any] = {
        "heading": "Duplicates",
        "text": f"{len(exact)} exact group(s), {len(near)} near-duplicate group(s) (perceptual hash), "
        f"{len(stats['train_test_duplicates'])} shared by train and test"
        + (f"; the first {MAX_DUPLICATE_ROWS} groups, one per row" if len(near) > MAX_DUPLICATE_ROWS else ""),
    }
    if near:
        groups = [g[:6] for g in near[:MAX_DUPLICATE_ROWS]]
        titles = [[f"{both.loc[i, 'split']}: {Path(both.loc[i, 'path']).name}" for i in g] for g in groups]
        rows = [both.loc[g, "path"].tolist() for g in groups]
        section["figures"] = [{"kind": "rows", "name": "near_duplicates", "rows": rows, "titles": titles}]
    return section


def shared_findings(stats: dict[str, Any]) -> list[str]:
    """Key findings of the image statistics, most actionable first."""
    lines = []
    if stats["issues"]:
        lines.append(f"{len(stats['issues'])} image file(s) cannot be read: see Unreadable files")
    if stats["exact_duplicates"] or stats["near_duplicates"]:
        lines.append(
            f"{len(stats['exact_duplicates'])} exact and {len(stats['near_duplicates'])} near-duplicate group(s), "
            f"{len(stats['train_test_duplicates'])} shared by train and test: look at them under Duplicates; true "
            "duplicates belong in one fold (folds.group_column)"
        )
    if "adversarial_auc" in stats:
        auc, top = stats["adversarial_auc"], stats["adversarial_features"][0]["feature"]
        look = "look alike" if auc < 0.6 else f"differ, most in {top}"
        lines.append(f"train and test {look} (adversarial validation AUC {auc:.2f}; 0.5: indistinguishable)")
        if stats["test_only_sizes"]:
            lines.append(
                f"{stats['test_only_size_share']:.0%} of test images have sizes no train image has "
                f"({', '.join(stats['test_only_sizes'][:3])}); median side train {stats['median_side']:.0f} px, "
                f"test {stats['test_median_side']:.0f} px"
            )
    if stats["blurred"]:
        lines.append(f"{len(stats['blurred'])} blurred train image(s)")
    return lines


def write_suggested_augmentations(pipeline: list[tuple[Any, str]], suggested: Path, stats: dict[str, Any]) -> dict:
    """Save the proposed transforms as an albumentations file (stats gain them and the file); returns the proposal
    that points aug.train at it."""
    import albumentations as A

    stats["recommendations"] = [{"transform": type(t).__name__, "reason": r} for t, r in pipeline]
    with atomic_path(suggested) as temporary:
        A.save(A.Compose([t for t, _ in pipeline]), str(temporary), data_format="yaml")
    stats["suggested_aug"] = str(suggested)
    reason = "; ".join(dict.fromkeys(r for _, r in pipeline if not r.startswith("already in")))
    return {"override": f"aug.train={suggested}", "reason": f"augmentations written to {suggested}: {reason}"}


def eda(
    config: Config,
    output_dir: Path = Path("reports"),
    workers: int | None = None,
    suggested: Path = Path("configs/aug/suggested.yaml"),
) -> Path:
    """Write reports/eda.html and reports/eda.json (and configs/aug/suggested.yaml when augmentations are
    proposed); returns the HTML path."""
    workers = workers if workers is not None else max(os.cpu_count() or 1, 1)
    table, names_note = run_class_names(config, read_train_table(config.data, check_images=False))
    test_dir = config.data.root / config.data.test_images
    test_paths = (
        sorted(str(p) for p in test_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if test_dir.is_dir() else []
    )
    train = scan(table.frame["path"].astype(str).tolist(), workers, "eda train")
    test = scan(test_paths, workers, "eda test")
    issues = pd.concat([train.assign(split="train"), test.assign(split="test")], ignore_index=True)
    issues = issues.loc[~issues["readable"].astype(bool), ["split", "path", "error"]]
    readable = train["readable"].astype(bool).to_numpy()
    train_ok = train[readable].reset_index(drop=True)
    test_ok = test[test["readable"].astype(bool)].reset_index(drop=True)
    stats: dict[str, Any] = {
        "task": config.task,
        "train_images": len(train),
        "test_images": len(test),
        "image_size": config.model.image_size,
        "issues": issues.to_dict("records"),
        "median_side": median_side(train_ok),
        "size_spread": float(train_ok["height"].max() / max(train_ok["height"].min(), 1)) if len(train_ok) else 1.0,
        "train_grayscale_share": float((train_ok["channels"] == 1).mean()) if len(train_ok) else 0.0,
    }
    stats["image_size_proposal"] = propose_image_size(stats["median_side"], config.model.image_size)
    sections = [
        {
            "heading": "Unreadable files",
            "name": "issues",
            "table": shown(issues, config.data.root),
            "empty": "none: every file decodes",
        }
    ]
    if len(train_ok):
        sections += image_sections(train_ok, test_ok, stats, config.data.root)
    else:
        stats.update(blurred=[], exact_duplicates=[], near_duplicates=[], train_test_duplicates=[])
    if len(test_ok) >= 2 and len(train_ok) >= 2:
        shift, ranking = compare(train_ok, test_ok, config.seed)
        stats.update(shift)
        sections.append(
            {
                "heading": "Train versus test",
                "text": f"adversarial validation AUC {stats['adversarial_auc']:.3f} (0.5: indistinguishable); "
                f"orientation mismatch: {stats['orientation_mismatch']}",
                "name": "shift",
                "table": pd.DataFrame(stats["shift"]),
            }
        )
        sections.append({"heading": "Features that separate test from train", "name": "ranking", "table": ranking})

    fold_file = RunPaths.from_config(config).folds
    folds = read_folds(fold_file, table) if fold_file.is_file() else None
    context = EdaContext(config, table, readable, train_ok, test_ok, stats, workers, folds)
    found = SPEC.parts.eda().explore(context)
    stats.update(found.get("stats", {}))
    for figure in (f for section in found.get("sections", []) for f in section.get("figures", [])):
        if figure["kind"] == "labelled":  # which images the labels were drawn on, per class
            stats["label_samples"] = {title: [Path(i["path"]).name for i in items] for title, items in figure["rows"]}
    proposals = [{"override": o, "reason": r} for o, r in found.get("proposals", [])]
    pipeline = augmentation_pipeline(config, found.get("augmentations"), stats)
    if pipeline:
        proposals.append(write_suggested_augmentations(pipeline, suggested, stats))
        sections.append(
            {
                "heading": "Proposed augmentations",
                "name": "recommendations",
                "table": pd.DataFrame(stats["recommendations"]),
            }
        )
    stats["proposals"] = proposals
    stats["proposed_overrides"] = [word for p in proposals if p["override"] for word in p["override"].split()]
    stats["findings"] = [*found.get("findings", []), *shared_findings(stats), *([names_note] if names_note else [])]
    stats["class_names"] = table.classes

    report = Report("Exploratory data analysis")
    advice = [f"{p['override']}: {p['reason']}" if p["override"] else p["reason"] for p in proposals]
    if stats["proposed_overrides"]:
        advice.append(f"adopt them all: train {' '.join(stats['proposed_overrides'])}")
    headline = f"{config.task}: {len(train)} train images, {len(test)} test images"
    report.summary(headline, stats["findings"], advice)
    render(report, [*found.get("sections", []), *sections])
    stats.pop("image_size_proposal")
    write_json(output_dir / "eda.json", stats)
    return write_text(output_dir / "eda.html", report.html())
