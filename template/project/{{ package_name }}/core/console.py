"""What training prints: a run header of three lines before the first fold, and one line an epoch; numbers are
written so that small ones stay readable (0.4 img/s, not 0 img/s)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from ..config import Config
from .distributed import Runtime


def rate_text(value: float) -> str:
    """A rate with one decimal under 10, whole numbers above."""
    return f"{value:.1f}" if value < 10 else f"{value:.0f}"


def seconds_text(seconds: float) -> str:
    """'8.2 s', '95 s', '12 min 05 s'."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s"


def cv_text(metrics: dict[str, Any]) -> str:
    """'CV dice 0.8123 ± 0.0210' over folds, 'CV dice 0.8123 (1 fold)', or a blend's 'OOF dice 0.8301 (blend)'."""
    if not metrics:
        return "no CV"
    metric = metrics.get("metric", "score")
    if metrics.get("cv_mean") is None:
        return f"OOF {metric} {metrics['oof_score']:.4f} (blend)"
    return f"CV {metric} {cv_value(metrics)}"


def cv_value(metrics: dict[str, Any]) -> str:
    """'0.8123 ± 0.0210' over folds; one fold has no spread to show: '0.8123 (1 fold)'."""
    if len(metrics.get("folds", {})) == 1:
        return f"{metrics['cv_mean']:.4f} (1 fold)"
    return f"{metrics['cv_mean']:.4f} ± {metrics['cv_std']:.4f}"


def count_parameters(create_model: Callable[[], torch.nn.Module]) -> int:
    """A model's parameter count, from a copy built on the meta device (no memory used, no weights read)."""
    try:
        with torch.device("meta"):
            model = create_model()
    except (RuntimeError, NotImplementedError, TypeError, ValueError):  # a user's model that needs real tensors
        model = create_model()
    return sum(parameter.numel() for parameter in model.parameters())


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return str(device)


def run_header(
    config: Config,
    runtime: Runtime,
    precision: str,
    model: tuple[str, int],
    images: tuple[int, int],
    folds: list[int],
) -> list[str]:
    """Three lines: where and how it trains; the model (name, parameters); the data (labelled images, and the
    fewest any fold trains on), the folds and the length of training."""
    train, device = config.train, runtime.device
    channels_last = "on" if train.channels_last and device.type == "cuda" else "off"
    processes = f", {runtime.world_size} processes" if runtime.world_size > 1 else ""
    length = (
        f"{train.epochs} epochs"
        if train.time_budget_minutes is None
        else f"a time budget of {train.time_budget_minutes:g} min a {train.time_budget_scope}"
    )
    fold_plan = f"fold(s) {folds} of {config.folds.n_splits}"
    return [
        f"device {device_name(device)}{processes}: {precision}, channels-last {channels_last}, compile {train.compile}",
        f"model {model[0]}: {model[1] / 1e6:.2f} M parameters, input {config.model.image_size} px",
        f"data {images[0]} labelled images, {images[1]} train a fold; {fold_plan}; batch {train.batch_size}; {length}",
    ]


def epoch_line(fold: int, row: dict[str, Any], metric: str, *, evaluated: bool, improved: bool, tail: str) -> str:
    """'fold 0 epoch 3: train_loss 0.41 valid_loss 0.38 accuracy 0.9012 (best so far) lr 2.4e-04 31 s 42 img/s …'"""
    parts = [f"fold {fold} epoch {row['epoch']}: train_loss {row['train_loss']:.4f}"]
    if not math.isnan(row["valid_loss"]):
        parts.append(f"valid_loss {row['valid_loss']:.4f}")
    if evaluated:
        parts.append(f"{metric} {row[metric]:.4f}" + (" (best so far)" if improved else ""))
    parts.append(f"lr {row['lr']:.1e}")
    parts.append(f"{seconds_text(row['seconds'])}, {rate_text(row['images_per_s'])} img/s{tail}")
    return " ".join(parts)
