"""`analyze`: a self-contained HTML report (and the same on W&B) of a run's predictions: examples sorted by
loss, class distributions, fold and model correlation, confusion matrix, per-class scores, error rates by
image attribute and under transformations, Grad-CAM / attention maps, label-noise candidates, CV vs LB."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from .analysis import (
    confusion,
    cv_lb_correlation,
    distribution_shift,
    error_rate_by_bins,
    image_attributes,
    label_issue_candidates,
    per_class_report,
    rank_errors,
)
from .augment import InputNormaliser, create_transform, load_augmentations
from .config import Config
from .data import ImageDataset, read_image, read_train_table
from .distributed import resolve_device
from .errors import DataError
from .explain import attention_rollout, cam_heatmaps, is_vit
from .folds import read_folds
from .predict import fold_checkpoints, load_checkpoint
from .report import Report, bar_chart, heatmap, image_grid, scatter_plot
from .runs import RunPaths, read_json, write_json, write_text
from .submit import read_ledger
from .tasks import create_task, require_task
from .tracking import create_tracker
from .tta import get_view

TRANSFORM_VIEWS = ["identity", "hflip", "vflip", "rot90", "rot180", "rot270"]


def _require(path: Path, paths: RunPaths, what: str) -> Path:
    if not path.is_file():
        raise DataError(f"run {paths.root} has no {what} ({path.name}); run train and predict first")
    return path


def _fold_models(task: Any, paths: RunPaths, device: torch.device) -> dict[int, tuple]:
    return {fold: load_checkpoint(task, files[0], device) for fold, files in fold_checkpoints(paths, ["best"]).items()}


@torch.inference_mode()
def _transform_accuracy(models: dict, table: Any, folds: np.ndarray, config: Config, cap: int) -> pd.DataFrame:
    """Accuracy of each fold's model on its own validation images under each view (rotations, flips)."""
    device = next(next(iter(models.values()))[0].parameters()).device
    correct = dict.fromkeys(TRANSFORM_VIEWS, 0)
    seen = 0
    for fold, (model, meta) in models.items():
        rows = np.flatnonzero(folds == fold)[: max(cap // len(models), 1)]
        transform = create_transform(load_augmentations(config.aug.valid), image_size=config.model.image_size)
        normalise = InputNormaliser(tuple(meta["mean"]), tuple(meta["std"]), device)
        dataset = ImageDataset(table.frame["path"].to_numpy()[rows], table.targets[rows], transform)
        loader = torch.utils.data.DataLoader(dataset, batch_size=config.predict.batch_size)
        for images, targets in loader:
            images = normalise(images)
            for view in TRANSFORM_VIEWS:
                predicted = model(get_view(view)(images)).argmax(dim=1).cpu()
                correct[view] += int((predicted == targets).sum())
            seen += len(targets)
    return pd.DataFrame({"view": TRANSFORM_VIEWS, "accuracy": [correct[v] / max(seen, 1) for v in TRANSFORM_VIEWS]})


def _explanations(
    report: Report,
    models: dict,
    table: Any,
    folds: np.ndarray,
    oof_probs: np.ndarray,
    oof_rows: np.ndarray,
    config: Config,
) -> dict[str, Any]:
    fold, (model, meta) = next(iter(models.items()))
    in_fold = np.isin(oof_rows, np.flatnonzero(folds == fold))
    rows, probabilities = oof_rows[in_fold], oof_probs[in_fold]
    wrong, right = rank_errors(table.targets[rows], probabilities, config.analyze.examples)
    picked = np.concatenate([wrong, right])
    if len(picked) == 0:
        return {}
    transform = create_transform(None, image_size=config.model.image_size)
    normalise = InputNormaliser(tuple(meta["mean"]), tuple(meta["std"]), next(model.parameters()).device)
    image_paths = table.frame["path"].to_numpy()[rows[picked]].tolist()
    images = normalise(torch.stack([transform(image=read_image(p))["image"] for p in image_paths]))
    predicted = probabilities[picked].argmax(axis=1)
    titles = [("wrong " if i < len(wrong) else "right ") + table.classes[c] for i, c in enumerate(predicted)]
    with torch.enable_grad():
        maps = cam_heatmaps(model, images, predicted.tolist(), config.analyze.cam_method, config.analyze.cam_layer)
    report.section(f"{config.analyze.cam_method} (fold {fold}): wrong and right examples, predicted class")
    report.image("gradcam", image_grid(image_paths, titles, overlays=list(maps)))
    result = {"cam_method": config.analyze.cam_method, "cam_images": len(picked)}
    if is_vit(model):
        rollout = attention_rollout(model, images)
        report.section("Attention rollout")
        report.image("attention_rollout", image_grid(image_paths, titles, overlays=list(rollout)))
        result["attention_rollout"] = True
    return result


def analyze(config: Config) -> Path:
    """Write <run>/reports/analysis.html and analysis.json, and log the same to W&B; returns the HTML path."""
    require_task(config, "analyze")
    paths = RunPaths.from_config(config)
    oof = pd.read_csv(_require(paths.oof, paths, "OOF predictions"), dtype={"id": str})
    classes = read_json(_require(paths.classes, paths, "class list"))
    table = read_train_table(config.data)
    task = create_task(config, classes)
    position = {image_id: i for i, image_id in enumerate(table.ids)}
    missing = [i for i in oof["id"] if i not in position]
    if missing:
        raise DataError(f"{paths.oof}: id '{missing[0]}' is not in {table.source}")
    rows = oof["id"].map(position).to_numpy()
    probabilities = oof[classes].to_numpy(np.float64)
    targets = table.targets[rows]
    report = Report(f"Analysis of {paths.root.name}")
    numbers: dict[str, Any] = {"run": str(paths.root), "oof_score": task.score(targets, probabilities)}
    multi = config.data.multi_label
    predicted = (probabilities >= config.submit.threshold).astype(int) if multi else probabilities.argmax(axis=1)

    # Distributions: truth vs OOF predictions vs test predictions.
    true_counts = targets.sum(axis=0) if multi else np.bincount(targets, minlength=len(classes))
    oof_counts = predicted.sum(axis=0) if multi else np.bincount(predicted, minlength=len(classes))
    series = {"train truth": true_counts / true_counts.sum(), "OOF predicted": oof_counts / max(oof_counts.sum(), 1)}
    numbers["shift_oof_vs_truth"] = distribution_shift(true_counts, oof_counts)
    if paths.test_predictions.is_file():
        test = pd.read_csv(paths.test_predictions, dtype={"id": str})[classes].to_numpy()
        test_predicted = (
            (test >= config.submit.threshold).sum(axis=0)
            if multi
            else np.bincount(test.argmax(axis=1), minlength=len(classes))
        )
        series["test predicted"] = test_predicted / max(test_predicted.sum(), 1)
        numbers["shift_test_vs_truth"] = distribution_shift(true_counts, test_predicted)
    shifted = [
        k for k in ("shift_oof_vs_truth", "shift_test_vs_truth") if numbers.get(k, 0) > config.analyze.shift_warning
    ]
    numbers["warnings"] = [f"{k} = {numbers[k]:.3f} > {config.analyze.shift_warning}" for k in shifted]
    report.section("Class distributions", "; ".join(numbers["warnings"]) or "no shift above the warning level")
    report.image("class_distribution", bar_chart(series, classes, "class shares"))

    # Per-class scores and confusion matrix.
    per_class = per_class_report(targets, predicted, classes)
    numbers["per_class"] = per_class.to_dict("records")
    report.section("Per-class precision, recall and F1 (OOF)")
    report.table("per_class", per_class)
    if not multi:
        matrix = confusion(targets, predicted, len(classes))
        numbers["confusion_matrix"] = matrix.tolist()
        report.section("Confusion matrix (rows: truth, columns: prediction)")
        report.image("confusion_matrix", heatmap(matrix, classes, "confusion", "{:.0f}"))

    # Examples sorted by loss.
    image_paths = table.frame["path"].to_numpy()
    if not multi:
        wrong, right = rank_errors(targets, probabilities, config.analyze.examples)
        for name, picked in (("most confident wrong", wrong), ("least confident right", right)):
            if len(picked):
                titles = [
                    f"{classes[targets[i]]} -> {classes[predicted[i]]} {probabilities[i, predicted[i]]:.2f}"
                    for i in picked
                ]
                report.section(f"Validation images: {name} (truth -> prediction, probability)")
                report.image(name.replace(" ", "_"), image_grid(image_paths[rows[picked]].tolist(), titles))

    # Correlation between folds (test predictions) and between ensemble members (OOF).
    fold_files = sorted(paths.predictions.glob("test_fold_*.csv"))
    if len(fold_files) > 1:
        stacked = np.stack([pd.read_csv(f)[classes].to_numpy().ravel() for f in fold_files])
        matrix = np.corrcoef(stacked)
        numbers["fold_correlation"] = matrix.round(4).tolist()
        report.section("Correlation of the folds' test predictions")
        report.image("fold_correlation", heatmap(matrix, [f.stem.removeprefix("test_") for f in fold_files], "folds"))
    if (paths.root / "ensemble.json").is_file():
        blend = read_json(paths.root / "ensemble.json")
        names = [Path(n).name for n in blend["weights"]]
        report.section("Correlation of ensemble members (OOF): low values add diversity")
        report.image("member_correlation", heatmap(np.array(blend["correlation"]), names, "members"))

    # Error rate by image attribute bins.
    sample = np.arange(len(rows))[: config.analyze.max_images]
    errors = (predicted[sample] != targets[sample]) if not multi else (predicted[sample] != targets[sample]).any(axis=1)
    attributes = pd.DataFrame([image_attributes(image_paths[rows[i]]) for i in sample])
    bins = []
    for attribute in attributes.columns:
        frame = error_rate_by_bins(attributes[attribute].to_numpy(), errors.astype(float))
        frame.insert(0, "attribute", attribute)
        bins.append(frame)
    by_attribute = pd.concat(bins, ignore_index=True)
    numbers["error_rate_by_attribute"] = by_attribute.to_dict("records")
    report.section("Error rate by image attribute (quantile bins of OOF images)")
    report.table("error_rate_by_attribute", by_attribute)

    # Label-noise candidates.
    if not multi:
        suspects = label_issue_candidates(targets, probabilities, config.analyze.label_noise_threshold)
        candidates = pd.DataFrame(
            {
                "id": oof["id"].to_numpy()[suspects],
                "label": [classes[targets[i]] for i in suspects],
                "label_probability": probabilities[suspects, targets[suspects]],
                "predicted": [classes[predicted[i]] for i in suspects],
            }
        )
        numbers["label_noise_candidates"] = candidates.to_dict("records")
        report.section(
            f"Label-noise candidates: OOF probability of the given label below {config.analyze.label_noise_threshold}"
        )
        report.table("label_noise_candidates", candidates.head(50))

    # Model-based sections: accuracy under transformations, Grad-CAM / attention.
    has_checkpoints = any(paths.root.glob("fold_*/best.pt"))
    if not has_checkpoints:
        report.section("Model-based sections", "skipped: this run has no fold checkpoints (an ensemble of files?)")
    if not multi and has_checkpoints:
        device = resolve_device(config.train.device)
        models = _fold_models(task, paths, device)
        folds = read_folds(paths.folds, table)
        under = _transform_accuracy(models, table, folds, config, config.analyze.max_images)
        numbers["accuracy_under_transformations"] = under.to_dict("records")
        report.section("Accuracy on validation images under transformations")
        report.table("accuracy_under_transformations", under)
        numbers.update(_explanations(report, models, table, folds, probabilities, rows, config))

    # CV versus leaderboard.
    ledger = read_ledger(config.output_dir)
    if len(ledger):
        numbers["cv_lb_correlation"] = cv_lb_correlation(ledger)
        scored = ledger.dropna(subset=["public_lb"])
        report.section(
            "Submissions: CV versus public leaderboard",
            f"correlation {numbers['cv_lb_correlation']}"
            if numbers["cv_lb_correlation"] is not None
            else "record LB scores with the `lb` command to see the correlation",
        )
        report.table("submissions", ledger)
        if len(scored):
            report.image("cv_vs_lb", scatter_plot(scored["cv"], scored["public_lb"], "CV", "public LB"))

    out = paths.root / "reports"
    html_path = write_text(out / "analysis.html", report.html())
    write_json(out / "analysis.json", numbers)
    for name, png in report.images.items():
        (out / f"{name}.png").write_bytes(png)
    tracker = create_tracker(config, paths.root, "analysis", "analysis")
    tracker.log_report(
        {name: out / f"{name}.png" for name in report.images},
        report.tables,
        (targets, predicted, classes) if not multi else None,
    )
    tracker.summary({"oof_score": numbers["oof_score"]})
    tracker.finish()
    return html_path
