"""The podium CLI: options reach copier exactly; errors are one red line with exit code 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from unittest import mock

import yaml
from podium import __version__
from podium.cli import app
from typer.testing import CliRunner

from .conftest import EXAMPLES_DIR, git

runner = CliRunner()


def fake_render(src: str, dst: Path, **kwargs) -> None:
    """Stands in for copier.run_copy where rendering is not the point."""
    Path(dst).mkdir(parents=True, exist_ok=True)
    (Path(dst) / ".copier-answers.yml").write_text("package_name: fake\n")


def test_version_and_help() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"podium {__version__}"
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("new", "update", "demo"):
        assert command in result.output


def test_help_does_not_import_copier_or_torch() -> None:
    code = "import sys; from podium.cli import app; print('copier' in sys.modules, 'torch' in sys.modules)"
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.split() == ["False", "False"]


def test_new_passes_answers_to_copier(tmp_path: Path) -> None:
    with mock.patch("copier.run_copy", side_effect=fake_render) as run_copy:
        result = runner.invoke(
            app,
            ["new", str(tmp_path / "p"), "--defaults", "-d", "image_size=384", "-d", "backbone=convnext_tiny"],
        )
    assert result.exit_code == 0, result.output
    run_copy.assert_called_once()
    args, kwargs = run_copy.call_args
    assert Path(args[1]) == (tmp_path / "p").resolve()
    assert kwargs["data"] == {"task": "classification", "image_size": 384, "backbone": "convnext_tiny"}
    assert kwargs["defaults"] is True
    assert kwargs["vcs_ref"] == f"v{__version__}"
    assert kwargs["unsafe"] is False
    assert kwargs["user_defaults"] == {"project_name": "p"}


def test_folder_name_is_the_default_project_name(tmp_path: Path) -> None:
    result = runner.invoke(app, ["new", str(tmp_path / "my-comp"), "--defaults"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "my-comp" / "my_comp" / "cli.py").is_file()
    assert "python -m my_comp run" in result.output


def test_answers_file_and_data_override(tmp_path: Path) -> None:
    with mock.patch("copier.run_copy", side_effect=fake_render) as run_copy:
        result = runner.invoke(
            app,
            ["new", str(tmp_path / "p"), "--answers-file", str(EXAMPLES_DIR / "digits.yml"), "-d", "metric=f1_macro"],
        )
    assert result.exit_code == 0, result.output
    data = run_copy.call_args.kwargs["data"]
    assert data["package_name"] == "digits"
    assert data["metric"] == "f1_macro"


def test_new_refuses_a_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "notes.txt").write_text("mine")
    result = runner.invoke(app, ["new", str(tmp_path / "p"), "--defaults"])
    assert result.exit_code == 2
    assert "is not empty; choose an empty folder or pass --force" in result.output
    assert (tmp_path / "p" / "notes.txt").read_text() == "mine"


def test_bad_inputs_are_one_line(tmp_path: Path) -> None:
    cases = [
        (["new", str(tmp_path / "a"), "-d", "novalue"], "-d 'novalue': expected key=value"),
        (["new", str(tmp_path / "b"), "--task", "tabular"], "--task 'tabular': expected one of classification"),
        (["new", str(tmp_path / "c"), "--answers-file", str(tmp_path / "none.yml")], "cannot read"),
        (["update", str(tmp_path)], "no .copier-answers.yml"),
        (["new", str(tmp_path / "d"), "--template", str(tmp_path)], "no copier.yml found"),
    ]
    for args, message in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output, (args, result.output)
        assert "Traceback" not in result.output


def test_new_renders_commits_and_validates_answers(tmp_path: Path) -> None:
    project = tmp_path / "comp"
    result = runner.invoke(app, ["new", str(project), "--defaults", "-d", "project_name=Whale Tails 2024"])
    assert result.exit_code == 0, result.output
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert answers["package_name"] == "whale_tails_2024"
    assert answers["_commit"] == f"v{__version__}"
    assert git(project, "status", "--porcelain") == ""
    assert "Render the competition project" in git(project, "log", "--oneline")
    assert "python -m whale_tails_2024 run" in result.output

    bad = runner.invoke(app, ["new", str(tmp_path / "bad"), "--defaults", "-d", "package_name=2fast"])
    assert bad.exit_code == 2
    assert "lower-case Python identifier" in bad.output
    assert not (tmp_path / "bad").exists() or not any((tmp_path / "bad").iterdir())


def test_update_refuses_a_dirty_project(tmp_path: Path) -> None:
    project = tmp_path / "comp"
    assert runner.invoke(app, ["new", str(project), "--defaults"]).exit_code == 0
    (project / "README.md").write_text("changed\n")
    result = runner.invoke(app, ["update", str(project)])
    assert result.exit_code == 2
    assert "has uncommitted changes; commit or stash them" in result.output
