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
