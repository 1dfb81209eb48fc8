"""`podium --help` wall time (target < 0.5 s) beside a bare `python -c pass`, medians of N runs.

python benchmarks/cli_startup.py [N] [--smoke]   (--smoke: one run each)
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time


def median_seconds(command: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("runs", nargs="?", type=int, default=7)
    parser.add_argument("--smoke", action="store_true", help="one run each, to check the benchmark runs")
    args = parser.parse_args()
    runs = 1 if args.smoke else args.runs
    bare = median_seconds([sys.executable, "-c", "pass"], runs)
    help_time = median_seconds([sys.executable, "-m", "podium", "--help"], runs)
    print(f"python -c pass:  {bare:.3f} s")
    print(f"podium --help:   {help_time:.3f} s (target < 0.5 s); ratio to bare interpreter {help_time / bare:.2f}")


if __name__ == "__main__":
    main()
