"""Batch Mixup/CutMix with label smoothing, and the augmentation preview."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from ..cli import app
from ..errors import ConfigError
from ..tasks import create_task
from .conftest import CSV_LAYOUT, fast_overrides


def test_mixup_targets_are_soft_and_smoothed(make_config) -> None:
    task = create_task(make_config("train.mixup_alpha=0.4", "train.label_smoothing=0.1"), ["a", "b", "c", "d"])
    mixup = task.create_mixup()
    torch.manual_seed(0)
    batch = torch.rand(4, 3, 8, 8)
    images, targets = mixup(batch.clone(), torch.tensor([0, 1, 2, 3]))
    assert images.shape == batch.shape and not torch.equal(images, batch)  # the batch was mixed
    assert targets.shape == (4, 4)
    assert torch.allclose(targets.sum(dim=1), torch.ones(4))
    assert targets.min() >= 0.1 / 4 - 1e-6  # smoothing spread over the classes, folded into the mixed target
    loss = task.compute_loss(torch.zeros(4, 4), targets)
    assert loss.item() == pytest.approx(torch.log(torch.tensor(4.0)).item(), rel=1e-5)  # uniform logits


def test_mixup_is_off_by_default_and_refused_for_multi_label(make_config) -> None:
    assert create_task(make_config(), ["a", "b"]).create_mixup() is None
    task = create_task(make_config("data.multi_label=true", "train.cutmix_alpha=1.0"), ["a", "b"])
    with pytest.raises(ConfigError, match="need single-label targets"):
        task.create_mixup()


def test_training_with_mixup_and_cutmix(tmp_path: Path, competition: Path) -> None:
    overrides = [
        *CSV_LAYOUT,
        *fast_overrides(competition, tmp_path / "outputs"),
        "train.mixup_alpha=0.2",
        "train.cutmix_alpha=1.0",
        "train.label_smoothing=0.1",
    ]
    assert CliRunner().invoke(app, ["folds", *overrides]).exit_code == 0
    result = CliRunner().invoke(app, ["train", *overrides])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "outputs" / "baseline" / "metrics.json").is_file()


@pytest.mark.parametrize("preset", ["light", "medium", "heavy", "document", "document_augraphy", "no_flip"])
def test_augment_preview_draws_a_grid(tmp_path: Path, competition: Path, preset: str) -> None:
    overrides = [
        *CSV_LAYOUT,
        *fast_overrides(competition, tmp_path / "outputs"),
        f"aug.train=configs/aug/{preset}.yaml",
    ]
    result = CliRunner().invoke(app, ["augment-preview", *overrides, "n=4"])
    assert result.exit_code == 0, result.output
    png = tmp_path / "outputs" / "baseline" / "reports" / "augment_preview.png"
    with Image.open(png) as image:
        assert image.width > 400 and image.height > 50  # one row: 4 pairs of original and augmented


@pytest.mark.parametrize("preset", ["tv_autoaugment", "tv_randaugment", "tv_trivialaugment", "tv_medium"])
def test_torchvision_presets_give_normalised_tensors(preset: str) -> None:
    import numpy as np

    from ..augment import TorchvisionTransform, create_transform, load_augmentations

    transform = create_transform(
        load_augmentations(f"configs/aug/{preset}.yaml"), image_size=32, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)
    )
    assert isinstance(transform, TorchvisionTransform)
    out = transform(image=np.full((40, 50, 3), 255, np.uint8))["image"]
    assert out.shape == (3, 32, 32) and out.dtype == torch.float32
    assert out.max() <= 1.0 + 1e-6  # (1 - 0.5) / 0.5 for white pixels


@pytest.mark.parametrize("policy", ["IMAGENET", "CIFAR10", "SVHN"])
def test_autoaugment_policies(policy: str) -> None:
    from torchvision.transforms import v2

    from ..augment import load_augmentations

    spec = {"backend": "torchvision", "transforms": [{"name": "AutoAugment", "policy": policy}]}
    built = load_augmentations(spec).transforms[0]
    assert isinstance(built, v2.AutoAugment) and built.policy == v2.AutoAugmentPolicy[policy]


def test_unknown_torchvision_transform_is_one_line() -> None:
    from ..augment import load_augmentations

    with pytest.raises(ConfigError, match="'RandomSpin' is not a torchvision.transforms.v2 transform"):
        load_augmentations({"backend": "torchvision", "transforms": [{"name": "RandomSpin"}]})
    with pytest.raises(ConfigError, match="torchvision RandomAffine"):
        load_augmentations({"backend": "torchvision", "transforms": [{"name": "RandomAffine", "degree": 3}]})


def test_training_with_the_torchvision_backend(tmp_path: Path, competition: Path) -> None:
    overrides = [
        *CSV_LAYOUT,
        *fast_overrides(competition, tmp_path / "outputs"),
        "aug.train=configs/aug/tv_trivialaugment.yaml",
    ]
    assert CliRunner().invoke(app, ["folds", *overrides]).exit_code == 0
    result = CliRunner().invoke(app, ["train", *overrides])
    assert result.exit_code == 0, result.output


def test_augraphy_runs_offline_and_caches_in_the_given_folder(tmp_path: Path, monkeypatch) -> None:
    import numpy as np

    from ..augment import AugraphyDocument

    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    page = np.full((96, 80, 3), 235, np.uint8)
    page[20:23, 8:70] = 15
    out = AugraphyDocument(p=1.0, cache_dir=str(tmp_path / "run" / "augraphy"))(image=page)["image"]
    assert out.shape == page.shape and out.dtype == np.uint8
    assert list(work.iterdir()) == []  # no augraphy_cache/ and no fonts/ in the working directory
    assert list((tmp_path / "run" / "augraphy" / "augraphy_cache").glob("*.png"))


def test_document_augraphy_preset_redirects_its_cache_to_the_run(tmp_path: Path, competition: Path) -> None:
    from ..augment import AugraphyDocument, load_augmentations, redirect_caches

    pipeline = load_augmentations("configs/aug/document_augraphy.yaml")
    redirect_caches(pipeline, tmp_path / "run")
    documents = [t for t in pipeline.transforms if isinstance(t, AugraphyDocument)]
    assert len(documents) == 1 and documents[0].cache_dir == str(tmp_path / "run")
    overrides = [
        *CSV_LAYOUT,
        *fast_overrides(competition, tmp_path / "outputs"),
        "aug.train=configs/aug/document_augraphy.yaml",
    ]
    assert CliRunner().invoke(app, ["folds", *overrides]).exit_code == 0
    result = CliRunner().invoke(app, ["train", *overrides])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "outputs" / "baseline" / "augraphy" / "augraphy_cache").is_dir()
    assert not Path("augraphy_cache").exists() and not Path("fonts").exists()


def test_balanced_class_weights_follow_sklearn(make_config) -> None:
    import numpy as np

    task = create_task(make_config("train.class_weights=balanced"), ["a", "b", "c"])
    weights = task.balance_classes(np.array([0, 0, 0, 0, 0, 0, 1, 1, 2]), torch.device("cpu"))
    assert weights.tolist() == pytest.approx([9 / (3 * 6), 9 / (3 * 2), 9 / (3 * 1)])
    assert torch.allclose(task.loss.weight, torch.tensor(weights, dtype=torch.float32))
    multi = create_task(make_config("data.multi_label=true"), ["a", "b"])
    assert multi.balance_classes(np.array([[1, 0], [1, 0], [0, 1], [1, 1.0]]), torch.device("cpu")).tolist() == [
        pytest.approx(1 / 3),
        pytest.approx(2 / 2),
    ]


def test_training_with_balanced_class_weights(tmp_path: Path, competition: Path) -> None:
    overrides = [*CSV_LAYOUT, *fast_overrides(competition, tmp_path / "outputs"), "train.class_weights=balanced"]
    assert CliRunner().invoke(app, ["folds", *overrides]).exit_code == 0
    result = CliRunner().invoke(app, ["train", *overrides])
    assert result.exit_code == 0, result.output
