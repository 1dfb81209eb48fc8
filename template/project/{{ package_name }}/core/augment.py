"""Augmentation pipelines from config: albumentations (its own YAML/dict serialisation) or torchvision v2
(`backend: torchvision`), framed by resize and a uint8 tensor (normalised later, on the device)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # no version check over the network

import albumentations as A
import numpy as np
import torch
import yaml
from albumentations.pytorch import ToTensorV2

from .errors import ConfigError


class AugraphyDocument(A.ImageOnlyTransform):
    """Augraphy's ink, paper and post phases as one albumentations transform, for document images.

    Only augmentations that need no fonts and no downloads are used, so it runs offline and writes nothing into
    the working directory (augraphy's default pipeline fetches fonts and keeps caches there).
    """

    def __init__(self, p: float = 0.5, cache_dir: str = "outputs/augraphy") -> None:
        super().__init__(p=p)
        self.cache_dir = cache_dir
        self._pipeline: Any = None

    @classmethod
    def get_class_fullname(cls) -> str:
        return "AugraphyDocument"  # serialised without the package name, so preset files fit any project

    @staticmethod
    def _build() -> Any:
        try:
            import augraphy as ag
        except ImportError as error:
            raise ConfigError("AugraphyDocument needs augraphy: pip install -e '.[documents]'") from error
        ink = [ag.InkBleed(p=0.4), ag.LowInkRandomLines(p=0.3), ag.LowInkPeriodicLines(p=0.2)]
        paper = [ag.ColorPaper(p=0.3), ag.NoiseTexturize(p=0.4), ag.BrightnessTexturize(p=0.4)]
        post = [ag.SubtleNoise(p=0.4), ag.Jpeg(p=0.4), ag.LightingGradient(p=0.3), ag.DirtyDrum(p=0.2)]
        return ag.AugraphyPipeline(ink_phase=ink, paper_phase=paper, post_phase=post)

    def apply(self, img: np.ndarray, **params: Any) -> np.ndarray:
        if min(img.shape[:2]) <= 30:  # augraphy refuses images of 30 px or less: leave those unchanged
            return img
        if self._pipeline is None:
            self._pipeline = self._build()
        # AugraphyPipeline keeps copies of its inputs in <cwd>/augraphy_cache: point the cwd at our cache folder
        # for the call (per process, so DataLoader workers are unaffected by each other).
        cache = Path(self.cache_dir).resolve()
        cache.mkdir(parents=True, exist_ok=True)
        previous = os.getcwd()
        os.chdir(cache)
        try:
            out = self._pipeline(np.ascontiguousarray(img))
        finally:
            os.chdir(previous)
        if out.ndim == 2 and img.ndim == 3:
            out = np.repeat(out[:, :, None], img.shape[2], axis=2)
        return out.astype(img.dtype, copy=False)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("cache_dir",)


def redirect_caches(augmentations: Any, directory: Path) -> None:
    """Send every AugraphyDocument's cache into `directory` (the run folder), however deeply nested."""
    for transform in getattr(augmentations, "transforms", []):
        if isinstance(transform, AugraphyDocument):
            transform.cache_dir = str(directory)
        redirect_caches(transform, directory)


class TorchvisionAugmentations:
    """torchvision.transforms.v2 transforms from a spec: [{name: AutoAugment, policy: IMAGENET}, ...]."""

    def __init__(self, spec: list[dict[str, Any]], key: str) -> None:
        self.transforms = [self._build(item, key) for item in spec]

    @staticmethod
    def _build(item: dict[str, Any], key: str) -> Any:
        from torchvision.transforms import v2

        kwargs = dict(item)
        name = str(kwargs.pop("name", ""))
        factory = getattr(v2, name, None)
        if factory is None or not isinstance(factory, type):
            raise ConfigError(f"{key}: '{name}' is not a torchvision.transforms.v2 transform")
        if isinstance(kwargs.get("policy"), str):  # AutoAugment: IMAGENET, CIFAR10 or SVHN
            kwargs["policy"] = v2.AutoAugmentPolicy[kwargs["policy"].upper()]
        if isinstance(kwargs.get("transforms"), list):  # RandomApply, RandomChoice, Compose nest specs
            kwargs["transforms"] = [TorchvisionAugmentations._build(inner, key) for inner in kwargs["transforms"]]
        try:
            return factory(**kwargs)
        except (TypeError, ValueError, KeyError) as error:
            raise ConfigError(f"{key}: torchvision {name}: {' '.join(str(error).split())}") from error


class TorchvisionTransform:
    """A torchvision v2 pipeline behind albumentations' call signature: transform(image=HWC uint8)["image"]."""

    def __init__(self, pipeline: Any) -> None:
        self.pipeline = pipeline

    def __call__(self, *, image: np.ndarray) -> dict[str, torch.Tensor]:
        return {"image": self.pipeline(torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1))}


