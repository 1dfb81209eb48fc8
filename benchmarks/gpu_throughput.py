"""Does podium's loop keep the accelerator busy? On each demo competition, fold 0 trains for N epochs (CUDA when
present, else CPU with the demos' small sizes), and one table reports:

- start to first step: from launching `train` to its first optimizer step, and that over the time to import
  torch and build the model (CPU target <= 1.5);
- steady training images/s of podium's loop, of a bare loop on the same model with one batch kept on the device,
  and their ratio (GPU target >= 0.8 for classification);
- the fixed cost per epoch (outside the training and validation loops and the checkpoint write; CPU target
  <= 0.1 s), the checkpoint write, epoch max/min over the steady epochs (target <= 1.5), first/steady epoch
  (GPU target <= 2);
- validation and prediction images/s, mean GPU utilisation (GPU target >= 70 %) and peak memory.

python benchmarks/gpu_throughput.py [--tasks classification detection segmentation] [--epochs 10] [--workers N]
    [--set key=value ...]   (extra overrides for every run, e.g. train.batch_size=256 on a GPU)
    [--profile]             (then, per task, where `train`'s time goes: cProfile's functions by cumulative time,
                             and torch.profiler's operators by self time)
"""

from __future__ import annotations

import argparse
import io
import json
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from podium.demo import DEMOS, _project_env
from podium.project import create_project


def _run(project: Path, package: str, *words: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", *words], cwd=project, env=_project_env(), capture_output=True, text=True
    )
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(words[:2])} failed in {package}:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    return result.stdout


def _rate(output: str) -> float:
    return float(output.strip().splitlines()[-1].split(":")[-1])


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


def measure(
    task: str, epochs: int, workers: int, extra: list[str], folder: Path, profile: bool = False
) -> dict[str, float]:
    demo = DEMOS[task]
    package = demo.answers["package_name"]
    project = create_project(folder / package, data=dict(demo.answers), defaults=True, quiet=True)
    demo.write(project / "data", folder / "holdout")
    settings = [
        *[word for word in demo.fast if not word.startswith(("train.epochs", "train.max_steps", "data.num_workers"))],
        f"train.epochs={epochs}",
        "train.eval_every=1",
        "folds.train_folds=[0]",
        f"data.num_workers={workers}",
        *extra,
    ]
    _run(project, package, package, "folds", *settings)
    started = time.perf_counter()
    _run(project, package, f"{package}.tools.bench", "build", *settings)
    build_seconds = time.perf_counter() - started
    launched = time.time()
    _run(project, package, package, "train", *settings)
    run = project / "outputs" / "baseline"
    first_step = json.loads((run / "fold_0" / "metrics.json").read_text())["first_step_unix"] - launched
    history = pd.read_csv(run / "fold_0" / "history.csv")
    steady = history.iloc[1:] if len(history) > 1 else history
    folds = pd.read_csv(run / "folds.csv")
    valid_images = int((folds["fold"] == 0).sum())
    podium = float(steady["images_per_s"].median())
    bare = _rate(_run(project, package, f"{package}.tools.bench", "bare", *settings))
    predict = _rate(_run(project, package, f"{package}.tools.bench", "predict", *settings))
    if profile:
        print(f"== {task}: cProfile of train, by cumulative time ==\n{cprofile_table(project, package, settings)}")
        table = _run(project, package, f"{package}.tools.bench", "profile", *settings)
        print(f"== {task}: torch.profiler of train, operators by self time ==\n{table}")
    return {
        "first_step_s": first_step,
        "first_step_ratio": first_step / build_seconds,
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=list(DEMOS))
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2, help="data.num_workers")
    parser.add_argument("--set", nargs="*", default=[], help="extra key=value overrides for every run")
    parser.add_argument("--profile", action="store_true", help="print where train's time goes, per task")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        rows = {
            task: measure(task, args.epochs, args.workers, args.set, Path(folder) / task, args.profile)
            for task in args.tasks
        }
    titles = [title for _, title, _ in COLUMNS]
    widths = [max(len(title), 7) + 1 for title in titles]

    def line(first: str, cells: list[str]) -> str:
        return f"{first:<15}" + "".join(f"{cell:>{width}}" for cell, width in zip(cells, widths, strict=True))

    print(line("task", titles))
    for task, row in rows.items():
        print(line(task, [fmt.format(row[key]) for key, _, fmt in COLUMNS]))


if __name__ == "__main__":
    main()
