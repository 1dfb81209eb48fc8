"""One plot style for every report: legends outside the data, counts readable on any cell, class colours shared by
boxes, masks and legends, and overlays that leave the image visible."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import hsv_to_rgb, to_rgb
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from matplotlib.legend import Legend
from matplotlib.patches import Patch, Rectangle
from matplotlib.text import Text

STYLE = {
    "font.size": 8,
    "axes.titlesize": 9,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
    "legend.frameon": False,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "image.cmap": "viridis",
}
DARK_TEXT, LIGHT_TEXT = "black", "white"
# WCAG relative luminance at which black and white text have the same contrast ratio (both 4.58:1).
EVEN_CONTRAST = 0.179


def apply_style() -> None:
    """matplotlib settings of every report figure (idempotent)."""
    plt.rcParams.update(STYLE)


def luminance(colour: object) -> float:
    """WCAG relative luminance of a matplotlib colour (0 black, 1 white)."""
    rgb = np.asarray(to_rgb(colour), dtype=np.float64)
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    return float(linear @ np.array([0.2126, 0.7152, 0.0722]))


def text_colour(background: object) -> str:
    """Dark text on a light background, light text on a dark one."""
    return DARK_TEXT if luminance(background) > EVEN_CONTRAST else LIGHT_TEXT


def class_colours(count: int) -> np.ndarray:
    """(count, 3) RGB in [0, 1], the colour of class k in every figure: tab10 up to 10 classes, tab20 up to 20,
    then hues spaced by the golden angle."""
    if count <= 10:
        return np.array(plt.get_cmap("tab10").colors[:count]).reshape(-1, 3)
    if count <= 20:
        return np.array(plt.get_cmap("tab20").colors[:count])
    hues = (np.arange(count) * 0.618034) % 1.0
    return hsv_to_rgb(np.stack([hues, np.full(count, 0.75), np.full(count, 0.95)], axis=1))


def legend_outside(ax: Axes, where: str = "right", **kwargs: object) -> Legend | None:
    """The axes' legend beside them (`right`) or under them (`below`), never over the data; None without labels."""
    handles, labels = kwargs.pop("handles", None), kwargs.pop("labels", None)
    if handles is None:
        handles, labels = ax.get_legend_handles_labels()
    if not handles:
        return None
    if where == "below":
        place = {"loc": "upper center", "bbox_to_anchor": (0.5, -0.18), "ncol": min(len(handles), 4)}
    else:
        place = {"loc": "upper left", "bbox_to_anchor": (1.02, 1.0), "borderaxespad": 0.0}
    return ax.legend(handles, labels, **{**place, **kwargs})


def class_legend(
    where: Axes | Figure, names: Sequence[str], colours: np.ndarray | None = None, **kwargs: object
) -> Legend | None:
    """A legend of class colours (patches) outside the axes, or to the right of a whole figure."""
    colours = class_colours(len(names)) if colours is None else colours
    handles = [Patch(facecolor=colours[k], edgecolor="none", label=str(name)) for k, name in enumerate(names)]
    if not handles:
        return None
    if isinstance(where, Figure):
        return where.legend(handles=handles, **{"loc": "upper left", "bbox_to_anchor": (1.0, 1.0), **kwargs})
    return legend_outside(where, handles=handles, labels=[str(n) for n in names], **kwargs)


def annotate_counts(
    ax: Axes, matrix: np.ndarray, image: AxesImage | None = None, fmt: str = "{:.0f}", fontsize: float = 6
) -> list[Text]:
    """Each cell's value written on it, dark on light cells and light on dark ones (the cell's colour comes from
    `image`, the imshow of `matrix`, by default the axes' last image); NaN cells stay blank."""
    image = image if image is not None else ax.images[-1]
    texts = []
    for (row, column), value in np.ndenumerate(np.asarray(matrix, dtype=np.float64)):
        if np.isnan(value):
            continue
        colour = text_colour(image.cmap(image.norm(value)))
        texts.append(ax.text(column, row, fmt.format(value), ha="center", va="center", fontsize=fontsize, color=colour))
    return texts


