"""Wheels for an offline install: the project's own (built by pip) and those of installed distributions, packed
from the files they installed (their RECORD), so a notebook without internet gets the exact versions trained with."""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

from .errors import ProjectError
from .runs import atomic_path

# Written by the installer, not part of a wheel.
INSTALL_TIME_FILES = {"INSTALLER", "REQUESTED", "direct_url.json", "RECORD"}


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def repack_installed(name: str, folder: Path) -> Path:
    """`folder/<name>-<version>-<tag>.whl` from the installed distribution `name`."""
    try:
        dist = importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError as error:
        raise ProjectError(f"export.wheels: '{name}' is not installed here (pip install {name})") from error
    direct_url = json.loads(dist.read_text("direct_url.json") or "{}")
    if direct_url.get("dir_info", {}).get("editable"):
        raise ProjectError(f"export.wheels: '{name}' is installed in editable mode; its files are not installed")
    tags = [
        line.split(":", 1)[1].strip()
        for line in (dist.read_text("WHEEL") or "").splitlines()
        if line.startswith("Tag:")
    ]
    if not dist.files or not tags:
        raise ProjectError(f"export.wheels: '{name}' was not installed from a wheel (no RECORD or WHEEL tags)")
    normalised = re.sub(r"[-_.]+", "_", dist.metadata["Name"]).lower()
    path = folder / f"{normalised}-{dist.version}-{tags[0]}.whl"
    dist_info = next(f.parts[0] for f in dist.files if f.parts[0].endswith(".dist-info"))
    records = []
    with atomic_path(path) as temporary, zipfile.ZipFile(temporary, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in dist.files:
            if ".." in file.parts or "__pycache__" in file.parts or file.suffix == ".pyc":
                continue  # console scripts (pip writes them again from entry_points.txt) and bytecode
            if file.parts[0] == dist_info and file.name in INSTALL_TIME_FILES:
                continue
            data = Path(str(file.locate())).read_bytes()
            archive.writestr(file.as_posix(), data)
            records.append(f"{file.as_posix()},{_record_hash(data)},{len(data)}")
        records.append(f"{dist_info}/RECORD,,")
        archive.writestr(f"{dist_info}/RECORD", "\n".join(records) + "\n")
    return path


def build_project_wheel(project: Path, folder: Path) -> Path:
    """The project's wheel, built by pip from its pyproject.toml (no network: the build backend must be installed)."""
    if not (project / "pyproject.toml").is_file():
        raise ProjectError(f"{project}: no pyproject.toml; run export from the project's folder")
    before = set(folder.glob("*.whl"))
    command = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "-q",
        "-w",
        str(folder),
        str(project),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        reason = " ".join((result.stderr or result.stdout).split())[-300:]
        raise ProjectError(f"building the project's wheel failed (pip install hatchling?): {reason}")
    built = sorted(set(folder.glob("*.whl")) - before)
    if not built:
        raise ProjectError(f"pip wheel wrote no wheel into {folder}")
    return built[0]
