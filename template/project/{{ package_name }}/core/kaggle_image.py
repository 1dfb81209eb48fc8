"""The Kaggle image `export` targets: its manifest (Python, platform tag, package versions), the project's dependency
closure minus what the image has at a version the project accepts, and wheels of the rest for the image's platform."""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from .errors import ProjectError
from .wheels import repack_installed

OLDEST_MANYLINUX = 17  # manylinux2014: pip takes a manylinux_2_N tag literally, so older glibc tags are listed too


@dataclass(frozen=True)
class ImageManifest:
    python: str  # "3.12"
    platform: str  # pip's --platform, e.g. manylinux_2_35_x86_64
    packages: dict[str, str | None]  # canonical name -> version; None: on the image, version not recorded
    source: Path

    def marker_environment(self) -> dict[str, str]:
        """What the image's interpreter answers to environment markers (Linux, CPython)."""
        machine = "x86_64" if self.platform.endswith("x86_64") else self.platform.rsplit("_", 1)[-1]
        return {
            "python_version": self.python,
            "python_full_version": f"{self.python}.0",
            "sys_platform": "linux",
            "platform_system": "Linux",
            "os_name": "posix",
            "platform_machine": machine,
            "implementation_name": "cpython",
            "platform_python_implementation": "CPython",
            "extra": "",
        }


def read_manifest(path: Path) -> ImageManifest:
    """`python X.Y`, `platform TAG`, then `name==version` or `name` lines; `#` starts a comment."""
    if not path.is_file():
        raise ProjectError(f"{path}: image manifest not found (export.image_manifest or --image-manifest)")
    fields: dict[str, str] = {}
    packages: dict[str, str | None] = {}
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        key, _, value = line.partition(" ")
        if not line:
            continue
        if key in ("python", "platform"):
            fields[key] = value.strip()
            continue
        name, _, version = line.partition("==")
        try:
            if version:
                Version(version)
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name.strip()):
                raise InvalidVersion(name)
        except InvalidVersion:
            raise ProjectError(f"{path}:{number}: expected `name==version` or `name`, got {raw.strip()!r}") from None
        packages[canonicalize_name(name)] = version.strip() or None
    for key, example in (("python", "python 3.12"), ("platform", "platform manylinux_2_35_x86_64")):
        if key not in fields:
            raise ProjectError(f"{path}: no `{key}` line (expected e.g. `{example}`)")
    if not re.fullmatch(r"3\.\d+", fields["python"]):
        raise ProjectError(f"{path}: python {fields['python']!r}: expected a version such as 3.12")
    return ImageManifest(fields["python"], fields["platform"], packages, path)


@dataclass(frozen=True)
class BundledWheel:
    """A distribution the image lacks (or has at a version the project does not accept), at the version here."""

    name: str
    version: str
    reason: str


Installed = Callable[[str], tuple[str, list[str]] | None]  # name -> (version here, Requires-Dist), or None


def installed_here(name: str) -> tuple[str, list[str]] | None:
    try:
        distribution = importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        return None
    return distribution.version, list(distribution.requires or [])


def _parse(text: str, source: str) -> Requirement:
    try:
        return Requirement(text)
    except InvalidRequirement as error:
        raise ProjectError(f"{source}: requirement {text!r} cannot be read ({error})") from None


