"""Classification's part of `analyze`: class shares, per-class scores, confusion, examples by loss, fold
correlation, errors by image attribute, label-noise thumbnails, accuracy under flips (TTA advice) and Grad-CAM."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from ...core.augment import InputNormaliser, create_transform, load_augmentations
from ...core.checkpoints import fold_checkpoints, load_checkpoint
from ...core.data import ImageDataset, read_image
from ...core.distributed import resolve_device
from ...core.errors import DataError
from ...core.fold_file import read_folds
from ...core.report.analysis import (
    Analysis,
    errors_by_attributes,
    image_attributes,
    require_file,
    table_rows,
    worst_attribute,
)
from ...core.report.explain import MIN_CAM_SIDE, attention_rollout, cam_heatmaps, cam_layer, is_vit
from ...core.report.page import bar_chart, heatmap, image_grid
from ...core.runs import read_json
from ...core.tta import get_view

OOF_FILE = "oof.csv"  # id + one probability column per class
TRANSFORM_VIEWS = ["identity", "hflip", "vflip", "rot90", "rot180", "rot270"]
TTA_DROP = 0.02  # a view whose accuracy is this far below identity's is advised out of predict.tta


def per_class_report(targets: np.ndarray, predicted: np.ndarray, classes: list[str]) -> pd.DataFrame:
    """Precision, recall, F1 and support per class (single-label)."""
    labels = np.arange(len(classes))
    precision, recall, f1, support = precision_recall_fscore_support(targets, predicted, labels=labels, zero_division=0)
    return pd.DataFrame({"class": classes, "precision": precision, "recall": recall, "f1": f1, "support": support})


def confusion(targets: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """Rows are true classes, columns predicted classes."""
    return confusion_matrix(targets, predicted, labels=np.arange(num_classes))


def correlation_map(matrix: np.ndarray, labels: list[str]) -> bytes:
    """Pearson correlations on a fixed scale from min(0, lowest) to 1, so that 0.99 against 1.00 looks alike (as it
    is) instead of stretching over the whole colour range; the title gives the values' own range."""
    low = float(np.nanmin(matrix)) if matrix.size else 0.0
    title = f"Pearson r (values {low:.3f} to {float(np.nanmax(matrix)):.3f}; scale {min(0.0, low):.2f} to 1)"
    return heatmap(matrix, labels, title, "{:.3f}", vmin=min(0.0, low), vmax=1.0)


