"""Settings fitted to the data (core/recipe.py): crops for large segmentation images, the resolution small boxes
allow, the RAM cache where it fits; each with its reason."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from ..config import load_config
from ..core import recipe
from ..core.recipe import auto_crop, cache_choice, crop_choice, fitted_image_size, image_size_choice


@pytest.mark.parametrize(("size", "crop"), [(64, None), (320, None), (384, 256), (512, 256), (640, 320), (1024, 512)])
def test_large_segmentation_images_train_on_crops_of_half_their_side(size: int, crop: int | None) -> None:
    assert auto_crop(size) == crop


SEGMENTATION = ["task=segmentation", "metric=dice", "data.layout=masks"]


def test_the_crop_choice_says_why_and_leaves_a_set_crop_alone() -> None:
    choice = crop_choice(load_config([*SEGMENTATION, "model.image_size=512"]))
    assert choice is not None and choice.settings == {"segmentation": {"train_crop": 256}}
    assert "model.image_size=512 images train on 256-px crops" in choice.reason and "4.0x the updates" in choice.reason
    small = crop_choice(load_config([*SEGMENTATION, "model.image_size=256"]))
    assert small is not None and small.settings == {"segmentation": {"train_crop": None}}
    set_by_hand = [
        "task=segmentation",
        "metric=dice",
        "data.layout=masks",
        "model.image_size=512",
        "segmentation.train_crop=128",
    ]
    assert crop_choice(load_config(set_by_hand)) is None


@pytest.mark.parametrize(
    ("small_side", "size", "fitted"),
    [
        (117.0, 320, 256),  # large animals: the floor, not a 44-px image
        (8.0, 640, 640),  # small objects: never above the configured size
        (32.0, 1024, 512),  # 32 px at 1024 keeps 16 px at 512
        (20.0, 224, 224),  # under the floor already: left alone
        (0.0, 512, 512),  # no boxes
    ],
)
def test_the_fitted_resolution_keeps_the_small_boxes_at_16_px(small_side: float, size: int, fitted: int) -> None:
    assert fitted_image_size(small_side, size) == fitted
    if small_side > 0 and fitted < size:
        assert small_side * fitted / size >= recipe.SMALL_BOX_SIDE and fitted % 32 == 0


def test_the_resolution_is_fitted_only_under_a_time_budget() -> None:
    sides = [40.0] * 19 + [200.0]
    detection = ["task=detection", "metric=map50", "data.layout=boxes_csv", "model.image_size=640"]
    assert image_size_choice(load_config(detection), sides) is None
    choice = image_size_choice(load_config([*detection, "train.time_budget_minutes=5"]), sides)
    assert choice is not None and choice.settings == {"model": {"image_size": 256}}
    assert "(from 640)" in choice.reason and "6.2x fewer pixels a step" in choice.reason


def test_the_cache_is_kept_in_ram_only_where_it_fits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ..core import parallel

    config = load_config(["model.image_size=100", "model.in_chans=3"])
    task = SimpleNamespace(resizes_first=True)  # a task whose transforms resize first: cached at model.image_size
    paths = [str(tmp_path / f"{i}.png") for i in range(1000)]  # 30 MB at 100 px x 3 channels
    monkeypatch.setattr(parallel, "available_memory", lambda: 1_000_000_000)
    choice = cache_choice(config, task, paths, processes=1)
    assert choice is not None and choice.settings == {"data": {"cache": "ram"}}
    assert choice.reason == "data.cache=ram: 1000 images at 100 px take 0.03 GiB, within 40% of the 0.9 GiB free"
    tight = cache_choice(config, task, paths, processes=20)  # every fold process keeps a copy: 600 MB
    assert tight is not None and tight.settings == {"data": {"cache": "none"}} and "x 20 processes" in tight.reason
    monkeypatch.setattr(parallel, "available_memory", lambda: None)
    unknown = cache_choice(config, task, paths, processes=1)
    assert unknown is not None and unknown.settings == {"data": {"cache": "none"}}
    for chosen in ("none", "ram", "disk"):  # a cache set by hand stays
        assert cache_choice(load_config([f"data.cache={chosen}"]), task, paths, 1) is None
