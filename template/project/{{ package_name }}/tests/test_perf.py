"""Throughput knobs on CPU: torch.compile and gradient checkpointing in a fast-dev run, checkpoint cadence, and
the per-epoch figures history.csv keeps."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from ..config import load_config
from ..core.loaders import create_loader
from ..core.perf import EpochBatches, Eta, compile_model, enable_grad_checkpointing, original_module
from ..core.runs import RunPaths
from ..train import train
from .conftest import TASK, WRITERS, task_overrides


@pytest.fixture
def overrides(tmp_path: Path) -> list[str]:
    WRITERS[TASK](tmp_path / "data")
    return [*task_overrides(tmp_path / "data", tmp_path / "outputs"), "folds.train_folds=[0]"]


def _folds(overrides: list[str]) -> None:
    from ..folds import make_folds

    make_folds(load_config(overrides))


@pytest.mark.parametrize(
    "knobs",
    [["train.compile=default", "train.compile_backend=eager"], ["model.grad_checkpointing=true"]],
    ids=["compile", "grad-checkpointing"],
)
def test_fast_dev_run_writes_plain_checkpoints_and_history(overrides: list[str], knobs: list[str], capsys) -> None:
    settings = [*overrides, *knobs]
    _folds(settings)
    train(load_config([*settings, "train.epochs=2"]))
    output = capsys.readouterr().out
    assert "warning" not in output  # both knobs reach this task's model
    paths = RunPaths.from_config(load_config(settings))
    precision = "fp32 (train.amp=auto: no autocast on cpu)"
    assert f"device cpu ({torch.get_num_threads()} threads): {precision}, channels-last off" in output
    assert json.loads(paths.run_info.read_text())["train"]["precision"] == precision
    saved = torch.load(paths.checkpoint(0, "best"), weights_only=True)["model"]
    assert not any(key.startswith(("_orig_mod.", "module.")) for key in saved)  # loadable without the wrappers
    history = pd.read_csv(paths.history(0))
    expected = {"images_per_s", "peak_mem_mb", "gpu_util", "train_seconds", "valid_seconds", "fixed_seconds"}
    assert expected <= set(history.columns)
    assert (history["images_per_s"] > 0).all() and (history["peak_mem_mb"] > 0).all()
    assert history["gpu_util"].isna().all()  # no GPU here: not measured rather than made up
    seconds = history["train_seconds"] + history["valid_seconds"] + history["checkpoint_seconds"]
    assert (history["fixed_seconds"] - (history["seconds"] - seconds)).abs().max() < 1e-6


def test_last_checkpoint_every_n_epochs_not_within_the_gap_and_at_the_end(overrides: list[str], monkeypatch) -> None:
    from ..core import checkpoints

    written: list[tuple[str, int]] = []
    original = checkpoints.save_torch

    def record(path: Path, obj: dict) -> Path:
        written.append((path.name, obj.get("state", {}).get("epoch", obj.get("epoch"))))
        return original(path, obj)

    monkeypatch.setattr(checkpoints, "save_torch", record)
    _folds(overrides)
    every_other = ["train.epochs=3", "train.checkpoint_every=2", "train.checkpoint_gap_minutes=null"]
    train(load_config([*overrides, *every_other]))
    assert [epoch for name, epoch in written if name == "last.pt"] == [2, 3]
    written.clear()
    train(load_config([*overrides, "train.epochs=3", "train.checkpoint_gap_minutes=60"]))  # epochs of a second
    assert [epoch for name, epoch in written if name == "last.pt"] == [3]


def test_a_resume_keeps_the_score_of_a_best_checkpoint_newer_than_last_pt(tmp_path: Path) -> None:
    from ..core.checkpoints import FoldState, TrainingParts
    from ..core.runs import save_torch

    model = torch.nn.Linear(2, 2)
    parts = TrainingParts(model, torch.optim.AdamW(model.parameters()), state=FoldState(epoch=5, best_score=0.5))
    parts.state.best_epoch = 4
    parts.save(tmp_path / "last.pt", {"backbone": "linear"})
    save_torch(tmp_path / "best.pt", {"model": model.state_dict(), "epoch": 6, "score": 0.7})  # after last.pt
    resumed = TrainingParts(model, torch.optim.AdamW(model.parameters()))
    resumed.resume(tmp_path / "last.pt", torch.device("cpu"), "linear", tmp_path / "best.pt")
    assert (resumed.state.epoch, resumed.state.best_score, resumed.state.best_epoch) == (5, 0.7, 5)
    save_torch(tmp_path / "best.pt", {"model": model.state_dict(), "epoch": 3, "score": 0.4})  # older: last.pt's
    resumed.resume(tmp_path / "last.pt", torch.device("cpu"), "linear", tmp_path / "best.pt")
    assert (resumed.state.best_score, resumed.state.best_epoch) == (0.5, 4)


def test_compile_falls_back_with_one_line_where_unsupported(capsys) -> None:
    model = torch.nn.Linear(2, 2)
    assert compile_model(model, "off", "inductor") is model
    fallback = compile_model(model, "default", "no-such-backend")
    assert fallback is model
    assert capsys.readouterr().out.startswith("warning: train.compile=default is not supported here")
    compiled = compile_model(model, "default", "eager")
    assert original_module(compiled) is model


def test_grad_checkpointing_reaches_the_timm_network_inside() -> None:
    import timm

    wrapper = torch.nn.Sequential(timm.create_model("test_resnet", pretrained=False))
    assert enable_grad_checkpointing(wrapper)
    assert wrapper[0].grad_checkpointing
    assert not enable_grad_checkpointing(torch.nn.Linear(2, 2))


def test_eta_is_the_mean_epoch_time_over_the_epochs_left() -> None:
    eta = Eta(total_epochs=10)
    assert eta.text() == "?"
    for seconds in (30.0, 50.0):
        eta.add(seconds)
    assert eta.text() == "5m20s"  # 8 epochs left x 40 s
    eta.add(7300.0)
    assert eta.text() == "4h47m"  # 7 x (7380 / 3) s = 287 min


def test_compile_is_left_off_with_grad_checkpointing(overrides: list[str], capsys) -> None:
    settings = [*overrides, "train.compile=default", "train.compile_backend=eager", "model.grad_checkpointing=true"]
    _folds(settings)
    train(load_config(settings))
    assert "warning: train.compile is left off with model.grad_checkpointing" in capsys.readouterr().out


def _batches(config, runtime) -> list:
    """The first training and validation batches of fold 0, with every random generator reset first."""
    import random

    import numpy as np

    from ..core.augment import start_image_cache
    from ..core.fold_file import read_folds
    from ..core.loaders import fold_loaders
    from ..tasks import create_task, read_train_table

    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    table = read_train_table(config.data)
    task = create_task(config, table.classes)
    start_image_cache(config, task, table.frame["path"].tolist())
    folds = read_folds(RunPaths.from_config(config).folds, table)
    train_index, valid_index = np.flatnonzero(folds != 0), np.flatnonzero(folds == 0)
    loaders = fold_loaders(config, task, table, train_index, valid_index, runtime=runtime)
    for loader in loaders:  # albumentations draws from its own generator: the same seed for both runs
        loader.dataset.transform.set_random_seed(0)
    return [next(iter(loader)) for loader in loaders]


def _same(first: object, second: object) -> bool:
    if isinstance(first, torch.Tensor):
        return torch.equal(first, second)
    if isinstance(first, dict):
        return first.keys() == second.keys() and all(_same(first[k], second[k]) for k in first)
    if isinstance(first, list | tuple):
        return len(first) == len(second) and all(_same(a, b) for a, b in zip(first, second, strict=True))
    return first == second


@pytest.mark.parametrize("mode", ["ram", "disk"])
def test_cached_batches_are_byte_identical_to_uncached_ones(overrides: list[str], tmp_path: Path, mode: str) -> None:
    from ..core.data import activate_cache
    from ..core.distributed import Runtime

    _folds(overrides)
    runtime = Runtime(torch.device("cpu"))
    try:
        plain = _batches(load_config([*overrides, "data.cache=none"]), runtime)
        cached_config = load_config([*overrides, f"data.cache={mode}", f"data.cache_dir={tmp_path / 'cache'}"])
        cached = _batches(cached_config, runtime)
        again = _batches(cached_config, runtime)  # served from the cache this time
    finally:
        activate_cache("none", tmp_path, None, 3)
    assert _same(plain, cached) and _same(plain, again)
    if mode == "disk":
        assert list((tmp_path / "cache").glob("*.npy"))


def test_batches_leave_the_workers_as_uint8_and_are_normalised_on_the_device(overrides: list[str]) -> None:
    import albumentations as A
    import numpy as np

    from ..core.augment import InputNormaliser
    from ..core.distributed import Runtime
    from ..tasks import create_task

    _folds(overrides)
    config = load_config(overrides)
    train_batch, _ = _batches(config, Runtime(torch.device("cpu")))
    images = train_batch[0]
    assert images.dtype == torch.uint8  # a quarter of float32's bytes to pin and copy
    mean, std = create_task(config, ["a", "b"]).normalisation(torch.nn.Identity())
    if TASK == "detection":  # torchvision detectors take 0-1 floats and normalise inside
        assert (mean, std) == ((0.0,) * 3, (1.0,) * 3)
    normalised = InputNormaliser(mean, std, torch.device("cpu"))(images)
    expected = A.Normalize(mean=mean, std=std)(image=images[0].permute(1, 2, 0).numpy())["image"]
    np.testing.assert_allclose(normalised[0].permute(1, 2, 0).numpy(), expected, atol=1e-5)


def test_the_cache_misses_when_the_file_or_the_image_size_changes(tmp_path: Path) -> None:
    import numpy as np
    from PIL import Image

    from ..core.data import ImageCache, activate_cache

    path = tmp_path / "a.png"
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(path)
    cache = ImageCache("disk", tmp_path / "cache", 16, 3)
    assert cache.get(str(path)).shape == (16, 16, 3) and cache.misses == 1
    from_disk = ImageCache("disk", tmp_path / "cache", 16, 3)
    assert np.array_equal(from_disk.get(str(path)), cache.get(str(path))) and from_disk.misses == 0
    other_size = ImageCache("disk", tmp_path / "cache", 24, 3)
    assert other_size.get(str(path)).shape == (24, 24, 3) and other_size.misses == 1
    Image.fromarray(np.full((20, 30, 3), 255, np.uint8)).save(path)  # new content, new mtime
    changed = ImageCache("disk", tmp_path / "cache", 16, 3)
    assert changed.get(str(path)).max() == 255 and changed.misses == 1
    try:
        first = activate_cache("ram", tmp_path, 16, 3)
        assert activate_cache("ram", tmp_path, 16, 3) is first  # kept across folds and predict
        assert activate_cache("ram", tmp_path, 24, 3) is not first
    finally:
        activate_cache("none", tmp_path, None, 3)


@pytest.mark.skipif(TASK != "classification", reason="task-independent process handling; runs in classification")
def test_parallel_folds_write_what_a_serial_run_writes(tmp_path: Path) -> None:
    """Two CPU processes, a fold each, against one process training both folds."""
    WRITERS[TASK](tmp_path / "data")
    runs = {}
    for name, extra in (("serial", []), ("parallel", ["train.parallel_folds=2"])):
        settings = [*task_overrides(tmp_path / "data", tmp_path / name), "train.epochs=1", *extra]
        _folds(settings)
        metrics = train(load_config(settings)).metrics
        runs[name] = (RunPaths.from_config(load_config(settings)).root, metrics)
    (serial, serial_metrics), (parallel, parallel_metrics) = runs["serial"], runs["parallel"]

    def files(root: Path) -> set[str]:
        return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and p.name not in {".lock"}}

    assert files(serial) == files(parallel)
    assert (serial / "folds.csv").read_bytes() == (parallel / "folds.csv").read_bytes()
    assert serial_metrics["folds"].keys() == parallel_metrics["folds"].keys() == {"0", "1"}
    oof_serial, oof_parallel = pd.read_csv(serial / "oof.csv"), pd.read_csv(parallel / "oof.csv")
    assert oof_serial["id"].tolist() == oof_parallel["id"].tolist()
    numbers = oof_serial.select_dtypes("number").columns
    assert (oof_serial[numbers] - oof_parallel[numbers]).abs().max().max() < 1e-3  # thread counts differ


def test_parallel_folds_refuse_more_gpus_than_visible(monkeypatch) -> None:
    from ..core.errors import ConfigError
    from ..core.parallel import fold_devices

    assert fold_devices("cpu", 3) == ["cpu", "cpu", "cpu"]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert fold_devices("cuda", 2) == ["cuda:0", "cuda:1"]
    with pytest.raises(ConfigError, match=r"train.parallel_folds=3: only 2 CUDA GPU\(s\) are visible"):
        fold_devices("cuda", 3)


def test_loader_workers_draw_different_augmentations(overrides: list[str]) -> None:
    """albumentations' generator is copied into every worker: seed_worker gives each its own stream."""
    import albumentations as A
    import numpy as np

    class Noise(torch.utils.data.Dataset):
        transform = A.Compose([A.HorizontalFlip(p=0.5), A.RandomBrightnessContrast(p=1.0)], seed=0)

        def __len__(self) -> int:
            return 8

        def __getitem__(self, index: int) -> torch.Tensor:
            return torch.from_numpy(self.transform(image=np.full((4, 4, 3), 128, np.uint8))["image"].copy())

    from ..core.distributed import Runtime

    batches = list(create_loader(Noise(), Runtime(torch.device("cpu")), 1, 2, False, seed=0))
    worker_firsts = batches[0], batches[1]  # the first item of worker 0 and of worker 1
    assert not torch.equal(*worker_firsts)
    again = list(create_loader(Noise(), Runtime(torch.device("cpu")), 1, 2, False, seed=0))
    assert all(torch.equal(a, b) for a, b in zip(batches, again, strict=True))  # reproducible from the seed


