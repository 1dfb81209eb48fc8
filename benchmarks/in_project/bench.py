"""Benchmarks printing ratios against a baseline measured in the same run. Podium's, not the user's: the benchmarks
copy this file into the projects they render, as <package>/tools/bench.py (see _project.add_project_bench).

python -m <package>.tools.bench [train-loop] [--backbone resnet18 --image-size 64 --batch-size 32 --steps 20]
    the training loop's time per step over a bare PyTorch loop's, same model and batches (target <= 1.10)
python -m <package>.tools.bench augment [--image-size 224 --images 200]
    images/s of the albumentations medium preset over its torchvision v2 counterpart, one process (target >= 2)
python -m <package>.tools.bench build [key=value ...]   /   predict [key=value ...]
    import torch and build the model (a baseline for the time to the first step)  /  predict's test images/s (after
    `train`: the run's own config, as the `predict` command takes it)
python -m <package>.tools.bench pinned [key=value ...]   /   utilisation
    whether the training loader's batches arrive in pinned memory (CUDA) and the loop's non-blocking copy of them
    matches a blocking one, with its MB/s  /  the mean GPU utilisation the loop's NVML readout reports under load
python -m <package>.tools.bench profile [key=value ...]
    torch.profiler over `train`: the operators that take the most time (CUDA time on a GPU)
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import torch
import torch.nn.functional as F

from ..config import Config, load_config, with_overrides
from ..core.distributed import Runtime
from ..core.engine import TrainStep, create_optimizer, create_scheduler, train_one_epoch
from ..core.run_config import load_run_config
from ..tasks import SPEC, create_task


def bare_loop(model: torch.nn.Module, batches: list, optimizer: torch.optim.Optimizer) -> None:
    model.train()
    for images, targets in batches:
        loss = F.cross_entropy(model(images), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


def bench_augment(image_size: int, count: int, repeats: int) -> None:
    import numpy as np

    from ..core.augment import create_transform, load_augmentations

    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (256, 320, 3), dtype=np.uint8) for _ in range(count)]
    pipelines = {
        "albumentations medium": create_transform(load_augmentations("configs/aug/medium.yaml"), image_size=image_size),
        "torchvision v2 medium": create_transform(
            load_augmentations("configs/aug/tv_medium.yaml"), image_size=image_size
        ),
    }
    rates: dict[str, list[float]] = {name: [] for name in pipelines}
    for _ in range(repeats):
        for name, transform in pipelines.items():
            started = time.perf_counter()
            for image in images:
                transform(image=image)
            rates[name].append(count / (time.perf_counter() - started))
    album, vision = (statistics.median(rates[name]) for name in pipelines)
    print(f"{count} images of 256x320 to {image_size} px, one process, {torch.get_num_threads()} torch threads")
    print(f"albumentations medium: {album:.0f} images/s")
    print(f"torchvision v2 medium: {vision:.0f} images/s")
    print(f"ratio albumentations/torchvision: {album / vision:.2f} (target >= 2.0)")


def pinned_copies(config: Config, repeats: int = 5) -> dict[str, Any]:
    """The training loader's first batch on `train.device`: whether it arrives in pinned memory (the loader pins on
    CUDA only), whether the loop's non-blocking copy to the device equals a blocking one, and the copy's MB/s."""
    import numpy as np

    from ..core.distributed import resolve_device
    from ..core.loaders import fold_loaders
    from ..tasks import read_train_table

    table = read_train_table(config.data)
    task = create_task(config, table.classes)
    device = resolve_device(config.train.device)
    rows = np.arange(len(table.frame))
    loader, _ = fold_loaders(config, task, table, rows, rows[:1], runtime=Runtime(device))
    batch = next(iter(loader))
    images = batch[0]
    moved, _ = task.to_device(batch, device)  # non_blocking=True, as the loop copies
    equal = torch.equal(moved.cpu(), images)
    synchronize = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    synchronize()
    started = time.perf_counter()
    for _ in range(repeats):
        images.to(device, non_blocking=True)
    synchronize()
    seconds = time.perf_counter() - started
    return {
        "device": str(device),
        "pinned": images.is_pinned(),
        "expected_pinned": device.type == "cuda",
        "equal": equal,
        "mb_per_s": images.numel() * images.element_size() * repeats / seconds / 2**20,
    }


def gpu_utilisation(seconds: float = 3.0) -> float:
    """The loop's NVML readout (core.perf.GpuUtilisation) around `seconds` of matrix products on CUDA: the mean
    utilisation it reports, NaN where NVML gives none."""
    from ..core.perf import GpuUtilisation

    device = torch.device("cuda", torch.cuda.current_device())
    meter = GpuUtilisation(device)
    matrix = torch.randn(4096, 4096, device=device)
    meter.start()
    ends = time.perf_counter() + seconds
    while time.perf_counter() < ends:
        matrix = (matrix @ matrix).clamp_(-1, 1)
        torch.cuda.synchronize(device)
    return meter.stop()


def build_model(config: Config) -> None:
    """What the time to the first step is compared with: importing torch and building the model."""
    task = create_task(without_data_settings(config), [str(i) for i in range(config.data.num_classes or 10)])
    task.create_model()


def without_data_settings(config: Config) -> Config:
    """Fixed values for what `train` takes from the data (anchor sizes), for timing a build without the data."""
    return with_overrides(config, SPEC.placeholder_settings(config))


def predict_images_per_second(config: Config) -> float:
    from ..core.data import read_test_table
    from ..predict import predict

    started = time.perf_counter()
    predict(config)
    return len(read_test_table(config.data)) / (time.perf_counter() - started)


def profile_training(config: Config, rows: int = 20) -> str:
    """torch.profiler over `train`, operators by self time. It sees the main process only: time spent in loader
    workers shows as the wait inside the DataLoader iterator's `__next__`."""
    from ..train import train

    activities = [torch.profiler.ProfilerActivity.CPU]
    if torch.cuda.is_available():
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as profiler:
        train(config)
    sort = "self_cuda_time_total" if torch.cuda.is_available() else "self_cpu_time_total"
    return profiler.key_averages().table(sort_by=sort, row_limit=rows)


