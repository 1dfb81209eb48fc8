"""What every task's analysis shares: the `Analysis` a task fills, the headline and learning curves, image
attributes and their error bins, and the CV-versus-leaderboard correlation, as small pure functions."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from ...config import Config
from ..console import cv_text
from ..data import LabelledTable, read_image
from ..errors import DataError
from ..runs import RunPaths
from .page import Report, figure_png, plt
from .plots import legend_outside


@dataclass
class Analysis:
    """A run under analysis: what a task's `analyze_run` reads, and the report, numbers, findings and advice it
    fills (findings and advice open the page)."""

    config: Config
    paths: RunPaths
    task: Any
    table: LabelledTable
    report: Report
    numbers: dict[str, Any] = field(default_factory=dict)
    findings: list[str] = field(default_factory=list)
    advice: list[str] = field(default_factory=list)
    confusion: tuple | None = None  # (targets, predicted, classes) for W&B's confusion-matrix plot

    @property
    def has_checkpoints(self) -> bool:
        return any(self.paths.root.glob("fold_*/best.pt"))


def require_file(path: Path, paths: RunPaths, what: str) -> Path:
    if not path.is_file():
        raise DataError(f"run {paths.root} has no {what} ({path.name}); run train and predict first")
    return path


def table_rows(ids: np.ndarray, table: LabelledTable, source: Path) -> np.ndarray:
    """Row of each prediction id in the training table; an unknown id is one line naming the file."""
    position = {image_id: i for i, image_id in enumerate(table.ids)}
    missing = [str(i) for i in ids if str(i) not in position]
    if missing:
        raise DataError(f"{source}: id '{missing[0]}' is not in {table.source}")
    return np.array([position[str(i)] for i in ids], dtype=np.int64)


def headline(metrics: dict[str, Any]) -> str:
    """'CV map50 0.9441 ± 0.0117 over 2 folds (fold 0: 0.9324, fold 1: 0.9559)' from metrics.json."""
    folds = metrics.get("folds", {})
    per_fold = ", ".join(f"fold {k}: {float(v):.4f}" for k, v in folds.items())
    return cv_text(metrics) + (f" over {len(folds)} folds ({per_fold})" if len(folds) > 1 else "")


def read_histories(root: Path) -> dict[int, pd.DataFrame]:
    """fold_K/history.csv of every fold that has one, by fold number."""
    found = {}
    for path in sorted(root.glob("fold_*/history.csv")):
        suffix = path.parent.name.removeprefix("fold_")
        if suffix.isdigit():
            found[int(suffix)] = pd.read_csv(path)
    return found


def learning_curves(histories: dict[int, pd.DataFrame], metric: str) -> bytes:
    """Losses (train solid, validation dashed) and the validation metric per epoch, one colour per fold."""
    figure, (losses, scores) = plt.subplots(1, 2, figsize=(9, 3))
    for index, (fold, frame) in enumerate(sorted(histories.items())):
        colour = f"C{index}"
        for column, style in (("train_loss", "-"), ("valid_loss", "--")):
            if column in frame and frame[column].notna().any():
                kept = frame[["epoch", column]].dropna()
                losses.plot(kept["epoch"], kept[column], style, color=colour, marker=".", label=f"fold {fold} {column}")
        if metric in frame and frame[metric].notna().any():
            kept = frame[["epoch", metric]].dropna()
            scores.plot(kept["epoch"], kept[metric], color=colour, marker="o", label=f"fold {fold}")
    losses.set(xlabel="epoch", title="loss (train solid, validation dashed)")
    scores.set(xlabel="epoch", title=f"validation {metric}")
    legend_outside(losses, "below", fontsize=6)
    legend_outside(scores, "right", fontsize=6)
    return figure_png(figure)


def curve_findings(histories: dict[int, pd.DataFrame], metric: str, higher_is_better: bool = True) -> list[str]:
    """Advice from the curves: the metric still improving at the last epoch, or peaking well before it."""
    advice = []
    for fold, frame in sorted(histories.items()):
        values = frame[["epoch", metric]].dropna() if metric in frame else pd.DataFrame()
        if len(values) < 3:
            continue
        scores = values[metric].to_numpy() * (1 if higher_is_better else -1)
        best = int(np.argmax(scores))
        if best == len(scores) - 1 and scores[-1] > scores[-2]:
            advice.append(
                f"fold {fold}: validation {metric} still rising at the last epoch: train longer (train.epochs)"
            )
        elif best < len(scores) * 0.6:
            epoch = int(values["epoch"].iloc[best])
            advice.append(
                f"fold {fold}: validation {metric} peaked at epoch {epoch} of {len(frame)}: fewer epochs or "
                "more regularisation"
            )
    return advice[:2]


def tta_choice_notes(tta: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(findings, advice) from predict's choice of TTA views on OOF (tta.json): what each view did to the metric,
    and which views to take out of predict.tta because they lowered it."""
    candidates, scores, chosen, metric = tta["key"]["candidates"], tta["scores"], tta["chosen"], tta["metric"]
    kept, findings, advice = candidates[:1], [], []
    before = scores.get(kept[0])
    for view in candidates[1:]:
        after = scores.get("+".join([*kept, view]))
        if before is None or after is None:
            break
        change = f"OOF {metric} {before:.4f} -> {after:.4f} on {tta['images']} validation images"
        if view in chosen:
            findings.append(f"TTA view {view} kept: {change}")
            kept, before = [*kept, view], after
        else:
            advice.append(f"drop {view} from predict.tta: it lowered the {change} (predict already leaves it out)")
    return findings, advice


