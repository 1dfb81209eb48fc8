"""GPU-only choices pinned on CPU with mocks: the AMP precision by compute capability, fp16's GradScaler, each
parallel-folds process on its own GPU, the RAM cache's cost, per-model compile fallback and NVML by PCI bus id."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch
from PIL import Image

from ..core import engine, perf
from ..core.errors import ConfigError
from ..core.parallel import decoded_bytes, ram_cache_cost
from .conftest import TASK

CUDA = torch.device("cuda", 0)
pytestmark = pytest.mark.skipif(TASK != "classification", reason="task-independent; runs in classification projects")


@pytest.mark.parametrize(
    ("capability", "dtype", "scaled", "described"),
    [
        ((6, 0), torch.float16, True, "fp16 autocast with GradScaler (train.amp=auto: compute capability 6.0, no "),
        ((7, 5), torch.float16, True, "fp16 autocast with GradScaler (train.amp=auto: compute capability 7.5, no "),
        ((8, 0), torch.bfloat16, False, "bf16 autocast (train.amp=auto: compute capability 8.0, native bf16)"),
    ],
    ids=["P100", "T4", "A100"],
)
def test_amp_auto_takes_bf16_only_where_the_gpu_runs_it_natively(
    monkeypatch, capability: tuple[int, int], dtype: torch.dtype, scaled: bool, described: str
) -> None:
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    # torch's default counts emulated bf16 as supported (it is, slowly, on a T4): only native support may count.
    monkeypatch.setattr(
        torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation or capability >= (8, 0)
    )
    assert engine.autocast_dtype("auto", CUDA) == dtype
    scaler = engine.create_grad_scaler(engine.autocast_dtype("auto", CUDA), torch.device("cpu"))
    assert isinstance(scaler, torch.amp.GradScaler) if scaled else scaler is None
    assert engine.describe_precision("auto", CUDA).startswith(described)
    assert engine.autocast_dtype("bf16", CUDA) == torch.bfloat16  # asked for by name: given, with a word if slow
    assert ("emulated" in engine.describe_precision("bf16", CUDA)) == (capability < (8, 0))
    assert engine.autocast_dtype("auto", torch.device("cpu")) is None


def test_each_fold_process_makes_its_gpu_current_before_anything_else(monkeypatch) -> None:
    from .. import train as train_stage

    calls: list[str] = []

    class Stop(Exception):
        pass

    monkeypatch.setattr(torch.cuda, "set_device", lambda device: calls.append(f"set_device {device}"))
    monkeypatch.setattr(torch, "set_num_threads", lambda threads: calls.append("threads"))

    def validate(settings: dict) -> None:
        calls.append("config")
        raise Stop

    monkeypatch.setattr(train_stage, "validate_config", validate)
    with pytest.raises(Stop):
        train_stage._train_share({}, [1], "cuda:1", 4, False)
    assert calls == ["set_device cuda:1", "threads", "config"]
    calls.clear()
    with pytest.raises(Stop):
        train_stage._train_share({}, [0], "cpu", 4, False)
    assert calls == ["threads", "config"]


def test_the_ram_cache_of_parallel_folds_is_costed_and_refused_where_it_does_not_fit(tmp_path) -> None:
    gib = 2**30
    assert ram_cache_cost(gib, 2, 8 * gib).endswith("2 x 1.0 GiB = 2.0 GiB of the 8.0 GiB free")
    with pytest.raises(ConfigError, match=r"2 x 3.0 GiB = 6.0 GiB, more than 80% of the 4.0 GiB free here: use data"):
        ram_cache_cost(3 * gib, 2, 4 * gib)
    assert "cannot be read" in ram_cache_cost(gib, 2, None)
    assert decoded_bytes(["a"] * 10, 64, 3) == 10 * 64 * 64 * 3
    paths = []
    for index, (width, height) in enumerate([(40, 20), (60, 30)]):
        paths.append(str(tmp_path / f"{index}.png"))
        Image.fromarray(np.zeros((height, width, 3), dtype=np.uint8)).save(paths[-1])
    assert decoded_bytes(paths, None, 3) == (40 * 20 + 60 * 30) // 2 * 3 * 2  # the images' own sizes


def test_a_model_that_fails_to_compile_runs_eagerly_alone_and_says_so(capsys) -> None:
    import torch._dynamo
    from torch._dynamo.backends.registry import register_backend

    @register_backend(name="podium_test_broken")
    def broken(graph: torch.fx.GraphModule, example_inputs: list) -> None:
        raise RuntimeError("this backend cannot compile anything")

    torch._dynamo.reset()
    model = torch.nn.Linear(3, 2)
    wrapped = perf.compile_model(model, "default", "podium_test_broken")
    inputs = torch.rand(4, 3)
    assert torch.equal(wrapped(inputs), model(inputs))
    assert "this model runs eagerly" in capsys.readouterr().out
    assert wrapped(inputs).shape == (4, 2) and capsys.readouterr().out == ""  # said once
    assert perf.original_module(wrapped) is model
    assert list(wrapped.state_dict()) == [f"_orig_mod.{key}" for key in model.state_dict()]
    assert wrapped.in_features == 3  # the model's attributes, as torch's OptimizedModule gives them
    assert not torch._dynamo.config.suppress_errors  # the fallback is this model's, not the process's
    with pytest.raises(torch._dynamo.exc.BackendCompilerFailed):
        torch.compile(torch.nn.Linear(3, 2), backend="podium_test_broken")(inputs)


def test_gpu_utilisation_reads_the_gpu_this_process_uses_by_pci_bus_id(monkeypatch) -> None:
    """Under CUDA_VISIBLE_DEVICES=3 torch's cuda:0 is NVML's GPU 3: the bus id names it for both."""
    asked: list[str] = []
    fake_nvml = types.SimpleNamespace(
        nvmlInit=lambda: None,
        nvmlDeviceGetHandleByPciBusId=lambda bus_id: asked.append(bus_id) or f"handle {bus_id}",
        nvmlDeviceGetHandleByIndex=lambda index: pytest.fail("NVML's index is not torch's"),
    )
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml)
    properties = types.SimpleNamespace(pci_domain_id=0, pci_bus_id=0x3B, pci_device_id=0)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device=None: properties)
    assert perf.GpuUtilisation(CUDA).handle == "handle 00000000:3B:00.0"
    assert asked == ["00000000:3B:00.0"]


def test_a_single_process_under_torchrun_joins_a_process_group(monkeypatch) -> None:
    """torchrun --nproc_per_node=1 on one GPU runs DDP over NCCL as two processes would (gloo here)."""
    import socket

    import torch.distributed as dist

    from ..core.distributed import init_runtime, shutdown

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    for key, value in {"WORLD_SIZE": "1", "RANK": "0", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("MASTER_PORT", str(port))
    monkeypatch.delenv("TORCHELASTIC_RUN_ID", raising=False)
    assert not init_runtime("cpu").distributed  # a plain process: no group
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "test")
    runtime = init_runtime("cpu")
    try:
        assert runtime.distributed and dist.is_initialized() and dist.get_backend() == "gloo"
    finally:
        shutdown(runtime)
    assert not dist.is_initialized()
