"""Built wheels carry the template and its release history: teammates on other machines, with later podium
releases installed in fresh venvs, update a shared project offline.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from .conftest import REPO_ROOT, git

TTA = Path("comp") / "core" / "tta.py"


def build(source: Path, out: Path, *, sdist: bool = False) -> Path:
    """A wheel of `source`; with `sdist`, built from the sdist as `python -m build` does by default."""
    targets = [] if sdist else ["--wheel"]
    subprocess.run(
        [sys.executable, "-m", "build", *targets, "--no-isolation", "--outdir", str(out), str(source)],
        check=True,
        capture_output=True,
    )
    return next(out.glob("podium-*.whl"))


def release(source: Path, version: str, *, line: str | None = None) -> None:
    """Commit a podium release: the version in pyproject.toml (podium reads it from its metadata), a template change."""
    pyproject = source / "pyproject.toml"
    pyproject.write_text(re.sub(r'^version = ".*"$', f'version = "{version}"', pyproject.read_text(), flags=re.M))
    if line:
        tta = source / "template" / "project" / "{{ package_name }}" / "core" / "tta.py"
        tta.write_text(tta.read_text() + f"\n{line}\n")
    git(source, "add", "-A")
    # The module's fixture runs before conftest's function-scoped git identity.
    git(source, "-c", "user.name=releaser", "-c", "user.email=releaser@example.com", "commit", "-qm", version)
    git(source, "tag", f"v{version}")


def install(wheel: Path, venv: Path) -> Path:
    """A fresh venv with only this wheel of podium; torch & co. come from the environment running the tests."""
    # No ensurepip: the running interpreter's pip installs into the venv (pip --python), faster and with less disk.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # A .pth file placed after the venv's own site-packages: podium itself comes only from the wheel.
    parent = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (Path(purelib) / "_parent_environment.pth").write_text("\n".join(parent) + "\n")
    pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index"]
    subprocess.run([*pip, str(wheel)], check=True)
    return venv / "bin" / "podium"


@dataclass(frozen=True)
class Releases:
    wheels: dict[str, Path]
    podium: dict[str, Path]  # version: its console script, each in its own venv


@pytest.fixture(scope="module")
def releases(tmp_path_factory: pytest.TempPathFactory) -> Releases:
    """podium 0.1.0, 0.2.0 and 0.3.0 released from a copy of this repository (0.3.0 built through its sdist)."""
    root = tmp_path_factory.mktemp("releases")
    source = root / "source"
    listed = git(REPO_ROOT, "ls-files", "-z", "--cached", "--others", "--exclude-standard").split("\0")
    for relative in filter(None, listed):
        if (REPO_ROOT / relative).is_file():
            (source / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO_ROOT / relative, source / relative)
    git(source, "init", "-q", "-b", "main")
    changes = {"0.1.0": None, "0.2.0": "RELEASE_2 = True", "0.3.0": "RELEASE_3 = True"}
    wheels, podium = {}, {}
    for version, line in changes.items():
        release(source, version, line=line)
        wheels[version] = build(source, root / f"dist-{version}", sdist=version == "0.3.0")
        podium[version] = install(wheels[version], root / f"venv-{version}")
    return Releases(wheels, podium)


def teammate(root: Path, name: str, *, podium_home: bool) -> dict[str, str]:
    """Another machine: its own home folder, git identity from the environment, its own podium store."""
    home = root / name
    home.mkdir(parents=True)
    env = {**os.environ, "HOME": str(home), "XDG_DATA_HOME": str(home / "data"), "XDG_CACHE_HOME": str(home / "cache")}
    env["PYTHONPATH"] = ""
    env.pop("PODIUM_HOME", None)
    if podium_home:  # else the store is $XDG_DATA_HOME/podium/templates
        env["PODIUM_HOME"] = str(home / "podium")
    return env


def run(args: list[str | Path], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(arg) for arg in args], cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def render_and_share(podium: Path, root: Path) -> Path:
    """Teammate A renders with `podium`, pushes to a shared repository, and their machine goes away."""
    env_a = teammate(root, "a", podium_home=True)
    run([podium, "new", "comp", "--defaults"], root / "a", env_a)
    answers = yaml.safe_load((root / "a" / "comp" / ".copier-answers.yml").read_text())
    assert (answers["_src_path"], answers["_commit"]) == ("podium", "v0.1.0")
    shared = root / "shared.git"
    git(root, "clone", "-q", "--bare", str(root / "a" / "comp"), str(shared))
    shutil.rmtree(root / "a")  # nothing of A's machine is left: no store, no home
    return shared


def clone_and_edit(shared: Path, home: Path) -> Path:
    """A teammate clones the project and edits a template-owned file by hand."""
    git(home, "clone", "-q", str(shared), "comp")
    project = home / "comp"
    readme = project / "README.md"
    readme.write_text(readme.read_text() + "\n## Our notes\nLB 0.912 with convnext.\n")
    git(project, "commit", "-qam", "our notes")
    return project


@pytest.mark.slow
def test_wheels_carry_the_template_and_its_release_history(releases: Releases, tmp_path: Path) -> None:
    for version, wheel in releases.wheels.items():
        names = zipfile.ZipFile(wheel).namelist()
        assert "podium/_template/copier.yml" in names, version
        assert "podium/_template/project/{{ package_name }}/train.py" in names, version
        assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")], version
        bundle = tmp_path / f"{version}.bundle"
        bundle.write_bytes(zipfile.ZipFile(wheel).read("podium/_template_history.bundle"))
        heads = git(tmp_path, "bundle", "list-heads", str(bundle))
        tags = sorted(re.findall(r"refs/tags/(v[\d.]+)$", heads, flags=re.M))
        assert tags == [tag for tag in ("v0.1.0", "v0.2.0", "v0.3.0") if tag <= f"v{version}"], version
    where = subprocess.run(
        [str(releases.podium["0.2.0"].with_name("python")), "-c", "import podium; print(podium.__file__)"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": ""},
        capture_output=True,
        text=True,
    )
    assert str(releases.podium["0.2.0"].parents[1]) in where.stdout, where.stdout + where.stderr


@pytest.mark.slow
def test_a_teammate_with_a_later_podium_updates_the_shared_project(releases: Releases, tmp_path: Path) -> None:
    shared = render_and_share(releases.podium["0.1.0"], tmp_path)
    env_b = teammate(tmp_path, "b", podium_home=False)  # B's store: $XDG_DATA_HOME/podium/templates
    project = clone_and_edit(shared, tmp_path / "b")

    result = run([releases.podium["0.2.0"], "update"], project, env_b)
    assert "from template v0.1.0 to v0.2.0" in result.stdout, result.stdout
    assert "RELEASE_2 = True" in (project / TTA).read_text()
    assert "LB 0.912 with convnext." in (project / "README.md").read_text()
    text = (project / ".copier-answers.yml").read_text()
    answers = yaml.safe_load(text)
    assert (answers["_src_path"], answers["_commit"]) == ("podium", "v0.2.0")
    assert str(tmp_path) not in text, text  # neither A's nor B's folders
    assert not [value for value in answers.values() if str(value).startswith(("/", "~"))], text
    store = tmp_path / "b" / "data" / "podium" / "templates"
    assert set(git(store, "tag", "--list").split()) == {"v0.1.0", "v0.2.0"}


@pytest.mark.slow
def test_update_across_three_versions(releases: Releases, tmp_path: Path) -> None:
    shared = render_and_share(releases.podium["0.1.0"], tmp_path)
    env_c = teammate(tmp_path, "c", podium_home=True)
    project = clone_and_edit(shared, tmp_path / "c")

    result = run([releases.podium["0.3.0"], "update"], project, env_c)
    assert "from template v0.1.0 to v0.3.0" in result.stdout, result.stdout
    tta = (project / TTA).read_text()
    assert "RELEASE_2 = True" in tta and "RELEASE_3 = True" in tta
    assert "LB 0.912 with convnext." in (project / "README.md").read_text()
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert (answers["_src_path"], answers["_commit"]) == ("podium", "v0.3.0")
