"""Preflight speed: images (and masks) decoded per second by `check` on each demo competition, with one worker
process and with all cores, and the whole command's wall time.

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

from podium.demo import DEMOS
from podium.project import create_project

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled", "NO_ALBUMENTATIONS_UPDATE": "1"}
SPEED = re.compile(r"(\d+) images decoded in ([\d.]+) s \((\d+) images/s\)")


def check_speed(task: str, workers: int) -> tuple[int, float, float]:
    """(images decoded, images/s, wall seconds of the whole `check` command) on the task's demo competition."""
    demo = DEMOS[task]
    package = demo.answers["package_name"]
    with tempfile.TemporaryDirectory() as folder:
        project = create_project(Path(folder) / package, data=dict(demo.answers), defaults=True, quiet=True)
        demo.write(project / "data", Path(folder) / "holdout")
        started = time.perf_counter()
        output = subprocess.run(
            [sys.executable, "-m", package, "check", f"--workers={workers}", *demo.fast],
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
    parser.add_argument("--tasks", nargs="+", default=list(DEMOS))
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    print(f"{'task':<15}{'images':>8}{'1 worker img/s':>16}{f'{cores} workers img/s':>18}{'command s':>11}")
    for task in args.tasks:
        images, single, _ = check_speed(task, 1)
        _, parallel, wall = check_speed(task, cores)
        print(f"{task:<15}{images:>8}{single:>16.0f}{parallel:>18.0f}{wall:>11.1f}")


if __name__ == "__main__":
    main()
