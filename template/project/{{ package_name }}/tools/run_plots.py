"""The plots every `run` leaves in its folder (plots/*.png): learning curves, the per-class table, a confusion
matrix or PR curves, augmented training images and validation predictions beside the truth. Drawn once, after
training, from the run's files (no model is loaded); the same images go to W&B."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..config import Config
from ..core.report.analysis import learning_curves, read_histories
from ..core.report.page import figure_png, format_value, plt
from ..core.runs import RunPaths, read_json, write_bytes
from ..core.tracking import create_tracker
from ..tasks import SPEC, create_task, read_train_table
from .preview import preview_augmentations

AUGMENTED_IMAGES = 8


def table_png(frame: pd.DataFrame, title: str) -> bytes:
    """A table as a picture, numbers to 4 digits, a row of 0.3 inch each."""
    shown = frame.map(format_value)
    figure, axis = plt.subplots(figsize=(min(1.4 * len(shown.columns), 12), 0.6 + 0.3 * (len(shown) + 1)))
    axis.axis("off")
    table = axis.table(cellText=shown.to_numpy(), colLabels=list(shown.columns), loc="center", cellLoc="right")
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    axis.set_title(title, fontsize=9)
    return figure_png(figure)


def write_run_plots(config: Config) -> list[Path]:
    """Write the run's plots into <run>/plots/ and log them to W&B; returns the files in drawing order."""
    paths = RunPaths.from_config(config)
    out = paths.root / "plots"
    figures: dict[str, bytes] = {}
    tables: dict[str, pd.DataFrame] = {}
    histories = read_histories(paths.root)
    if histories:
        figures["learning_curves"] = learning_curves(histories, config.metric)
    table = read_train_table(config.data)
    classes = read_json(paths.classes) if paths.classes.is_file() else table.classes
    task = create_task(config, classes)
    if paths.oof.is_file() or (paths.root / "oof.npz").is_file():
        for name, figure in SPEC.parts.plots().run_figures(config, task, table, paths).items():
            if isinstance(figure, pd.DataFrame):
                tables[name] = figure
                figure = table_png(figure, f"{name.replace('_', ' ')} (OOF)")
            figures[name] = figure
    written = [write_bytes(out / f"{name}.png", png) for name, png in figures.items()]
    written.append(preview_augmentations(config, AUGMENTED_IMAGES, out / "augmented_images.png"))
    tracker = create_tracker(config, paths.root, "plots", "plots")
    tracker.log_report({path.stem: path for path in written}, tables, None, prefix="plots")
    tracker.finish()
    return written
