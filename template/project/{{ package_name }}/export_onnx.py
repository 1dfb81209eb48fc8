"""`export --format onnx`: each fold's model as ONNX (pixels 0-255 in, probabilities out, normalisation inside),
traced on random pixels and checked against PyTorch with onnxruntime on test images, another batch of another size."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from .config import Config
from .core.augment import InputNormaliser, load_augmentations
from .core.checkpoints import fold_checkpoints, load_checkpoint
from .core.data import read_test_table
from .core.errors import ConfigError, ProjectError
from .core.runs import RunPaths, read_json, trained_folds, write_json
from .tasks import SPEC, Task, create_task

OPSET = 18
TRACE_BATCH = 2  # random images (pixels 0-255) the export traces; the batch axis stays dynamic
CHECK_IMAGES = 3  # test images (repeated when there are fewer) onnxruntime and PyTorch are compared on
# Largest |onnxruntime - PyTorch| class probability (fp32) accepted; a faithful export differs by about 1e-6.
PARITY_TOLERANCE = 1e-3


class Deployable(nn.Module):
    """The fold's model as a notebook calls it: float pixels 0-255 (NCHW) in, class probabilities out."""

    def __init__(self, task: Task, model: nn.Module, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.task, self.model = task, model
        self.normalise = InputNormaliser(mean, std, torch.device("cpu"))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.task.probabilities(self.model(self.normalise(images)))


@dataclass(frozen=True)
class OnnxModel:
    path: Path
    max_difference: float  # largest |onnxruntime - PyTorch| probability on the check batch
    images: int  # in the check batch


def _check_batch(config: Config, task: Task, size: int) -> torch.Tensor:
    paths = read_test_table(config.data)["path"].tolist()
    transform = task.create_transform(load_augmentations(config.aug.test, "aug.test"), train=False)
    dataset = task.create_dataset((paths * -(-size // len(paths)))[:size], None, transform)
    images, _ = next(iter(DataLoader(dataset, batch_size=size, collate_fn=task.collate_fn)))
    return images.float()


def _check_parity(path: Path, expected: np.ndarray, found: np.ndarray) -> float:
    """The largest |difference|; past PARITY_TOLERANCE the ONNX file is removed and export stops in one line."""
    difference = float(np.abs(found - expected).max())
    if not difference <= PARITY_TOLERANCE:  # NaN included
        for written in (path, path.with_name(f"{path.name}.data")):
            written.unlink(missing_ok=True)
        raise ProjectError(
            f"{path}: onnxruntime differs from PyTorch by {difference:.2e} (max |difference| of probabilities on "
            f"{len(expected)} test images, not the traced batch), past the tolerance {PARITY_TOLERANCE:g}; removed"
        )
    return difference


def export_onnx(config: Config, dest: Path, check_images: int = CHECK_IMAGES) -> list[OnnxModel]:
    """`dest/fold_K.onnx` for every trained fold (its first predict checkpoint) and `dest/onnx.json`, written once
    every fold matches PyTorch within PARITY_TOLERANCE on `check_images` test images (not the traced batch)."""
    import onnxruntime

    if not SPEC.exports_onnx:
        raise ConfigError(f"export --format onnx: covers classification and segmentation models, not {config.task}")
    paths = RunPaths.from_config(config)
    task = create_task(config, read_json(paths.classes))
    checkpoints = fold_checkpoints(paths, config.predict.checkpoints[:1])
    images = _check_batch(config, task, check_images)
    traced = torch.rand(TRACE_BATCH, *images.shape[1:], generator=torch.Generator().manual_seed(0)) * 255
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "onnx.json").unlink(missing_ok=True)  # describes the models only once all of them passed
    exported = []
    for fold in trained_folds(paths):
        model, meta = load_checkpoint(task, checkpoints[fold][0], torch.device("cpu"))
        deployable = Deployable(task, model, tuple(meta["mean"]), tuple(meta["std"])).eval()
        path = dest / f"fold_{fold}.onnx"
        batch = torch.export.Dim("batch", min=1)
        torch.onnx.export(
            deployable,
            (traced,),
            str(path),
            input_names=["images"],
            output_names=["probabilities"],
            dynamic_shapes={"images": {0: batch}},
            opset_version=OPSET,
            dynamo=True,
            verbose=False,
        )
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        with torch.inference_mode():
            expected = deployable(images).numpy()
        found = session.run(None, {"images": images.numpy()})[0]
        exported.append(OnnxModel(path, _check_parity(path, expected, found), len(images)))
    write_json(
        dest / "onnx.json",
        {
            "input": {
                "name": "images",
                "layout": "NCHW",
                "dtype": "float32",
                "range": "0-255",
                "size": config.model.image_size,
                "channels": config.model.in_chans,
            },
            "output": {"name": "probabilities", "classes": task.classes},
            "check": {"images": len(images), "tolerance": PARITY_TOLERANCE},
            "folds": {m.path.name: {"max_difference": m.max_difference} for m in exported},
        },
    )
    return exported
