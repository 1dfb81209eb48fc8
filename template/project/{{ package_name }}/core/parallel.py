"""Folds in parallel: one process per GPU (or per share of the CPU cores), each training its own folds into the run
folder as a serial run would; the calling process then summarises. DDP is for one fold over many GPUs."""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import torch

from ..config import Config, validate_config, with_overrides
from ..train import read_fold_inputs, train_folds
from .augment import start_image_cache
from .distributed import Runtime, resolve_device
from .errors import ConfigError
from .runs import RunPaths


def fold_devices(preference: str, processes: int) -> list[str]:
    """One device per process: CUDA GPU k for process k, or the CPU for all."""
    if resolve_device(preference).type != "cuda":
        return ["cpu"] * processes
    visible = torch.cuda.device_count()
    if processes > visible:
        raise ConfigError(f"train.parallel_folds={processes}: only {visible} CUDA GPU(s) are visible, one fold each")
    return [f"cuda:{index}" for index in range(processes)]


def _train_share(settings: dict[str, Any], folds: list[int], device: str, threads: int, resume: bool) -> list[dict]:
    """A worker process: train `folds` on `device` with the run's settings."""
    torch.set_num_threads(threads)
    config = with_overrides(validate_config(settings), {"train": {"device": device, "parallel_folds": 1}})
    paths = RunPaths.from_config(config)
    inputs = read_fold_inputs(config, paths)
    start_image_cache(config, inputs.task, inputs.table.frame["path"].astype(str).tolist())
    runtime = Runtime(resolve_device(device))
    return train_folds(config, inputs, folds, runtime=runtime, paths=paths, resume=resume)


def train_folds_in_parallel(config: Config, folds: list[int], processes: int, *, resume: bool) -> list[dict[str, Any]]:
    """Fold k goes to process k mod `processes`; the results come back in fold order."""
    devices = fold_devices(config.train.device, processes)
    threads = max((os.cpu_count() or 1) // processes, 1)
    settings = config.model_dump(mode="json")
    shares = [folds[index::processes] for index in range(processes)]
    print(f"training folds {folds} in {processes} processes on {', '.join(sorted(set(devices)))}")
    # spawn, not fork: CUDA cannot be shared with a forked child.
    context = torch.multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(processes, mp_context=context) as pool:
        futures = [
            pool.submit(_train_share, settings, share, device, threads, resume)
            for share, device in zip(shares, devices, strict=True)
        ]
        results = [result for future in futures for result in future.result()]
    return sorted(results, key=lambda result: result["fold"])
