"""What training prints: the run header, the epoch line and small rates."""

from __future__ import annotations

import math

import torch

from ..config import load_config
from ..core.console import count_parameters, cv_text, epoch_line, rate_text, run_header, seconds_text
from ..core.distributed import Runtime
from ..core.runs import validation_score
from ..tasks import create_task
from .conftest import TASK


def test_small_rates_keep_a_decimal_and_durations_read_as_time() -> None:
    assert [rate_text(v) for v in (0.44, 9.96, 10.4, 1234.5)] == ["0.4", "10.0", "10", "1234"]
    assert [seconds_text(s) for s in (0.84, 42.4, 125)] == ["0.8 s", "42 s", "2 min 05 s"]


def test_cv_shows_a_spread_only_over_folds_and_a_blend_by_its_oof_score() -> None:
    over_folds = {"metric": "dice", "cv_mean": 0.81234, "cv_std": 0.021, "folds": {"0": 0.79, "1": 0.83}}
    assert cv_text(over_folds) == "CV dice 0.8123 ± 0.0210"
    assert cv_text({**over_folds, "cv_std": 0.0, "folds": {"0": 0.81234}}) == "CV dice 0.8123 (1 fold)"
    blend = {"metric": "dice", "cv_mean": None, "cv_std": None, "oof_score": 0.83011}
    assert cv_text(blend) == "OOF dice 0.8301 (blend)" and cv_text({}) == "no CV"
    assert validation_score(blend) == 0.83011 and validation_score(over_folds) == 0.81234


def test_the_epoch_line_gives_the_lr_the_time_and_marks_a_new_best_in_words() -> None:
    row = {
        "epoch": 3,
        "train_loss": 0.41234,
        "valid_loss": math.nan,
        "score": 0.9,
        "lr": 2.4e-4,
        "seconds": 31.2,
        "images_per_s": 0.44,
    }
    line = epoch_line(0, row, "score", evaluated=True, improved=True, tail=", ETA 1m00s")
    assert line == "fold 0 epoch 3: train_loss 0.4123 score 0.9000 (best so far) lr 2.4e-04 31 s, 0.4 img/s, ETA 1m00s"
    quiet = epoch_line(1, {**row, "valid_loss": 0.5}, "score", evaluated=False, improved=False, tail="")
    assert quiet == "fold 1 epoch 3: train_loss 0.4123 valid_loss 0.5000 lr 2.4e-04 31 s, 0.4 img/s"


def test_the_run_header_is_three_lines_with_the_budget_when_there_is_one() -> None:
    config = load_config(["train.time_budget_minutes=11", "train.time_budget_scope=run", "folds.n_splits=5"])
    model = (create_task(config, ["a", "b"]).model_name(), 2_500_000)
    header = run_header(config, Runtime(torch.device("cpu")), "fp32 (x)", model, (100, 80), [0, 1])
    assert len(header) == 3
    assert header[0] == f"device cpu ({torch.get_num_threads()} threads): fp32 (x), channels-last off, compile off"
    assert header[1].startswith(f"model {model[0]}: 2.50 M parameters, input ")
    assert header[2] == (
        f"data 100 labelled images, 80 train a fold; fold(s) [0, 1] of 5; batch {config.train.batch_size}; "
        "a time budget of 11 min a run"
    )
    assert max(len(line) for line in header) <= 120


def test_parameters_are_counted_without_allocating_and_fall_back_for_models_that_need_real_tensors() -> None:
    assert count_parameters(lambda: torch.nn.Linear(10, 3)) == 33

    def needs_data() -> torch.nn.Module:
        layer = torch.nn.Linear(4, 2)
        float(layer.weight.detach().sum())  # reads a value: impossible on the meta device
        return layer

    assert count_parameters(needs_data) == 10


def test_the_next_steps_after_run_add_wandb_sync_only_for_an_offline_run(tmp_path, monkeypatch) -> None:
    from ..core.commands import PACKAGE, next_steps

    monkeypatch.delenv("WANDB_MODE", raising=False)
    offline = next_steps(load_config(["wandb.mode=offline", "experiment=b2"]), tmp_path)
    assert offline[1].startswith(f"  python -m {PACKAGE} analyze experiment=b2 ")
    assert offline[2].startswith(f"  python -m {PACKAGE} submit experiment=b2 --kaggle COMPETITION ")
    assert offline[3].startswith(f"  wandb sync {tmp_path / 'wandb'}/offline-run-* ")
    assert len(next_steps(load_config(["wandb.mode=disabled"]), tmp_path)) == 3
    monkeypatch.setenv("WANDB_MODE", "disabled")  # the environment wins over the config, as in create_tracker
    assert len(next_steps(load_config(["wandb.mode=offline"]), tmp_path)) == 3


def test_the_header_names_the_model_the_task_builds_around_the_backbone() -> None:
    names = {
        "classification": {(): "resnet18"},
        "detection": {
            ("detection.architecture=retinanet", "detection.fpn_channels=96"): "retinanet on resnet18, 96-channel FPN",
            ("detection.architecture=ssdlite320_mobilenet_v3_large",): "torchvision ssdlite320_mobilenet_v3_large",
        },
        "segmentation": {("segmentation.architecture=FPN",): "smp FPN on resnet18"},
    }[TASK]
    for settings, name in names.items():
        config = load_config(["model.backbone=resnet18", *settings])
        assert create_task(config, ["a", "b"]).model_name() == name
