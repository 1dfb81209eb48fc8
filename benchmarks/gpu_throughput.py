"""Does podium's loop keep the accelerator busy? On each demo competition (classification, detection, segmentation),
fold 0 trains for N epochs (CUDA when present, else CPU with the demos' small sizes), and one table reports:

- start to first step: from launching `train` to its first optimizer step, and that over the time to import
  torch and build the model (CPU target <= 1.5);
- steady training images/s of podium's loop and of a plain PyTorch loop on the same model, data and batch size
  (benchmarks/bare_loop.py: its own Dataset without augmentation, a DataLoader with the same workers and pinned
  memory, AdamW, autocast and channels-last on CUDA), and their ratio (GPU target >= 0.8 for classification);
- the fixed cost per epoch (outside the training and validation loops and the checkpoint write; CPU target
  <= 0.1 s), the checkpoint write, epoch max/min over the steady epochs (target <= 1.5), first/steady epoch
  (GPU target <= 2);
- validation and prediction images/s, mean GPU utilisation (GPU target >= 70 %) and peak memory.

python benchmarks/gpu_throughput.py [--tasks classification detection segmentation] [--epochs 10] [--workers N]
    [--cpu]                 (train on the CPU where a GPU is present)
    [--set key=value ...]   (extra overrides for every run, e.g. train.batch_size=256 on a GPU)
    [--profile]             (then, per task, where `train`'s time goes: cProfile's functions by cumulative time,
                             and torch.profiler's operators by self time)
    [--smoke]               (seconds: the detection demo only, 48 scenes, 2 epochs of 2 steps of 4, no workers)
"""

from __future__ import annotations

import argparse
import io
import json
import math
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from _project import (
    BENCHMARKS,
    ENV,
    ProjectShell,
    add_project_bench,
    cpu_threads,
    demo_scale,
    last_line,
    one_thread_when,
    smoke_training,
    table,
)
from podium.demo import DEMOS
from podium.render import create_project

BARE = """
import sys
sys.path.insert(0, {benchmarks!r})
from pathlib import Path
import bare_loop
print(bare_loop.images_per_second({package!r}, Path("outputs/baseline"), {epochs}, {device!r}))
"""
PREDICT = """
from {package}.core.run_config import load_run_config
from {package}.tools.bench import predict_images_per_second
print(predict_images_per_second(load_run_config({settings!r}, stage="bench predict")))
"""


def _run(project: Path, package: str, *words: str, timeout: float | None = None) -> str:
    """A fresh process (what the time to the first step includes): `python -m` with `words`."""
    result = subprocess.run(
        [sys.executable, "-m", *words], cwd=project, env=ENV, capture_output=True, text=True, timeout=timeout
    )
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(words[:2])} failed in {package}:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    return result.stdout


def cprofile_table(project: Path, package: str, settings: list[str], rows: int = 20) -> str:
    """`train` under cProfile: the project's own functions by cumulative time (where the loop spends it), then
    every function by its own time (the hot spots underneath)."""
    output = project / "train.prof"
    _run(project, package, "cProfile", "-o", str(output), "-m", package, "train", *settings)
    tables = []
    for order, restriction in (("cumulative", rf"{package}/(?!cli|__main__)"), ("tottime", ".")):
        stream = io.StringIO()
        stats = pstats.Stats(str(output), stream=stream)
        stats = stats.sort_stats(order) if order == "cumulative" else stats.strip_dirs().sort_stats(order)
        stats.print_stats(restriction, rows)
        text = stream.getvalue()
        tables.append(f"-- by {order} --\n" + text[text.find("ncalls") :].replace(str(project), "."))
    return "\n".join(tables)


def settings_for(task: str, epochs: int, workers: int, extra: list[str], smoke: bool) -> list[str]:
    """The demo's settings, fold 0 only, every epoch validated (its time is a column)."""
    demo = DEMOS[task]
    kept = [word for word in demo.fast if not word.startswith(("train.epochs", "train.max_steps", "data.num_workers"))]
    return [
        *kept,
        f"train.epochs={epochs}",
        "train.eval_every=1",
        "folds.train_folds=[0]",
        *smoke_training(task, smoke),
        f"data.num_workers={workers}",
        *extra,
    ]


def render_demo(task: str, folder: Path, smoke: bool) -> Path:
    """The task's demo project with its competition written in (SMOKE_SCENES scenes with `smoke`)."""
    demo = DEMOS[task]
    project = create_project(folder / demo.answers["package_name"], data=dict(demo.answers), defaults=True, quiet=True)
    add_project_bench(project)
    with demo_scale(smoke):
        demo.write(project / "data", folder / "holdout")
    return project


def measure(
    task: str,
    epochs: int,
    workers: int,
    extra: list[str],
    folder: Path,
    *,
    profile: bool = False,
    smoke: bool = False,
) -> dict[str, float]:
    """One row of the table: the task's demo rendered into `folder`, measured with a fresh `train` process."""
    project = render_demo(task, folder, smoke)
    package = DEMOS[task].answers["package_name"]
    settings = settings_for(task, epochs, workers, extra, smoke)
    with ProjectShell(project, package) as shell:
        row = measure_project(shell, settings, epochs)
    if profile:
        print(f"== {task}: cProfile of train, by cumulative time ==\n{cprofile_table(project, package, settings)}")
        profiled = _run(project, package, f"{package}.tools.bench", "profile", *settings)
        print(f"== {task}: torch.profiler of train, operators by self time ==\n{profiled}")
    return row


