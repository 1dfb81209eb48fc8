"""DDP: two CPU processes under torchrun with gloo train like one, and only rank 0 writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import CSV_LAYOUT, PACKAGE, PROJECT_ROOT, fast_overrides


@pytest.mark.slow
def test_torchrun_two_processes_with_gloo(tmp_path: Path, competition: Path) -> None:
    overrides = [*CSV_LAYOUT, *fast_overrides(competition, tmp_path / "outputs"), "train.device=cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    folds = subprocess.run(
        [sys.executable, "-m", PACKAGE, "folds", *overrides], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True
    )
    assert folds.returncode == 0, folds.stdout + folds.stderr
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            PACKAGE,
            "train",
            *overrides,
        ],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    run = tmp_path / "outputs" / "baseline"
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics["folds"]) == {"0", "1"}
    # Rank 0 alone printed the epoch lines: one per fold.
    assert result.stdout.count("fold 0 epoch 1:") == 1
    # Validation was sharded over both ranks and gathered: OOF covers each validated id once.
    oof = (run / "oof.csv").read_text().splitlines()
    ids = [line.split(",")[0] for line in oof[1:]]
    assert len(ids) == len(set(ids)) == 24
