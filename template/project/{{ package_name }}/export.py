"""Code competitions: a run as a Kaggle dataset (checkpoints, configs, wheels) and an offline inference notebook
that installs from it without internet, predicts the competition's test folder and writes submission.csv."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .config import Config, load_config
from .core.errors import ProjectError
from .core.kaggle_cli import dataset_exists, dataset_title, push_when_ready, read_dataset_id
from .core.kaggle_image import (
    BundledWheel,
    ImageManifest,
    fetch_wheel,
    installed_here,
    project_requirements,
    read_manifest,
    wheels_to_bundle,
)
from .core.runs import RunPaths, read_json, save_torch, trained_folds, write_json, write_text
from .core.wheels import build_project_wheel

PACKAGE = __name__.split(".")[0]
# Run files predict and submit read besides the checkpoints.
RUN_FILES = (
    "config.yaml",
    "config.predict.yaml",
    "classes.json",
    "metrics.json",
    "oof.csv",
    "oof.npz",
    "tta.json",
    "postprocess.json",
    "run.json",
)


@dataclass
class Bundle:
    dataset: Path
    notebook: Path
    files: dict[str, int] = field(default_factory=dict)  # relative path -> bytes
    seconds_per_image: float = 0.0
    projected_hours: float = 0.0
    warnings: list[str] = field(default_factory=list)
    wheels: list[tuple[BundledWheel, Path]] = field(default_factory=list)  # bundled for the image, with why

    @property
    def size(self) -> int:
        return sum(self.files.values())


def _slug(text: str) -> str:
    return "-".join(part for part in "".join(c if c.isalnum() else "-" for c in text.lower()).split("-") if part)


def _half(checkpoint: Path, target: Path) -> None:
    saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
    saved["model"] = {k: v.half() if v.is_floating_point() else v for k, v in saved["model"].items()}
    save_torch(target, {"model": saved["model"], "meta": saved.get("meta", {})})


def _copy_run(paths: RunPaths, checkpoints: list[str], fp16: bool, run: Path) -> None:
    for name in RUN_FILES:
        if (paths.root / name).is_file():
            shutil.copy2(paths.root / name, run / name)
    for fold in trained_folds(paths):
        for name in checkpoints:
            source, target = paths.checkpoint(fold, name), run / f"fold_{fold}" / f"{name}.pt"
            if not source.is_file():
                raise ProjectError(f"{source}: checkpoint not found (predict.checkpoints={checkpoints})")
            target.parent.mkdir(parents=True, exist_ok=True)
            if fp16:
                _half(source, target)
            else:
                shutil.copy2(source, target)


@dataclass(frozen=True)
class Member:
    """A run the notebook predicts with: its folder, checkpoints and TTA views as its last `predict` used them."""

    paths: RunPaths
    checkpoints: list[str]
    views: list[str]
    seconds: float
    images: int

    @property
    def name(self) -> str:
        return self.paths.root.name


def read_member(root: Path) -> Member:
    paths = RunPaths(root)
    timing = (read_json(paths.run_info) if paths.run_info.is_file() else {}).get("predict", {})
    predict_config = root / "config.predict.yaml"
    if "seconds" not in timing or not predict_config.is_file():
        raise ProjectError(f"{root}: no timed `predict` of this run; run `predict` first (export uses its TTA)")
    checkpoints = load_config(base=predict_config).predict.checkpoints
    return Member(paths, checkpoints, timing["tta"], timing["seconds"], timing["images"])


# The first cell installs the project from the bundle alone, dependencies included (pip resolves them against the
# image and the bundled wheels), then checks every requirement: a missing or wrong package is one line, here.
INSTALL_CELL = """# Install the project and the wheels the image lacks, without internet; then check what it needs.
import importlib.metadata
from packaging.requirements import Requirement
wheels = BUNDLE / 'wheels'
command = [sys.executable, '-m', 'pip', 'install', '--no-index', '--find-links', str(wheels), '--quiet',
           str(wheels / 'PROJECT_WHEEL')]
