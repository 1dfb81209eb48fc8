"""Render the template into a temporary folder and run its training-loop benchmark (ratio to bare PyTorch).

python benchmarks/train_loop_overhead.py [bench options, e.g. --backbone resnet18 --steps 20]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from podium.project import create_project


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        project = create_project(Path(folder) / "bench", data={"project_name": "Bench"}, defaults=True, quiet=True)
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled", "NO_ALBUMENTATIONS_UPDATE": "1"}
        subprocess.run([sys.executable, "-m", "bench.bench", *sys.argv[1:]], cwd=project, env=env, check=True)


if __name__ == "__main__":
    main()
