"""Detectors by `detection.architecture`: torchvision's COCO models with a new head, or a timm backbone under
an FPN with FCOS, RetinaNet or Faster R-CNN heads."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import timm
import torch
from torch import nn
from torchvision.models import detection as tv_detection
from torchvision.ops import FeaturePyramidNetwork, MultiScaleRoIAlign
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool, LastLevelP6P7

from ...config import Config
from ...core.errors import ConfigError, ModelError
from ...core.registry import lookup
from ...core.task_config import DetectionConfig
from ...core.weights import build_model, check_backbone, offline_hint


class TimmFPN(nn.Module):
    """A timm `features_only` backbone under torchvision's FeaturePyramidNetwork, shaped for its detectors."""

    def __init__(
        self, name: str, pretrained: bool, channels: int, extra: nn.Module, indices: list[int] | None = None
    ) -> None:
        super().__init__()
        if indices is None:  # the last three feature levels (strides 8, 16, 32 for most backbones)
            indices = list(range(len(timm.create_model(name, features_only=True, pretrained=False).feature_info)))[-3:]
        try:
            self.body = timm.create_model(name, features_only=True, pretrained=pretrained, out_indices=tuple(indices))
        except (OSError, RuntimeError, ValueError) as error:
            if not pretrained:
                raise
            raise ModelError(f"{offline_hint(f'pretrained weights for {name!r}')} ({type(error).__name__})") from error
        self.fpn = FeaturePyramidNetwork(self.body.feature_info.channels(), channels, extra_blocks=extra)
        self.out_channels = channels
        self.mean, self.std = self.body.pretrained_cfg["mean"], self.body.pretrained_cfg["std"]

    def forward(self, images: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        return self.fpn(OrderedDict((str(i), feature) for i, feature in enumerate(self.body(images))))


# Pyramid levels of the timm-backbone detectors, which take their anchors from detection.anchor_sizes.
ANCHOR_LEVELS = {"fcos": 5, "retinanet": 5, "fasterrcnn": 4}
FCOS_STRIDES = [8, 16, 32, 64, 128]  # the last three timm feature levels and P6, P7
SMALLEST_ANCHOR = 8


def anchor_sizes_for(sides: np.ndarray, image_size: int, architecture: str) -> tuple[list[int], str]:
    """detection.anchor_sizes=auto from the training boxes' sides (sqrt of area, at model.image_size), with the
    reason. RetinaNet and Faster R-CNN match anchors to boxes by IoU: one size per level, geometric from the 5th
    to the 95th percentile side, never under 8 px nor over the image. FCOS gives a box to the level whose size a
    has 4a <= longer side <= 8a and samples centres within 1.5a, so its sizes are its levels' strides."""
    levels = ANCHOR_LEVELS[architecture]
    if architecture == "fcos":
        return FCOS_STRIDES[:levels], "FCOS: its levels' strides (a box of side s goes to the level with 4a <= s <= 8a)"
    if len(sides) == 0:
        low, high = 32.0, 512.0
    else:
        low, high = (float(value) for value in np.percentile(sides, [5, 95]))
    low = min(max(low, SMALLEST_ANCHOR), image_size)
    high = min(max(high, low), image_size)
    sizes = [round(low * (high / low) ** (level / max(levels - 1, 1))) for level in range(levels)]
    where = f"{len(sides)} boxes, sides {low:.0f}-{high:.0f} px (5th-95th percentile)" if len(sides) else "no boxes"
    return sizes, f"{where} at model.image_size={image_size}, one size per level from the smallest to the largest"


def box_sides(boxes: list[np.ndarray], widths: np.ndarray, heights: np.ndarray, image_size: int) -> np.ndarray:
    """Each box's side (sqrt of its area) after its image is resized to model.image_size square."""
    sides = [
        np.sqrt((b[:, 2] - b[:, 0]) * image_size / w * (b[:, 3] - b[:, 1]) * image_size / h)
        for b, w, h in zip(boxes, widths, heights, strict=True)
        if len(b)
    ]
    return np.concatenate(sides) if sides else np.zeros(0)


def _anchors(config: DetectionConfig, levels: int, ratios: bool) -> tv_detection.anchor_utils.AnchorGenerator:
    if config.anchor_sizes == "auto":
        raise ConfigError("detection.anchor_sizes=auto is filled in by `train` from the boxes; give sizes here")
    sizes = list(config.anchor_sizes)[:levels]
    if len(sizes) < levels:
        raise ConfigError(f"detection.anchor_sizes: {len(sizes)} sizes for {levels} pyramid levels")
    aspect = tuple(config.aspect_ratios) if ratios else (1.0,)
    return tv_detection.anchor_utils.AnchorGenerator(tuple((s,) for s in sizes), (aspect,) * levels)


def _common(config: Config) -> dict[str, Any]:
    size, det = config.model.image_size, config.detection
    return {
        "min_size": size,
        "max_size": size,
        "score_thresh": det.score_threshold,
        "nms_thresh": det.nms_threshold,
        "detections_per_img": det.detections_per_image,
    }


def _timm_fcos(config: Config, classes: int, pretrained: bool) -> nn.Module:
    det = config.detection
    backbone = TimmFPN(
        config.model.backbone,
        pretrained,
        det.fpn_channels,
        LastLevelP6P7(det.fpn_channels, det.fpn_channels),
        det.out_indices,
    )
    head = tv_detection.fcos.FCOSHead(backbone.out_channels, 1, classes, num_convs=det.head_convs)
    return tv_detection.FCOS(
        backbone,
        classes,
        head=head,
        anchor_generator=_anchors(det, 5, ratios=False),
        image_mean=backbone.mean,
        image_std=backbone.std,
        **_common(config),
    )


def _timm_retinanet(config: Config, classes: int, pretrained: bool) -> nn.Module:
    det = config.detection
    backbone = TimmFPN(
        config.model.backbone,
        pretrained,
        det.fpn_channels,
        LastLevelP6P7(det.fpn_channels, det.fpn_channels),
        det.out_indices,
    )
    anchors = _anchors(det, 5, ratios=True)
    head = tv_detection.retinanet.RetinaNetHead(
        backbone.out_channels, anchors.num_anchors_per_location()[0], classes, norm_layer=partial(nn.GroupNorm, 32)
    )
    return tv_detection.RetinaNet(
        backbone,
        classes,
        head=head,
        anchor_generator=anchors,
        image_mean=backbone.mean,
        image_std=backbone.std,
        **_common(config),
    )


def _timm_fasterrcnn(config: Config, classes: int, pretrained: bool) -> nn.Module:
    det = config.detection
    backbone = TimmFPN(config.model.backbone, pretrained, det.fpn_channels, LastLevelMaxPool(), det.out_indices)
    common = _common(config)
    box_head = tv_detection.faster_rcnn.TwoMLPHead(det.fpn_channels * 7 * 7, det.roi_head_channels)
    return tv_detection.FasterRCNN(
        backbone,
        None,
        rpn_anchor_generator=_anchors(det, 4, ratios=True),
        box_roi_pool=MultiScaleRoIAlign(["0", "1", "2"], 7, 2),
        box_head=box_head,
        box_predictor=tv_detection.faster_rcnn.FastRCNNPredictor(det.roi_head_channels, classes),
        image_mean=backbone.mean,
        image_std=backbone.std,
        min_size=common["min_size"],
        max_size=common["max_size"],
        box_score_thresh=det.score_threshold,
        box_nms_thresh=det.nms_threshold,
        box_detections_per_img=det.detections_per_image,
        rpn_batch_size_per_image=det.rpn_batch_size,
        box_batch_size_per_image=det.roi_batch_size,
    )


def _replace_fasterrcnn_head(model: nn.Module, classes: int) -> None:
    in_features = model.roi_heads.box_predictor.cls_score.in_features
    model.roi_heads.box_predictor = tv_detection.faster_rcnn.FastRCNNPredictor(in_features, classes)


def _replace_retinanet_head(model: nn.Module, classes: int) -> None:
    old = model.head.classification_head
    model.head.classification_head = tv_detection.retinanet.RetinaNetClassificationHead(
        model.backbone.out_channels, old.num_anchors, classes, norm_layer=partial(nn.GroupNorm, 32)
    )


def _replace_fcos_head(model: nn.Module, classes: int) -> None:
    old = model.head.classification_head
    model.head.classification_head = tv_detection.fcos.FCOSClassificationHead(
        model.backbone.out_channels, old.num_anchors, classes
    )


def _replace_ssdlite_head(model: nn.Module, classes: int) -> None:
    channels = tv_detection._utils.retrieve_out_channels(model.backbone, (320, 320))
    model.head.classification_head = tv_detection.ssdlite.SSDLiteClassificationHead(
        channels,
        model.anchor_generator.num_anchors_per_location(),
        classes,
        partial(nn.BatchNorm2d, eps=0.001, momentum=0.03),
    )


def _torchvision(builder: str, replace_head: Callable[[nn.Module, int], None], rcnn: bool, sized: bool = True):
    def create(config: Config, classes: int, pretrained: bool) -> nn.Module:
        det = config.detection
        if rcnn:
            kwargs: dict[str, Any] = {
                "box_score_thresh": det.score_threshold,
                "box_nms_thresh": det.nms_threshold,
                "box_detections_per_img": det.detections_per_image,
            }
        else:
            kwargs = {
                "score_thresh": det.score_threshold,
                "nms_thresh": det.nms_threshold,
                "detections_per_img": det.detections_per_image,
            }
        if sized:
            kwargs.update(min_size=config.model.image_size, max_size=config.model.image_size)
        factory = getattr(tv_detection, builder)
        if not pretrained:
            return factory(weights=None, weights_backbone=None, num_classes=classes, **kwargs)
        try:
            model = factory(weights="DEFAULT", **kwargs)
        except (OSError, RuntimeError, ValueError) as error:
            what = f"COCO weights for '{builder}'"
            raise ModelError(f"{offline_hint(what)} ({' '.join(str(error).split())[:200]})") from error
        replace_head(model, classes)
        return model

    return create


DETECTORS: dict[str, Callable[[Config, int, bool], nn.Module]] = {
    "fcos": _timm_fcos,
    "retinanet": _timm_retinanet,
    "fasterrcnn": _timm_fasterrcnn,
    "fasterrcnn_resnet50_fpn_v2": _torchvision("fasterrcnn_resnet50_fpn_v2", _replace_fasterrcnn_head, rcnn=True),
    "fasterrcnn_mobilenet_v3_large_fpn": _torchvision(
        "fasterrcnn_mobilenet_v3_large_fpn", _replace_fasterrcnn_head, rcnn=True
    ),
    "retinanet_resnet50_fpn_v2": _torchvision("retinanet_resnet50_fpn_v2", _replace_retinanet_head, rcnn=False),
    "fcos_resnet50_fpn": _torchvision("fcos_resnet50_fpn", _replace_fcos_head, rcnn=False),
    "ssdlite320_mobilenet_v3_large": _torchvision(
        "ssdlite320_mobilenet_v3_large", _replace_ssdlite_head, rcnn=False, sized=False
    ),
}


TIMM_DETECTORS = ("fcos", "retinanet", "fasterrcnn")  # heads on a timm FPN of model.backbone


def detector_name(config: Config) -> str:
    """'fasterrcnn on resnet18, 64-channel FPN', or the torchvision builder's name (its own backbone)."""
    name = config.detection.architecture
    if name in TIMM_DETECTORS:
        return f"{name} on {config.model.backbone}, {config.detection.fpn_channels}-channel FPN"
    return f"torchvision {name}"


def create_detector(config: Config, num_classes: int, pretrained: bool) -> nn.Module:
    """A detector for `num_classes` object classes (torchvision adds background as label 0)."""
    name = config.detection.architecture
    build = lookup(DETECTORS, name, "detection.architecture")
    if name in TIMM_DETECTORS:
        check_backbone(config.model.backbone)
    return build_model(lambda use: build(config, num_classes + 1, use), config.model, pretrained)
