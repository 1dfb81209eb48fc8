"""Explanations: Grad-CAM family through pytorch-grad-cam (classifier or segmentation targets) on a layer chosen
per timm family (an smp model's decoder), moved earlier when its feature map is too coarse to say where; attention
rollout for ViTs."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from pytorch_grad_cam import EigenCAM, GradCAM, GradCAMPlusPlus
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

CAM_METHODS = {"gradcam": GradCAM, "gradcam++": GradCAMPlusPlus, "eigencam": EigenCAM}


def is_vit(model: torch.nn.Module) -> bool:
    return hasattr(model, "patch_embed") and hasattr(model, "blocks") and not hasattr(model, "conv_head")


def _last_conv(model: torch.nn.Module) -> torch.nn.Module:
    convs = [module for module in model.modules() if isinstance(module, torch.nn.Conv2d)]
    if not convs:
        raise ValueError(f"{type(model).__name__}: no Conv2d layer for Grad-CAM; name one with analyze.cam_layer")
    return convs[-1]


# timm families by the attribute holding their last feature stage, checked in order.
TARGET_LAYERS: list[tuple[str, Callable[[torch.nn.Module], torch.nn.Module]]] = [
    ("layer4", lambda m: m.layer4[-1]),  # ResNet, ResNeXt, SE-ResNet, RegNet-in-ResNet form
    ("stages", lambda m: m.stages[-1]),  # ConvNeXt, RegNet, CSP, NFNet, EfficientNetV2 in byobnet form
    ("conv_head", lambda m: m.conv_head),  # EfficientNet, MobileNetV3 (after the last block)
    ("features", lambda m: m.features[-1]),  # torchvision-style nets (VGG, DenseNet)
]


def default_target_layer(model: torch.nn.Module, name: str | None = None) -> torch.nn.Module:
    """The layer Grad-CAM hooks: `name` (a dotted module path) or one chosen for common timm families."""
    if name:
        return model.get_submodule(name)
    if is_vit(model):
        return model.blocks[-1].norm1
    if hasattr(model, "segmentation_head") and hasattr(model, "decoder"):
        # smp: the decoder's output, the segmentation head's input, at a quarter of the image size or finer. The
        # encoder's last stage is 1/32 (a 4x4 map of a 128-px image): upsampled, it paints the background as well.
        return model.decoder
    for attribute, pick in TARGET_LAYERS:
        if hasattr(model, attribute):
            return pick(model)
    return _last_conv(model)


def vit_reshape_transform(model: torch.nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """Tokens (B, prefix + H*W, C) to a (B, C, H, W) map, dropping class/register tokens."""
    prefix = getattr(model, "num_prefix_tokens", 1)

    def reshape(tokens: torch.Tensor) -> torch.Tensor:
        patches = tokens[:, prefix:, :]
        side = math.isqrt(patches.shape[1])
        return patches.reshape(patches.shape[0], side, side, patches.shape[2]).permute(0, 3, 1, 2)

    return reshape


# A CAM is upsampled from the target layer's map: below this many cells a side it is a near-uniform wash (a 32-px
# digit through a ResNet ends at 1x1), so the last layer with a finer map is used instead.
MIN_CAM_SIDE = 4


def _fired(model: torch.nn.Module, images: torch.Tensor) -> list[tuple[str, int]]:
    """(module name, smaller side of its output map; -1 when not a map) in the order modules finish on `images`:
    a stage finishes after its blocks, so it comes after them."""
    fired: list[tuple[str, int]] = []

    def record(name: str) -> Callable[..., None]:
        def hook(_module: torch.nn.Module, _inputs: Any, out: Any) -> None:  # returns None: the output is kept
            fired.append((name, min(out.shape[-2:]) if isinstance(out, torch.Tensor) and out.ndim == 4 else -1))

        return hook

    hooks = [module.register_forward_hook(record(name)) for name, module in model.named_modules() if name]
    try:
        with torch.no_grad():
            model(images[:1])
    finally:
        for hook in hooks:
            hook.remove()
    return fired


def cam_layer(model: torch.nn.Module, images: torch.Tensor, name: str | None = None) -> tuple[str, int]:
    """(dotted name, map side) of the layer CAM hooks: `name`, else the family's default, else (when that map is
    under MIN_CAM_SIDE cells a side) the module finishing last before it with a map at least that fine (the
    previous stage, for a ResNet)."""
    model.eval()
    names = {module: dotted for dotted, module in model.named_modules()}
    chosen = name or names[default_target_layer(model)]
    if is_vit(model):
        return chosen, math.isqrt(getattr(model.patch_embed, "num_patches", 1))
    fired = _fired(model, images)
    end = next((i for i, (dotted, _) in enumerate(fired) if dotted == chosen), len(fired))
    side = fired[end][1] if end < len(fired) else -1
    if name or side >= MIN_CAM_SIDE:
        return chosen, side
    earlier = [(dotted, s) for dotted, s in fired[:end] if not dotted.startswith(f"{chosen}.") and s >= MIN_CAM_SIDE]
    return earlier[-1] if earlier else (chosen, side)


def cam_heatmaps(
    model: torch.nn.Module,
    images: torch.Tensor,
    targets: list[Any],
    method: str = "gradcam",
    layer: str | None = None,
) -> np.ndarray:
    """(N, H, W) heat maps in [0, 1]: for the class of each image (an int) or a pytorch-grad-cam target
    (SemanticSegmentationTarget for a mask), on `layer` (a dotted module path) or the default layer."""
    if method not in CAM_METHODS:
        raise ValueError(f"unknown CAM method '{method}'; expected one of {', '.join(CAM_METHODS)}")
    model.eval()
    reshape = vit_reshape_transform(model) if is_vit(model) else None
    module = model.get_submodule(layer) if layer else default_target_layer(model)
    wrapped = [ClassifierOutputTarget(int(t)) if isinstance(t, int | np.integer) else t for t in targets]
    with CAM_METHODS[method](model=model, target_layers=[module], reshape_transform=reshape) as cam:
        maps = cam(input_tensor=images, targets=wrapped)
    return np.clip(maps, 0.0, 1.0)


def attention_rollout(model: torch.nn.Module, images: torch.Tensor, discard_ratio: float = 0.0) -> np.ndarray:
    """Attention rollout (Abnar & Zuidema 2020) over a timm ViT: (N, H, W) maps in [0, 1] at image size."""
    if not is_vit(model):
        raise ValueError(f"{type(model).__name__} is not a ViT: attention rollout needs transformer blocks")
    attentions: list[torch.Tensor] = []
    hooks, fused = [], []
    for block in model.blocks:
        fused.append(getattr(block.attn, "fused_attn", False))
        block.attn.fused_attn = False  # the fused kernel never materialises the attention matrix
        hooks.append(block.attn.attn_drop.register_forward_hook(lambda _m, _i, out: attentions.append(out.detach())))
    try:
        model.eval()
        with torch.no_grad():
            model(images)
    finally:
        for hook, block, was_fused in zip(hooks, model.blocks, fused, strict=True):
            hook.remove()
            block.attn.fused_attn = was_fused
    tokens = attentions[0].shape[-1]
    rollout = torch.eye(tokens).expand(images.shape[0], tokens, tokens)
    for attention in attentions:
        heads = attention.mean(dim=1)
        if discard_ratio:
            flat = heads.flatten(1)
            drop = flat.topk(int(flat.shape[1] * discard_ratio), largest=False).indices
            flat.scatter_(1, drop, 0)
        heads = heads + torch.eye(tokens)
        heads = heads / heads.sum(dim=-1, keepdim=True)
        rollout = heads @ rollout
    prefix = getattr(model, "num_prefix_tokens", 1)
    cls_to_patches = rollout[:, 0, prefix:]
    side = math.isqrt(cls_to_patches.shape[1])
    maps = cls_to_patches.reshape(-1, 1, side, side)
    maps = torch.nn.functional.interpolate(maps, size=images.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    low = maps.flatten(1).min(dim=1).values[:, None, None]
    high = maps.flatten(1).max(dim=1).values[:, None, None]
    return ((maps - low) / (high - low).clamp_min(1e-12)).numpy()
