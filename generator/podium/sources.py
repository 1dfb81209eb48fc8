"""Where a competition's files come from and where they go: a folder, a zip (unpacked safely) or a Kaggle
download, then linked, copied or moved into the new project's data folder."""

from __future__ import annotations

import zipfile
from pathlib import Path

from podium.errors import PodiumError


def unpack(source: Path, dest: Path) -> Path:
    """A zip's members extracted into `dest` (refusing paths that leave it); the competition's root folder."""
    try:
        with zipfile.ZipFile(source) as archive:
            for member in archive.namelist():
                target = (dest / member).resolve()
                if not target.is_relative_to(dest.resolve()):
                    raise PodiumError(f"{source}: member '{member}' would be written outside {dest}")
            archive.extractall(dest)
    except zipfile.BadZipFile as error:
        raise PodiumError(f"{source}: not a readable zip file ({error})") from error
    entries = [p for p in dest.iterdir() if p.name != "__MACOSX"]
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else dest


def download_competition(competition: str, folder: Path) -> Path:
    """The competition's zip, downloaded by the kaggle CLI (credentials: ~/.kaggle/kaggle.json or KAGGLE_USERNAME
    and KAGGLE_KEY) into `folder`; one line saying what is missing when it cannot."""
    import shutil
    import subprocess

    if shutil.which("kaggle") is None:
        raise PodiumError("--kaggle: the kaggle CLI is not installed (pip install kaggle) or not on PATH")
    folder.mkdir(parents=True, exist_ok=True)
    command = ["kaggle", "competitions", "download", "-c", competition, "-p", str(folder)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        reason = " ".join((result.stderr.strip() or result.stdout.strip()).split())[:300]
        raise PodiumError(f"--kaggle {competition}: the download failed: {reason or f'exit code {result.returncode}'}")
    archives = sorted(folder.glob("*.zip"))
    if not archives:
        raise PodiumError(f"--kaggle {competition}: the kaggle CLI wrote no zip file into {folder}")
    return archives[0]


def stage_source(source: Path, staging: Path) -> tuple[Path, bool]:
    """(the competition's root folder, whether it was unpacked into `staging`) for a folder or a zip."""
    if source.is_file() and zipfile.is_zipfile(source):
        staging.mkdir(parents=True, exist_ok=True)
        return unpack(source, staging), True
    if not source.is_dir():
        raise PodiumError(f"--from {source}: not a folder or a zip file")
    return source, False


def place_data(root: Path, data_folder: Path, mode: str) -> list[str]:
    """Each top-level entry of `root` linked (symlink), copied or moved into `data_folder`; their names."""
    import shutil

    entries = sorted(p for p in root.iterdir() if p.name not in ("__MACOSX", ".DS_Store"))
    clashes = [p.name for p in entries if (data_folder / p.name).exists() or (data_folder / p.name).is_symlink()]
    if clashes:
        raise PodiumError(f"{data_folder}: already holds {clashes[0]}; the competition's files were not placed")
    data_folder.mkdir(parents=True, exist_ok=True)
    for entry in entries:
        target = data_folder / entry.name
        if mode == "link":
            target.symlink_to(entry.resolve(), target_is_directory=entry.is_dir())
        elif mode == "move":
            shutil.move(entry, target)
        elif entry.is_dir():
            shutil.copytree(entry, target)
        else:
            shutil.copy2(entry, target)
    return [p.name for p in entries]


def data_folder(project: Path) -> Path:
    """The project's data folder, as its answers file records it."""
    import yaml

    answers = yaml.safe_load((project / ".copier-answers.yml").read_text()) or {}
    return project / str(answers.get("data_dir", "data"))
