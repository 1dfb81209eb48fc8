"""The config loads, overrides keep their types, and bad keys or types get one clear message."""

from __future__ import annotations

import pytest
import torch

from ..config import known_keys, load_config, parse_override
from ..core.augment import create_transform, load_augmentations
from ..core.engine import create_optimizer, create_scheduler
from ..core.errors import ConfigError
from ..tasks import SPEC
from .conftest import PROJECT_ROOT, TASK

TASK_SECTIONS = ("detection", "segmentation")  # the tasks with a config section of their own


def test_default_config_validates() -> None:
    config = load_config()
    SPEC.check(config)
    assert config.task == SPEC.name
    assert config.folds.n_splits == 5
    assert config.model.image_size >= 16


def test_overrides_are_typed_and_nested() -> None:
    config = load_config(["train.epochs=3", "train.lr=3e-4", "predict.tta=[identity,vflip]", "train.ema=true"])
    assert config.train.epochs == 3
    assert config.train.lr == pytest.approx(3e-4)
    assert config.predict.tta == ["identity", "vflip"]
    assert config.train.ema is True
    assert parse_override("a.b.c=1") == {"a": {"b": {"c": 1}}}


def test_unknown_key_names_the_key_and_the_closest_one() -> None:
    with pytest.raises(ConfigError, match=r"config key 'train\.lrr' is not known; did you mean 'train\.lr'\?"):
        load_config(["train.lrr=0.1"])


@pytest.mark.parametrize(
    ("override", "meant"),
    [
        ("train.learning_rate=3e-4", "train.lr"),  # an alias, with its section
        ("learning_rate=3e-4", "train.lr"),  # and without
        ("lr=3e-4", "train.lr"),  # a field's name without its section
        ("model.lr=3e-4", "train.lr"),  # in the wrong section
        ("bs=16", "train.batch_size"),
        ("train.batch=16", "train.batch_size"),
        ("predict.bs=16", "predict.batch_size"),  # the alias's field in the key's own section
        ("img_size=128", "model.image_size"),
        ("train.imgsz=128", "model.image_size"),
        ("size=128", "model.image_size"),
        ("epoch=3", "train.epochs"),
        ("wd=0.01", "train.weight_decay"),
        ("weight_decay=0.01", "train.weight_decay"),
        ("train.decay_rat=0.5", "train.decay_rate"),  # else difflib on the last part
        *(  # a field of the section the key begins
            [(f"{TASK}.arch=FPN", f"{TASK}.architecture")] if TASK in TASK_SECTIONS else []
        ),
        ("trian.lr=0.1", "train"),
    ],
)
def test_unknown_keys_suggest_what_they_meant(override: str, meant: str) -> None:
    key = override.split("=")[0].split(".")
    shown = ".".join(key if key[0] != "trian" else key[:1])  # an unknown section is named alone
    with pytest.raises(ConfigError) as error:
        load_config([override])
    assert str(error.value) == f"config key '{shown}' is not known; did you mean '{meant}'?"


def test_only_this_tasks_own_section_is_in_the_config() -> None:
    sections = {key.split(".")[0] for key in known_keys()}
    assert sections & set(TASK_SECTIONS) == {TASK} & set(TASK_SECTIONS)
    if TASK in TASK_SECTIONS:  # the task's section is written last in a run's config.yaml
        assert list(load_config().model_dump())[-1] == TASK
    for other in sorted(set(TASK_SECTIONS) - {TASK}):
        with pytest.raises(ConfigError, match=rf"^config key '{other}' is not known"):
            load_config([f"{other}.architecture=FPN"])


def test_an_unknown_key_like_nothing_gets_no_suggestion() -> None:
    with pytest.raises(ConfigError) as error:
        load_config(["zzqx=1"])
    assert str(error.value) == "config key 'zzqx' is not known"


def test_wrong_type_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"config key 'train\.epochs'.*'many'"):
        load_config(["train.epochs=many"])
    with pytest.raises(ConfigError, match=r"config key 'folds\.strategy'"):
        load_config(["folds.strategy=random"])


def test_override_without_equals_is_rejected() -> None:
    with pytest.raises(ConfigError, match="expected key=value"):
        load_config(["train.epochs"])


