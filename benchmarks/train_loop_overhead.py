"""The training loop's time per step over a bare PyTorch loop's (target <= 1.10), in a freshly rendered project.

python benchmarks/train_loop_overhead.py [--backbone resnet18 --steps 20]
"""

from __future__ import annotations

import sys

from _project import run_in_project

if __name__ == "__main__":
    run_in_project("tools.bench", ["train-loop", *sys.argv[1:]])
