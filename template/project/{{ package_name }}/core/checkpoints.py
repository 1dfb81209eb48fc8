"""What a fold writes: last.pt (everything needed to continue after an interruption, saved and resumed by one
pair of methods over one list of parts), the checkpoints' metadata, what an epoch tells the loop (EpochResult)
and the fold's metrics.json (FoldResult)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from timm.scheduler.scheduler import Scheduler
from timm.utils import ModelEmaV3
from torch.optim.swa_utils import AveragedModel

from .errors import ModelError
from .perf import original_module
from .runs import RunPaths, save_torch, trained_folds

if TYPE_CHECKING:
    from ..config import Config
    from .task import Task


@dataclass
class FoldState:
    """What a fold needs to continue after an interruption (saved as last.pt)."""

    epoch: int = 0  # epochs completed
    num_updates: int = 0
    best_score: float | None = None
    best_epoch: int = -1
    stale_epochs: int = 0
    elapsed_seconds: float = 0.0  # training time spent, counted against train.time_budget_minutes
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class TrainingParts:
    """The objects whose state last.pt holds. `save` and `resume` walk the same list, so they cannot drift apart."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Scheduler | None = None
    scaler: torch.amp.GradScaler | None = None
    ema: ModelEmaV3 | None = None
    swa: AveragedModel | None = None
    state: FoldState = field(default_factory=FoldState)

    def parts(self) -> dict[str, Any]:
        return {
            "model": original_module(self.model),
            "ema": self.ema.module if self.ema is not None else None,
            "optimizer": self.optimizer,
            "scheduler": self.scheduler,
            "scaler": self.scaler,
            "swa": self.swa,
        }

    def save(self, path: Path, meta: dict[str, Any]) -> None:
        saved = {name: part.state_dict() if part is not None else None for name, part in self.parts().items()}
        save_torch(path, {**saved, "state": self.state.__dict__, "meta": meta})

    def resume(self, path: Path, device: torch.device, backbone: str, best: Path | None = None) -> None:
        """Load every part from `path`; one line when it was saved for another model. A `best` checkpoint newer
        than `path` (train.checkpoint_gap_minutes) keeps its score and epoch, as its OOF predictions do."""
        saved = torch.load(path, map_location=device, weights_only=True)
        saved_backbone = saved.get("meta", {}).get("backbone")
        if saved_backbone != backbone:
            raise ModelError(
                f"{path}: --resume of a '{saved_backbone}' checkpoint but model.backbone is '{backbone}'; "
                "resume with the run's settings or train without --resume"
            )
        for name, part in self.parts().items():
            if part is None or not saved.get(name):
                continue
            try:
                part.load_state_dict(saved[name])
            except RuntimeError as error:
                raise ModelError(
                    f"{path}: --resume weights do not fit the model ({str(error).splitlines()[0][:160]}); "
                    "resume with the run's settings or train without --resume"
                ) from error
        self.state = FoldState(**saved["state"])
        if best is not None and best.is_file():
            kept = torch.load(best, map_location="cpu", weights_only=True)
            if kept.get("epoch", 0) > self.state.best_epoch + 1:
                self.state.best_score, self.state.best_epoch = kept["score"], kept["epoch"] - 1


def checkpoint_meta(config: Config, task: Task, mean: tuple, std: tuple) -> dict[str, Any]:
    return {
        "task": config.task,
        "backbone": config.model.backbone,
        "classes": task.classes,
        "multi_label": config.data.multi_label,
        "image_size": config.model.image_size,
        "in_chans": config.model.in_chans,
        "mean": list(mean),
        "std": list(std),
    }


@dataclass
class EpochResult:
    """What one epoch gives the loop: its history row and whether training stops after it."""

    row: dict[str, Any]
    score: float
    evaluated: bool
    improved: bool
    stopping: bool


@dataclass
class FoldResult:
    """A fold's outcome, as its metrics.json holds it."""

    fold: int
    score: float | None  # the best validation score (None: never validated)
    best_epoch: int
    epochs: int  # epochs trained
    first_step_unix: float | None = None  # when the first optimizer step finished
    swa_score: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if key != "swa_score" or value is not None}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FoldResult:
        return cls(**{item.name: data.get(item.name) for item in fields(cls)})


def fold_checkpoints(paths: RunPaths, names: list[str]) -> dict[int, list[Path]]:
    """The checkpoint files named in `names` of each fold the run's last training produced (metrics.json), never
    of stale fold folders left by an earlier training."""
    found: dict[int, list[Path]] = {}
    for fold in trained_folds(paths):
        files = [paths.checkpoint(fold, name) for name in names]
        missing = [path for path in files if not path.is_file()]
        if missing:
            raise ModelError(f"{missing[0]}: checkpoint not found (predict.checkpoints={names})")
        found[fold] = files
    if not found:
        raise ModelError(f"{paths.metrics}: lists no trained folds; run the `train` command first")
    return found


def load_checkpoint(task: Task, path: Path, device: torch.device) -> tuple[torch.nn.Module, dict]:
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