def image_attributes(path: str) -> dict[str, float]:
    """Cheap per-image attributes for error analysis: size, aspect, brightness, contrast, blur."""
    image = read_image(path)
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    height, width = gray.shape
    return {
        "area": float(height * width),
        "aspect": float(width / height),
        "brightness": float(gray.mean()),
        "contrast": float(gray.std()),
        "sharpness": float(cv2.Laplacian(gray, cv2.CV_64F).var()),  # low values: blurred
    }


def error_rate_by_bins(values: np.ndarray, errors: np.ndarray, bins: int = 4) -> pd.DataFrame:
    """Error rate per quantile bin of an attribute (bins collapse when values repeat)."""
    edges = np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)))
    if len(edges) < 2:  # one value: one bin from it to itself
        edges = np.array([values.min(), values.max()])
    index = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, len(edges) - 2)
    rows = []
    for b in range(len(edges) - 1):
        members = index == b
        if members.any():
            rows.append(
                {
                    "low": edges[b],
                    "high": edges[b + 1],
                    "count": int(members.sum()),
                    "error_rate": float(errors[members].mean()),
                }
            )
    return pd.DataFrame(rows)


def errors_by_attributes(attributes: pd.DataFrame, errors: np.ndarray) -> pd.DataFrame:
    """error_rate_by_bins for each attribute column, stacked with an `attribute` column first."""
    frames = []
    for attribute in attributes.columns:
        frame = error_rate_by_bins(attributes[attribute].to_numpy(np.float64), errors.astype(float))
        frame.insert(0, "attribute", attribute)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def worst_attribute(by_attribute: pd.DataFrame, overall: float, factor: float = 1.5) -> str | None:
    """A finding when one attribute bin's error rate is `factor` times the overall rate (and has 5+ images)."""
    if by_attribute.empty:
        return None
    candidates = by_attribute[(by_attribute["count"] >= 5) & (by_attribute["error_rate"] > factor * max(overall, 1e-9))]
    if candidates.empty:
        return None
    row = candidates.sort_values("error_rate", ascending=False).iloc[0]
    return (
        f"images with {row['attribute']} in [{row['low']:.4g}, {row['high']:.4g}] err {row['error_rate']:.0%} of the "
        f"time against {overall:.0%} overall"
    )


def cv_lb_correlation(ledger: pd.DataFrame) -> float | None:
    """Pearson correlation of CV and public LB over submissions that have both (None below 3 points)."""
    scored = ledger.dropna(subset=["cv", "public_lb"])
    if len(scored) < 3 or scored["cv"].nunique() < 2 or scored["public_lb"].nunique() < 2:
        return None
    return float(np.corrcoef(scored["cv"], scored["public_lb"])[0, 1])