installed = subprocess.run(command, capture_output=True, text=True)
if installed.returncode != 0:
    errors = [l for l in (installed.stderr + installed.stdout).splitlines() if l.startswith('ERROR')] or ['?']
    raise SystemExit('installing from the bundle failed: ' + errors[0].removeprefix('ERROR: '))
for text in importlib.metadata.requires('PACKAGE') or []:
    requirement = Requirement(text)
    if requirement.marker is not None and not requirement.marker.evaluate({'extra': ''}):
        continue
    try:
        version = importlib.metadata.version(requirement.name)
    except importlib.metadata.PackageNotFoundError:
        raise SystemExit(f'{requirement.name} is missing: the project needs {text}') from None
    if not requirement.specifier.contains(version, prereleases=True):
        raise SystemExit(f'{requirement.name} {version} is installed: the project needs {text}')"""


def notebook_source(
    config: Config, dataset_slug: str, members: list[Member], ensemble: dict | None, project_wheel: str
) -> list[str]:
    """The inference notebook's code cells: install offline, predict with every member, blend them as the
    ensemble did (fixed weights), submit, copy submission.csv out."""
    competition = config.export.competition or "COMPETITION"
    common = ["model.pretrained=false", "data.num_workers=2", "wandb.mode=disabled", "predict.tta_select=off"]
    predicts = {
        member.name: [
            f"experiment={member.name}",
            f"predict.tta=[{','.join(member.views)}]",  # the views chosen on OOF at export time
            f"predict.checkpoints=[{','.join(member.checkpoints)}]",
        ]
        for member in members
    }
    blend = []
    if ensemble is not None:
        weights = ",".join(f"{weight:g}" for weight in ensemble["weights"].values())
        names = ",".join(f"outputs/{member.name}" for member in members)
        blend = [
            "--config",  # the first member's resolved settings (data, classes) under the blend's overrides
            f"outputs/{members[0].name}/config.yaml",
            f"ensemble.members=[{names}]",
            f"ensemble.weights=[{weights}]",
            f"ensemble.method={ensemble['method']}",
            *(f"ensemble.{key}={value}" for key, value in ensemble.get("params", {}).items()),
        ]
    return [
        "# Offline inference for a code competition, exported by `python -m "
        f"{PACKAGE} export` from '{config.experiment}'.\n"
        "import os, shutil, subprocess, sys\n"
        "from pathlib import Path\n"
        "ROOT = Path(os.environ.get('KAGGLE_ROOT', '/'))  # tests run it under a temporary root\n"
        f"BUNDLE = ROOT / 'kaggle/input/{dataset_slug}'\n"
        f"DATA = ROOT / 'kaggle/input/{competition}'\n"
        "WORKING = ROOT / 'kaggle/working'",
        INSTALL_CELL.replace("PROJECT_WHEEL", project_wheel).replace("PACKAGE", PACKAGE),
        "# The runs (read-only input) into the working folder; predict with each, blend, submit.\n"
        "project = WORKING / 'project'\n"
        "shutil.copytree(BUNDLE / 'configs', project / 'configs', dirs_exist_ok=True)\n"
        f"common = ['data.root=' + str(DATA), 'output_dir=' + str(project / 'outputs'), *{common!r}]\n"
        "def stage(name, *settings):\n"
        f"    subprocess.run([sys.executable, '-m', '{PACKAGE}', name, *common, *settings], cwd=project, check=True)\n"
        f"for member, settings in {predicts!r}.items():\n"
        "    shutil.copytree(BUNDLE / 'runs' / member, project / 'outputs' / member, dirs_exist_ok=True)\n"
        "    stage('predict', *settings)\n"
        + (f"stage('ensemble', 'experiment={config.experiment}', *{blend!r})\n" if blend else "")
        + f"stage('submit', 'experiment={config.experiment}')\n"
        f"shutil.copy(project / 'outputs' / '{config.experiment}' / 'submissions' / 'submission.csv', WORKING)\n"
        "print(open(WORKING / 'submission.csv').read()[:500])",
    ]


def _notebook(cells: list[str]) -> dict:
    return {
        "cells": [
            {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": cell}
            for cell in cells
        ],
        "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


WRITTEN = "written.json"  # beside the notebook: the hash of the notebook as export wrote it


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_notebook_unedited(dest: Path) -> None:
    """An earlier export's notebook that the user edited is not replaced silently."""
    notebook = dest / "notebook" / "inference.ipynb"
    if not notebook.is_file():
        return
    record = dest / "notebook" / WRITTEN
    recorded = read_json(record).get("inference.ipynb") if record.is_file() else None
    if recorded != _digest(notebook):
        raise ProjectError(
            f"{notebook} was edited since `export` wrote it; copy your edits elsewhere, or pass --force to replace it"
        )


