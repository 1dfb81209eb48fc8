"""DDP on one machine, for this task: two CPU processes under torchrun with gloo train every fold, rank 0 alone
prints and writes, and validation is sharded over both ranks and gathered."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from ..config import load_config
from ..tasks import SPEC
from .conftest import PACKAGE, PROJECT_ROOT, WRITERS, task_overrides


@pytest.mark.slow
def test_torchrun_two_processes_with_gloo(tmp_path: Path) -> None:
    WRITERS[SPEC.name](tmp_path / "data")
    overrides = [*task_overrides(tmp_path / "data", tmp_path / "outputs"), "train.device=cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    folds = subprocess.run(
        [sys.executable, "-m", PACKAGE, "folds", *overrides], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True
    )
    assert folds.returncode == 0, folds.stdout + folds.stderr
    command = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", PACKAGE, "train", *overrides]
    result = subprocess.run(
        [sys.executable, *command], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "2 processes" in result.stdout
    run = tmp_path / "outputs" / "baseline"
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics["folds"]) == {"0", "1"}
    assert result.stdout.count("fold 0 epoch 1:") == 1  # rank 0 alone printed the epoch lines
    # OOF covers each validated image once: both ranks' shards gathered, none twice.
    blend = SPEC.parts.blend()
    classes = json.loads((run / "classes.json").read_text())
    ids, _ = blend.read_member(SPEC.create_task(load_config(overrides), classes), run / blend.OOF_FILE, "OOF")
    labelled = pd.read_csv(run / "folds.csv", dtype={"id": str})
    assert sorted(map(str, ids)) == sorted(labelled["id"])
