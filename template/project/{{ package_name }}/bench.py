"""Benchmark: the training loop's time per step over a bare PyTorch loop's, same model and batches.

python -m <package>.bench [--backbone resnet18 --image-size 64 --batch-size 32 --steps 20 --repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from .config import load_config
from .distributed import Runtime
from .tasks import create_task
from .train import create_optimizer, create_scheduler, train_one_epoch


def bare_loop(model: torch.nn.Module, batches: list, optimizer: torch.optim.Optimizer) -> None:
    model.train()
    for images, targets in batches:
        loss = F.cross_entropy(model(images), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)
    config = load_config(
        [f"model.backbone={args.backbone}", "model.pretrained=false", "train.warmup_epochs=0", "train.device=cpu"]
    )
    task = create_task(config, [str(i) for i in range(10)])
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
        train_one_epoch(model, batches, task, ours_optimizer, runtime=runtime, config=config.train, scheduler=scheduler)

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
