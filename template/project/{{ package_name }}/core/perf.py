"""Throughput machinery: backend switches (TF32, cuDNN autotuning), torch.compile, gradient checkpointing, epochs
started ahead of time, and what each epoch reports (images/s, peak memory, GPU utilisation, the ETA)."""

from __future__ import annotations

import resource
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import DataLoader, DistributedSampler


def configure_backends(device: torch.device, *, tf32: bool, deterministic: bool, fixed_shapes: bool) -> None:
    """TF32 matmuls and convolutions on Ampere and later (bf16-like speed, fp32 range); cuDNN autotuning only
    where input shapes repeat (detectors resize each image differently, so autotuning would run every batch)."""
    if device.type != "cuda":
        return
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cudnn.benchmark = fixed_shapes and not deterministic


class CompiledOrEager(torch.nn.Module):
    """torch.compile's module that falls back to the eager model, with one printed line, when compiling it fails
    (an unsupported op, a compiler error) on its first forward. The fallback is this model's alone: a process-wide
    `torch._dynamo.config.suppress_errors` would also hide failures of every other compiled function. The eager
    model is `_orig_mod`, as in torch's OptimizedModule, so the state dict keeps its parameter names."""

    def __init__(self, model: torch.nn.Module, mode: str, backend: str) -> None:
        super().__init__()
        self._orig_mod = model
        # Kept off the module's registry: a registered copy would add its parameters to the state dict again.
        object.__setattr__(self, "compiled", torch.compile(model, mode=mode, backend=backend))
        self.mode = mode

    def __getattr__(self, name: str) -> Any:
        """The eager model's attributes (a detector's `transform`, say), as torch's OptimizedModule gives them."""
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "_orig_mod":
                raise
            return getattr(self._orig_mod, name)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if self.compiled is None:
            return self._orig_mod(*args, **kwargs)
        import torch._dynamo

        try:
            return self.compiled(*args, **kwargs)
        except torch._dynamo.exc.TorchDynamoException as error:
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            print(
                f"warning: torch.compile (train.compile={self.mode}) failed for {type(self._orig_mod).__name__} "
                f"({first_line[:160]}); this model runs eagerly"
            )
            self.compiled = None
            return self._orig_mod(*args, **kwargs)


def compile_model(model: torch.nn.Module, mode: str, backend: str) -> torch.nn.Module:
    """The model compiled (`CompiledOrEager`), or as it is with a one-line warning where torch.compile cannot
    even start here."""
    if mode == "off":
        return model
    try:
        return CompiledOrEager(model, mode, backend)
    except (RuntimeError, ImportError, ValueError) as error:
        print(f"warning: train.compile={mode} is not supported here ({str(error).splitlines()[0]}); running eagerly")
        return model


def original_module(model: torch.nn.Module) -> torch.nn.Module:
    """The module under DDP and torch.compile wrappers, whose state dict has the plain parameter names."""
    while True:
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if inner is None or not isinstance(inner, torch.nn.Module):
            return model
        model = inner


def enable_grad_checkpointing(model: torch.nn.Module) -> bool:
    """timm's set_grad_checkpointing on the model or the timm network inside it (smp encoders, detector
    backbones): activations are recomputed in the backward pass, trading compute for memory."""
    for module in model.modules():
        setter = getattr(module, "set_grad_checkpointing", None)
        if callable(setter):
            setter(True)
            return True
    return False


def pci_bus_id(device: torch.device) -> str:
    """The GPU's PCI address as NVML writes it ("00000000:3B:00.0"). NVML numbers every GPU of the machine, torch
    only those CUDA_VISIBLE_DEVICES shows, in its own order: the bus id is what both agree on."""
    properties = torch.cuda.get_device_properties(device)
    return f"{properties.pci_domain_id:08X}:{properties.pci_bus_id:02X}:{properties.pci_device_id:02X}.0"


def _nvml_handle(device: torch.device) -> Any:
    try:
        import pynvml

        pynvml.nvmlInit()
        return pynvml.nvmlDeviceGetHandleByPciBusId(pci_bus_id(device))
    except Exception:  # no driver, no library, a MIG slice: utilisation is simply not reported
        return None


class GpuUtilisation:
    """Samples the GPU's utilisation (nvidia-ml-py) twice a second in a thread; the mean since `start`."""

    def __init__(self, device: torch.device, interval: float = 0.5) -> None:
        self.handle = _nvml_handle(device) if device.type == "cuda" else None
        self.interval = interval
        self.samples: list[int] = []
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None

    def _sample(self) -> None:
        import pynvml

        while not self.stopping.wait(self.interval):
            try:
                self.samples.append(int(pynvml.nvmlDeviceGetUtilizationRates(self.handle).gpu))
            except Exception:  # a failed sample is skipped
                continue

    def start(self) -> None:
        self.samples = []
        if self.handle is None:
            return
        self.stopping.clear()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def stop(self) -> float:
        """Mean utilisation in percent since `start`; NaN where it cannot be measured."""
        if self.thread is not None:
            self.stopping.set()
            self.thread.join()
            self.thread = None
        return sum(self.samples) / len(self.samples) if self.samples else float("nan")


def peak_memory_mb(device: torch.device) -> float:
    """Peak allocated GPU memory since the last reset (CUDA), else the process's peak resident memory."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB on Linux


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


class EpochBatches:
    """A loader's epochs started ahead of time: `start(epoch)` hands the epoch's indices to the persistent
    workers, which decode its first batches while the main process validates, checkpoints or builds the model;
    `take(epoch)` returns that iterator (starting it now if it was not)."""

    def __init__(self, loader: DataLoader) -> None:
        self.loader = loader
        self.started: dict[int, Iterator[Any]] = {}

    def start(self, epoch: int) -> None:
        if epoch in self.started:
            return
        if isinstance(self.loader.sampler, DistributedSampler):
            self.loader.sampler.set_epoch(epoch)
        self.started = {epoch: iter(self.loader)}  # one at a time: a new iter() resets the workers' queue

    def take(self, epoch: int) -> Iterator[Any]:
        self.start(epoch)
        return self.started.pop(epoch)


@dataclass
class EpochTimes:
    """Where an epoch's wall time went; `fixed` is what lies outside the training and validation loops and the
    checkpoint writes (loader start-up, scheduler, history, logging)."""

    started: float = field(default_factory=time.perf_counter)
    train: float = 0.0
    valid: float = 0.0
    checkpoint: float = 0.0
    images: int = 0

    @property
    def total(self) -> float:
        return time.perf_counter() - self.started

    def columns(self) -> dict[str, float]:
        total = self.total
        return {
            "seconds": total,
            "train_seconds": self.train,
            "valid_seconds": self.valid,
            "checkpoint_seconds": self.checkpoint,
            "fixed_seconds": max(total - self.train - self.valid - self.checkpoint, 0.0),
            "images_per_s": self.images / self.train if self.train > 0 else float("nan"),
        }


@dataclass
class Eta:
    """The time left over every fold's epochs, from the mean epoch time so far."""

    total_epochs: int
    done: int = 0
    seconds: float = 0.0

    def add(self, epoch_seconds: float) -> None:
        self.done += 1
        self.seconds += epoch_seconds

    def text(self) -> str:
        if not self.done:
            return "?"
        left = max(self.total_epochs - self.done, 0) * self.seconds / self.done
        minutes, seconds = divmod(round(left), 60)
        return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m{seconds:02d}s"
