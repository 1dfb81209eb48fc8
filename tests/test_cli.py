"""The podium CLI: options reach copier exactly; what --force and Ctrl-C do; the template's answers.

Bad inputs (one red line, exit 2) are tabled in test_generator_bad_inputs.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from unittest import mock

import copier
import pytest
import yaml
from podium import __version__
from podium.cli import app
from podium.render import create_project
from typer.testing import CliRunner

from .conftest import EXAMPLES_DIR, TEMPLATE_DIR, git

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
    assert "  my-comp run " in result.output  # the console script of package my_comp


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


def test_new_renders_commits_and_validates_answers(tmp_path: Path) -> None:
    project = tmp_path / "comp"
    result = runner.invoke(app, ["new", str(project), "--defaults", "-d", "project_name=Whale Tails 2024"])
    assert result.exit_code == 0, result.output
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert answers["package_name"] == "whale_tails_2024"
    assert answers["_commit"] == f"v{__version__}"
    assert git(project, "status", "--porcelain") == ""
    assert "Render the competition project" in git(project, "log", "--oneline")
    assert "  whale-tails-2024 run " in result.output

    bad = runner.invoke(app, ["new", str(tmp_path / "bad"), "--defaults", "-d", "package_name=2fast"])
    assert bad.exit_code == 2
    assert "lower-case Python identifier" in bad.output
    assert not (tmp_path / "bad").exists() or not any((tmp_path / "bad").iterdir())


def test_generated_outputs_stay_out_of_git(tmp_path: Path) -> None:
    """What the project's commands write (eda's reports/, run folders and their .lock files, W&B, augraphy) is
    ignored, so `podium update` still finds a clean tree."""
    project = tmp_path / "comp"
    assert runner.invoke(app, ["new", str(project), "--defaults"]).exit_code == 0
    for written in ("reports/eda.html", "outputs/baseline/.lock", "wandb/run.log", "augraphy_cache/a.png", "fonts/a"):
        (project / written).parent.mkdir(parents=True, exist_ok=True)
        (project / written).write_text("x\n")
    assert git(project, "status", "--porcelain") == ""


def test_force_replaces_listed_files_and_commits_only_the_templates(tmp_path: Path) -> None:
    """An existing repository is not re-initialised; README.md is replaced and named; notes stay out of git."""
    dest = tmp_path / "comp"
    dest.mkdir()
    (dest / "README.md").write_text("mine\n")
    (dest / "notes.txt").write_text("private\n")
    git(dest, "init", "-q", "-b", "main")
    git(dest, "add", "README.md")
    git(dest, "commit", "-qm", "my readme")
    result = runner.invoke(app, ["new", str(dest), "--defaults", "--force", "-d", "project_name=comp", "--verbose"])
    assert result.exit_code == 0, result.output
    assert "--force replaced 1 existing file(s) with the template's: README.md" in result.output
    assert " overwrite  README.md" in result.output.splitlines()  # --verbose names what happened to each file
    assert "    create  comp/cli.py" in result.output.splitlines()
    assert git(dest, "log", "--format=%s").splitlines() == ["Render the competition project with podium", "my readme"]
    committed = set(git(dest, "show", "--name-only", "--format=", "HEAD").split())
    assert {"README.md", ".copier-answers.yml", "comp/cli.py", "configs/default.yaml"} <= committed
    assert "notes.txt" not in committed
    assert git(dest, "status", "--porcelain") == "?? notes.txt\n"
    assert (dest / "notes.txt").read_text() == "private\n"


def test_next_hint_quotes_a_path_with_spaces(tmp_path: Path) -> None:
    with mock.patch("copier.run_copy", side_effect=fake_render):
        result = runner.invoke(app, ["new", str(tmp_path / "my comp"), "--defaults"])
    assert result.exit_code == 0, result.output
    assert f"  cd '{tmp_path / 'my comp'}'" in result.output.splitlines()


@pytest.mark.parametrize(
    ("project_name", "package"),
    [("Ünïcode Cömp", "unicode_comp"), ("Straße Œuvre Łódź", "strasse_oeuvre_lodz"), ("2024 Æsir", "comp_2024_aesir")],
)
def test_accented_project_names_give_readable_packages(tmp_path: Path, project_name: str, package: str) -> None:
    worker = copier.run_copy(
        str(TEMPLATE_DIR), tmp_path / "p", data={"project_name": project_name}, defaults=True, pretend=True, quiet=True
    )
    assert worker.answers.user["package_name"] == package


def test_copier_refuses_stdlib_and_dependency_names(tmp_path: Path) -> None:
    """copier.yml's own validator (what an interactive prompt runs) knows the standard library and the
    project's dependencies, without podium's check in front of it."""
    validator = yaml.safe_load((TEMPLATE_DIR / "copier.yml").read_text())["package_name"]["validator"]
    stdlib = {name for name in sys.stdlib_module_names if name.islower() and not name.startswith("_")}
    # The top-level modules of the dependencies in pyproject.toml.jinja.
    modules = "torch torchvision timm albumentations cv2 augraphy imagehash skimage sklearn numpy scipy iterstrat"
    modules += " pandas pydantic yaml typer rich tqdm wandb matplotlib pytorch_grad_cam pycocotools ensemble_boxes pil"
    dependencies = {*modules.split(), "segmentation_models_pytorch"}
    listed = set(validator.replace("'", " ").split())
    assert stdlib <= listed, sorted(stdlib - listed)
    assert dependencies <= listed, sorted(dependencies - listed)
    for name in ("os", "skimage"):
        with pytest.raises(ValueError, match="shadow a library"):
            copier.run_copy(
                str(TEMPLATE_DIR), tmp_path / name, data={"package_name": name}, defaults=True, pretend=True, quiet=True
            )


def test_segmentation_layouts_ask_the_class_column(tmp_path: Path) -> None:
    """Severstal-style submissions have a row per image and class: the masks layout renders that column too."""
    answers = {"project_name": "Steel", "task": "segmentation", "data_layout": "masks", "target_columns": "ClassId"}
    project = create_project(tmp_path / "p", data=answers, defaults=True, quiet=True, init_git=False)
    assert "  target_columns: [ClassId]" in (project / "configs" / "default.yaml").read_text()
    assert yaml.safe_load((project / ".copier-answers.yml").read_text())["target_columns"] == "ClassId"


def interrupt(*args, **kwargs) -> None:
    raise KeyboardInterrupt


def test_ctrl_c_while_rendering_leaves_nothing(tmp_path: Path) -> None:
    def render_then_interrupt(src: str, dst: Path, **kwargs) -> None:
        fake_render(src, dst)
        raise KeyboardInterrupt

    with mock.patch("copier.run_copy", side_effect=render_then_interrupt):
        result = runner.invoke(app, ["new", str(tmp_path / "p"), "--defaults"])
    assert result.exit_code == 130
    message = f"error: interrupted; nothing was committed and {tmp_path / 'p'} is as it was before"
    assert result.output.strip() == message
    assert not (tmp_path / "p").exists()


def test_ctrl_c_during_update_says_how_to_undo(tmp_path: Path) -> None:
    project = tmp_path / "comp"
    project.mkdir()
    (project / ".copier-answers.yml").write_text("_commit: v1\n_src_path: /nowhere\n")
    git(project, "init", "-q", "-b", "main")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "render")
    with mock.patch("copier.run_update", side_effect=interrupt):
        result = runner.invoke(app, ["update", str(project)])
    assert result.exit_code == 130
    assert result.output.startswith("error: interrupted; nothing was committed"), result.output
    assert "git stash -u" in result.output


def test_ctrl_c_during_demo_says_how_to_start_again(tmp_path: Path) -> None:
    with mock.patch("podium.render.create_project", side_effect=interrupt):
        result = runner.invoke(app, ["demo", str(tmp_path / "demo"), "--fast"])
    assert result.exit_code == 130
    assert result.output.strip().splitlines()[-1] == (
        f"error: interrupted; start the demo again with `podium demo {tmp_path / 'demo'} "
        "--task classification --fast --force`"
    )
