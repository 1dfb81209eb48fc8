"""Preflight speed: images (and masks) decoded per second by `check` on each demo competition and on 384-px
JPEGs, with one worker process and with all cores, and the whole command's wall time.

python benchmarks/check_speed.py [--tasks classification detection segmentation]
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
from podium.demo import DEMOS
from podium.project import create_project

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled", "NO_ALBUMENTATIONS_UPDATE": "1"}
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


def check_speed(task: str, workers: int) -> tuple[int, float, float]:
    """(images decoded, images/s, wall seconds of the whole `check` command) on the task's demo competition
    (`photos`: the classification demo's project on 384-px JPEGs)."""
    demo = DEMOS["classification" if task == "photos" else task]
    package = demo.answers["package_name"]
    with tempfile.TemporaryDirectory() as folder:
        project = create_project(Path(folder) / package, data=dict(demo.answers), defaults=True, quiet=True)
        write = write_photos if task == "photos" else demo.write
        write(project / "data", Path(folder) / "holdout")
        extra = ["data.image_ext=.jpg"] if task == "photos" else []
        started = time.perf_counter()
        output = subprocess.run(
            [sys.executable, "-m", package, "check", f"--workers={workers}", *demo.fast, *extra],
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
    return int(found.group(1)), float(found.group(3)), wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", nargs="+", default=[*DEMOS, "photos"])
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    print(f"{'task':<15}{'images':>8}{'1 worker img/s':>16}{f'{cores} workers img/s':>18}{'command s':>11}")
    for task in args.tasks:
        images, single, _ = check_speed(task, 1)
        _, parallel, wall = check_speed(task, cores)
        print(f"{task:<15}{images:>8}{single:>16.0f}{parallel:>18.0f}{wall:>11.1f}")


if __name__ == "__main__":
    main()