def test_experiment_overlay_names_the_run(tmp_path) -> None:
    config = load_config(experiment="smoke")
    assert config.experiment == "smoke"
    assert config.train.max_steps_per_epoch == 2
    overlay = tmp_path / "extra.yaml"
    overlay.write_text("train:\n  epochs: 7\n")
    assert load_config(["train.batch_size=3"], config_files=[overlay]).train.epochs == 7
    with pytest.raises(ConfigError, match="not found"):
        load_config(experiment="does-not-exist")


@pytest.mark.parametrize("preset", sorted(p.name for p in (PROJECT_ROOT / "configs" / "aug").glob("*.yaml")))
def test_every_aug_preset_builds_and_runs(preset: str, tmp_path) -> None:
    import numpy as np

    from ..core.augment import redirect_caches

    augmentations = load_augmentations(f"configs/aug/{preset}")
    redirect_caches(augmentations, tmp_path)
    transform = create_transform(augmentations, image_size=32)
    out = transform(image=np.zeros((40, 50, 3), dtype=np.uint8))["image"]
    assert tuple(out.shape) == (3, 32, 32)


def test_bad_aug_file_is_one_line(tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "transform:\n  __class_fullname__: Compose\n  transforms:\n"
        "  - __class_fullname__: HorizontalFlip\n    p: 0.5\n  - __class_fullname__: RandomSpinny\n    p: 1.0\n"
    )
    with pytest.raises(
        ConfigError, match=r"aug: albumentations cannot load .*bad\.yaml: unknown transform 'RandomSpinny'"
    ):
        load_augmentations(str(bad))


@pytest.mark.parametrize("scheduler", ["cosine", "cosine_restarts", "step", "multistep", "plateau", "poly", "none"])
def test_every_scheduler_builds_and_steps(scheduler: str) -> None:
    config = load_config([f"train.scheduler={scheduler}"])
    model = torch.nn.Linear(4, 3)
    optimizer = create_optimizer(model, config.train)
    built = create_scheduler(optimizer, config.train, updates_per_epoch=4, maximize=True)
    assert (built is None) == (scheduler == "none")
    if built is not None:
        built.step_update(num_updates=2)
        built.step(1, 0.5)
    assert optimizer.param_groups[0]["lr"] > 0


def test_unknown_optimizer_is_one_line() -> None:
    config = load_config(["train.optimizer=adamzz"])
    model = torch.nn.Linear(4, 3)
    with pytest.raises(ConfigError, match="train.optimizer 'adamzz'"):
        create_optimizer(model, config.train)


@pytest.mark.parametrize("channels", [1, 3])
def test_device_normalisation_matches_albumentations(channels: int) -> None:
    import albumentations as A
    import numpy as np

    from ..core.augment import InputNormaliser

    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    image = np.random.default_rng(0).integers(0, 256, (5, 6, channels), dtype=np.uint8)
    expected = A.Normalize(mean=mean, std=std)(image=image)["image"].reshape(5, 6, channels)
    normalised = InputNormaliser(mean, std, torch.device("cpu"))(torch.from_numpy(image).permute(2, 0, 1)[None])
    np.testing.assert_allclose(normalised[0].permute(1, 2, 0).numpy(), expected, atol=1e-5)


def test_a_dotted_tune_space_override_reaches_its_dimension() -> None:
    """tune.space is keyed by dotted config keys: `tune.space.train.lr.low` is the `low` of `train.lr`."""
    config = load_config(["tune.space.train.lr.low=2e-4", "tune.space.model.drop_rate=null"])
    assert config.tune.space["train.lr"].low == pytest.approx(2e-4)
    assert config.tune.space["train.lr"].high == load_config().tune.space["train.lr"].high
    assert config.tune.space["model.drop_rate"] is None
    assert parse_override("tune.space.train.epochs={type: int, low: 2, high: 4}") == {
        "tune": {"space": {"train.epochs": {"type": "int", "low": 2, "high": 4}}}
    }


def test_a_value_that_is_not_yaml_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"override predict\.tta: the value '\[identity' is not valid YAML"):
        load_config(["predict.tta=[identity"])
