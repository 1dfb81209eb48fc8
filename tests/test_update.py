"""`podium update`: copier's 3-way merge keeps the user's edits and brings the template's changes."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from podium import templates
from podium.cli import app
from typer.testing import CliRunner

from .conftest import git

runner = CliRunner()
TTA_MODULE = Path("comp") / "tta.py"


def change_template(template: Path) -> None:
    """What a later template release does: edit a module, add an experiment file."""
    tta = template / "project" / "{{ package_name }}" / "tta.py"
    tta.write_text(tta.read_text() + "\n\nTEMPLATE_V2 = True  # added by the newer template\n")
    (template / "project" / "configs" / "experiment" / "v2.yaml").write_text("train:\n  epochs: 2\n")


def hand_edit(project: Path) -> None:
    readme = project / "README.md"
    readme.write_text(readme.read_text() + "\n## Our notes\nLB 0.912 with convnext.\n")
    config = project / "configs" / "default.yaml"
    config.write_text(config.read_text().replace("epochs: 10 ", "epochs: 25 "))
    git(project, "commit", "-qam", "our edits")


def test_update_from_the_bundled_template_store(tmp_path: Path, template_copy: Path, monkeypatch) -> None:
    monkeypatch.setattr(templates, "bundled_template_dir", lambda: template_copy)
    project = tmp_path / "comp"
    result = runner.invoke(app, ["new", str(project), "--defaults", "-d", "project_name=comp"])
    assert result.exit_code == 0, result.output
    first = yaml.safe_load((project / ".copier-answers.yml").read_text())["_commit"]
    hand_edit(project)

    change_template(template_copy)  # a newer podium ships this template
    pretend = runner.invoke(app, ["update", str(project), "--pretend"])
    assert pretend.exit_code == 0, pretend.output
    assert "TEMPLATE_V2" not in (project / TTA_MODULE).read_text()

    result = runner.invoke(app, ["update", str(project)])
    assert result.exit_code == 0, result.output
    assert "TEMPLATE_V2 = True" in (project / TTA_MODULE).read_text()
    assert (project / "configs" / "experiment" / "v2.yaml").is_file()
    assert "LB 0.912 with convnext." in (project / "README.md").read_text()
    assert "epochs: 25 " in (project / "configs" / "default.yaml").read_text()
    second = yaml.safe_load((project / ".copier-answers.yml").read_text())["_commit"]
    assert (first, second) == (f"v{templates.__version__}", f"v{templates.__version__}.post1")


def test_update_from_a_fork_given_by_path(tmp_path: Path, template_copy: Path) -> None:
    fork = template_copy
    git(fork, "init", "-q", "-b", "main")
    git(fork, "add", "-A")
    git(fork, "commit", "-qm", "fork v1")
    git(fork, "tag", "v1.0.0")
    project = tmp_path / "comp"
    result = runner.invoke(app, ["new", str(project), "--template", str(fork), "--defaults", "-d", "project_name=comp"])
    assert result.exit_code == 0, result.output
    hand_edit(project)
    change_template(fork)
    git(fork, "commit", "-qam", "fork v2")
    git(fork, "add", "-A")
    git(fork, "commit", "-qm", "fork v2 files")
    git(fork, "tag", "v2.0.0")

    result = runner.invoke(app, ["update", str(project)])
    assert result.exit_code == 0, result.output
    assert "TEMPLATE_V2 = True" in (project / TTA_MODULE).read_text()
    assert "LB 0.912 with convnext." in (project / "README.md").read_text()
    assert yaml.safe_load((project / ".copier-answers.yml").read_text())["_commit"] == "v2.0.0"


def tagged_fork(template: Path, tag: str, message: str) -> None:
    """Commit everything in the template folder (a git repository from the first call on) and tag it."""
    if not (template / ".git").exists():
        git(template, "init", "-q", "-b", "main")
    git(template, "add", "-A")
    git(template, "commit", "-qm", message)
    git(template, "tag", tag)


@pytest.mark.parametrize(("mode", "listed"), [("inline", "comp/tta.py"), ("rej", "comp/tta.py.rej")])
def test_conflicts_are_listed_and_exit_1(tmp_path: Path, template_copy: Path, mode: str, listed: str) -> None:
    """Both sides change one line: the update names the file to resolve, says how, and exits 1 (not 0, not 2)."""
    tagged_fork(template_copy, "v1", "fork v1")
    project = tmp_path / "comp"
    new = ["new", str(project), "--template", str(template_copy), "--defaults", "-d", "project_name=comp"]
    assert runner.invoke(app, new).exit_code == 0
    tta = project / TTA_MODULE
    tta.write_text(tta.read_text().replace('"identity": lambda x: x,', '"identity": lambda x: x.clone(),'))
    git(project, "commit", "-qam", "ours")
    template_tta = template_copy / "project" / "{{ package_name }}" / "tta.py"
    template_tta.write_text(template_tta.read_text().replace('"identity": lambda x: x,', '"identity": lambda y: y,'))
    tagged_fork(template_copy, "v2", "fork v2")

    result = runner.invoke(app, ["update", str(project), "--conflict", mode])
    assert result.exit_code == 1, result.output
    assert f"Updated {project} from template v1 to v2" in result.output
    error = result.output.strip().splitlines()[-1]
    assert error.startswith(f"error: conflicts in 1 file(s): {listed}; "), error
    assert error.endswith("then git add and commit"), error
    if mode == "inline":
        text = tta.read_text()
        assert "<<<<<<<" in text and "x.clone()" in text and "lambda y: y" in text
    else:
        assert (project / listed).is_file()


def test_store_tags_each_content_once(tmp_path: Path, template_copy: Path) -> None:
    store = tmp_path / "store"
    assert templates.ensure_template_version(template_copy, store, "1.2.3")[1] == "v1.2.3"
    assert templates.ensure_template_version(template_copy, store, "1.2.3")[1] == "v1.2.3"
    change_template(template_copy)
    assert templates.ensure_template_version(template_copy, store, "1.2.3")[1] == "v1.2.3.post1"
    assert templates.ensure_template_version(template_copy, store, "1.3.0")[1] == "v1.2.3.post1"


@pytest.mark.parametrize("bad", ["inline2"])
def test_update_rejects_unknown_conflict_mode(tmp_path: Path, bad: str) -> None:
    result = runner.invoke(app, ["update", str(tmp_path), "--conflict", bad])
    assert result.exit_code == 2
    assert "expected inline or rej" in result.output


def test_template_tasks_run_only_with_trust(tmp_path: Path, template_copy: Path) -> None:
    copier_yml = template_copy / "copier.yml"
    copier_yml.write_text(copier_yml.read_text() + '\n_tasks:\n  - "touch task-ran.txt"\n')
    git(template_copy, "init", "-q", "-b", "main")
    git(template_copy, "add", "-A")
    git(template_copy, "commit", "-qm", "fork with tasks")
    git(template_copy, "tag", "v1.0.0")
    refused = runner.invoke(app, ["new", str(tmp_path / "a"), "--template", str(template_copy), "--defaults"])
    assert refused.exit_code == 2
    assert "Re-run with --trust" in refused.output
    trusted = runner.invoke(
        app, ["new", str(tmp_path / "b"), "--template", str(template_copy), "--defaults", "--trust"]
    )
    assert trusted.exit_code == 0, trusted.output
    assert (tmp_path / "b" / "task-ran.txt").is_file()
