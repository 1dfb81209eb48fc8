"""The built wheel carries the template: a fresh venv renders and updates projects outside this repo."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
import yaml

from .conftest import REPO_ROOT, git


def build_wheel(source: Path, out: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(source)],
        check=True,
        capture_output=True,
    )
    return next(out.glob("podium-*.whl"))


@pytest.mark.slow
def test_wheel_in_a_fresh_venv_renders_and_updates(tmp_path: Path) -> None:
    wheel = build_wheel(REPO_ROOT, tmp_path / "dist1")
    names = zipfile.ZipFile(wheel).namelist()
    assert "podium/_template/copier.yml" in names
    assert "podium/_template/project/{{ package_name }}/train.py" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]

    # The environment running the tests (system or a venv) provides torch & co. through a .pth file placed
    # after the new venv's own site-packages; podium itself comes only from the wheel.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    parent = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (Path(purelib) / "_parent_environment.pth").write_text("\n".join(parent) + "\n")
    pip = [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--force-reinstall"]
    subprocess.run([*pip, str(wheel)], check=True)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    env = {**os.environ, "PODIUM_HOME": str(tmp_path / "home"), "PYTHONPATH": ""}
    where = subprocess.run(
        [str(python), "-c", "import podium; print(podium.__file__)"],
        cwd=outside,
        env=env,
        capture_output=True,
        text=True,
    )
    assert str(venv) in where.stdout, where.stdout + where.stderr
    podium = str(venv / "bin" / "podium")
    subprocess.run([podium, "new", "comp", "--defaults"], cwd=outside, env=env, check=True, capture_output=True)
    project = outside / "comp"
    assert (project / "comp" / "train.py").is_file()
    readme = project / "README.md"
    readme.write_text(readme.read_text() + "\nour note\n")
    git(project, "commit", "-qam", "note")

    # A later podium release: new version, changed template, installed over the first.
    source = tmp_path / "source"
    shutil.copytree(REPO_ROOT, source, ignore=shutil.ignore_patterns(".git", "__pycache__", "dist", "*.egg-info"))
    pyproject = source / "pyproject.toml"
    pyproject.write_text(re.sub(r'^version = ".*"$', 'version = "99.0.0"', pyproject.read_text(), flags=re.M))
    tta = source / "template" / "project" / "{{ package_name }}" / "tta.py"
    tta.write_text(tta.read_text() + "\nRELEASE_99 = True\n")
    subprocess.run([*pip, str(build_wheel(source, tmp_path / "dist2"))], check=True)
    result = subprocess.run([podium, "update", "comp"], cwd=outside, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "RELEASE_99 = True" in (project / "comp" / "tta.py").read_text()
    assert "our note" in readme.read_text()
    assert yaml.safe_load((project / ".copier-answers.yml").read_text())["_commit"] == "v99.0.0"
