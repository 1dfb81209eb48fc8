"""EDA throughput and memory: images/s on N generated 256 px images (target >= 300 on 2 cores) and peak memory
at 1,000 versus 10,000 images (target: within 15 %).

python benchmarks/eda_speed.py [--small 1000 --large 10000 --workers 2] [--smoke]   (--smoke: 20 and 60 images)
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from _project import ENV, one_thread_when
from podium.render import create_project

PACKAGE = "bench_eda"


def write_images(root: Path, count: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    (root / "train").mkdir(parents=True)
    (root / "test").mkdir()
    base = rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)
    labels = []
    for i in range(count):
        image = np.roll(base, int(rng.integers(0, 256)), axis=int(i % 2))
        cv2.rectangle(
            image, (int(rng.integers(0, 200)), 20), (230, 200), tuple(int(c) for c in rng.integers(0, 255, 3)), -1
        )
        folder = "train" if i % 5 else "test"
        cv2.imwrite(str(root / folder / f"{i:06d}.png"), image)
        if folder == "train":
            labels.append({"id": f"{i:06d}", "label": "ab"[i % 2]})
    pd.DataFrame(labels).to_csv(root / "train.csv", index=False)


def run_eda(project: Path, data: Path, workers: int) -> tuple[float, int]:
    """Wall seconds and peak resident memory (KiB) of one `eda` process tree."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            PACKAGE,
            "eda",
            f"data.root={data}",
            "--workers",
            str(workers),
            "--output",
            str(data / "reports"),
            "--suggested",
            str(data / "suggested.yaml"),
        ],
        cwd=project,
        env=ENV,
        check=True,
        capture_output=True,
    )
    seconds = time.perf_counter() - started
    return seconds, max(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, before)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--large", type=int, default=10000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--smoke", action="store_true", help="20 and 60 images: to check the benchmark runs")
    args = parser.parse_args()
    one_thread_when(args.smoke)
    if args.smoke:
        args.small, args.large = 20, 60
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        project = create_project(root / PACKAGE, data={"project_name": "Bench EDA"}, defaults=True, quiet=True)
        results = {}
        for count in (args.small, args.large):
            data = root / f"data{count}"
            write_images(data, count)
            # Each size runs in a fresh process so that its peak memory is its own.
            code = (
                f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import eda_speed as b; "
                f"from pathlib import Path; s, m = b.run_eda(Path({str(project)!r}), Path({str(data)!r}), "
                f"{args.workers}); print(s, m)"
            )
            seconds, peak = subprocess.run(
                [sys.executable, "-c", code], env=ENV, capture_output=True, text=True, check=True
            ).stdout.split()
            results[count] = (float(seconds), int(peak))
            print(
                f"{count:>6} images: {count / float(seconds):7.1f} images/s ({float(seconds):.1f} s, with start-up), "
                f"peak memory {int(peak) / 1024:.0f} MiB"
            )
        small, large = results[args.small], results[args.large]
        print(f"images/s at {args.large}: {args.large / large[0]:.1f} (target >= 300 on 2 cores)")
        print(f"peak memory {args.large} / {args.small}: {large[1] / small[1]:.3f} (target <= 1.15)")


if __name__ == "__main__":
    main()