def main() -> None:
    import sys

    if len(sys.argv) > 1 and sys.argv[1] == "utilisation":
        print(f"GPU utilisation under load: {gpu_utilisation():.0f} %")
        return
    if len(sys.argv) > 1 and sys.argv[1] in ("build", "predict", "profile", "pinned"):
        mode, overrides = sys.argv[1], sys.argv[2:]
        if mode == "build":
            build_model(load_config(overrides))
        elif mode == "profile":
            print(profile_training(load_config(overrides)))
        elif mode == "pinned":
            print(pinned_copies(load_config(overrides)))
        else:
            # The run's resolved config, as `predict` takes it: what `train` took from the data (anchor sizes) with it.
            rate = predict_images_per_second(load_run_config(overrides, stage="bench predict"))
            print(f"predict images/s: {rate:.1f}")
        return
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mode", nargs="?", default="train-loop", choices=["train-loop", "augment"])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--image-size", type=int, default=None, help="default 64 (train-loop), 224 (augment)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if args.mode == "augment":
        bench_augment(args.image_size or 224, args.images, args.repeats)
        return
    torch.manual_seed(0)
    args.image_size = args.image_size or 64
    config = load_config(
        [f"model.backbone={args.backbone}", "model.pretrained=false", "train.warmup_epochs=0", "train.device=cpu"]
    )
    task = create_task(without_data_settings(config), [str(i) for i in range(10)])
    model = task.create_model()
    batches = [
        (torch.randn(args.batch_size, 3, args.image_size, args.image_size), torch.randint(0, 10, (args.batch_size,)))
        for _ in range(args.steps)
    ]
    runtime = Runtime(torch.device("cpu"))
    ours_optimizer = create_optimizer(model, config.train)
    bare_optimizer = create_optimizer(model, config.train)
    scheduler = create_scheduler(ours_optimizer, config.train, args.steps, maximize=True)

    def ours() -> None:
        train_one_epoch(TrainStep(model, task, ours_optimizer, runtime, config.train, scheduler), batches)

    def bare() -> None:
        bare_loop(model, batches, bare_optimizer)

    ours()  # warm-up: allocator, first-call costs
    bare()
    timings: dict[str, list[float]] = {"podium": [], "bare": []}
    for _ in range(args.repeats):
        for name, loop in (("bare", bare), ("podium", ours)):  # interleaved so drift hits both
            started = time.perf_counter()
            loop()
            timings[name].append((time.perf_counter() - started) / args.steps)
    podium, bare_time = statistics.median(timings["podium"]), statistics.median(timings["bare"])
    print(f"backbone {args.backbone}, {args.image_size}px, batch {args.batch_size}, {torch.get_num_threads()} threads")
    print(f"bare PyTorch loop: {bare_time * 1000:.1f} ms/step")
    print(f"podium train loop: {podium * 1000:.1f} ms/step")
    print(f"ratio podium/bare: {podium / bare_time:.3f} (target <= 1.10)")


if __name__ == "__main__":
    main()