def measure_project(
    shell: ProjectShell,
    settings: list[str],
    epochs: int,
    *,
    first_step: bool = True,
    seconds: float | None = None,
) -> dict[str, float]:
    """The figures of one demo project (outputs/baseline, fold 0). Without `first_step` the training runs in the
    shell's process, with no fresh start-up to time (gpu_check.py, to keep within its budget). `seconds`: for all
    the commands together; the one running when they are spent is stopped (StageFailed, or TimeoutExpired)."""
    project, package = shell.project, shell.package
    device = "cpu" if "train.device=cpu" in settings else None
    ends = None if seconds is None else time.perf_counter() + seconds

    def left() -> float | None:
        return None if ends is None else max(ends - time.perf_counter(), 1.0)

    first, build_seconds = math.nan, math.nan
    shell.cli("folds", *settings, timeout=left())
    if first_step:
        started = time.perf_counter()
        _run(project, package, f"{package}.tools.bench", "build", *settings, timeout=left())
        build_seconds = time.perf_counter() - started
        launched = time.time()
        _run(project, package, package, "train", *settings, timeout=left())
    else:
        shell.cli("train", *settings, timeout=left())
    bare_code = BARE.format(benchmarks=str(BENCHMARKS), package=package, epochs=epochs, device=device)
    bare = float(last_line(shell.code(bare_code, timeout=left())))
    predict = float(last_line(shell.code(PREDICT.format(package=package, settings=settings), timeout=left())))
    run = project / "outputs" / "baseline"
    if first_step:
        first = json.loads((run / "fold_0" / "metrics.json").read_text())["first_step_unix"] - launched
    history = pd.read_csv(run / "fold_0" / "history.csv")
    steady = history.iloc[1:] if len(history) > 1 else history
    folds = pd.read_csv(run / "folds.csv")
    valid_images = int((folds["fold"] == 0).sum())
    podium = float(steady["images_per_s"].median())
    return {
        "first_step_s": first,
        "first_step_ratio": first / build_seconds,
        "podium_img_s": podium,
        "bare_img_s": bare,
        "ratio": podium / bare,
        "fixed_s": float(steady["fixed_seconds"].median()),
        "checkpoint_s": float(steady["checkpoint_seconds"].median()),
        "epoch_max_min": float(steady["seconds"].max() / steady["seconds"].min()),
        "first_over_steady": float(history["seconds"].iloc[0] / statistics.median(steady["seconds"])),
        "valid_img_s": valid_images / float(steady["valid_seconds"].median()),
        "predict_img_s": predict,
        "gpu_util": float(history["gpu_util"].mean()),
        "peak_mem_mb": float(history["peak_mem_mb"].max()),
    }


COLUMNS = [
    ("first_step_s", "1st step s", "{:.1f}"),
    ("first_step_ratio", "/build", "{:.2f}"),
    ("podium_img_s", "podium img/s", "{:.0f}"),
    ("bare_img_s", "bare img/s", "{:.0f}"),
    ("ratio", "ratio", "{:.2f}"),
    ("fixed_s", "fixed s", "{:.3f}"),
    ("checkpoint_s", "ckpt s", "{:.3f}"),
    ("epoch_max_min", "max/min", "{:.2f}"),
    ("first_over_steady", "1st/steady", "{:.2f}"),
    ("valid_img_s", "valid img/s", "{:.0f}"),
    ("predict_img_s", "pred img/s", "{:.0f}"),
    ("gpu_util", "GPU %", "{:.0f}"),
    ("peak_mem_mb", "peak MB", "{:.0f}"),
]


def device_name(cpu: bool) -> str:
    import torch

    if torch.cuda.is_available() and not cpu:
        return torch.cuda.get_device_name(0)
    return f"CPU (torch threads: {cpu_threads()})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=None, help="default: all three (--smoke: detection)")
    parser.add_argument("--epochs", type=int, default=None, help="default 10 (--smoke: 2)")
    parser.add_argument("--workers", type=int, default=None, help="data.num_workers, both loops (default 2, smoke 0)")
    parser.add_argument("--cpu", action="store_true", help="train.device=cpu where a GPU is present")
    parser.add_argument("--set", nargs="*", default=[], help="extra key=value overrides for every run")
    parser.add_argument("--profile", action="store_true", help="print where train's time goes, per task")
    parser.add_argument("--smoke", action="store_true", help="a few seconds a task, to check the benchmark runs")
    args = parser.parse_args()
    one_thread_when(args.smoke)
    tasks = args.tasks or (["detection"] if args.smoke else list(DEMOS))
    epochs = args.epochs or (2 if args.smoke else 10)
    workers = args.workers if args.workers is not None else (0 if args.smoke else 2)
    extra = [*(["train.device=cpu"] if args.cpu else []), *args.set]
    with tempfile.TemporaryDirectory() as folder:
        rows = {
            task: measure(task, epochs, workers, extra, Path(folder) / task, profile=args.profile, smoke=args.smoke)
            for task in tasks
        }
    print(f"{device_name(args.cpu)}; fold 0, {epochs} epochs, {workers} loader workers")
    cells = [[task, *(fmt.format(row[key]) for key, _, fmt in COLUMNS)] for task, row in rows.items()]
    print(table(["task", *(title for _, title, _ in COLUMNS)], cells))


if __name__ == "__main__":
    main()
