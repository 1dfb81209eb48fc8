"""Every benchmark in benchmarks/ runs in its --smoke mode, exits 0 and prints figures; gpu_check.py --cpu --smoke
lists every GPU-only path. A script is a benchmark when it runs as a program (it has a `__main__` block); the
others are its libraries."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from .conftest import REPO_ROOT

# One worker runs this module under pytest-xdist: its fixture starts every selected smoke run, and a second worker
# would start them all again.
pytestmark = pytest.mark.xdist_group("benchmark_smoke_runs")
BENCHMARKS = REPO_ROOT / "benchmarks"
EXTRA_ARGUMENTS = {"gpu_check.py": ["--cpu"]}  # no GPU here: the same paths on the CPU
# The smoke runs go two at a time (one torch thread each), the longest first: seconds measured alone on 2 CPU
# cores, for the order only.
EXPECTED_SECONDS = {
    "gpu_check.py": 43,
    "toolbox_gains.py": 42,
    "gpu_throughput.py": 34,
    "vs_hand_loop.py": 34,
    "eda_speed.py": 26,
    "tuning_gains.py": 21,
    "ensembling_gains.py": 19,
    "check_speed.py": 19,
    "detection_speed.py": 17,
    "segmentation_speed.py": 16,
}
PARALLEL = 2
TIMEOUT = 300
FIGURE = re.compile(r"\d+\.\d+|\d+ (%|img/s|images)")
GPU_PATHS = [
    "fp16 + GradScaler",
    "bf16",
    "channels-last",
    "inductor compile",
    "pinned non-blocking copies",
    "DDP under torchrun",
    "parallel folds",
    "GPU utilisation (NVML)",
    "throughput classification",
    "throughput detection",
    "throughput segmentation",
]


def benchmark_scripts() -> list[str]:
    return sorted(path.name for path in BENCHMARKS.glob("*.py") if 'if __name__ == "__main__":' in path.read_text())


@dataclass
class SmokeRun:
    code: int
    stdout: str
    stderr: str
    seconds: float

    def tail(self) -> str:
        return f"exit {self.code} after {self.seconds:.0f} s\n{self.stdout[-3000:]}\n{self.stderr[-3000:]}"


def run_smoke(script: str, home: Path) -> SmokeRun:
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "WANDB_MODE": "disabled",
        "NO_ALBUMENTATIONS_UPDATE": "1",
        "OMP_NUM_THREADS": "1",  # the smoke runs share the cores
        "PODIUM_HOME": str(home),  # each its own template store: concurrent renders never share a git lock
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT / "generator"), os.environ.get("PYTHONPATH")])),
    }
    command = [sys.executable, str(BENCHMARKS / script), "--smoke", *EXTRA_ARGUMENTS.get(script, [])]
    started = time.perf_counter()
    try:
        result = subprocess.run(
            command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired as error:
        output = error.stdout.decode() if isinstance(error.stdout, bytes) else error.stdout or ""
        return SmokeRun(-1, output, f"timed out after {TIMEOUT} s", time.perf_counter() - started)
    return SmokeRun(result.returncode, result.stdout, result.stderr, time.perf_counter() - started)


def selected_scripts(session: pytest.Session) -> list[str]:
    """The scripts whose smoke runs the selected tests read (all of them unless -k narrows the run)."""
    chosen: set[str] = set()
    for item in session.items:
        if item.module is not None and item.module.__name__ == __name__:
            callspec = getattr(item, "callspec", None)
            chosen.add(callspec.params["script"] if callspec else "gpu_check.py")
    return sorted(chosen, key=lambda name: -EXPECTED_SECONDS.get(name, 10))


@pytest.fixture(scope="module")
def smoke_runs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    pool = ThreadPoolExecutor(PARALLEL)
    runs: dict[str, Future[SmokeRun]] = {
        script: pool.submit(run_smoke, script, tmp_path_factory.mktemp(f"home-{script}"))
        for script in selected_scripts(request.session)
    }
    yield runs
    pool.shutdown(cancel_futures=True)


def test_every_benchmark_has_a_smoke_mode() -> None:
    scripts = benchmark_scripts()
    assert "gpu_check.py" in scripts and "gpu_throughput.py" in scripts
    missing = [script for script in scripts if "--smoke" not in (BENCHMARKS / script).read_text()]
    assert not missing, f"benchmarks without --smoke: {missing}"


@pytest.mark.slow
@pytest.mark.parametrize("script", benchmark_scripts())
def test_benchmark_smoke_run_prints_figures(script: str, smoke_runs: dict) -> None:
    run = smoke_runs[script].result()
    print(f"{script}: {run.seconds:.1f} s")
    assert run.code == 0, run.tail()
    figures = [line for line in run.stdout.splitlines() if FIGURE.search(line) and not line.startswith("$")]
    assert figures, f"no line with a figure:\n{run.tail()}"


@pytest.mark.slow
def test_gpu_check_on_the_cpu_lists_every_gpu_path(smoke_runs: dict) -> None:
    run = smoke_runs["gpu_check.py"].result()
    assert run.code == 0, run.tail()
    table = run.stdout[run.stdout.index("gpu_check on ") :].splitlines()
    assert table[1].split() == ["path", "status", "seconds", "figure", "note"]
    rows = {path: next((line for line in table[2:] if path in line), None) for path in GPU_PATHS}
    assert all(rows.values()), f"paths missing from the table: {[p for p, r in rows.items() if r is None]}"
    statuses = {path: row.split(path, 1)[1].split()[0] for path, row in rows.items() if row}
    skipped = {path for path, status in statuses.items() if status == "skipped"}
    # On the CPU only compile (under --smoke) and the NVML readout have reasons to be skipped.
    assert skipped <= {"inductor compile", "GPU utilisation (NVML)"}, statuses
    assert all(status in ("ok", "skipped") for status in statuses.values()), statuses
    assert "gloo DDP under torchrun" in run.stdout
