"""Folds in parallel: one process per GPU (or per share of the CPU cores), each training its own folds into the run
folder as a serial run would; the calling process then summarises. DDP is for one fold over many GPUs."""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import torch

from ..config import Config
from .distributed import resolve_device
from .errors import ConfigError


def fold_devices(preference: str, processes: int) -> list[str]:
    """One device per process: CUDA GPU k for process k, or the CPU for all."""
    if resolve_device(preference).type != "cuda":
        return ["cpu"] * processes
    visible = torch.cuda.device_count()
    if processes > visible:
        raise ConfigError(f"train.parallel_folds={processes}: only {visible} CUDA GPU(s) are visible, one fold each")
    return [f"cuda:{index}" for index in range(processes)]


RAM_CACHE_SHARE = 0.8  # of the memory free when training starts that the fold processes' RAM caches may take


def decoded_bytes(paths: list[str], size: int | None, channels: int, sample: int = 32) -> int:
    """The uint8 bytes of `paths` decoded at `size` x `size`, or at their own sizes (from a sample's headers)."""
    if size is not None:
        return size * size * channels * len(paths)
    from PIL import Image

    chosen = paths[:: max(len(paths) // sample, 1)][:sample]
    pixels = [width * height for width, height in (Image.open(path).size for path in chosen)]
    return int(sum(pixels) / max(len(pixels), 1) * channels * len(paths))


def available_memory() -> int | None:
    """Bytes of memory free for new allocations (Linux's MemAvailable); None where it cannot be read."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def ram_cache_cost(per_process: int, processes: int, available: int | None) -> str:
    """One line on what data.cache=ram costs parallel folds: every spawned process decodes and keeps its own copy
    (spawn shares nothing). A ConfigError where the copies would not fit in the memory free now."""

    def gib(count: float) -> str:
        return f"{count / 2**30:.1f} GiB"

    total = per_process * processes
    line = (
        f"data.cache=ram: each of the {processes} fold processes keeps its own copy, {processes} x {gib(per_process)}"
    )
    if available is None:
        return f"{line} (the free memory cannot be read here)"
    if total > RAM_CACHE_SHARE * available:
        raise ConfigError(
            f"{line} = {gib(total)}, more than {RAM_CACHE_SHARE:.0%} of the {gib(available)} free here: use "
            "data.cache=disk (one copy, shared by every process) or a lower train.parallel_folds"
        )
    return f"{line} = {gib(total)} of the {gib(available)} free"


def train_folds_in_parallel(
    worker: Callable[..., list[Any]], config: Config, folds: list[int], processes: int, *, resume: bool
) -> list[Any]:
    """Fold k goes to process k mod `processes`, which runs `worker(settings, folds, device, threads, resume)` (a
    module-level function, so a spawned process can import it); the results come back in fold order."""
    devices = fold_devices(config.train.device, processes)
    threads = max((os.cpu_count() or 1) // processes, 1)
    settings = config.model_dump(mode="json")
    shares = [folds[index::processes] for index in range(processes)]
    print(f"training folds {folds} in {processes} processes on {', '.join(sorted(set(devices)))}")
    # spawn, not fork: CUDA cannot be shared with a forked child.
    context = torch.multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(processes, mp_context=context) as pool:
        futures = [
            pool.submit(worker, settings, share, device, threads, resume)
            for share, device in zip(shares, devices, strict=True)
        ]
        results = [result for future in futures for result in future.result()]
    return sorted(results, key=lambda result: result.fold)