def rank_errors(targets: np.ndarray, probabilities: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """(most confident wrong, least confident right): row indices, at most `count` each."""
    predicted = probabilities.argmax(axis=1)
    wrong = np.flatnonzero(predicted != targets)
    right = np.flatnonzero(predicted == targets)
    confident_wrong = wrong[np.argsort(-probabilities[wrong, predicted[wrong]], kind="stable")][:count]
    unsure_right = right[np.argsort(probabilities[right, targets[right]], kind="stable")][:count]
    return confident_wrong, unsure_right


def distribution_shift(first: np.ndarray, second: np.ndarray) -> float:
    """Total variation distance between two class-count vectors (0: same shares, 1: disjoint)."""
    p, q = first / max(first.sum(), 1), second / max(second.sum(), 1)
    return float(0.5 * np.abs(p - q).sum())


def label_issue_candidates(targets: np.ndarray, probabilities: np.ndarray, threshold: float = 0.1) -> np.ndarray:
    """Rows whose OOF probability of their own label is below `threshold` while another class wins,
    most suspicious first (self-confidence ranking, as cleanlab's simplest rule)."""
    own = probabilities[np.arange(len(targets)), targets]
    suspicious = np.flatnonzero((own < threshold) & (probabilities.argmax(axis=1) != targets))
    return suspicious[np.argsort(own[suspicious], kind="stable")]


def tta_advice(accuracy: dict[str, float], tta: list[str], drop: float = TTA_DROP) -> list[str]:
    """'drop hflip from TTA (predict.tta=[identity])' for each TTA view whose accuracy falls `drop` below
    identity's; views outside the TTA that fall are named too, as ones not to add."""
    base = accuracy.get("identity", 0.0)
    falling = [view for view in TRANSFORM_VIEWS[1:] if view in accuracy and accuracy[view] < base - drop]
    in_tta = [view for view in falling if view in tta]
    advice = []
    if in_tta:
        kept = [view for view in tta if view not in in_tta] or ["identity"]
        views = ", ".join(f"{v} ({accuracy[v]:.2f})" for v in in_tta)
        advice.append(
            f"drop {' and '.join(in_tta)} from TTA (predict.tta=[{','.join(kept)}]): accuracy {views} "
            f"against {base:.2f} unflipped"
        )
    others = [view for view in falling if view not in tta]
    if others:
        advice.append(f"do not add {', '.join(others)} to TTA or training flips: the models are not invariant to them")
    return advice


def _read_oof(analysis: Analysis) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    path = require_file(analysis.paths.oof, analysis.paths, "OOF predictions")
    oof = pd.read_csv(path, dtype={"id": str})
    missing = [c for c in ["id", *analysis.task.classes] if c not in oof.columns]
    if missing:
        raise DataError(f"{path}: not a classification prediction file: no column '{missing[0]}' (id + class columns)")
    return oof, table_rows(oof["id"].to_numpy(), analysis.table, path), oof[analysis.task.classes].to_numpy(np.float64)


@torch.inference_mode()
def _transform_accuracy(models: dict, analysis: Analysis, folds: np.ndarray) -> dict[str, float]:
    """Accuracy of each fold's model on its own validation images under each view (rotations, flips)."""
    config, table = analysis.config, analysis.table
    device = next(next(iter(models.values()))[0].parameters()).device
    correct, seen = dict.fromkeys(TRANSFORM_VIEWS, 0), 0
    for fold, (model, meta) in models.items():
        rows = np.flatnonzero(folds == fold)[: max(config.analyze.max_images // len(models), 1)]
        transform = create_transform(load_augmentations(config.aug.valid), image_size=config.model.image_size)
        normalise = InputNormaliser(tuple(meta["mean"]), tuple(meta["std"]), device)
        dataset = ImageDataset(table.frame["path"].to_numpy()[rows], table.targets[rows], transform)
        for images, targets in torch.utils.data.DataLoader(dataset, batch_size=config.predict.batch_size):
            images = normalise(images)
            for view in TRANSFORM_VIEWS:
                correct[view] += int((model(get_view(view)(images)).argmax(dim=1).cpu() == targets).sum())
            seen += len(targets)
    return {view: correct[view] / max(seen, 1) for view in TRANSFORM_VIEWS}


def _explanations(analysis: Analysis, models: dict, folds: np.ndarray, probabilities: np.ndarray, rows: np.ndarray):
    config, table, report = analysis.config, analysis.table, analysis.report
    fold, (model, meta) = next(iter(models.items()))
    in_fold = np.isin(rows, np.flatnonzero(folds == fold))
    rows, probabilities = rows[in_fold], probabilities[in_fold]
    wrong, right = rank_errors(table.targets[rows], probabilities, config.analyze.examples)
    picked = np.concatenate([wrong, right])
    if len(picked) == 0:
        return
    transform = create_transform(None, image_size=config.model.image_size)
    normalise = InputNormaliser(tuple(meta["mean"]), tuple(meta["std"]), next(model.parameters()).device)
    image_paths = table.frame["path"].to_numpy()[rows[picked]].tolist()
    images = normalise(torch.stack([transform(image=read_image(p))["image"] for p in image_paths]))
    predicted, truth = probabilities[picked].argmax(axis=1), table.targets[rows[picked]]
    titles = [
        f"{'wrong' if i < len(wrong) else 'right'}: true {table.classes[t]}\npredicted {table.classes[c]} "
        f"{probabilities[p, c]:.2f}"
        for i, (p, t, c) in enumerate(zip(picked, truth, predicted, strict=True))
    ]
    layer, side = cam_layer(model, images, config.analyze.cam_layer)
    with torch.enable_grad():
        maps = cam_heatmaps(model, images, predicted.tolist(), config.analyze.cam_method, layer)
    note = (
        f"target layer {layer}, a {side}x{side} map upsampled to {config.model.image_size} px; the heat explains the "
        "predicted class"
    )
    if side < MIN_CAM_SIDE:
        note += ": too coarse to say where the model looks; the maps are a near-uniform wash, ignore them"
        analysis.findings.append(f"Grad-CAM is not informative here: its finest usable map is {side}x{side}")
    report.section(f"{config.analyze.cam_method} (fold {fold}): wrong and right examples, predicted class", note)
    report.image("gradcam", image_grid(image_paths, titles, overlays=list(maps)))
    analysis.numbers.update({"cam_method": config.analyze.cam_method, "cam_images": len(picked), "cam_layer": layer})
    if is_vit(model):
        report.section("Attention rollout")
        report.image(
            "attention_rollout", image_grid(image_paths, titles, overlays=list(attention_rollout(model, images)))
        )
        analysis.numbers["attention_rollout"] = True


def _model_sections(analysis: Analysis, probabilities: np.ndarray, rows: np.ndarray) -> None:
    config, paths, task = analysis.config, analysis.paths, analysis.task
    device = resolve_device(config.train.device)
    models = {f: load_checkpoint(task, files[0], device) for f, files in fold_checkpoints(paths, ["best"]).items()}
    folds = read_folds(paths.folds, analysis.table)
    accuracy = _transform_accuracy(models, analysis, folds)
    analysis.numbers["accuracy_under_transformations"] = [{"view": v, "accuracy": a} for v, a in accuracy.items()]
    tta = (
        read_json(paths.tta).get("chosen", list(config.predict.tta))
        if paths.tta.is_file()
        else list(config.predict.tta)
    )
    analysis.advice.extend(tta_advice(accuracy, tta))
    analysis.report.section("Accuracy on validation images under transformations", f"TTA views in use: {tta}")
    analysis.report.table(
        "accuracy_under_transformations", pd.DataFrame(analysis.numbers["accuracy_under_transformations"])
    )
    _explanations(analysis, models, folds, probabilities, rows)


def _distributions(analysis: Analysis, targets: np.ndarray, predicted: np.ndarray, multi: bool) -> None:
    config, paths, classes = analysis.config, analysis.paths, analysis.task.classes
    true_counts = targets.sum(axis=0) if multi else np.bincount(targets, minlength=len(classes))
    oof_counts = predicted.sum(axis=0) if multi else np.bincount(predicted, minlength=len(classes))
    series = {"train truth": true_counts / true_counts.sum(), "OOF predicted": oof_counts / max(oof_counts.sum(), 1)}
    analysis.numbers["shift_oof_vs_truth"] = distribution_shift(true_counts, oof_counts)
    if paths.test_predictions.is_file():
        test = pd.read_csv(paths.test_predictions, dtype={"id": str})[classes].to_numpy()
        threshold = config.submit.threshold
        counts = (test >= threshold).sum(axis=0) if multi else np.bincount(test.argmax(axis=1), minlength=len(classes))
        series["test predicted"] = counts / max(counts.sum(), 1)
        analysis.numbers["shift_test_vs_truth"] = distribution_shift(true_counts, counts)
    warn = config.analyze.shift_warning
    warnings = [
        f"{k} = {analysis.numbers[k]:.3f} > {warn}"
        for k in ("shift_oof_vs_truth", "shift_test_vs_truth")
        if analysis.numbers.get(k, 0) > warn
    ]
    analysis.numbers["warnings"] = warnings
    analysis.findings.extend(f"class shares shift: {w}" for w in warnings)
    analysis.report.section("Class distributions", "; ".join(warnings) or "no shift above the warning level")
    analysis.report.image("class_distribution", bar_chart(series, classes, "class shares"))


def analyze_run(analysis: Analysis) -> None:
    """Every classification section of the report, in reading order."""
    config, table = analysis.config, analysis.table
    oof, rows, probabilities = _read_oof(analysis)
    targets, multi = table.targets[rows], config.data.multi_label
    analysis.numbers["oof_score"] = analysis.task.score(targets, probabilities)
    predicted = (probabilities >= config.submit.threshold).astype(int) if multi else probabilities.argmax(axis=1)
    _distributions(analysis, targets, predicted, multi)
    _per_class(analysis, targets, predicted)
    if not multi:
        _confusions(analysis, rows, targets, probabilities, predicted)
    _correlations(analysis)
    _errors_by_attribute(analysis, rows, targets, predicted)
    if not multi:
        _label_noise(analysis, oof, rows, targets, probabilities, predicted)
    if not analysis.has_checkpoints:
        analysis.report.section(
            "Model-based sections", "skipped: this run has no fold checkpoints (an ensemble of files?)"
        )
    elif not multi:
        _model_sections(analysis, probabilities, rows)


def _per_class(analysis: Analysis, targets: np.ndarray, predicted: np.ndarray) -> None:
    per_class = per_class_report(targets, predicted, analysis.task.classes)
    analysis.numbers["per_class"] = per_class.to_dict("records")
    worst = per_class.sort_values("f1").iloc[0]
    analysis.findings.append(f"weakest class: {worst['class']} (F1 {worst['f1']:.3f}, {int(worst['support'])} images)")
    analysis.report.section("Per-class precision, recall and F1 (OOF)")
    analysis.report.table("per_class", per_class)


def _confusions(
    analysis: Analysis, rows: np.ndarray, targets: np.ndarray, probabilities: np.ndarray, predicted: np.ndarray
) -> None:
    """The confusion matrix, its most frequent confusion, and the most confident wrong and least confident right
    validation images (single-label)."""
    report, classes = analysis.report, analysis.task.classes
    matrix = confusion(targets, predicted, len(classes))
    analysis.numbers["confusion_matrix"] = matrix.tolist()
    analysis.confusion = (targets, predicted, classes)
    off = matrix - np.diag(np.diag(matrix))
    if off.max() > 0:
        t, p = np.unravel_index(off.argmax(), off.shape)
        confused = f"{classes[t]} predicted as {classes[p]} ({off[t, p]} images)"
        analysis.findings.append(f"most frequent confusion: {confused}")
    report.section("Confusion matrix (rows: truth, columns: prediction)")
    report.image("confusion_matrix", heatmap(matrix, classes, "confusion", "{:.0f}", 0, None, ("true", "predicted")))
    image_paths = analysis.table.frame["path"].to_numpy()
    wrong, right = rank_errors(targets, probabilities, analysis.config.analyze.examples)
    for name, picked in (("most confident wrong", wrong), ("least confident right", right)):
        report.section(f"Validation images: {name} (true class, predicted class and its probability)")
        if not len(picked):
            report.parts.append("<p><em>none</em></p>")
            continue
        titles = [
            f"true {classes[targets[i]]}\npredicted {classes[predicted[i]]} {probabilities[i, predicted[i]]:.2f}"
            for i in picked
        ]
        report.image(name.replace(" ", "_"), image_grid(image_paths[rows[picked]].tolist(), titles))


def _correlations(analysis: Analysis) -> None:
    """How alike the folds' test predictions are, and an ensemble's members on OOF."""
    report, classes = analysis.report, analysis.task.classes
    fold_files = sorted(analysis.paths.predictions.glob("test_fold_*.csv"))
    if len(fold_files) > 1:
        matrix = np.corrcoef(np.stack([pd.read_csv(f)[classes].to_numpy().ravel() for f in fold_files]))
        analysis.numbers["fold_correlation"] = matrix.round(4).tolist()
        report.section("Correlation of the folds' test predictions")
        report.image("fold_correlation", correlation_map(matrix, [f.stem.removeprefix("test_") for f in fold_files]))
    if (analysis.paths.root / "ensemble.json").is_file():
        blend = read_json(analysis.paths.root / "ensemble.json")
        report.section("Correlation of ensemble members (OOF): low values add diversity")
        names = [Path(n).name for n in blend["weights"]]
        report.image("member_correlation", correlation_map(np.array(blend["correlation"]), names))


def _errors_by_attribute(analysis: Analysis, rows: np.ndarray, targets: np.ndarray, predicted: np.ndarray) -> None:
    image_paths = analysis.table.frame["path"].to_numpy()
    sample = np.arange(len(rows))[: analysis.config.analyze.max_images]
    errors = predicted[sample] != targets[sample]
    errors = errors.any(axis=1) if analysis.config.data.multi_label else errors
    attributes = pd.DataFrame([image_attributes(image_paths[rows[i]]) for i in sample])
    by_attribute = errors_by_attributes(attributes, errors)
    analysis.numbers["error_rate_by_attribute"] = by_attribute.to_dict("records")
    if finding := worst_attribute(by_attribute, float(errors.mean())):
        analysis.findings.append(finding)
    analysis.report.section("Error rate by image attribute (quantile bins of OOF images)")
    analysis.report.table("error_rate_by_attribute", by_attribute)


def _label_noise(
    analysis: Analysis,
    oof: pd.DataFrame,
    rows: np.ndarray,
    targets: np.ndarray,
    probabilities: np.ndarray,
    predicted: np.ndarray,
) -> None:
    """Label-noise candidates as thumbnails titled with id, label and prediction, the full list as a table."""
    classes, threshold = analysis.task.classes, analysis.config.analyze.label_noise_threshold
    suspects = label_issue_candidates(targets, probabilities, threshold)
    candidates = pd.DataFrame(
        {
            "id": oof["id"].to_numpy()[suspects],
            "label": [classes[targets[i]] for i in suspects],
            "label_probability": probabilities[suspects, targets[suspects]],
            "predicted": [classes[predicted[i]] for i in suspects],
        }
    )
    analysis.numbers["label_noise_candidates"] = candidates.to_dict("records")
    analysis.report.section(
        f"Label-noise candidates: OOF probability of the given label below {threshold}",
        f"{len(candidates)} images; relabel or drop those whose label is wrong",
    )
    if len(candidates):
        analysis.findings.append(
            f"{len(candidates)} label-noise candidates (given label's OOF probability < {threshold})"
        )
        shown = suspects[: 4 * analysis.config.analyze.examples]
        titles = [
            f"{oof['id'].iloc[i]}\nlabel {classes[targets[i]]}, predicted {classes[predicted[i]]} "
            f"{probabilities[i, predicted[i]]:.2f}"
            for i in shown
        ]
        paths = analysis.table.frame["path"].to_numpy()[rows[shown]].tolist()
        analysis.report.image("label_noise_candidates", image_grid(paths, titles))
    analysis.report.table("label_noise_candidates", candidates.head(50))
