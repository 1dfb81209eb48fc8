"""Shared by the benchmarks: render the template into a temporary folder, run a rendered package's commands in it
(one process per command, or many through one `ProjectShell`), and shrink the demo competitions for smoke runs."""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from podium.render import create_project

BENCHMARKS = Path(__file__).resolve().parent
ENV = {
    **os.environ,
    "HF_HUB_OFFLINE": "1",
    "WANDB_MODE": "disabled",
    "NO_ALBUMENTATIONS_UPDATE": "1",
    "PYTHONUNBUFFERED": "1",
}
# --smoke: demo competitions of this many digits (of scikit-learn's 1,797) and scenes.
SMOKE_DIGITS = 300
SMOKE_SCENES = {"train": 48, "test": 8}
# --smoke: a training that touches every part of the loop in seconds.
SMOKE_TRAINING = [
    "train.batch_size=4",
    "train.max_steps_per_epoch=2",
    "train.max_eval_batches=1",
    "data.num_workers=0",
    "predict.tta_select_images=16",
]
# An untrained detector fills every image with its cap of low-score boxes, which TTA, blends and pseudo-labels then
# merge for seconds an image.
SMOKE_TASK_TRAINING = {"detection": ["detection.detections_per_image=10"]}


def smoke_training(task: str, smoke: bool = True) -> list[str]:
    """--smoke's settings for a project of `task` (none without --smoke): only its own config keys are accepted."""
    return [*SMOKE_TRAINING, *SMOKE_TASK_TRAINING.get(task, [])] if smoke else []


def one_thread_when(smoke: bool) -> None:
    """--smoke: one torch thread in every process started from here. With another process on a 2-core machine,
    two OpenMP threads spin waiting for each other: a resnet10t step at 64 px took 2.0 s with 2 threads and 0.07 s
    with 1 (measured here), and smoke runs only have to show that a benchmark works."""
    if smoke:
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[name] = ENV[name] = "1"


def cpu_threads() -> int:
    """The torch threads of the processes started from here (OMP_NUM_THREADS, else torch's default: the cores)."""
    return int(ENV.get("OMP_NUM_THREADS") or os.cpu_count() or 1)


PROJECT_BENCH = Path(__file__).resolve().parent / "in_project" / "bench.py"


def add_project_bench(project: Path) -> None:
    """Podium's in-project benchmarks (in_project/bench.py), which no rendered project carries, copied into
    `project` as <package>/tools/bench.py: they import the project's own modules."""
    shutil.copyfile(PROJECT_BENCH, project / project.name / "tools" / "bench.py")


def run_in_project(module: str, arguments: list[str], package: str = "bench") -> None:
    """`python -m <package>.<module> arguments` in a project rendered with the template's defaults."""
    with tempfile.TemporaryDirectory() as folder:
        project = create_project(Path(folder) / package, data={"project_name": package}, defaults=True, quiet=True)
        add_project_bench(project)
        subprocess.run([sys.executable, "-m", f"{package}.{module}", *arguments], cwd=project, env=ENV, check=True)


@contextlib.contextmanager
def demo_scale(smoke: bool) -> Iterator[None]:
    """While `smoke`, the demo competitions' writers draw from scikit-learn's first SMOKE_DIGITS digits and place
    SMOKE_SCENES scenes (they call sklearn.datasets.load_digits and read podium.demo.SCENES when they run)."""
    import sklearn.datasets
    from podium import demo

    if not smoke:
        yield
        return
    load_digits = sklearn.datasets.load_digits

    def first_digits(*args: Any, **kwargs: Any) -> Any:
        digits = load_digits(*args, **kwargs)
        for key in ("data", "images", "target"):
            digits[key] = digits[key][:SMOKE_DIGITS]
        return digits

    saved = demo.SCENES
    demo.SCENES, sklearn.datasets.load_digits = SMOKE_SCENES, first_digits
    try:
        yield
    finally:
        demo.SCENES, sklearn.datasets.load_digits = saved, load_digits