def bundle_wheels(
    config: Config, manifest: ImageManifest, project_wheel: Path, folder: Path
) -> list[tuple[BundledWheel, Path]]:
    """A wheel for the image of every package the project needs that the image lacks or has at a version the
    project does not accept (export.wheels: bundled in any case)."""
    needed = wheels_to_bundle(project_requirements(project_wheel), manifest)
    names = {wheel.name for wheel in needed}
    for name in config.export.wheels:
        here = installed_here(name)
        if here is None:
            raise ProjectError(f"export.wheels: '{name}' is not installed here (pip install {name})")
        if name not in names:
            needed.append(BundledWheel(name, here[0], "export.wheels"))
    return [(wheel, fetch_wheel(wheel, manifest, folder)) for wheel in needed]


def export(
    config: Config, project: Path = Path("."), *, force: bool = False, image_manifest: Path | None = None
) -> Bundle:
    """Write <dest>/dataset (dataset-metadata.json, run/, configs/, wheels/) and <dest>/notebook (inference.ipynb,
    kernel-metadata.json); the previous export is replaced only once the new one is complete, and not at all when
    its notebook was edited (unless `force`)."""
    paths = RunPaths.from_config(config)
    if not force:
        check_notebook_unedited(config.export.dest or paths.root / "export")
    ensemble = read_json(paths.root / "ensemble.json") if (paths.root / "ensemble.json").is_file() else None
    members = [read_member(Path(root)) for root in ensemble["weights"]] if ensemble else [read_member(paths.root)]
    if len({member.name for member in members}) < len(members):
        raise ProjectError(f"{paths.root / 'ensemble.json'}: members share a folder name; export needs distinct ones")
    manifest = read_manifest(image_manifest or project / config.export.image_manifest)
    user = config.export.user or os.environ.get("KAGGLE_USERNAME") or "USERNAME"
    dataset_slug = _slug(dataset_title(PACKAGE, config.experiment))  # Kaggle's 6 to 50 characters, as the title
    dest = config.export.dest or paths.root / "export"
    staging = dest.with_name(f".{dest.name}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    dataset, notebook = staging / "dataset", staging / "notebook"
    for folder in (dataset / "runs", dataset / "wheels", notebook):
        folder.mkdir(parents=True)
    for member in members:
        (dataset / "runs" / member.name).mkdir()
        _copy_run(member.paths, member.checkpoints, config.export.fp16, dataset / "runs" / member.name)
    shutil.copytree(project / "configs", dataset / "configs")
    project_wheel = build_project_wheel(project, dataset / "wheels")
    bundled = bundle_wheels(config, manifest, project_wheel, dataset / "wheels")
    write_json(
        dataset / "dataset-metadata.json",
        {
            "title": dataset_title(PACKAGE, config.experiment),
            "id": f"{user}/{dataset_slug}",
            "licenses": [{"name": "CC0-1.0"}],
        },
    )
    cells = notebook_source(config, dataset_slug, members, ensemble, project_wheel.name)
    write_text(notebook / "inference.ipynb", json.dumps(_notebook(cells), indent=1))
    write_json(notebook / WRITTEN, {"inference.ipynb": _digest(notebook / "inference.ipynb")})
    write_json(
        notebook / "kernel-metadata.json",
        {
            "id": f"{user}/{dataset_slug}-inference",
            "title": f"{PACKAGE} {config.experiment} inference",
            "code_file": "inference.ipynb",
            "language": "python",
            "kernel_type": "notebook",
            "is_private": True,
            "enable_gpu": config.train.device != "cpu",
            "enable_internet": False,
            "dataset_sources": [f"{user}/{dataset_slug}"],
            "competition_sources": [config.export.competition] if config.export.competition else [],
            "kernel_sources": [],
        },
    )
    shutil.rmtree(dest, ignore_errors=True)
    staging.rename(dest)
    bundle = Bundle(dest / "dataset", dest / "notebook")
    bundle.wheels = [(wheel, dest / "dataset" / "wheels" / path.name) for wheel, path in bundled]
    bundle.files = {p.relative_to(dest).as_posix(): p.stat().st_size for p in sorted(dest.rglob("*")) if p.is_file()}
    bundle.seconds_per_image = sum(member.seconds / max(member.images, 1) for member in members)
    images = config.export.test_images or members[0].images
    bundle.projected_hours = bundle.seconds_per_image * images / 3600
    limit = config.export.time_limit_hours
    if limit is not None and bundle.projected_hours > limit:
        bundle.warnings.append(
            f"{images} test images at {bundle.seconds_per_image:.3f} s each (measured here) take "
            f"{bundle.projected_hours:.1f} h, past the {limit:g} h limit: fewer TTA views, folds or a smaller model"
        )
    if user == "USERNAME":
        bundle.warnings.append("no Kaggle user (export.user or KAGGLE_USERNAME): the metadata ids say USERNAME")
    if not config.export.competition:
        bundle.warnings.append("no export.competition: the notebook reads /kaggle/input/COMPETITION")
    return bundle


def kaggle_commands(bundle: Bundle, message: str, exists: bool) -> list[list[str]]:
    """The kaggle CLI commands that upload the dataset (`create`, or a new `version` of one that exists) and push the
    notebook. `--dir-mode zip` uploads the runs/, wheels/ and configs/ folders; without it the CLI skips folders."""
    dataset = str(bundle.dataset)
    upload = ["version", "-p", dataset, "-m", message] if exists else ["create", "-p", dataset]
    return [
        ["kaggle", "datasets", *upload, "--dir-mode", "zip"],
        ["kaggle", "kernels", "push", "-p", str(bundle.notebook)],
    ]


def hand_commands(bundle: Bundle, message: str) -> list[str]:
    """What to type to upload the bundle without --push: the first upload, a later version, the status to wait for
    (Kaggle processes an upload asynchronously; a notebook pushed before "ready" runs without it), the notebook."""
    create, push_notebook = kaggle_commands(bundle, message, exists=False)
    version = kaggle_commands(bundle, message, exists=True)[0]
    status = ["kaggle", "datasets", "status", read_dataset_id(bundle.dataset)]
    return [shlex.join(command) for command in (create, version, status, push_notebook)]


def push(
    bundle: Bundle, message: str, *, timeout_minutes: float | None = None, poll_seconds: float | None = None
) -> list[str]:
    """Upload the dataset (a new version when it exists), wait until Kaggle has processed it, then push the notebook
    (kaggle_cli.push_when_ready: errors the CLI prints with exit 0, a failed or slow processing, a refused source)."""
    exists = dataset_exists(read_dataset_id(bundle.dataset, required=True))
    upload, push_notebook = kaggle_commands(bundle, message, exists)
    return push_when_ready(
        read_dataset_id(bundle.dataset),
        upload,
        push_notebook,
        bundle.notebook / "kernel-metadata.json",
        new_version=exists,
        timeout_minutes=timeout_minutes,
        poll_seconds=poll_seconds,
    )
