"""The Kaggle image manifest, the wheels the project needs beside it, and how each is had for the image."""

from __future__ import annotations

import importlib.metadata
import subprocess
from pathlib import Path

import pytest

from ..core import kaggle_image
from ..core.errors import ProjectError
from ..core.kaggle_image import (
    BundledWheel,
    fetch_wheel,
    platform_tags,
    read_manifest,
    wheels_to_bundle,
)
from .conftest import PROJECT_ROOT

MANIFEST = """# an image
python 3.12
platform manylinux_2_35_x86_64
numpy==2.0.2
Pillow==11.3.0
optuna
"""
# name -> (version here, its requirements)
HERE = {
    "numpy": ("2.3.1", []),
    "pillow": ("11.3.0", []),
    "optuna": ("5.1.0", ["alembic>=1.5", "colorlog ; sys_platform == 'win32'"]),
    "alembic": ("1.16.0", []),
    "iterative-stratification": ("0.1.9", ["scikit-learn", "numpy"]),
    "scikit-learn": ("1.7.0", []),
}


def manifest(tmp_path: Path, text: str = MANIFEST):
    path = tmp_path / "image.txt"
    path.write_text(text)
    return read_manifest(path)


def test_the_recorded_manifest_names_its_source_and_holds_what_projects_import() -> None:
    path = PROJECT_ROOT / "configs" / "kaggle_image.txt"
    image = read_manifest(path)
    assert (image.python, image.platform) == ("3.12", "manylinux_2_35_x86_64")
    header = path.read_text().split("\npython ")[0]
    assert "Kaggle/docker-python" in header and "googlecolab/backend-info" in header and "recorded 2026-" in header
    for name in ("torch", "torchvision", "timm", "albumentations", "scikit-learn", "pandas", "pydantic", "numpy"):
        assert image.packages[name] is not None, name
    assert "optuna" in image.packages and image.packages["optuna"] is None  # Kaggle adds it without a pin


def test_the_closure_bundles_what_the_image_lacks_or_has_at_a_refused_version_with_the_reason(tmp_path) -> None:
    image = manifest(tmp_path)
    provided: set[str] = set()
    wheels = wheels_to_bundle(
        ["numpy>=2.1", "pillow>=10", "optuna>=4.9", "iterative-stratification>=0.1.9", "pywin32 ; os_name == 'nt'"],
        image,
        HERE.get,
        provided,
    )
    assert [(w.name, w.version, w.reason) for w in wheels] == [
        ("alembic", "1.16.0", "not on the image"),
        ("iterative-stratification", "0.1.9", "not on the image"),
        ("numpy", "2.3.1", "image has 2.0.2, the project needs >=2.1"),
        ("optuna", "5.1.0", "on the image at a version the manifest does not record"),
        ("scikit-learn", "1.7.0", "not on the image"),
    ]  # colorlog is for Windows only, pywin32 for 'nt': neither is the image's
    assert provided == {"pillow"}


def test_a_later_stricter_requirement_takes_back_what_the_image_provided(tmp_path) -> None:
    here = {**HERE, "albucore": ("0.0.24", ["numpy>=2.2"])}
    provided: set[str] = set()
    wheels = wheels_to_bundle(["numpy>=2", "albucore"], manifest(tmp_path), here.get, provided)
    assert [(w.name, w.reason) for w in wheels] == [
        ("albucore", "not on the image"),
        ("numpy", "image has 2.0.2, albucore needs >=2,>=2.2"),
    ]
    assert "numpy" not in provided


def test_what_cannot_be_bundled_is_one_line(tmp_path) -> None:
    with pytest.raises(ProjectError, match=r"^export: ensemble-boxes \(not on the image\) is not installed here"):
        wheels_to_bundle(["ensemble-boxes>=1.0.9"], manifest(tmp_path), HERE.get)
    with pytest.raises(ProjectError, match=r"^export: numpy 2\.3\.1 is installed here, but the project needs"):
        wheels_to_bundle(["numpy>=2.1", "optuna", "numpy<2.3"], manifest(tmp_path), HERE.get)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("python 3.12\nnumpy==2.0\n", r"image\.txt: no `platform` line"),
        ("python three\nplatform x\n", r"image\.txt: python 'three': expected a version such as 3\.12"),
        ("python 3.12\nplatform x\nnumpy===\n", r"image\.txt:3: expected `name==version` or `name`, got 'numpy==='"),
    ],
)
def test_a_bad_manifest_names_the_file_and_line(tmp_path, text: str, message: str) -> None:
    with pytest.raises(ProjectError, match=message):
        manifest(tmp_path, text)


