"""Device choice and DDP under torchrun: NCCL on CUDA, gloo on CPU; rank 0 writes."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from .errors import ConfigError


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    launched: bool = False  # started by torchrun: in a process group, DDP even for one process

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1 or self.launched


def resolve_device(preference: str = "auto") -> torch.device:
    """The device train.device names (auto: CUDA, then MPS, then CPU); one that is not there is a ConfigError."""
    if preference != "auto":
        try:
            device = torch.device(preference)
        except RuntimeError as error:
            raise ConfigError(f"train.device={preference}: not a device name (auto, cpu, cuda, cuda:1, mps)") from error
        _check_available(device, preference)
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def _check_available(device: torch.device, preference: str) -> None:
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(f"train.device={preference}: no CUDA GPU is visible here; use train.device=auto or cpu")
        if device.index is not None and device.index >= count:
            raise ConfigError(f"train.device={preference}: only {count} CUDA GPU(s) are visible (cuda:0..{count - 1})")
    mps = getattr(torch.backends, "mps", None)
    if device.type == "mps" and (mps is None or not mps.is_available()):
        raise ConfigError(f"train.device={preference}: MPS is not available here; use train.device=auto or cpu")


def init_runtime(preference: str = "auto", timeout_minutes: float = 10) -> Runtime:
    """Join the process group that torchrun describes in the environment, or run as one process. A collective that
    waits `timeout_minutes` for a process that stopped answering raises instead of hanging."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    device = resolve_device(preference)
    # torchrun sets TORCHELASTIC_RUN_ID: its single process runs DDP too (NCCL on one GPU), as its many would.
    if world_size <= 1 and "TORCHELASTIC_RUN_ID" not in os.environ:
        return Runtime(device)
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, timeout=timedelta(minutes=timeout_minutes))
    return Runtime(device, rank, world_size, local_rank, launched=True)


# What a collective raises when another process of the run is gone (killed node, lost network) or timed out.
PEER_FAILURES = ("connection closed by peer", "connection reset by peer", "broken pipe", "timed out", "timeout")


def lost_peer(runtime: Runtime, error: BaseException) -> str | None:
    """Why a collective failed when another process of the distributed run stopped (None: not that)."""
    if not runtime.distributed:
        return None
    text = str(error).lower()
    reason = next((phrase for phrase in PEER_FAILURES if phrase in text), None)
    if reason is None and isinstance(error, getattr(dist, "DistBackendError", ())):
        reason = "the process group failed"
    return reason


def barrier(runtime: Runtime) -> None:
    if runtime.distributed:
        dist.barrier()


def all_gather(runtime: Runtime, value: Any) -> list[Any]:
    if not runtime.distributed:
        return [value]
    gathered: list[Any] = [None] * runtime.world_size
    dist.all_gather_object(gathered, value)
    return gathered


def broadcast(runtime: Runtime, value: Any) -> Any:
    if not runtime.distributed:
        return value
    holder = [value]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def shutdown(runtime: Runtime) -> None:
    if runtime.distributed and dist.is_initialized():
        dist.destroy_process_group()
