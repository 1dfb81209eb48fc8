"""Boxes as the label files give them: format conversions, the checks every box passes (degenerate boxes dropped
up to a share, border crossings clipped and counted), and the box format that fits a CSV's numbers."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torchvision.ops import box_convert

from ...core.errors import DataError


def to_xyxy(boxes: np.ndarray, box_format: str) -> np.ndarray:
    """(N, 4) boxes in `box_format` as x1 y1 x2 y2 (torchvision's box_convert)."""
    tensor = torch.as_tensor(np.asarray(boxes, dtype=np.float64).reshape(-1, 4))
    return box_convert(tensor, box_format, "xyxy").numpy()


def from_xyxy(boxes: np.ndarray, box_format: str) -> np.ndarray:
    tensor = torch.as_tensor(np.asarray(boxes, dtype=np.float64).reshape(-1, 4))
    return box_convert(tensor, "xyxy", box_format).numpy()


# Real sets carry a few boxes of zero area (Ultralytics drops them with a count): up to this share of the boxes
# they are dropped with a warning naming them; past it they point at a wrong box format and stop the run.
DEGENERATE_SHARE = 0.01
# Boxes reaching more than a pixel past their image's border: past this share, another box format is looked for.
CROSSING_SHARE = 0.05
SHOWN = 3  # rows named in a message about many


@dataclass
class BoxAudit:
    """What checking a label file's boxes found, over all its images."""

    total: int = 0
    clipped: int = 0  # clipped to the image border
    crossing: int = 0  # of those, reaching more than a pixel past it
    degenerate: list[str] = field(default_factory=list)  # where each dropped box is: zero area, or wholly outside

    def named(self, source: Path) -> str:
        """The first dropped boxes, without the file name the message already starts with."""
        more = f" and {len(self.degenerate) - SHOWN} more" if len(self.degenerate) > SHOWN else ""
        return "; ".join(where.removeprefix(f"{source}: ") for where in self.degenerate[:SHOWN]) + more


def degenerate_boxes(boxes: np.ndarray, width: float, height: float) -> np.ndarray:
    """Boxes (x1 y1 x2 y2) of zero or negative area, or lying wholly outside the image once clipped."""
    clipped = np.clip(boxes, 0, np.array([width, height, width, height], dtype=np.float64))
    return (
        (boxes[:, 2] <= boxes[:, 0])
        | (boxes[:, 3] <= boxes[:, 1])
        | (clipped[:, 2] <= clipped[:, 0])
        | (clipped[:, 3] <= clipped[:, 1])
    )


def crossing_boxes(boxes: np.ndarray, width: float, height: float, margin: float = 1.0) -> np.ndarray:
    limits = np.array([width, height, width, height], dtype=np.float64)
    return (boxes < -margin).any(axis=1) | (boxes > limits + margin).any(axis=1)


def check_boxes(
    boxes: np.ndarray, width: int, height: int, where: list[str], out_of_bounds: str, audit: BoxAudit
) -> tuple[np.ndarray, np.ndarray]:
    """Boxes clipped to the image (or an error, per `out_of_bounds`) and the mask of those kept: degenerate ones
    are dropped and noted in `audit` (`_table` decides whether they are few enough). `where[i]` names box i."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if not np.isfinite(boxes).all():
        raise DataError(f"{where[int(np.argwhere(~np.isfinite(boxes))[0][0])]}: box has a missing or non-numeric value")
    limits = np.array([width, height, width, height], dtype=np.float64)
    outside = (boxes < 0).any(axis=1) | (boxes > limits).any(axis=1)
    if outside.any() and out_of_bounds == "error":
        i = int(np.flatnonzero(outside)[0])
        raise DataError(
            f"{where[i]}: box {boxes[i].round(2).tolist()} lies outside the {width}x{height} image "
            "(set data.out_of_bounds=clip to clip such boxes)"
        )
    degenerate = degenerate_boxes(boxes, width, height)
    audit.total += len(boxes)
    audit.degenerate.extend(f"{where[i]} {boxes[i].round(2).tolist()}" for i in np.flatnonzero(degenerate))
    keep = ~degenerate
    audit.clipped += int((outside & keep).sum())
    audit.crossing += int((crossing_boxes(boxes, width, height) & keep).sum())
    return np.clip(boxes[keep], 0, limits).astype(np.float32), keep


def check_audit(audit: BoxAudit, source: Path, hint: str = "") -> None:
    """Too many degenerate boxes stop the run (naming the first); a few are dropped with a warning. A `hint` (a box
    format that fits) stops it too: a wrong format must not train on clipped boxes."""
    if hint:
        raise DataError(f"{source}: the boxes do not fit their images{hint}")
    count = len(audit.degenerate)
    if count > DEGENERATE_SHARE * audit.total:
        raise DataError(
            f"{source}: {count} of {audit.total} boxes ({count / audit.total:.1%}) have zero area or lie outside "
            f"their image (over the {DEGENERATE_SHARE:.0%} dropped as strays), the first: {audit.named(source)}"
            + (hint or "; check the box format")
        )
    if count:
        print(
            f"warning: {source}: dropped {count} of {audit.total} boxes with zero area or outside their image "
            f"(up to {DEGENERATE_SHARE:.0%} are dropped): {audit.named(source)}"
        )


def format_fit(pixels: list[tuple[np.ndarray, int, int]], box_format: str) -> int:
    """Boxes that are degenerate or reach past their image's border when the numbers are read as `box_format`."""
    bad = 0
    for boxes, width, height in pixels:
        xyxy = to_xyxy(boxes, box_format)
        bad += int((degenerate_boxes(xyxy, width, height) | crossing_boxes(xyxy, width, height)).sum())
    return bad


def format_hint(pixels: list[tuple[np.ndarray, int, int]], box_format: str, audit: BoxAudit) -> str:
    """When the configured box format puts many boxes out of their images: the format that fits, as a DataError
    message tail, or "" when no format fits clearly better."""
    total = max(audit.total, 1)
    if len(audit.degenerate) <= DEGENERATE_SHARE * total and audit.crossing <= CROSSING_SHARE * total:
        return ""
    bad = {name: format_fit(pixels, name) for name in ("xywh", "xyxy", "cxcywh")}
    best = min(bad, key=bad.__getitem__)
    if best == box_format or bad[best] > bad[box_format] / 2:
        return ""
    return (
        f"; with data.box_format={box_format} {bad[box_format]} of {audit.total} boxes ({bad[box_format] / total:.0%})"
        f" are empty or cross their image's border, with data.box_format={best} {bad[best]}: set data.box_format={best}"
    )