def load_augmentations(
    spec: str | dict[str, Any] | None, key: str = "aug"
) -> A.BaseCompose | TorchvisionAugmentations | None:
    """A serialised albumentations pipeline (a file saved by `A.save`, or an `A.to_dict` mapping), or a
    torchvision v2 pipeline: a YAML file or mapping with `backend: torchvision` and a `transforms` list."""
    if spec is None:
        return None
    try:
        if isinstance(spec, dict):
            if spec.get("backend") == "torchvision":
                return TorchvisionAugmentations(spec.get("transforms", []), key)
            return A.from_dict(spec)
        path = Path(spec)
        if not path.is_file():
            raise ConfigError(f"{key}: augmentation file {path} not found")
        if path.suffix in (".yaml", ".yml"):
            raw = yaml.safe_load(path.read_text())
            if isinstance(raw, dict) and raw.get("backend") == "torchvision":
                return TorchvisionAugmentations(raw.get("transforms", []), f"{key} ({path})")
        data_format = "json" if path.suffix == ".json" else "yaml"
        return A.load(str(path), data_format=data_format)
    except ConfigError:
        raise
    except KeyError as error:  # albumentations' registry has no transform of that name
        where = spec if isinstance(spec, str) else "inline pipeline"
        raise ConfigError(f"{key}: albumentations cannot load {where}: unknown transform {error}") from error
    except Exception as error:  # ValueError/TypeError: a known transform with arguments it does not take
        where = spec if isinstance(spec, str) else "inline pipeline"
        raise ConfigError(f"{key}: albumentations cannot load {where}: {' '.join(str(error).split())}") from error


def create_transform(
    augmentations: A.BaseCompose | TorchvisionAugmentations | None, *, image_size: int
) -> A.Compose | TorchvisionTransform:
    """Resize, then the configured augmentations, then a CHW uint8 tensor: normalisation happens on the device
    (InputNormaliser), so workers do no float work and a batch copies a quarter of the bytes."""
    if isinstance(augmentations, TorchvisionAugmentations):
        from torchvision.transforms import v2

        return TorchvisionTransform(
            v2.Compose([v2.Resize((image_size, image_size), antialias=True), *augmentations.transforms])
        )
    steps: list[Any] = [A.Resize(image_size, image_size)]
    if augmentations is not None:
        steps.append(augmentations)
    return A.Compose([*steps, ToTensorV2()])


class InputNormaliser:
    """Batches from the loader (uint8, or float on the 0-255 scale) to normalised float32 on the device:
    (x - 255 mean) / (255 std), A.Normalize's formula; an input with fewer channels than the statistics (grayscale)
    takes the first ones, as A.Normalize does."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...], device: torch.device) -> None:
        self.mean = torch.tensor(mean, dtype=torch.float32, device=device) * 255
        self.std = torch.tensor(std, dtype=torch.float32, device=device) * 255

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        images = images.to(self.mean.device, non_blocking=True).float()
        channels = images.shape[1]
        return (images - self.mean[:channels].view(1, -1, 1, 1)) / self.std[:channels].view(1, -1, 1, 1)


def cached_image_size(config: Any, task: Any) -> int | None:
    """The side the cache stores images at: model.image_size where the task's transforms resize first with
    albumentations, else None (images as decoded)."""
    specs = (config.aug.train, config.aug.valid, config.aug.test)
    albumentations_only = not any(isinstance(load_augmentations(spec), TorchvisionAugmentations) for spec in specs)
    return config.model.image_size if task.resizes_first and albumentations_only else None


def start_image_cache(config: Any, task: Any, paths: list[str]) -> None:
    """Read images through data.cache in this process: decoded once, and for tasks whose transforms resize first
    with albumentations, stored at model.image_size (A.Resize of an image of that size returns it unchanged, so
    batches are byte-identical to the uncached ones). Filled now, before loader workers fork."""
    from .data import activate_cache

    cache = activate_cache(
        config.data.cache, config.data.cache_dir, cached_image_size(config, task), config.model.in_chans
    )
    if cache is not None:
        cache.fill(paths, config.data.num_workers or os.cpu_count() or 1)
