"""Preflight speed: images (and masks) decoded per second by `check` on each demo competition and on 384-px
JPEGs, with one worker process and with all cores, and the whole command's wall time.

python benchmarks/check_speed.py [--tasks classification detection segmentation photos] [--smoke]
    (--smoke: the detection demo at 48 scenes)
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from _project import ENV, demo_scale, one_thread_when, table
from podium.demo import DEMOS
from podium.render import create_project

SPEED = re.compile(r"(\d+) images decoded in ([\d.]+) s \((\d+) images/s\)")


def write_photos(data: Path, holdout: Path, count: int = 600, size: int = 384) -> dict[str, int]:
    """A classification competition of `count` noisy JPEGs of `size` px (decoding costs what photos cost)."""
    rng = np.random.default_rng(0)
    for folder in ("train", "test"):
        (data / folder).mkdir(parents=True)
    labels = []
    for index in range(count):
        folder = "test" if index % 5 == 0 else "train"
        image = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
        cv2.imwrite(str(data / folder / f"{index:05d}.jpg"), image)
        if folder == "train":
            labels.append({"id": f"{index:05d}", "label": str(index % 3)})
    pd.DataFrame(labels).to_csv(data / "train.csv", index=False)
    test_ids = sorted(path.stem for path in (data / "test").glob("*.jpg"))
    pd.DataFrame({"id": test_ids, "label": "0"}).to_csv(data / "sample_submission.csv", index=False)
    return {"train": len(labels), "test": len(test_ids)}


def check_speed(task: str, workers: list[int], smoke: bool) -> list[tuple[int, float, float]]:
    """(images decoded, images/s, wall seconds of the whole `check` command) for each worker count, on the task's
    demo competition (`photos`: the classification demo's project on 384-px JPEGs)."""
    demo = DEMOS["classification" if task == "photos" else task]
    package = demo.answers["package_name"]
    results = []
    with tempfile.TemporaryDirectory() as folder:
        project = create_project(Path(folder) / package, data=dict(demo.answers), defaults=True, quiet=True)
        with demo_scale(smoke):
            if task == "photos":
                write_photos(project / "data", Path(folder) / "holdout", count=30 if smoke else 600)
            else:
                demo.write(project / "data", Path(folder) / "holdout")
        extra = ["data.image_ext=.jpg"] if task == "photos" else []
        for count in workers:
            started = time.perf_counter()
            output = subprocess.run(
                [sys.executable, "-m", package, "check", f"--workers={count}", *demo.fast, *extra],
                cwd=project,
                env=ENV,
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            wall = time.perf_counter() - started
            found = SPEED.search(" ".join(output.split()))
            if found is None:
                raise SystemExit(f"check printed no speed line:\n{output}")
            results.append((int(found.group(1)), float(found.group(3)), wall))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=None, help="default: the three demos and photos")
    parser.add_argument("--smoke", action="store_true", help="seconds: to check the benchmark runs")
    args = parser.parse_args()
    one_thread_when(args.smoke)
    tasks = args.tasks or (["detection"] if args.smoke else [*DEMOS, "photos"])
    cores = os.cpu_count() or 1
    rows = []
    for task in tasks:
        (images, single, _), (_, parallel, wall) = check_speed(task, [1, cores], args.smoke)
        rows.append([task, str(images), f"{single:.0f}", f"{parallel:.0f}", f"{wall:.1f}"])
    print(table(["task", "images", "1 worker img/s", f"{cores} workers img/s", "command s"], rows))


if __name__ == "__main__":
    main()