def draw_boxes(
    ax: Axes,
    boxes: np.ndarray,
    labels: Sequence[int],
    names: Sequence[str],
    scores: Sequence[float] | None = None,
    colours: np.ndarray | None = None,
    linestyle: str = "-",
    linewidth: float = 1.5,
) -> list[Rectangle]:
    """xyxy boxes (pixels of the image shown on `ax`) in their class's colour, each tagged with its class name (and
    score) on a patch of that colour."""
    colours = class_colours(len(names)) if colours is None else colours
    patches = []
    for index, (box, label) in enumerate(zip(np.asarray(boxes, dtype=np.float64).reshape(-1, 4), labels, strict=True)):
        colour = colours[int(label)]
        x1, y1, x2, y2 = box
        rectangle = Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=colour, lw=linewidth, ls=linestyle)
        patches.append(ax.add_patch(rectangle))
        tag = str(names[int(label)]) + (f" {scores[index]:.2f}" if scores is not None else "")
        ax.text(
            x1,
            y1,
            tag,
            fontsize=6,
            va="bottom",
            color=text_colour(colour),
            bbox={"facecolor": colour, "edgecolor": "none", "pad": 0.5, "alpha": 0.8},
            clip_on=True,
        )
    return patches


def rgb_image(image: np.ndarray) -> np.ndarray:
    """An (H, W, 3) uint8 view of a gray, single-channel or RGB(A) image."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    return np.ascontiguousarray(image[:, :, :3]).astype(np.uint8)


def index_mask(mask: np.ndarray) -> np.ndarray:
    """(H, W) class indices, 0 background and k + 1 class k, from an index mask or (K, H, W) 0/1 channels (a later
    class wins where channels overlap)."""
    mask = np.asarray(mask)
    if mask.ndim == 2:
        return mask.astype(np.int64)
    stacked = mask.astype(bool) * np.arange(1, len(mask) + 1)[:, None, None]
    return stacked.max(axis=0, initial=0)


def blend_mask(image: np.ndarray, mask: np.ndarray, colours: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """The image with each labelled pixel mixed with its class colour (`alpha` of the colour): (H, W, 3) uint8. The
    mask is resized (nearest) to the image when their sizes differ."""
    out = rgb_image(image).astype(np.float32)
    index = index_mask(mask)
    if index.shape != out.shape[:2]:
        index = cv2.resize(index.astype(np.int32), out.shape[1::-1], interpolation=cv2.INTER_NEAREST)
    painted = index > 0
    palette = np.vstack([np.zeros((1, 3)), np.asarray(colours).reshape(-1, 3)]) * 255
    out[painted] = (1 - alpha) * out[painted] + alpha * palette[index[painted]]
    return out.round().astype(np.uint8)


def overlay_mask(
    ax: Axes,
    image: np.ndarray,
    mask: np.ndarray,
    names: Sequence[str],
    colours: np.ndarray | None = None,
    alpha: float = 0.5,
    legend: bool = False,
) -> np.ndarray:
    """The image with its mask (index or channels, see index_mask) translucent in the class colours, outlined so thin
    parts show; a legend of the classes present when `legend`. Returns the blended array shown."""
    colours = class_colours(len(names)) if colours is None else colours
    blended = blend_mask(image, mask, colours, alpha)
    ax.imshow(blended)
    index = index_mask(mask)
    if index.shape != blended.shape[:2]:
        index = cv2.resize(index.astype(np.int32), blended.shape[1::-1], interpolation=cv2.INTER_NEAREST)
    for value in np.unique(index[index > 0]):
        ax.contour(index == value, levels=[0.5], colors=[colours[value - 1]], linewidths=0.8)
    if legend:
        present = [k for k in range(len(names)) if (index == k + 1).any()]
        class_legend(ax, [names[k] for k in present], colours[present] if present else None)
    return blended


def heat_overlay(ax: Axes, image: np.ndarray, heat: np.ndarray, alpha: float = 0.6, cmap: str = "jet") -> AxesImage:
    """A heat map in [0, 1] over the image, its opacity growing with the heat (at most `alpha`): cold regions show
    the image as it is. The map is stretched over the image whatever its resolution."""
    shown = rgb_image(image)
    ax.imshow(shown)
    heat = np.clip(np.asarray(heat, dtype=np.float64), 0.0, 1.0)
    colours = plt.get_cmap(cmap)(heat)
    colours[..., 3] = alpha * heat
    height, width = shown.shape[:2]
    return ax.imshow(colours, extent=(-0.5, width - 0.5, height - 0.5, -0.5), interpolation="bilinear")
