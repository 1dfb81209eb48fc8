"""The training loop's time per step over a bare PyTorch loop's (target <= 1.10), in a freshly rendered project.

python benchmarks/train_loop_overhead.py [--backbone resnet18 --steps 20] [--smoke]
    (--smoke: timm's test_resnet at 32 px, batch 8, 3 steps, one repeat)
"""

from __future__ import annotations

import sys

from _project import one_thread_when, run_in_project

SMOKE = ["--backbone", "test_resnet", "--image-size", "32", "--batch-size", "8", "--steps", "3", "--repeats", "1"]

if __name__ == "__main__":
    smoke = "--smoke" in sys.argv
    one_thread_when(smoke)
    arguments = [word for word in sys.argv[1:] if word != "--smoke"]
    run_in_project("tools.bench", ["train-loop", *(SMOKE if smoke else []), *arguments])
