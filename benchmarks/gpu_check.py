"""Every GPU-only path of the rendered project, run once on this machine's GPU, as one table (at most 8 minutes).

python benchmarks/gpu_check.py [--smoke] [--cpu] [--budget-minutes 8 (--cpu without --smoke: 30)]
    --cpu     the same paths on the CPU (gloo for DDP; autocast in fp16 and bf16 where torch has them), to test
              this script where there is no GPU; inductor compile is skipped under --smoke (its C++ build took 70 s
              on 2 CPU cores)
    --smoke   tiny: 300 digits, 48 digit scenes, 2 steps of 4 images an epoch, no loader workers

Needs this repository installed with what the rendered project imports: `pip install -e .` from the repository
root. A bare GPU image with torch, timm, scikit-learn, pandas and opencv-python-headless still lacks some of them:
albumentations, albucore, pydantic, segmentation-models-pytorch, iterative-stratification, ensemble-boxes,
pycocotools, nvidia-ml-py (and podium's own copier, typer, rich); the script names any that are missing and
stops. Nothing is downloaded: the projects are rendered from this repository's template with pretrained=false, and
their data are scikit-learn's digits, written on the fly.

Rows: fp16 + GradScaler (train.amp=fp16), bf16 (train.amp=bf16), channels-last (train.channels_last=true),
inductor compile (train.compile=default), pinned non-blocking copies (the training loader's batches), DDP under
torchrun (NCCL with 2 processes where there are 2 GPUs, else 1 process, which joins a process group as well;
gloo with 2 processes on the CPU), parallel folds
(train.parallel_folds=2: one GPU per fold process, so skipped with fewer than 2 GPUs), the NVML utilisation
readout, and podium's training images/s against a plain PyTorch loop for each task (gpu_throughput.py). Each step
has its own timeout within the budget; the exit code is 1 when any row is FAIL.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from _project import cpu_threads, one_thread_when

REQUIRED = {
    "albumentations": "albumentations",
    "albucore": "albucore",
    "pydantic": "pydantic",
    "segmentation_models_pytorch": "segmentation-models-pytorch",
    "iterstrat": "iterative-stratification",
    "ensemble_boxes": "ensemble-boxes",
    "pycocotools": "pycocotools",
    "copier": "copier",
    "typer": "typer",
    "timm": "timm",
    "sklearn": "scikit-learn",
    "pandas": "pandas",
    "cv2": "opencv-python-headless",
    "pynvml": "nvidia-ml-py",
}
TASKS = ("classification", "detection", "segmentation")
PATHS = [
    "fp16 + GradScaler",
    "bf16",
    "channels-last",
    "inductor compile",
    "pinned non-blocking copies",
    "DDP under torchrun",  # NCCL on GPUs, gloo under --cpu (named so in the table)
    "parallel folds",
    "GPU utilisation (NVML)",
    *(f"throughput {task}" for task in TASKS),
]
DEVICE = """
import json, torch
gpus = [torch.cuda.get_device_name(k) for k in range(torch.cuda.device_count())]
print(json.dumps({"gpus": gpus, "torch": torch.__version__, "cuda": torch.version.cuda}))
"""
COMPILE_WARNING = re.compile(r"warning: (torch\.compile|train\.compile)[^\n]*")


class Skipped(Exception):
    """A path that cannot run here, with the reason."""


class Failed(Exception):
    """A path that ran and did not do what it should, with the reason."""


@dataclass
class Row:
    path: str
    status: str = "FAIL"
    seconds: float = math.nan
    figure: str = ""
    note: str = ""


def missing_packages() -> list[str]:
    return [name for module, name in REQUIRED.items() if importlib.util.find_spec(module) is None]


def run_fresh(command: list[str], cwd: Path, env: dict[str, str], timeout: float) -> tuple[int, str]:
    """(exit code, output) of a command in its own process group, killed whole (torchrun's workers too) when it
    runs past `timeout` seconds."""
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, text=True, start_new_session=True
        )
        try:
            code = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            log.seek(0)
            raise Failed(f"ran past its {timeout:.0f} s: {log.read()[-300:]}") from None
        log.seek(0)
        return code, log.read()


def error_line(output: str) -> str:
    """The line that says why a command failed: podium's `error:` line, else the last line."""
    lines = [line.strip() for line in output.strip().splitlines() if line.strip()]
    chosen = next((line for line in reversed(lines) if line.startswith("error:")), lines[-1] if lines else "")
    return chosen[:200]


class Check:
    """The paths of one run of this script: one classification project (digits) for the training paths, a shell
    process in it, and one demo project per task for the throughput rows."""

    def __init__(self, folder: Path, *, cpu: bool, smoke: bool, budget_minutes: float) -> None:
        from _project import ENV, ProjectShell
        from gpu_throughput import render_demo, settings_for

        self.cpu, self.smoke, self.folder = cpu, smoke, folder
        self.deadline = time.perf_counter() + budget_minutes * 60
        self.device = "cpu" if cpu else "cuda"
        self.env = ENV
        self.epochs = 2 if smoke else 4  # the first epoch warms up; the throughput rows take the later ones
        self.workers = 0 if smoke else 2
        extra = ["train.device=cpu"] if cpu else []
        self.project = render_demo("classification", folder / "classification", smoke)
        self.package = self.project.name
        self.shell = ProjectShell(self.project, self.package)
        # torch is imported in the shell's process only (this one stays light): the device it sees
        found = json.loads(self.shell.code(DEVICE).strip().splitlines()[-1])
        self.gpus, self.torch = (0 if cpu else len(found["gpus"])), found
        self.base = settings_for("classification", 1, self.workers, extra, smoke)
        self.extra = extra
        self.folds = "folds.path=outputs/baseline/folds.csv"

    def timeout(self, wanted: float) -> float:
        left = self.deadline - time.perf_counter()
        if left < 5:
            raise Failed("no time left in the budget")
        return min(wanted, left)

    def close(self) -> None:
        self.shell.close()

    # -- the training paths: one short training each, in its own run folder, on the shared fold file --

    def ensure_folds(self) -> None:
        """The fold file every training path shares (outputs/baseline/folds.csv), written once."""
        from _project import StageFailed

        if not (self.project / "outputs" / "baseline" / "folds.csv").is_file():
            try:
                self.shell.cli("folds", *self.base, timeout=self.timeout(120))
            except StageFailed as error:
                raise Failed(f"folds: {error_line(str(error))}") from None

    def train(self, experiment: str, *settings: str, wanted: float = 150) -> tuple[str, Path]:
        from _project import StageFailed

        self.ensure_folds()
        try:
            output = self.shell.cli(
                "train", *self.base, self.folds, f"experiment={experiment}", *settings, timeout=self.timeout(wanted)
            )
        except StageFailed as error:
            raise Failed(error_line(str(error))) from None
        return output, self.project / "outputs" / experiment

    def images_per_second(self, run: Path) -> str:
        from _project import history_column

        rates = history_column(run / "fold_0" / "history.csv", "images_per_s")
        losses = history_column(run / "fold_0" / "history.csv", "train_loss")
        if not all(math.isfinite(loss) for loss in losses):
            raise Failed(f"training loss not finite: {losses}")
        return f"{max(rates):.0f} img/s"

    def precision(self, amp: str, expected: str) -> Callable[[], tuple[str, str]]:
        def check() -> tuple[str, str]:
            _, run = self.train(f"gpu_{amp}", f"train.amp={amp}")
            precision = json.loads((run / "run.json").read_text())["train"]["precision"]
            if not precision.startswith(expected):
                raise Failed(f"run.json precision: {precision}")
            return self.images_per_second(run), precision

        return check

    def channels_last(self) -> tuple[str, str]:
        _, run = self.train("gpu_channels_last", "train.channels_last=true")
        note = "" if self.device == "cuda" else "podium converts on CUDA only: here the setting is only accepted"
        return self.images_per_second(run), note

    def compile(self) -> tuple[str, str]:
        if self.cpu and self.smoke:
            raise Skipped("inductor's C++ build takes a minute or more on a few CPU cores; run without --smoke")
        output, run = self.train("gpu_compile", "train.compile=default", "train.compile_backend=inductor", wanted=360)
        fallback = COMPILE_WARNING.search(output)
        if fallback:
            raise Failed(f"ran eagerly: {fallback.group(0)[:180]}")
        return self.images_per_second(run), "compiled, no eager fallback"

    def pinned(self) -> tuple[str, str]:
        from _project import StageFailed

        code = (
            f"from {self.package}.config import load_config\n"
            f"from {self.package}.tools.bench import pinned_copies\n"
            f"import json; print(json.dumps(pinned_copies(load_config({[*self.base, *self.extra]!r}))))"
        )
        try:
            report = json.loads(self.shell.code(code, timeout=self.timeout(120)).strip().splitlines()[-1])
        except StageFailed as error:
            raise Failed(error_line(str(error))) from None
        if report["pinned"] != report["expected_pinned"]:
            raise Failed(
                f"batches pinned: {report['pinned']}, expected {report['expected_pinned']} on {report['device']}"
            )
        if not report["equal"]:
            raise Failed("the non-blocking copy differs from the batch")
        pinned = "pinned" if report["pinned"] else "not pinned (as on CPU)"
        return f"{report['mb_per_s']:.0f} MB/s", f"{pinned}, non-blocking copy equal"

    def ddp(self) -> tuple[str, str]:
        processes = 2 if self.cpu else min(self.gpus, 2)
        env = {**self.env, "NCCL_DEBUG": "VERSION"}  # NCCL prints its version line when it starts: proof it ran
        if self.cpu:
            env["OMP_NUM_THREADS"] = "1"  # two processes on the cores: one thread each
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
        command += ["-m", self.package, "train", *self.base, self.folds, "experiment=gpu_ddp"]
        self.ensure_folds()
        code, output = run_fresh(command, self.project, env, self.timeout(240))
        if code != 0:
            raise Failed(error_line(output))
        figure = self.images_per_second(self.project / "outputs" / "gpu_ddp")
        if self.cpu:
            return figure, f"gloo, {processes} processes"
        version = re.search(r"NCCL version [^\s]+", output)
        if version is None:
            raise Failed("no NCCL version line: NCCL did not start")
        return figure, f"{version.group(0)}, {processes} processes"

    def parallel_folds(self) -> tuple[str, str]:
        if not self.cpu and self.gpus < 2:
            raise Skipped(f"one GPU per fold process and {self.gpus} visible; needs 2")
        _, run = self.train("gpu_parallel", "train.parallel_folds=2", "folds.train_folds=[0,1]", wanted=240)
        folds = json.loads((run / "metrics.json").read_text())["folds"]
        if sorted(folds) != ["0", "1"]:
            raise Failed(f"metrics.json folds: {sorted(folds)}")
        return self.images_per_second(run), f"folds 0 and 1 at once on {'CPU' if self.cpu else 'cuda:0, cuda:1'}"

    def utilisation(self) -> tuple[str, str]:
        from _project import StageFailed

        if self.cpu:
            raise Skipped("no NVIDIA GPU to read")
        code = f"from {self.package}.tools.bench import gpu_utilisation\nprint(gpu_utilisation())"
        try:
            value = float(self.shell.code(code, timeout=self.timeout(60)).strip().splitlines()[-1])
        except StageFailed as error:
            raise Failed(error_line(str(error))) from None
        if not math.isfinite(value) or value <= 0:
            raise Failed(f"NVML reported {value} under load (no samples, or a MIG slice NVML cannot read)")
        return f"{value:.0f} %", "under 3 s of matrix products"

    def throughput(self, task: str) -> Callable[[], tuple[str, str]]:
        def check() -> tuple[str, str]:
            from _project import StageFailed
            from gpu_throughput import measure_project, render_demo, settings_for

            seconds = self.timeout(240)
            # The shell moves to each task's project in turn: torch and timm stay imported.
            if task == "classification":
                self.shell.move(self.project, self.package)
            else:
                project = render_demo(task, self.folder / task, self.smoke)
                self.shell.move(project, project.name)
            settings = settings_for(task, self.epochs, self.workers, self.extra, self.smoke)
            try:
                row = measure_project(self.shell, settings, self.epochs, first_step=False, seconds=seconds)
            except StageFailed as error:
                raise Failed(error_line(str(error))) from None
            figure = f"{row['podium_img_s']:.0f} / {row['bare_img_s']:.0f} img/s = {row['ratio']:.2f}"
            return figure, "podium / plain PyTorch loop, same model and batches"

        return check

    def steps(self) -> dict[str, Callable[[], tuple[str, str]]]:
        return dict(
            zip(
                PATHS,
                [
                    self.precision("fp16", "fp16 autocast with GradScaler"),
                    self.precision("bf16", "bf16 autocast"),
                    self.channels_last,
                    self.compile,
                    self.pinned,
                    self.ddp,
                    self.parallel_folds,
                    self.utilisation,
                    *(self.throughput(task) for task in TASKS),
                ],
                strict=True,
            )
        )


def run_step(path: str, step: Callable[[], tuple[str, str]], cpu: bool) -> Row:
    row = Row(f"{'gloo' if cpu else 'NCCL'} {path}" if path.startswith("DDP") else path)
    started = time.perf_counter()
    try:
        row.figure, row.note = step()
        row.status = "ok"
    except Skipped as reason:
        row.status, row.note = "skipped", str(reason)
    except Failed as reason:
        row.note = str(reason)
    except Exception as error:  # a bug in this script or an unreadable output: the row fails, the others still run
        row.note = f"{type(error).__name__}: {str(error).strip().splitlines()[-1][:180] if str(error).strip() else ''}"
    row.seconds = time.perf_counter() - started
    print(f"{row.path}: {row.status} ({row.seconds:.1f} s) {row.figure} {row.note}", flush=True)
    return row


def report(rows: list[Row], device: str, wall: float) -> str:
    from _project import table

    cells = [[r.path, r.status, f"{r.seconds:.1f}", r.figure or "-", r.note] for r in rows]
    header = f"gpu_check on {device}; {wall:.0f} s in all"
    return header + "\n" + table(["path", "status", "seconds", "figure", "note"], cells)


def device_name(check: Check) -> str:
    found = check.torch
    if check.cpu:
        return f"CPU (torch threads: {cpu_threads()}), torch {found['torch']}"
    return f"{len(found['gpus'])} x {found['gpus'][0]}, torch {found['torch']}, CUDA {found['cuda']}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cpu", action="store_true", help="run the same paths on the CPU (gloo for DDP)")
    parser.add_argument("--smoke", action="store_true", help="tiny data and steps, to check the script runs")
    parser.add_argument(
        "--budget-minutes", type=float, default=None, help="for every step together (default 8; --cpu: 30)"
    )
    args = parser.parse_args()
    one_thread_when(args.smoke)
    # The full demos train for minutes a task on a CPU; a GPU run, and any smoke run, fits in 8.
    budget = args.budget_minutes or (30.0 if args.cpu and not args.smoke else 8.0)
    missing = missing_packages()
    if missing:
        raise SystemExit(f"gpu_check: missing {', '.join(missing)}: pip install -e . from the repository root")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        check = Check(Path(folder), cpu=args.cpu, smoke=args.smoke, budget_minutes=budget)
        try:
            if not args.cpu and check.gpus == 0:
                raise SystemExit("gpu_check: no CUDA GPU visible; --cpu runs the same paths on the CPU")
            with contextlib.suppress(Failed):  # the shell's imports and the shared fold file, outside the rows' times
                check.ensure_folds()
            rows = [run_step(path, step, args.cpu) for path, step in check.steps().items()]
        finally:
            check.close()
    print()
    print(report(rows, device_name(check), time.perf_counter() - started))
    sys.exit(1 if any(row.status == "FAIL" for row in rows) else 0)


if __name__ == "__main__":
    main()
