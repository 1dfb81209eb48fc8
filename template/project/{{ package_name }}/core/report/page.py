"""Self-contained HTML reports: sections, tables and PNG figures embedded as base64 (no server, no files)."""

from __future__ import annotations

import base64
import html
import io

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ..data import read_image
from .plots import annotate_counts, apply_style, heat_overlay, legend_outside

apply_style()


def figure_png(figure: plt.Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def format_value(value: object) -> str:
    """Whole numbers (1437, 1437.0) without decimals, other numbers with 4, missing values as a dash."""
    if value is None or (isinstance(value, float | np.floating) and np.isnan(value)):
        return "-"
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else f"{value:.4f}"
    return str(value)


def readable(frame: pd.DataFrame) -> pd.DataFrame:
    """The text of every cell, as format_value writes it."""
    return pd.DataFrame({column: [format_value(v) for v in frame[column].to_numpy()] for column in frame.columns})


def image_grid(
    paths: list[str], titles: list[str], overlays: list[np.ndarray] | None = None, columns: int = 8
) -> bytes:
    """Thumbnails with their titles; `overlays` are heat maps in [0, 1], drawn translucent over each image."""
    columns = min(len(paths), columns) or 1
    rows = max(1, -(-len(paths) // columns))
    figure, axes = plt.subplots(rows, columns, figsize=(1.9 * columns, 2.1 * rows), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for index, (path, title) in enumerate(zip(paths, titles, strict=True)):
        axis = axes.flat[index]
        image = read_image(path)
        if overlays is not None:
            heat_overlay(axis, image, overlays[index])
        else:
            axis.imshow(image)
        axis.set_title(title, fontsize=7)
    return figure_png(figure)


def scatter_plot(x: np.ndarray, y: np.ndarray, x_label: str, y_label: str) -> bytes:
    figure, axis = plt.subplots(figsize=(4, 3))
    axis.scatter(x, y)
    axis.set_xlabel(x_label)
    axis.set_ylabel(y_label)
    return figure_png(figure)


def bar_chart(series: dict[str, np.ndarray], labels: list[str], title: str) -> bytes:
    figure, axis = plt.subplots(figsize=(max(4, 0.5 * len(labels) + 2), 3))
    width = 0.8 / len(series)
    for offset, (name, values) in enumerate(series.items()):
        axis.bar(np.arange(len(labels)) + offset * width, values, width, label=name)
    axis.set_xticks(np.arange(len(labels)) + 0.4 - width / 2, labels, rotation=45, fontsize=7)
    axis.set_title(title)
    legend_outside(axis)
    return figure_png(figure)


def heatmap_figure(
    matrix: np.ndarray,
    labels: list[str],
    title: str,
    fmt: str = "{:.2f}",
    vmin: float | None = None,
    vmax: float | None = None,
    axis_labels: tuple[str, str] | None = None,
) -> plt.Figure:
    """A square matrix as colours on the scale vmin..vmax (the data's range when not given), a colour bar, and the
    values written on the cells (up to 20 labels) in a colour readable on each cell; `axis_labels`: (rows, columns)."""
    figure, axis = plt.subplots(figsize=(max(3.4, 0.45 * len(labels) + 2.6), max(3, 0.45 * len(labels) + 2)))
    image = axis.imshow(matrix, cmap="viridis", vmin=vmin, vmax=vmax)
    figure.colorbar(image, ax=axis, fraction=0.046, pad=0.04)
    axis.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
    axis.set_yticks(range(len(labels)), labels, fontsize=7)
    if axis_labels:
        axis.set(ylabel=axis_labels[0], xlabel=axis_labels[1])
    if len(labels) <= 20:
        annotate_counts(axis, matrix, image, fmt)
    axis.set_title(title)
    return figure


def heatmap(
    matrix: np.ndarray,
    labels: list[str],
    title: str,
    fmt: str = "{:.2f}",
    vmin: float | None = None,
    vmax: float | None = None,
    axis_labels: tuple[str, str] | None = None,
) -> bytes:
    """heatmap_figure as a PNG."""
    return figure_png(heatmap_figure(matrix, labels, title, fmt, vmin, vmax, axis_labels))


class Report:
    """Sections of HTML with embedded PNGs; the same images and tables go to W&B."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.parts: list[str] = []
        self.images: dict[str, bytes] = {}
        self.tables: dict[str, pd.DataFrame] = {}
        self.lead: list[str] = []

    def section(self, heading: str, text: str = "") -> None:
        self.parts.append(f"<h2>{html.escape(heading)}</h2>" + (f"<p>{html.escape(text)}</p>" if text else ""))

    def image(self, name: str, png: bytes) -> None:
        self.images[name] = png
        encoded = base64.b64encode(png).decode()
        self.parts.append(f'<figure><img alt="{name}" src="data:image/png;base64,{encoded}"></figure>')

    def table(self, name: str, frame: pd.DataFrame, empty: str = "none") -> None:
        """A table (integers as integers, 4 decimals otherwise); an empty one is the word `empty`, no headers."""
        if frame.empty:
            self.parts.append(f"<p><em>{html.escape(empty)}</em></p>")
            return
        self.tables[name] = frame
        self.parts.append(f"<div class='table'>{readable(frame).to_html(index=False, border=0)}</div>")

    def summary(self, headline: str, findings: list[str], advice: list[str]) -> None:
        """What the page opens with, above every section: the headline, key findings and concrete advice."""
        self.lead = [f"<p class='headline'>{html.escape(headline)}</p>"]
        for heading, lines in (("Key findings", findings), ("Advice", advice)):
            items = "".join(f"<li>{html.escape(line)}</li>" for line in lines) or "<li>none</li>"
            self.lead.append(f"<h2>{heading}</h2><ul>{items}</ul>")

    def html(self) -> str:
        # Wide tables scroll inside the page's width (short words are never split); figures shrink to fit it.
        style = (
            "body{font-family:sans-serif;margin:2em auto;padding:0 1em;max-width:1200px}"
            ".table{max-width:100%;overflow-x:auto}table{border-collapse:collapse}"
            "td,th{padding:2px 8px;border-bottom:1px solid #ddd;font-size:13px;overflow-wrap:break-word;"
            "max-width:32em}th{position:sticky;top:0;background:#fff}figure{margin:1em 0}img{max-width:100%}"
            ".headline{font-size:20px;font-weight:bold}"
        )
        body = "\n".join([*self.lead, *self.parts])
        return (
            f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(self.title)}</title>"
            f"<style>{style}</style></head><body><h1>{html.escape(self.title)}</h1>{body}</body></html>\n"
        )


def histograms(panels: list[dict]) -> bytes:
    """Small histograms side by side. A panel: title, values ({label: array}, overlaid), x_label, and optionally
    integer (one bin per whole number) or log (log-spaced bins) for sizes spanning orders of magnitude."""
    figure, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 2.6), squeeze=False)
    for axis, panel in zip(axes.flat, panels, strict=True):
        arrays = [np.asarray(v, dtype=np.float64) for v in panel["values"].values()]
        every = np.concatenate([a[np.isfinite(a)] for a in arrays]) if arrays else np.zeros(0)
        low, high = (float(every.min()), float(every.max())) if len(every) else (0.0, 1.0)
        if panel.get("integer"):
            bins = np.arange(np.floor(low), np.floor(high) + 2) - 0.5
        elif panel.get("log") and low > 0 and high > low:
            bins = np.geomspace(low, high, 30)
            axis.set_xscale("log")
            ticks = np.geomspace(low, high, 4)  # plain numbers at both ends: ranges often span less than a decade
            axis.set_xticks(ticks, [f"{t:.3g}" for t in ticks])
            axis.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        else:
            bins = np.linspace(low, high if high > low else low + 1, 31)
        for label, values in zip(panel["values"], arrays, strict=True):
            axis.hist(values[np.isfinite(values)], bins=bins, alpha=0.6, label=f"{label} ({len(values)})")
        axis.set_title(panel["title"], fontsize=9)
        axis.set_xlabel(panel.get("x_label", ""), fontsize=8)
        axis.tick_params(labelsize=7)
        legend_outside(axis, "below")
    return figure_png(figure)


def image_rows(rows: list[list[str]], titles: list[list[str]], size: float = 1.6) -> bytes:
    """One row of thumbnails per group (near-duplicates side by side), each titled."""
    columns = max(len(row) for row in rows)
    figure, axes = plt.subplots(len(rows), columns, figsize=(size * columns, size * 1.15 * len(rows)), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for r, (paths, names) in enumerate(zip(rows, titles, strict=True)):
        for c, (path, name) in enumerate(zip(paths, names, strict=True)):
            axes[r, c].imshow(read_image(path), cmap="gray")
            axes[r, c].set_title(name, fontsize=6)
    return figure_png(figure)