class StageFailed(RuntimeError):
    """A command or snippet run through a ProjectShell ended with a non-zero exit code or ran out of time."""


class ProjectShell:
    """One Python process in a rendered project (benchmarks/_shell.py) that runs the package's CLI commands and
    code snippets in turn: torch and the package are imported once (8 s on 2 CPU cores), not once a command;
    `move` points it at another project.
    Measurements that include the start-up (time to the first step, DDP under torchrun) start their own process.
    A request past its timeout kills the process (and whatever it started); the next request starts a fresh one."""

    def __init__(self, project: Path, package: str, *, echo: bool = False, env: dict[str, str] | None = None) -> None:
        self.project, self.package, self.echo = project, package, echo
        self.env = env or ENV
        self.process: subprocess.Popen[str] | None = None
        self.replies: Any = None
        self.log: Any = None

    def _start(self) -> None:
        read, write = os.pipe()
        self.log = tempfile.TemporaryFile("w+")  # noqa: SIM115 (kept open for the process's life, closed in _stop)
        code = f"import sys; sys.path.insert(0, {str(BENCHMARKS)!r}); import _shell; _shell.serve({write}, {self.echo})"
        self.process = subprocess.Popen(
            [sys.executable, "-c", code],
            cwd=self.project,
            env=self.env,
            stdin=subprocess.PIPE,
            stdout=None if self.echo else self.log,
            stderr=subprocess.STDOUT if not self.echo else None,
            pass_fds=(write,),
            text=True,
            start_new_session=True,  # a timeout kills the process group: loader workers and fold processes too
        )
        os.close(write)
        self.replies = os.fdopen(read)

    def _stop(self) -> None:
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            self.replies.close()
            self.log.close()
        self.process = None

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()  # the server's loop ends; give it a moment to exit cleanly
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=30)
        self._stop()

    def move(self, project: Path, package: str) -> None:
        """Later requests run in another rendered project (imports already made stay: torch, timm, ...)."""
        self.project, self.package = project, package

    def __enter__(self) -> ProjectShell:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def request(self, payload: dict[str, Any], timeout: float | None = None) -> tuple[int, str]:
        """(exit code, printed output) of one request; StageFailed when it runs past `timeout` seconds."""
        if self.process is None or self.process.poll() is not None:
            self._stop()
            self._start()
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.write(json.dumps({**payload, "cwd": str(self.project), "package": self.package}) + "\n")
        self.process.stdin.flush()
        ready, _, _ = select.select([self.replies], [], [], timeout)
        line = self.replies.readline() if ready else ""
        if not line:
            self.log.seek(0)
            below = self.log.read()[-3000:]
            ended = self.process.poll()
            self._stop()
            why = f"ran past its {timeout:.0f} s" if ended is None else f"the shell process ended ({ended})"
            raise StageFailed(f"{self._describe(payload)}: {why}\n{below}")
        reply = json.loads(line)
        return reply["code"], reply["output"]

    def _describe(self, payload: dict[str, Any]) -> str:
        if "argv" in payload:
            return f"python -m {self.package} {' '.join(payload['argv'])}"
        return f"code: {payload['code'].strip().splitlines()[0][:80]}"

    def cli(self, *words: str, timeout: float | None = None) -> str:
        """A CLI command's output; StageFailed (with the output's tail) when it fails."""
        code, output = self.request({"argv": list(words)}, timeout)
        if code != 0:
            raise StageFailed(f"python -m {self.package} {' '.join(words)} exited {code}:\n{output[-3000:]}")
        return output

    def code(self, source: str, timeout: float | None = None) -> str:
        """What `source` prints, run with the project's package importable; StageFailed when it raises."""
        code, output = self.request({"code": source}, timeout)
        if code != 0:
            raise StageFailed(f"code exited {code}:\n{output[-3000:]}")
        return output


def last_line(output: str) -> str:
    return output.strip().splitlines()[-1]


