"""Pretrained weights without internet: `weights` saves the pretrained tensors a model starts from (downloaded once
where there is network), and model.weights loads such a file, or a timm weights file, instead of downloading."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from .errors import ModelError
from .runs import save_torch

if TYPE_CHECKING:
    from ..config import ModelConfig
    from .task import Task

PACKAGE = __name__.split(".")[0]


def check_backbone(name: str) -> None:
    """One line, with the closest timm names, for a model.backbone timm does not know."""
    import difflib

    import timm

    if timm.is_model(name):
        return
    close = difflib.get_close_matches(name, timm.list_models(), n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise ModelError(f"model.backbone '{name}' is not a timm model{hint}")


def offline_hint(what: str) -> str:
    """The end of every 'cannot download' error: the command that fetches the weights and the key that uses them."""
    return (
        f"cannot get {what} (offline?): run `python -m {PACKAGE} weights DIR` where there is network and set "
        "model.weights=DIR/<file it names>, or set model.pretrained=false"
    )


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a .safetensors file or a torch file (a state dict, or one under 'model' / 'state_dict')."""
    if not path.is_file():
        raise ModelError(f"model.weights {path}: file not found")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ModelError(f"model.weights {path}: not a weights file ({type(error).__name__})") from error
    for key in ("model", "state_dict"):
        if isinstance(saved, dict) and isinstance(saved.get(key), dict):
            saved = saved[key]
    if not isinstance(saved, dict) or not all(isinstance(v, torch.Tensor) for v in saved.values()):
        raise ModelError(f"model.weights {path}: holds no state dict of tensors")
    return saved


def load_weights_file(model: nn.Module, path: Path) -> tuple[int, int]:
    """Copy the file's tensors into `model` where name and shape match (a timm file's 1000-class head does not);
    (tensors loaded, tensors in the file). Refuses a file of which most tensors do not fit."""
    weights = read_state_dict(path)
    own = model.state_dict()
    fitting = {k: v for k, v in weights.items() if k in own and own[k].shape == v.shape}
    if len(fitting) < max(1, len(weights) // 2):
        misfit = next((k for k in weights if k not in fitting), "?")
        raise ModelError(
            f"model.weights {path}: {len(fitting)} of {len(weights)} tensors fit the model (first misfit '{misfit}');"
            " was it saved for another model.backbone or architecture?"
        )
    model.load_state_dict(fitting, strict=False)
    return len(fitting), len(weights)


def build_model(create: Callable[[bool], nn.Module], config: ModelConfig, pretrained: bool | None) -> nn.Module:
    """`create(pretrained)`, or, with model.weights, `create(False)` filled from that file."""
    use_pretrained = config.pretrained if pretrained is None else pretrained
    if not use_pretrained or config.weights is None:
        return create(use_pretrained)
    model = create(False)
    load_weights_file(model, Path(config.weights))
    return model


def pretrained_tensors(task: Task) -> dict[str, torch.Tensor]:
    """The tensors a pretrained build has and a from-scratch build with the same seed has not: the downloaded
    weights, without the randomly initialised heads (those stay per-seed)."""
    torch.manual_seed(0)
    pretrained = task.create_model(pretrained=True).state_dict()
    torch.manual_seed(0)
    scratch = task.create_model(pretrained=False).state_dict()
    return {
        key: value.detach().clone()
        for key, value in pretrained.items()
        if key not in scratch or scratch[key].shape != value.shape or not torch.equal(scratch[key], value)
    }


def save_pretrained(task: Task, folder: Path) -> tuple[Path, int]:
    """`folder/<task>-<backbone or detector>.pt`: the pretrained tensors model.weights loads; (path, tensor count)."""
    model = task.config.model
    if task.config.model.weights is not None:
        raise ModelError(f"weights: model.weights is set ({model.weights}); unset it to download the originals")
    tensors = pretrained_tensors(task)
    if not tensors:
        raise ModelError(f"weights: '{model.backbone}' has no pretrained weights to save (timm has none for it)")
    path = folder / f"{task.name}-{task.weights_name().replace('/', '_')}.pt"
    save_torch(path, tensors)
    return path, len(tensors)
