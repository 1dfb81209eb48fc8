"""Run-length submissions: what the sample submission must hold, the RLE of each row (per image, or per image and
class), and a last check of what a competition would reject, before anything is written."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from ...config import DataConfig
from ...core.data import id_stem
from ...core.errors import SubmissionError
from .labels import rle_decode, rle_encode


def check_sample(sample: pd.DataFrame, data: DataConfig) -> str:
    """The RLE column (data.rle_column) and, for a row per image and class, the class column must be the sample's;
    returns what the submission will hold."""
    found = ", ".join(map(str, sample.columns))
    if data.rle_column not in sample.columns:
        raise SubmissionError(
            f"sample submission lacks the RLE column '{data.rle_column}' (data.rle_column); its columns: {found}"
        )
    missing = [c for c in data.target_columns if c not in sample.columns]
    if missing:
        raise SubmissionError(
            f"sample submission lacks the class column '{missing[0]}' (data.target_columns); its columns: {found}"
        )
    per = f"per image and {data.target_columns[0]}" if data.target_columns else "per image"
    return f"run-length masks in column '{data.rle_column}', {per} ({data.rle_order}-order, from {data.rle_start})"


def class_column(sample: pd.DataFrame, data: DataConfig) -> str | None:
    return next((c for c in (data.target_columns or []) if c in sample.columns), None)


def build_submission(
    sample: pd.DataFrame,
    data: DataConfig,
    classes: list[str],
    masks_of: Callable[[str], np.ndarray | None],
    source: Path,
) -> pd.DataFrame:
    """The sample's rows with the RLE of each: the class's mask, or all classes' union for a row per image; an
    empty mask is an empty string. `masks_of(image id)` gives (K, H, W) 0/1 masks at the image's size, or None
    when `source` (the prediction file) has none."""
    by_class = class_column(sample, data)
    image_id, masks, encoded = None, np.zeros(0), []
    for row in sample.itertuples(index=False):
        row_id = id_stem(getattr(row, data.id_column))  # sample ids may carry the image extension
        if row_id != image_id:  # rows of one image come together: one image's masks in memory at a time
            image_id, found = row_id, masks_of(row_id)
            if found is None:
                raise SubmissionError(f"{source}: no prediction for sample id '{row_id}'")
            masks = found
        if by_class is None:
            encoded.append(rle_encode(masks.max(axis=0), data.rle_order, data.rle_start))
            continue
        label = str(getattr(row, by_class))
        if label not in classes:
            raise SubmissionError(f"sample submission: class '{label}' is not one of {classes}")
        encoded.append(rle_encode(masks[classes.index(label)], data.rle_order, data.rle_start))
    submission = sample.copy()
    submission[data.rle_column] = encoded
    return submission


def validate_submission(
    submission: pd.DataFrame, sample: pd.DataFrame, data: DataConfig, sizes: dict[str, tuple[int, int]]
) -> None:
    """Raise SubmissionError for anything the competition would reject: other columns or rows than the sample's,
    or an RLE that does not decode inside its image (`sizes`: image id -> (height, width))."""
    if list(submission.columns) != list(sample.columns):
        raise SubmissionError(f"columns {list(submission.columns)} differ from the sample's {list(sample.columns)}")
    keys = [data.id_column, *([column] if (column := class_column(sample, data)) else [])]
    if len(submission) != len(sample) or not submission[keys].astype(str).equals(sample[keys].astype(str)):
        raise SubmissionError(f"rows differ from the sample submission's ({len(submission)} vs {len(sample)})")
    rows = zip(submission[data.id_column], submission[data.rle_column], strict=True)
    for position, (image_id, rle) in enumerate(rows):
        try:
            rle_decode(rle, sizes[id_stem(image_id)], data.rle_order, data.rle_start)
        except ValueError as error:
            raise SubmissionError(f"submission row {position + 2} (id '{image_id}'): {error}") from None