SCORE = """
import json
from pathlib import Path
from podium.demo_scoring import SCORERS
print(json.dumps(SCORERS[{task!r}]({package!r}, Path({submission!r}), Path({holdout!r}))))
"""


def demo_test_score(shell: ProjectShell, task: str, submission: Path, holdout: Path) -> float:
    """A detection or segmentation demo's held-out score of `submission`, with the project's own readers and
    metrics (podium.demo_scoring) in the shell's process. `holdout`: the held-out boxes file, or the folder of the
    held-out masks (the demos' `holdout_file`), as podium.demo's scorers take them."""
    target = holdout if task == "detection" else holdout.parent
    code = SCORE.format(task=task, package=shell.package, submission=str(submission), holdout=str(target))
    score = json.loads(last_line(shell.code(code)))
    return float(score["score"] if isinstance(score, dict) else score)


def history_column(history: Path, column: str) -> list[float]:
    """One column of a fold's history.csv, found by its header (columns are added as the loop grows)."""
    import pandas as pd

    return [float(value) for value in pd.read_csv(history)[column]]


def demo_training_speed(
    answers: dict,
    overrides: list[str],
    write_competition: Callable[[Path, Path], dict],
    after_training: str,
    smoke: bool = False,
) -> tuple[float, str]:
    """Render a demo's project, write its competition, train fold 0 for 2 epochs (only the second validated)
    and run `after_training` (Python code; {package}, {overrides} and {smoke} filled in) in the project. Returns
    (training images/s of epoch 2 as the loop measures it, from its first batch to its last step, the loader's
    waits included; the last line that code printed)."""
    package = answers["package_name"]
    with tempfile.TemporaryDirectory() as folder:
        project = create_project(Path(folder) / package, data=dict(answers), defaults=True, quiet=True)
        with demo_scale(smoke):
            write_competition(project / "data", Path(folder) / "holdout")
        settings = [*overrides, "train.epochs=2", "folds.train_folds=[0]", "train.eval_every=2"]
        settings += smoke_training(answers["task"], smoke)
        with ProjectShell(project, package) as shell:
            for stage in ("folds", "train"):
                shell.cli(stage, *settings)
            output = shell.code(after_training.format(package=package, overrides=settings, smoke=smoke))
        rate = history_column(project / "outputs/baseline/fold_0/history.csv", "images_per_s")[-1]
    return rate, last_line(output)


NUMBER = re.compile(r"[-+]?\d+(\.\d+)?")


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], left: int = 1) -> str:
    """A plain text table: the first `left` columns (and any text column) left-aligned, numbers right-aligned."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]
    numeric = [
        k >= left and all(NUMBER.fullmatch(str(row[k]).strip()) or str(row[k]).strip() in ("-", "nan") for row in rows)
        for k in range(len(headers))
    ]

    def line(cells: Sequence[str]) -> str:
        aligned = zip(cells, widths, numeric, strict=True)
        parts = [f"{cell!s:>{width}}" if right else f"{cell!s:<{width}}" for cell, width, right in aligned]
        return "  ".join(parts).rstrip()

    return "\n".join([line(headers), *(line(row) for row in rows)])


def print_gains(title: str, rows: list[tuple[str, float]], pseudo: dict, blends: dict[str, dict]) -> None:
    """The gains table of toolbox_gains.py and ensembling_gains.py: a row per step, the pseudo round, the blends."""
    width = max(len(name) for name, _ in rows)
    print(f"\nHeld-out test {title}")
    for name, value in rows:
        print(f"  {name:<{width}}  {value:.4f}")
    print(
        f"  pseudo round: {pseudo['selected']}/{pseudo['of']} test images labelled, "
        f"CV {pseudo['cv_before']:.4f} -> {pseudo['cv_after']:.4f}"
    )
    for method, report in blends.items():
        members_oof = ", ".join(f"{value:.4f}" for value in report["member_oof_scores"].values())
        print(f"  {method}: members' OOF {members_oof}, blend {report['oof_score']:.4f}, params {report['params']}")
