"""Segmentation samples: image and mask through albumentations, Copy-Paste of objects between images."""

from __future__ import annotations

from dataclasses import dataclass

import albumentations as A
import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from ...core.data import load_image
from .labels import decode_target


def copy_paste(
    image: np.ndarray, mask: np.ndarray, donor_image: np.ndarray, donor_mask: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Simple Copy-Paste: the donor's object pixels (non-zero mask), resized to this image, overwrite the image
    and the mask at the same place; the labels follow the pixels."""
    height, width = image.shape[:2]
    if donor_image.shape[:2] != (height, width):
        donor_image = cv2.resize(donor_image, (width, height), interpolation=cv2.INTER_LINEAR)
        donor_mask = cv2.resize(donor_mask, (width, height), interpolation=cv2.INTER_NEAREST)
    donor_image = donor_image.reshape(image.shape)
    objects = donor_mask.max(axis=2) > 0 if donor_mask.ndim == 3 else donor_mask > 0
    image, mask = image.copy(), mask.copy()
    image[objects] = donor_image[objects]
    if mask.ndim == 3:  # multilabel: the pasted object replaces what lay under it in every channel
        mask[objects] = donor_mask.reshape(mask.shape)[objects]
    else:
        mask[objects] = donor_mask[objects]
    return image, mask


@dataclass(frozen=True)
class MaskSamples:
    """What a dataset needs to read samples: image channels, how masks decode, and Copy-Paste's probability (the
    dataset goes to every loader worker: it carries these, not the task and its model settings)."""

    in_chans: int
    num_classes: int
    multilabel: bool
    copy_paste_p: float = 0.0


class SegmentationDataset(Dataset):
    """(image, mask) for training and validation, (image, original width and height) for test images."""

    def __init__(
        self, paths: list[str], targets: np.ndarray | None, transform: A.Compose, samples: MaskSamples, train: bool
    ) -> None:
        self.paths, self.targets, self.transform = list(paths), targets, transform
        self.samples, self.train = samples, train

    def _sample(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        image = load_image(self.paths[index], self.samples.in_chans)
        height, width = image.shape[:2]
        mask = decode_target(self.targets[index], height, width, self.samples.num_classes, self.samples.multilabel)
        return image, mask

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self.targets is None:
            image = load_image(self.paths[index], self.samples.in_chans)
            height, width = image.shape[:2]
            return self.transform(image=image)["image"], torch.tensor([width, height], dtype=torch.float64)
        image, mask = self._sample(index)
        probability = self.samples.copy_paste_p
        rng = np.random.default_rng((torch.initial_seed() + index) % 2**32)  # per worker and epoch, repeatable
        if self.train and probability > 0 and rng.random() < probability:
            image, mask = copy_paste(image, mask, *self._sample(int(rng.integers(len(self.paths)))))
        out = self.transform(image=image, mask=mask)
        target = out["mask"]
        return out["image"], target.float() if self.samples.multilabel else target.long()
