"""The run folder: where every stage reads and writes, with atomic writes and the resolved config."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

import pandas as pd

from ..config import Config, config_to_yaml, with_overrides
from .errors import ProjectError

try:  # POSIX: the lock is released by the OS when its holder dies, even by kill -9
    import fcntl
except ImportError:  # pragma: no cover - Windows runs without the run-folder lock
    fcntl = None  # type: ignore[assignment]

_UMASK = os.umask(0)
os.umask(_UMASK)


@dataclass(frozen=True)
class RunPaths:
    """Names of the files stages exchange inside `output_dir/experiment/`."""

    root: Path
    folds_override: Path | None = None

    @classmethod
    def from_config(cls, config: Config) -> RunPaths:
        return cls(config.output_dir / config.experiment, config.folds.path)

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def run_info(self) -> Path:
        return self.root / "run.json"

    @property
    def folds(self) -> Path:
        return self.folds_override or self.root / "folds.csv"

    @property
    def classes(self) -> Path:
        return self.root / "classes.json"

    @property
    def oof(self) -> Path:
        return self.root / "oof.csv"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.json"

    @property
    def tta(self) -> Path:
        return self.root / "tta.json"

    @property
    def lock(self) -> Path:
        return self.root / ".lock"

    @property
    def predictions(self) -> Path:
        return self.root / "predictions"

    @property
    def test_predictions(self) -> Path:
        return self.predictions / "test.csv"

    @property
    def submissions(self) -> Path:
        return self.root / "submissions"

    def fold_dir(self, fold: int) -> Path:
        return self.root / f"fold_{fold}"

    def checkpoint(self, fold: int, which: str) -> Path:
        return self.fold_dir(fold) / f"{which}.pt"

    def history(self, fold: int) -> Path:
        return self.fold_dir(fold) / "history.csv"

    def fold_oof(self, fold: int) -> Path:
        return self.fold_dir(fold) / "oof.csv"

    def fold_metrics(self, fold: int) -> Path:
        return self.fold_dir(fold) / "metrics.json"

    def fold_test_predictions(self, fold: int) -> Path:
        return self.predictions / f"test_fold_{fold}.csv"


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; it replaces `path` only if the block finishes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    os.chmod(temporary, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; outputs should be readable like any file
    try:
        yield Path(temporary)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def write_atomic(path: Path, write: Callable[[IO[str]], Any]) -> Path:
    with atomic_path(path) as temporary, open(temporary, "w") as handle:
        write(handle)
    return path


def write_text(path: Path, text: str) -> Path:
    return write_atomic(path, lambda handle: handle.write(text))


def write_bytes(path: Path, data: bytes) -> Path:
    with atomic_path(path) as temporary:
        temporary.write_bytes(data)
    return path


def write_json(path: Path, data: Any) -> Path:
    return write_text(path, json.dumps(data, indent=2, default=str) + "\n")


def write_csv(path: Path, frame: pd.DataFrame) -> Path:
    return write_atomic(path, lambda handle: frame.to_csv(handle, index=False))


def save_torch(path: Path, obj: Any) -> Path:
    import torch

    with atomic_path(path) as temporary:
        torch.save(obj, temporary)
    return path


def git_revision(cwd: Path = Path(".")) -> dict[str, Any]:
    """The code's git hash and whether the tree had uncommitted changes (None outside git)."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=cwd, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": bool(dirty)}


def save_resolved_config(config: Config, paths: RunPaths, stage: str, **facts: Any) -> None:
    """Keep what produced the run folder: each stage's resolved config and the code's git revision.

    `train` writes `config.yaml`, the run's defining config; later stages write `config.<stage>.yaml` so that
    predicting with other TTA views, say, never hides how the checkpoints were trained. `facts` are what the
    stage chose on this machine (train: the precision).
    """
    name = "config.yaml" if stage == "train" else f"config.{stage}.yaml"
    write_text(paths.root / name, config_to_yaml(config))
    info = read_json(paths.run_info) if paths.run_info.is_file() else {}
    info[stage] = {"time": datetime.now(timezone.utc).isoformat(), "config": name, "git": git_revision(), **facts}
    write_json(paths.run_info, info)


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def expand_variants(configs: list[Config]) -> tuple[list[Config], str]:
    """One config per run of a training-side ensemble, and the name of the run folder that blends them.

    `seeds=[0,1,2]` gives <experiment>-seed<k> runs; several experiment overlays give one run each. Variants
    with the same fold settings share the first run's fold file (unless folds.path is set), so their OOF
    predictions come from the same splits; one with other fold settings (a data ensemble) keeps its own.
    """
    base = configs[0]
    shared_folds = str(RunPaths.from_config(base).folds)
    variants = []
    for config in configs:
        # A variant with other fold settings (a data ensemble) keeps its own fold file.
        same_split = config.folds.model_dump(exclude={"path"}) == base.folds.model_dump(exclude={"path"})
        own_folds = str(RunPaths.from_config(config).folds)
        for seed in config.seeds or [None]:
            changes: dict = {"seeds": None}
            if seed is not None:
                changes.update(seed=seed, experiment=f"{config.experiment}-seed{seed}")
            if config.folds.path is None and (seed is not None or len(configs) > 1):
                changes["folds"] = {"path": shared_folds if same_split else own_folds}
            variants.append(with_overrides(config, changes))
    blend = base.experiment if len(configs) == 1 else "ensemble"
    return variants, blend