def test_manylinux_tags_go_down_to_manylinux2014_because_pip_takes_them_literally() -> None:
    tags = platform_tags("manylinux_2_35_x86_64")
    assert tags[0] == "manylinux_2_35_x86_64" and tags[-2:] == ["manylinux_2_17_x86_64", "manylinux2014_x86_64"]
    assert len(tags) == 35 - 17 + 2 and platform_tags("win_amd64") == ["win_amd64"]


def test_a_wheel_missing_from_the_index_is_repacked_when_pure_python_and_refused_when_compiled(
    tmp_path, monkeypatch
) -> None:
    image = manifest(tmp_path)
    commands = []

    def no_index(command, **kwargs):
        commands.append(command)
        return subprocess.CompletedProcess(command, 1, "", "ERROR: No matching distribution found for x==1\n")

    monkeypatch.setattr(kaggle_image.subprocess, "run", no_index)
    version = importlib.metadata.version("iterative-stratification")  # pure Python: the same files anywhere
    wheel = fetch_wheel(BundledWheel("iterative-stratification", version, "not on the image"), image, tmp_path)
    assert wheel.name == f"iterative_stratification-{version}-py3-none-any.whl" and wheel.parent == tmp_path
    assert commands[0][commands[0].index("--python-version") + 1] == "3.12"
    assert commands[0][commands[0].index("--abi") + 1] == "cp312" and "--only-binary=:all:" in commands[0]
    with pytest.raises(ProjectError, match=r"^export: no wheel of numpy==2\.3\.1 for Python 3\.12 on manylinux_2_35_"):
        fetch_wheel(BundledWheel("numpy", "2.3.1", "image has 2.0.2"), image, tmp_path)


def test_a_cached_image_stand_in_is_built_once_and_others_grow_from_the_closest_one(tmp_path, monkeypatch) -> None:
    """$IMAGE_STAND_IN_CACHE: a package set already built is reused; another starts from a copy of the cached one
    sharing the most packages and installs only what that lacks; none half-built is left behind."""
    from . import image_environment as stand_in

    installs: list[dict[str, str]] = []

    def new_environment(root: Path) -> Path:
        (root / "bin").mkdir(parents=True)
        return root / "bin" / "python"

    monkeypatch.setattr(stand_in, "_new_environment", new_environment)
    monkeypatch.setattr(stand_in, "_install", lambda python, packages: installs.append(packages))
    wanted = {"numpy": "2.0.2", "pillow": "11.3.0"}
    monkeypatch.setattr(stand_in, "image_packages", lambda image, requirements: dict(wanted))
    monkeypatch.setenv(stand_in.CACHE_VARIABLE, str(tmp_path / "cache"))
    path = tmp_path / "image.txt"
    path.write_text(MANIFEST)
    first = stand_in.image_environment(path, [], tmp_path / "unused")
    assert stand_in.image_environment(path, [], tmp_path / "unused") == first
    wanted["optuna"] = "5.1.0"
    del wanted["numpy"]
    other = stand_in.image_environment(path, [], tmp_path / "unused")
    assert other != first and (other / "bin").is_dir() and not (tmp_path / "unused").exists()
    assert installs == [{"numpy": "2.0.2", "pillow": "11.3.0"}, {"optuna": "5.1.0"}]  # pillow came with the copy
    wanted.clear()
    wanted["scikit-learn"] = "1.7.0"  # nothing in common: a new environment
    stand_in.image_environment(path, [], tmp_path / "unused")
    assert installs[-1] == {"scikit-learn": "1.7.0"} and len(list((tmp_path / "cache").iterdir())) == 3
    assert not list((tmp_path / "cache").glob(".building-*"))
