"""A competition metric: how to score outputs against targets, and which direction is better."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Metric:
    score: Callable[..., float]  # (targets, outputs, ...) in the task's own types
    higher_is_better: bool

    def is_improvement(self, new: float, best: float | None) -> bool:
        if best is None or np.isnan(best):
            return True
        return new > best if self.higher_is_better else new < best
