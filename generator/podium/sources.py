"""Where a competition's files come from and where they go: a folder, a zip (unpacked safely, with the zips inside
it) or a Kaggle download, then linked, copied or moved into the new project's data folder."""

from __future__ import annotations

import zipfile
from pathlib import Path

from podium.errors import PodiumError

SKIPPED = ("__MACOSX", ".DS_Store")
# The competition's own README.md, placed beside the data note the template writes as README.md.
COMPETITION_README = "README.competition.md"
NESTING = 3  # rounds of zips inside zips unpacked (Kaggle: the competition's zip holds train.zip, test.zip...)


def unpack(source: Path, dest: Path, shown: str | None = None) -> Path:
    """A zip's members extracted into `dest` (refusing paths that leave it), then the zips it holds at its top (or
    one folder down) extracted where they lie; the competition's root folder.

    Errors name `shown` (the zip as the user gave it, default its path) and the member, never `dest`: a scratch
    folder that is gone once the error is read.
    """
    shown = shown or str(source)
    _extract(source, dest, shown, member="")
    entries = [p for p in dest.iterdir() if p.name not in SKIPPED]
    root = entries[0] if len(entries) == 1 and entries[0].is_dir() else dest
    for _ in range(NESTING):
        inner = sorted(p for p in [*root.glob("*.zip"), *root.glob("*/*.zip")] if p.is_file())
        for archive in inner:
            _extract(archive, archive.parent, shown, member=archive.relative_to(dest).as_posix())
            archive.unlink()
        if not inner:
            break
    return root


def _extract(archive: Path, folder: Path, shown: str, member: str) -> None:
    """Extract `archive` into `folder`; an inner zip (`member`: its name in the user's zip) into `folder`/<its name>
    unless it holds one folder (Kaggle's train.zip holds train/) or one file named like it (train.csv.zip)."""
    where = f"{shown}: member '{member}'" if member else shown
    try:
        with zipfile.ZipFile(archive) as handle:
            names = [name for name in handle.namelist() if name.split("/")[0] not in SKIPPED]
            stem = archive.name.removesuffix(".zip")
            tops = {name.split("/")[0] for name in names}
            if member and not (len(tops) == 1 and (stem in tops or any("/" in name for name in names))):
                folder = folder / stem
            for name in names:
                if not (folder / name).resolve().is_relative_to(folder.resolve()):
                    what = f"{where} holds '{name}', which" if member else f"{shown}: member '{name}'"
                    raise PodiumError(f"{what} would be written outside the data folder")
            handle.extractall(folder, members=names)
    except zipfile.BadZipFile as error:
        raise PodiumError(f"{where}: not a readable zip file ({error})") from error


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


def stage_source(source: Path, staging: Path, shown: str | None = None) -> tuple[Path, bool]:
    """(the competition's root folder, whether it was unpacked into `staging`) for a folder or a zip; errors name
    `shown` (default `--from <source>`)."""
    shown = shown or f"--from {source}"
    if source.is_file() and zipfile.is_zipfile(source):
        staging.mkdir(parents=True, exist_ok=True)
        return unpack(source, staging, shown), True
    if not source.is_dir():
        raise PodiumError(f"{shown}: not a folder or a zip file")
    return source, False


def competition_entries(root: Path) -> list[Path]:
    """The top-level files and folders of a competition, without macOS's litter."""
    return sorted(p for p in root.iterdir() if p.name not in SKIPPED)


def placement(root: Path, taken: set[str], shown: str, data_dir: str = "data") -> dict[str, str]:
    """The name in the data folder of each top-level entry of `root`, where `taken` names what the template writes
    there: the competition's README.md becomes README.competition.md; any other clash is refused in one line."""
    names = {entry.name: entry.name for entry in competition_entries(root)}
    if "README.md" in names and "README.md" in taken:
        names["README.md"] = COMPETITION_README
    clashes = [name for name, target in names.items() if target in taken or (target != name and target in names)]
    if clashes:
        raise PodiumError(
            f"{shown}: {clashes[0]} clashes with {data_dir}/{names[clashes[0]]}, which the template writes; "
            "rename or remove it in the competition's files"
        )
    return names


def place_data(root: Path, data_folder: Path, mode: str, names: dict[str, str] | None = None) -> list[str]:
    """Each top-level entry of `root` linked (symlink), copied or moved into `data_folder`, under its name in `names`
    (default: `placement` against what the folder holds); the names placed."""
    import shutil

    taken = {p.name for p in data_folder.iterdir()} if data_folder.is_dir() else set()
    names = names or placement(root, taken, str(root), data_folder.name)
    entries = [entry for entry in competition_entries(root) if entry.name in names]
    targets = [data_folder / names[entry.name] for entry in entries]
    clashes = [target.name for target in targets if target.exists() or target.is_symlink()]
    if clashes:
        raise PodiumError(f"{data_folder}: already holds {clashes[0]}; the competition's files were not placed")
    data_folder.mkdir(parents=True, exist_ok=True)
    for entry in entries:
        target = data_folder / names[entry.name]
        if mode == "link":
            target.symlink_to(entry.resolve(), target_is_directory=entry.is_dir())
        elif mode == "move":
            shutil.move(entry, target)
        elif entry.is_dir():
            shutil.copytree(entry, target)
        else:
            shutil.copy2(entry, target)
    return [names[entry.name] for entry in entries]


def data_folder(project: Path) -> Path:
    """The project's data folder, as its answers file records it."""
    import yaml

    answers = yaml.safe_load((project / ".copier-answers.yml").read_text()) or {}
    return project / str(answers.get("data_dir", "data"))