def wheels_to_bundle(
    requirements: list[str],
    manifest: ImageManifest,
    installed: Installed = installed_here,
    provided: set[str] | None = None,
) -> list[BundledWheel]:
    """The project's dependency closure, for the image's Python and platform, minus what the image has at a version
    every requirement on it accepts; each package left is bundled at the version installed here, and its own
    requirements are followed (those of packages the image provides are the image's business). `provided`
    collects the names the image provides."""
    provided = set() if provided is None else provided
    environment = manifest.marker_environment()
    specifiers: dict[str, SpecifierSet] = {}
    bundled: dict[str, BundledWheel] = {}
    queue = [(_parse(text, "the project"), "the project") for text in requirements]
    while queue:
        requirement, parent = queue.pop(0)
        if requirement.marker is not None and not requirement.marker.evaluate(environment):
            continue
        name = canonicalize_name(requirement.name)
        specifiers[name] = specifiers.get(name, SpecifierSet()) & requirement.specifier
        if name in bundled:
            continue
        image_version = manifest.packages.get(name)
        wanted = specifiers[name]
        if image_version is not None and wanted.contains(Version(image_version), prereleases=True):
            provided.add(name)  # a later, stricter requirement on it comes back here
            continue
        provided.discard(name)
        if name not in manifest.packages:
            reason = "not on the image"
        elif image_version is None:
            reason = "on the image at a version the manifest does not record"
        else:
            reason = f"image has {image_version}, {parent} needs {wanted}"
        here = installed(name)
        if here is None:
            raise ProjectError(
                f"export: {name} ({reason}) is not installed here to bundle: pip install '{name}{wanted}'"
            )
        bundled[name] = BundledWheel(name, here[0], reason)
        queue.extend((_parse(text, name), name) for text in here[1])
    for name, wheel in bundled.items():
        if not specifiers[name].contains(Version(wheel.version), prereleases=True):
            raise ProjectError(
                f"export: {name} {wheel.version} is installed here, but the project needs {specifiers[name]}"
            )
    return sorted(bundled.values(), key=lambda wheel: wheel.name)


def platform_tags(platform: str) -> list[str]:
    """manylinux_2_35_x86_64 -> every manylinux tag down to manylinux2014 (pip does not expand them itself)."""
    found = re.fullmatch(r"manylinux_2_(\d+)_(\w+)", platform)
    if found is None:
        return [platform]
    newest, machine = int(found.group(1)), found.group(2)
    tags = [f"manylinux_2_{minor}_{machine}" for minor in range(newest, OLDEST_MANYLINUX - 1, -1)]
    return [*tags, f"manylinux2014_{machine}"]


def _pure_python(name: str) -> bool:
    distribution = importlib.metadata.distribution(name)
    tags = [
        line.split(":", 1)[1].strip()
        for line in (distribution.read_text("WHEEL") or "").splitlines()
        if line.startswith("Tag:")
    ]
    return bool(tags) and all(tag.endswith("-none-any") for tag in tags)


def download_command(wheel: BundledWheel, manifest: ImageManifest, folder: Path) -> list[str]:
    abi = f"cp{manifest.python.replace('.', '')}"
    platforms = [argument for tag in platform_tags(manifest.platform) for argument in ("--platform", tag)]
    return [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--no-deps",
        "--only-binary=:all:",
        "--python-version",
        manifest.python,
        "--implementation",
        "cp",
        "--abi",
        abi,
        *platforms,
        "--dest",
        str(folder),
        f"{wheel.name}=={wheel.version}",
    ]


def fetch_wheel(wheel: BundledWheel, manifest: ImageManifest, folder: Path) -> Path:
    """The wheel for the image's Python and platform from the package index; a pure-Python distribution that has
    none there is repacked from this install (exact: the same files on any platform); otherwise one line."""
    before = set(folder.glob("*.whl"))
    result = subprocess.run(download_command(wheel, manifest, folder), capture_output=True, text=True, check=False)
    fetched = sorted(set(folder.glob("*.whl")) - before)
    if result.returncode == 0 and fetched:
        return fetched[0]
    if _pure_python(wheel.name):
        return repack_installed(wheel.name, folder)
    errors = [line for line in (result.stderr or result.stdout).splitlines() if line.startswith("ERROR")]
    detail = errors[0].removeprefix("ERROR: ") if errors else f"exit code {result.returncode}"
    raise ProjectError(
        f"export: no wheel of {wheel.name}=={wheel.version} for Python {manifest.python} on {manifest.platform} "
        f"({wheel.reason}): {detail}"
    )


def project_requirements(project_wheel: Path) -> list[str]:
    """Requires-Dist of the built project wheel: exactly what its install asks for."""
    with zipfile.ZipFile(project_wheel) as archive:
        metadata = next(name for name in archive.namelist() if name.endswith(".dist-info/METADATA"))
        text = archive.read(metadata).decode()
    return [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Requires-Dist:")]
