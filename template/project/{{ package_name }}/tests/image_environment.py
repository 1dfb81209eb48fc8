"""A stand-in for the Kaggle image: a virtual environment (no system site) holding, at the manifest's versions, the
packages the project takes from the image, with this machine's torch and torchvision standing in for the image's
(hard links: pip may replace them in the stand-in without touching this environment)."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from ..core.kaggle_image import ImageManifest, read_manifest, wheels_to_bundle

STAND_INS = ("torch", "torchvision")  # the image's CUDA builds are several GB: this machine's take their place
CACHE_VARIABLE = "IMAGE_STAND_IN_CACHE"


def manifest_for_this_python(source: Path, dest: Path) -> Path:
    """The manifest with this interpreter's Python, so the image's versions install here."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    lines = [f"python {version}" if line.startswith("python ") else line for line in source.read_text().splitlines()]
    dest.write_text("\n".join(lines) + "\n")
    return dest


def _closure_here(names: tuple[str, ...]) -> list[importlib.metadata.Distribution]:
    """The distributions `names` need here (markers of this interpreter, no extras), themselves included."""
    seen: dict[str, importlib.metadata.Distribution] = {}
    queue = list(names)
    while queue:
        name = canonicalize_name(queue.pop())
        if name in seen:
            continue
        try:
            seen[name] = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        for text in seen[name].requires or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                queue.append(requirement.name)
    return list(seen.values())


def _link(source: Path, target: Path) -> None:
    if target.exists() or target.is_symlink():
        return
    if source.is_dir():
        shutil.copytree(source, target, copy_function=_hard_link, ignore=shutil.ignore_patterns("__pycache__"))
    else:
        _hard_link(str(source), str(target))


def _hard_link(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:  # another file system
        shutil.copy2(source, target)


def image_packages(manifest: ImageManifest, requirements: list[str]) -> dict[str, str]:
    """The packages of the project's closure the image provides (STAND_INS aside), at the image's versions."""
    provided: set[str] = set()
    wheels_to_bundle(requirements, manifest, provided=provided)
    return {name: str(manifest.packages[name]) for name in sorted(provided) if name not in STAND_INS}


def _python(root: Path) -> Path:
    return root / ("Scripts" if os.name == "nt" else "bin") / "python"


def _new_environment(root: Path) -> Path:
    """A virtual environment with STAND_INS (and what they need) linked in; its python."""
    subprocess.run([sys.executable, "-m", "venv", str(root)], check=True, capture_output=True)
    python = _python(root)
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    for distribution in _closure_here(STAND_INS):
        base = Path(str(distribution.locate_file("")))
        for top in {file.parts[0] for file in distribution.files or [] if ".." not in file.parts}:
            _link(base / top, site / top)
    return python


def _install(python: Path, packages: dict[str, str]) -> None:
    """`packages` at their versions; what they need in turn resolves freely (some of the image's Python 3.12 pins
    have no release for this interpreter)."""
    if not packages:
        return
    command = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    installed = subprocess.run([*command, *(f"{n}=={v}" for n, v in packages.items())], capture_output=True, text=True)
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]


def build_image_environment(root: Path, manifest_path: Path, requirements: list[str]) -> Path:
    """The environment's python: STAND_INS linked in, then every package of the project's closure that the manifest
    provides, installed at the manifest's version."""
    python = _new_environment(root)
    _install(python, image_packages(read_manifest(manifest_path), requirements))
    return python


def image_environment(manifest_path: Path, requirements: list[str], root: Path) -> Path:
    """The stand-in's folder: built at `root`, or, where $IMAGE_STAND_IN_CACHE names a folder, taken from there. A
    cached stand-in is built once per manifest, Python and package set, as a copy of the cached one that shares the
    most of those packages plus what it lacks (podium's tests render three projects whose stand-ins differ by a few
    packages); what else the copy holds is on the image too, at the image's version."""
    cache_root = os.environ.get(CACHE_VARIABLE)
    if not cache_root:
        build_image_environment(root, manifest_path, requirements)
        return root
    packages = image_packages(read_manifest(manifest_path), requirements)
    stamp = hashlib.sha256(f"{sys.version}\n{manifest_path.read_text()}".encode()).hexdigest()[:12]
    cache = Path(cache_root)
    cache.mkdir(parents=True, exist_ok=True)
    entry = cache / f"{stamp}-{hashlib.sha256(json.dumps(packages).encode()).hexdigest()[:12]}"
    if entry.is_dir():
        return entry / "venv"
    bases = [
        (json.loads((other / "packages.json").read_text()), other)
        for other in cache.glob(f"{stamp}-*")
        if (other / "packages.json").is_file()
    ]
    overlaps = [(len(held.items() & packages.items()), held, other) for held, other in bases]
    shared, held, base = max(overlaps, key=lambda overlap: overlap[0], default=(0, {}, None))
    building = Path(tempfile.mkdtemp(dir=cache, prefix=".building-"))
    if shared:
        python = copy_environment(base / "venv", building / "venv")
    else:
        python, held = _new_environment(building / "venv"), {}
    _install(python, {name: version for name, version in packages.items() if held.get(name) != version})
    (building / "packages.json").write_text(json.dumps({**held, **packages}))
    try:
        building.rename(entry)  # whole or not at all: another session may be building the same one
    except OSError:
        shutil.rmtree(building)
    return entry / "venv"


def copy_environment(source: Path, dest: Path) -> Path:
    """A copy made of hard links (a test's pip installs land in the copy only); its python."""
    shutil.copytree(source, dest, symlinks=True, copy_function=_hard_link)
    return dest / ("Scripts" if os.name == "nt" else "bin") / "python"


def manifest_of_this_environment(dest: Path) -> Path:
    """A manifest that says the image is this environment: export then bundles no wheel but the project's."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    names = sorted(
        {f"{d.metadata['Name']}=={d.version}" for d in importlib.metadata.distributions() if d.metadata["Name"]}
    )
    dest.write_text(f"python {version}\nplatform manylinux_2_35_x86_64\n" + "\n".join(names) + "\n")
    return dest
