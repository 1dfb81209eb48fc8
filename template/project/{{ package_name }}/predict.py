"""Inference: every fold's checkpoint on the test images with TTA; per-fold and mean probabilities."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from .augment import create_transform, load_augmentations
from .config import Config
from .data import ImageDataset, read_test_table
from .distributed import resolve_device
from .errors import DataError, ModelError
from .runs import RunPaths, read_json, save_resolved_config, write_csv
from .tasks import create_task
from .train import autocast_dtype
from .tta import get_view, tta_probabilities


def fold_checkpoints(paths: RunPaths, names: list[str]) -> dict[int, list[Path]]:
    """Each fold's checkpoint files named in `names` (all must exist in every trained fold)."""
    found: dict[int, list[Path]] = {}
    for fold_dir in sorted(paths.root.glob("fold_*")):
        if not (fold_dir / "metrics.json").is_file() and not (fold_dir / "best.pt").is_file():
            continue
        files = [fold_dir / f"{name}.pt" for name in names]
        missing = [path for path in files if not path.is_file()]
        if missing:
            raise ModelError(f"{missing[0]}: checkpoint not found (predict.checkpoints={names})")
        found[int(fold_dir.name.removeprefix("fold_"))] = files
    if not found:
        raise ModelError(f"{paths.root}: no fold_*/best.pt checkpoints; run the `train` command first")
    return found


def load_checkpoint(task: Any, path: Path, device: torch.device) -> tuple[torch.nn.Module, dict]:
    """A model with the checkpoint's weights (read with weights_only=True) and its metadata."""
    saved = torch.load(path, map_location=device, weights_only=True)
    meta = saved.get("meta", {})
    if meta.get("backbone") != task.config.model.backbone:
        raise ModelError(
            f"{path}: checkpoint is a '{meta.get('backbone')}' but model.backbone is '{task.config.model.backbone}'"
        )
    model = task.create_model(pretrained=False)
    try:
        model.load_state_dict(saved["model"])
    except RuntimeError as error:
        raise ModelError(f"{path}: weights do not fit the model ({str(error).splitlines()[0]})") from error
    return model.to(device).eval(), meta


@torch.inference_mode()
def predict_loader(
    task: Any,
    model: torch.nn.Module,
    loader: DataLoader,
    views: list[str],
    device: torch.device,
    amp_dtype: torch.dtype | None,
    description: str,
) -> np.ndarray:
    def predict_batch(images: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            return task.probabilities(model(images))

    outputs = []
    for images, _ in tqdm(loader, desc=description, leave=False, disable=None):
        outputs.append(tta_probabilities(predict_batch, images.to(device), views).cpu().numpy())
    return np.concatenate(outputs)


def predict(config: Config) -> Path:
    """Write predictions/test_fold_K.csv for each fold and their mean as predictions/test.csv."""
    paths = RunPaths.from_config(config)
    if not paths.classes.is_file():
        raise DataError(f"{paths.classes}: not found; run the `train` command first")
    for view in config.predict.tta:
        try:
            get_view(view)
        except ValueError as error:
            raise DataError(f"predict.tta: {error}") from error
    save_resolved_config(config, paths, "predict")
    task = create_task(config, read_json(paths.classes))
    test = read_test_table(config.data)
    device = resolve_device(config.train.device)
    amp_dtype = autocast_dtype(config.train.amp, device)
    fold_probabilities = []
    for fold, checkpoints in fold_checkpoints(paths, config.predict.checkpoints).items():
        per_checkpoint = []
        for checkpoint in checkpoints:  # several: a snapshot (or checkpoint) ensemble within the fold
            model, meta = load_checkpoint(task, checkpoint, device)
            transform = create_transform(
                load_augmentations(config.aug.test, "aug.test"),
                image_size=config.model.image_size,
                mean=tuple(meta["mean"]),
                std=tuple(meta["std"]),
            )
            dataset = ImageDataset(test["path"].tolist(), None, transform, config.model.in_chans)
            loader = DataLoader(dataset, batch_size=config.predict.batch_size, num_workers=config.data.num_workers)
            per_checkpoint.append(
                predict_loader(
                    task, model, loader, config.predict.tta, device, amp_dtype, f"predict fold {fold} {checkpoint.stem}"
                )
            )
        probabilities = np.mean(per_checkpoint, axis=0)
        write_csv(paths.fold_test_predictions(fold), task.prediction_frame(test["id"].to_numpy(), probabilities))
        fold_probabilities.append(probabilities)
    mean = np.mean(fold_probabilities, axis=0)
    frame: pd.DataFrame = task.prediction_frame(test["id"].to_numpy(), mean)
    return write_csv(paths.test_predictions, frame)