def test_cuda_optimizers_are_fused_or_multi_tensor() -> None:
    from ..core.engine import optimizer_kwargs

    assert optimizer_kwargs(load_config(["train.optimizer=adamw"]).train, on_cuda=True)["fused"] is True
    assert optimizer_kwargs(load_config(["train.optimizer=sgd"]).train, on_cuda=True)["foreach"] is True
    assert "fused" not in optimizer_kwargs(load_config(["train.fused=false"]).train, on_cuda=True)
    cpu = optimizer_kwargs(load_config(["train.optimizer=adamw"]).train, on_cuda=False)
    assert "fused" not in cpu and "foreach" not in cpu


class _MarkingDataset(torch.utils.data.Dataset):
    """Leaves a file per item fetched, so a test can see when loader workers start decoding."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def __len__(self) -> int:
        return 8

    def __getitem__(self, index: int) -> int:
        (self.folder / f"{index}").touch()
        return index


def test_an_epoch_started_ahead_is_decoded_before_it_is_taken(tmp_path: Path) -> None:
    import time

    dataset = _MarkingDataset(tmp_path)
    loader = torch.utils.data.DataLoader(dataset, batch_size=2, num_workers=1, persistent_workers=True)
    epochs = EpochBatches(loader)
    epochs.start(0)
    deadline = time.monotonic() + 60
    while not list(tmp_path.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(tmp_path.iterdir()), "workers did not start on start()"
    batches = epochs.take(0)
    assert [int(i) for batch in batches for i in batch] == list(range(8))  # the same epoch, whole and in order
    assert epochs.started == {}
    assert [int(i) for batch in epochs.take(1) for i in batch] == list(range(8))  # take() starts a new one
