"""What a task's EDA part reads (`EdaContext`) and the process pool it maps per-image work over."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tqdm.auto import tqdm

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from ...config import Config
    from ..data import LabelledTable


def parallel_map(function: Callable[[Any], Any], items: list[Any], workers: int, description: str) -> list[Any]:
    """`function` (module-level, small results) over `items` in a process pool, in order, with a progress bar."""
    if workers <= 1 or len(items) < 2:
        return [function(item) for item in tqdm(items, desc=description, disable=None)]
    with multiprocessing.get_context("fork").Pool(min(workers, len(items))) as pool:
        iterator = pool.imap(function, items, chunksize=max(1, min(32, len(items) // (4 * workers))))
        return list(tqdm(iterator, total=len(items), desc=description, disable=None))


@dataclass
class EdaContext:
    """What a task's `explore(context)` reads: its labels, which table rows decode (`readable`), the image
    statistics of readable train and test images, the shared stats so far (image_size_proposal: a
    (size, reason) pair or None), the folds and a process-pool map for per-image work. It returns a dict of
    stats, findings, proposals ((override or None, reason) pairs), sections (see `render`) and optionally
    augmentations ((albumentations transform, reason) pairs: the proposed pipeline's base)."""

    config: Config
    table: LabelledTable
    readable: np.ndarray
    train: pd.DataFrame
    test: pd.DataFrame
    stats: dict[str, Any]
    workers: int
    folds: np.ndarray | None = None  # each row's fold, once the `folds` command has run

    def map(self, function: Callable[[Any], Any], items: list[Any], description: str) -> list[Any]:
        return parallel_map(function, items, self.workers, description)
