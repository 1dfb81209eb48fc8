"""W&B tracking: one run per fold grouped by experiment; offline by default, a no-op when disabled."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from ..config import Config

log = logging.getLogger(__name__)


class NullTracker:
    def log(self, values: dict[str, Any], step: int | None = None) -> None:
        pass

    def log_report(
        self, images: dict[str, Path], tables: dict[str, Any], confusion: tuple | None, prefix: str = "analysis"
    ) -> None:
        pass

    def summary(self, values: dict[str, Any]) -> None:
        pass

    def finish(self) -> None:
        pass


class WandbTracker:
    def __init__(self, run: Any) -> None:
        self.run = run

    def log(self, values: dict[str, Any], step: int | None = None) -> None:
        self.run.log(values, step=step)

    def summary(self, values: dict[str, Any]) -> None:
        self.run.summary.update(values)

    def log_report(
        self, images: dict[str, Path], tables: dict[str, Any], confusion: tuple | None, prefix: str = "analysis"
    ) -> None:
        """PNG files as W&B images, DataFrames as W&B tables, and W&B's confusion-matrix plot."""
        import wandb

        values: dict[str, Any] = {f"{prefix}/{name}": wandb.Image(str(path)) for name, path in images.items()}
        values.update({f"{prefix}/{name}_table": wandb.Table(dataframe=frame) for name, frame in tables.items()})
        if confusion is not None:
            targets, predicted, classes = confusion
            values[f"{prefix}/confusion_matrix_plot"] = wandb.plot.confusion_matrix(
                y_true=targets.tolist(), preds=predicted.tolist(), class_names=classes
            )
        self.run.log(values)

    def finish(self) -> None:
        self.run.finish()


def create_tracker(config: Config, run_dir: Path, name: str, job_type: str) -> NullTracker | WandbTracker:
    """A W&B run in `run_dir/wandb` (mode from config.wandb), or a no-op tracker."""
    # WANDB_MODE in the environment wins over the config, as W&B users expect (WANDB_MODE=disabled in CI).
    mode = os.environ.get("WANDB_MODE") or config.wandb.mode
    if mode == "disabled":
        return NullTracker()
    try:
        import wandb
    except ImportError:
        log.warning("wandb is not installed: metrics are kept in the run folder only")
        return NullTracker()
    run_dir.mkdir(parents=True, exist_ok=True)
    run = wandb.init(
        project=config.wandb.project,
        entity=config.wandb.entity,
        group=config.wandb.group or config.experiment,
        name=f"{config.experiment}-{name}",
        job_type=job_type,
        tags=config.wandb.tags,
        config=config.model_dump(mode="json"),
        mode=mode,
        dir=str(run_dir),
        reinit="finish_previous",
        settings=wandb.Settings(silent=True, console="off"),
    )
    return WandbTracker(run)
