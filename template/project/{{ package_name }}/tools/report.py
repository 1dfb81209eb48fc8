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

from ..core.data import read_image


def figure_png(figure: plt.Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def image_grid(paths: list[str], titles: list[str], overlays: list[np.ndarray] | None = None) -> bytes:
    columns = min(len(paths), 8) or 1
    rows = max(1, -(-len(paths) // columns))
    figure, axes = plt.subplots(rows, columns, figsize=(1.8 * columns, 2.0 * rows), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for index, (path, title) in enumerate(zip(paths, titles, strict=True)):
        axis = axes.flat[index]
        image = read_image(path)
        axis.imshow(image)
        if overlays is not None:
            axis.imshow(overlays[index], cmap="jet", alpha=0.45, extent=(0, image.shape[1], image.shape[0], 0))
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
    axis.legend(fontsize=7)
    return figure_png(figure)


def heatmap(matrix: np.ndarray, labels: list[str], title: str, fmt: str = "{:.2f}") -> bytes:
    figure, axis = plt.subplots(figsize=(max(3, 0.45 * len(labels) + 2),) * 2)
    axis.imshow(matrix, cmap="viridis")
    axis.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
    axis.set_yticks(range(len(labels)), labels, fontsize=7)
    if len(labels) <= 20:
        for (row, column), value in np.ndenumerate(matrix):
            axis.text(column, row, fmt.format(value), ha="center", va="center", fontsize=6, color="white")
    axis.set_title(title)
    return figure_png(figure)


class Report:
    """Sections of HTML with embedded PNGs; the same images and tables go to W&B."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.parts: list[str] = []
        self.images: dict[str, bytes] = {}
        self.tables: dict[str, pd.DataFrame] = {}

    def section(self, heading: str, text: str = "") -> None:
        self.parts.append(f"<h2>{html.escape(heading)}</h2>" + (f"<p>{html.escape(text)}</p>" if text else ""))

    def image(self, name: str, png: bytes) -> None:
        self.images[name] = png
        encoded = base64.b64encode(png).decode()
        self.parts.append(f'<figure><img alt="{name}" src="data:image/png;base64,{encoded}"></figure>')

    def table(self, name: str, frame: pd.DataFrame) -> None:
        self.tables[name] = frame
        self.parts.append(frame.to_html(index=False, float_format=lambda v: f"{v:.4f}", border=0))

    def html(self) -> str:
        style = (
            "body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse}"
            "td,th{padding:2px 8px;border-bottom:1px solid #ddd;font-size:13px}img{max-width:100%}"
        )
        body = "\n".join(self.parts)
        return (
            f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(self.title)}</title>"
            f"<style>{style}</style></head><body><h1>{html.escape(self.title)}</h1>{body}</body></html>\n"
        )