@dataclass(frozen=True)
class RunResult:
    """What `train` or a blend leaves in its run folder: the settings it ran with (what it fitted to the data
    included, as config.yaml has them) and metrics.json. A blend has no folds of its own: its CV is None."""

    config: Config
    metrics: dict[str, Any]


def validation_score(metrics: dict[str, Any]) -> float | None:
    """The score a run is judged by: its CV mean, or a blend's score on the OOF predictions of its members."""
    score = metrics.get("cv_mean")
    return metrics.get("oof_score") if score is None else score


def trained_folds(paths: RunPaths) -> list[int]:
    """The folds that the run's last training produced, as recorded in metrics.json."""
    if not paths.metrics.is_file():
        raise ProjectError(f"{paths.metrics}: not found; training has not finished (run `train`, or `train --resume`)")
    return sorted(int(fold) for fold in read_json(paths.metrics).get("folds", {}))


_HELD_LOCKS: dict[Path, IO[str]] = {}


def _acquire(handle: IO[str], wait: float) -> None:
    """flock without blocking, tried again until `wait` seconds have passed (BlockingIOError then)."""
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.2)  # run folders this process holds


@contextmanager
def run_lock(paths: RunPaths, stage: str, *, existing: bool = False, wait: float = 0) -> Iterator[None]:
    """Hold the run folder for one process: a second process stops in one line naming the holder (after waiting
    up to `wait` seconds for it). Re-entrant within a process; under torchrun only rank 0 takes it. `existing`: a
    stage that reads a trained run does not make an empty run folder when there is none."""
    if existing and not paths.root.is_dir():
        raise ProjectError(f"{paths.root}: no such run; train it first (run, train) or name another experiment=NAME")
    key = paths.root.resolve()
    if fcntl is None or os.environ.get("RANK", "0") != "0" or key in _HELD_LOCKS:
        yield  # held already by this process (a stage called inside another), or not this rank's to take
        return
    paths.root.mkdir(parents=True, exist_ok=True)
    handle = open(paths.lock, "a+")  # noqa: SIM115 - held open for the lock's lifetime
    try:
        _acquire(handle, wait)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise ProjectError(
            f"{paths.root} is in use by {holder}; wait for it to finish or choose another experiment=NAME"
        ) from None
    started = datetime.now().strftime("%H:%M:%S")
    handle.seek(0)
    handle.truncate()
    handle.write(f"`{stage}` (pid {os.getpid()} on {socket.gethostname()}, since {started})\n")
    handle.flush()
    _HELD_LOCKS[key] = handle
    try:
        yield
    finally:
        _HELD_LOCKS.pop(key, None)
        handle.seek(0)
        handle.truncate()
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


# What a training writes into its run folder; a new training (not --resume) moves an earlier one aside.
TRAINING_OUTPUTS = (
    "fold_*",
    "oof.csv",
    "oof.npz",
    "metrics.json",
    "postprocess.json",
    "predictions",
    "classes.json",
    "export",
)


def move_previous_training(paths: RunPaths) -> Path | None:
    """Move an earlier training's outputs to <run>/previous/<time>/, with a copy of its config.yaml."""
    found = [path for pattern in TRAINING_OUTPUTS for path in sorted(paths.root.glob(pattern))]
    if not any(path.name.startswith("fold_") or path.name == "metrics.json" for path in found):
        return None
    target = paths.root / "previous" / datetime.now().strftime("%Y%m%d-%H%M%S")
    while target.exists():
        target = target.with_name(target.name + "_")
    target.mkdir(parents=True)
    for path in found:
        shutil.move(str(path), target / path.name)
    for kept in (paths.config, paths.run_info, paths.folds):  # what the training was, and on which split
        if kept.is_file():
            shutil.copy2(kept, target / kept.name)
    return target
