"""`podium update`: copier's 3-way merge keeps the user's edits and brings the template's changes."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import yaml
from podium import templates
from podium.cli import app
from typer.testing import CliRunner

from .conftest import git

runner = CliRunner()
TTA_MODULE = Path("comp") / "core" / "tta.py"


def change_template(template: Path) -> None:
    """What a later template release does: edit a module, add an experiment file."""
    tta = template / "project" / "{{ package_name }}" / "core" / "tta.py"
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
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert answers["_src_path"] == "podium"  # not this machine's store path
    first = answers["_commit"]
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
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert (first, answers["_commit"]) == (f"v{templates.__version__}", f"v{templates.__version__}.post1")
    assert answers["_src_path"] == "podium"


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


@pytest.mark.parametrize(("mode", "listed"), [("inline", "comp/core/tta.py"), ("rej", "comp/core/tta.py.rej")])
def test_conflicts_are_listed_and_exit_1(tmp_path: Path, template_copy: Path, mode: str, listed: str) -> None:
    """Both sides change one line: the update names the file to resolve, says how, and exits 1 (not 0, not 2)."""
    tagged_fork(template_copy, "v1", "fork v1")
    project = tmp_path / "comp"
    new = ["new", str(project), "--template", str(template_copy), "--defaults", "-d", "project_name=comp"]
    assert runner.invoke(app, new).exit_code == 0
    tta = project / TTA_MODULE
    tta.write_text(tta.read_text().replace('"identity": lambda x: x,', '"identity": lambda x: x.clone(),'))
    git(project, "commit", "-qam", "ours")
    template_tta = template_copy / "project" / "{{ package_name }}" / "core" / "tta.py"
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


def template_repo(root: Path, template: Path) -> Path:
    """podium's source repository in miniature: `template/` and a file outside it."""
    repo = root / "podium-source"
    shutil.copytree(template, repo / "template")
    (repo / "pyproject.toml").write_text('version = "0.1.0"\n')
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "0.1.0")
    return repo


def test_history_bundle_holds_each_release_of_the_template(tmp_path: Path, template_copy: Path) -> None:
    repo = template_repo(tmp_path, template_copy)
    git(repo, "tag", "v0.1.0")
    git(repo, "tag", "nightly")  # not a release
    change_template(repo / "template")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "0.2.0")
    git(repo, "tag", "v0.2.0")
    (repo / "pyproject.toml").write_text('version = "0.2.1"\n')  # a release that leaves the template alone
    git(repo, "commit", "-qam", "0.2.1")
    git(repo, "tag", "v0.2.1")
    git(repo, "checkout", "-qb", "later")
    (repo / "template" / "copier.yml").write_text((repo / "template" / "copier.yml").read_text() + "\n# later\n")
    git(repo, "commit", "-qam", "0.3.0")
    git(repo, "tag", "v0.3.0")
    git(repo, "checkout", "-q", "v0.2.1")  # the build: v0.3.0 is not in its history

    bundle = tmp_path / "history.bundle"
    assert templates.build_history_bundle(repo, bundle) == ["v0.1.0", "v0.2.0"]
    assert git(repo, "status", "--porcelain") == ""  # the checkout is left alone

    # A fresh store: the releases arrive first, and podium 0.2.1's template is recognised as v0.2.0.
    store = tmp_path / "store"
    assert templates.ensure_template_version(repo / "template", store, "0.2.1", history=bundle) == (store, "v0.2.0")
    assert templates.store_tags(store) == {"v0.1.0", "v0.2.0"}
    assert templates.import_history(store, bundle) == []
    # A store that tagged other content v0.1.0 (a development build) keeps its own tag.
    development = tmp_path / "development"
    shutil.copytree(template_copy, development)
    (development / "copier.yml").write_text((development / "copier.yml").read_text() + "\n# work in progress\n")
    other = tmp_path / "other-store"
    assert templates.ensure_template_version(development, other, "0.1.0")[1] == "v0.1.0"
    assert templates.import_history(other, bundle) == ["v0.2.0"]
    assert templates.ensure_template_version(development, other, "0.2.1", history=bundle)[1] == "v0.1.0"
    assert templates.ensure_template_version(repo / "template", other, "0.2.1", history=bundle)[1] == "v0.2.0"


def test_history_bundle_without_release_tags_is_not_written(tmp_path: Path, template_copy: Path) -> None:
    repo = template_repo(tmp_path, template_copy)
    assert templates.build_history_bundle(repo, tmp_path / "history.bundle") == []
    assert not (tmp_path / "history.bundle").exists()


def test_update_takes_a_project_from_its_recorded_store_path_to_the_marker(
    tmp_path: Path, template_copy: Path, monkeypatch, isolated_store: Path
) -> None:
    """Projects rendered before the marker recorded this machine's store path: they update, and record the marker."""
    monkeypatch.setattr(templates, "bundled_template_dir", lambda: template_copy)
    project = tmp_path / "comp"
    assert runner.invoke(app, ["new", str(project), "--defaults", "-d", "project_name=comp"]).exit_code == 0
    answers_file = project / ".copier-answers.yml"
    store = isolated_store / "templates"
    answers_file.write_text(answers_file.read_text().replace("_src_path: podium", f"_src_path: {store}"))
    git(project, "commit", "-qam", "as rendered by an earlier podium")
    change_template(template_copy)

    result = runner.invoke(app, ["update", str(project)])
    assert result.exit_code == 0, result.output
    assert "TEMPLATE_V2 = True" in (project / TTA_MODULE).read_text()
    assert yaml.safe_load(answers_file.read_text())["_src_path"] == "podium"
    assert str(store) not in answers_file.read_text()


def committed_project(project: Path, answers: str) -> Path:
    project.mkdir()
    (project / ".copier-answers.yml").write_text(answers)
    git(project, "init", "-q", "-b", "main")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "render")
    return project


def test_update_names_a_version_this_podium_does_not_carry(tmp_path: Path) -> None:
    project = committed_project(tmp_path / "comp", "_commit: v0.0.1.post3\n_src_path: podium\n")
    result = runner.invoke(app, ["update", str(project)])
    assert result.exit_code == 2
    assert "rendered from template v0.0.1.post3, which podium" in result.output
    assert f"it knows v{templates.__version__}" in result.output


def test_update_explains_another_machines_store_path(tmp_path: Path) -> None:
    other = "/home/someone-else/.local/share/podium/templates"
    project = committed_project(tmp_path / "comp", f"_commit: v0.1.0\n_src_path: {other}\n")
    result = runner.invoke(app, ["update", str(project)])
    assert result.exit_code == 2
    assert f"records _src_path {other}, another machine's podium template store" in result.output
    assert "`_src_path: podium`" in result.output


def as_teammate(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    """Another machine: home folder, copier's cache of remote templates, podium store."""
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "cache"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    monkeypatch.setenv("PODIUM_HOME", str(home / "podium"))


def test_a_fork_published_by_url_updates_from_its_tags(tmp_path: Path, template_copy: Path, monkeypatch) -> None:
    tagged_fork(template_copy, "v1.0.0", "fork v1")
    published = tmp_path / "fork.git"
    git(tmp_path, "clone", "-q", "--bare", str(template_copy), str(published))
    url = published.as_uri()  # file:///...fork.git, as a team's https:// URL would be

    as_teammate(monkeypatch, tmp_path / "a")
    project_a = tmp_path / "a" / "comp"
    result = runner.invoke(app, ["new", str(project_a), "--template", url, "--defaults", "-d", "project_name=comp"])
    assert result.exit_code == 0, result.output
    assert yaml.safe_load((project_a / ".copier-answers.yml").read_text())["_src_path"] == url

    as_teammate(monkeypatch, tmp_path / "b")
    git(tmp_path, "clone", "-q", str(project_a), str(tmp_path / "b" / "comp"))
    project = tmp_path / "b" / "comp"
    hand_edit(project)
    change_template(template_copy)
    tagged_fork(template_copy, "v2.0.0", "fork v2")
    git(template_copy, "push", "-q", str(published), "main", "v2.0.0")

    result = runner.invoke(app, ["update", str(project)])
    assert result.exit_code == 0, result.output
    assert f"Updated {project} from template v1.0.0 to v2.0.0" in result.output
    assert "TEMPLATE_V2 = True" in (project / TTA_MODULE).read_text()
    assert "LB 0.912 with convnext." in (project / "README.md").read_text()
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert (answers["_src_path"], answers["_commit"]) == (url, "v2.0.0")
    assert any((tmp_path / "b" / "cache" / "copier" / "git").glob("*.git"))  # B fetched from the URL itself
    assert not (tmp_path / "b" / "podium").exists()  # a fork never goes through podium's store


# The last template with one flat package folder; later templates split it into core/, tasks/<task>/ and tools/.
FLAT_LAYOUT_COMMIT = "7818c38f59cf1f010ec214b471efc46732b05112"


def test_update_across_the_package_layout_change_keeps_hand_edits(tmp_path: Path) -> None:
    import io
    import subprocess
    import tarfile

    from .conftest import REPO_ROOT, TEMPLATE_DIR

    archive = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "archive", FLAT_LAYOUT_COMMIT, "template"], capture_output=True, check=False
    )
    if archive.returncode != 0:
        pytest.skip("this podium checkout lacks the flat-layout commit (a shallow clone)")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as bundle:
        bundle.extractall(tmp_path / "old", filter="data")
    fork = tmp_path / "old" / "template"
    tagged_fork(fork, "v1.0.0", "flat layout")
    project = tmp_path / "comp"
    result = runner.invoke(app, ["new", str(project), "--template", str(fork), "--defaults", "-d", "project_name=comp"])
    assert result.exit_code == 0, result.output
    assert (project / "comp" / "tta.py").is_file() and (project / "comp" / "tasks" / "classification.py").is_file()
    hand_edit(project)

    for path in fork.iterdir():  # the fork's next release is today's template
        if path.name != ".git":
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    shutil.copytree(TEMPLATE_DIR, fork, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    tagged_fork(fork, "v2.0.0", "package layout")

    result = runner.invoke(app, ["update", str(project)])
    assert result.exit_code == 0, result.output
    package = project / "comp"
    assert (package / "tasks" / "classification" / "task.py").is_file() and (package / "core" / "tta.py").is_file()
    assert not (package / "tta.py").exists() and not (package / "tasks" / "classification.py").exists()
    assert "LB 0.912 with convnext." in (project / "README.md").read_text()
    assert "epochs: 25 " in (project / "configs" / "default.yaml").read_text()
    help_text = subprocess.run(
        [sys.executable, "-m", "comp", "--help"], cwd=project, capture_output=True, text=True, check=True
    ).stdout
    assert "ensemble" in help_text and "tune" in help_text


LOSS = Path("comp") / "tasks" / "classification" / "loss.py"
MY_LOSS = LOSS.with_name("my_loss.py")
EDA = LOSS.with_name("eda.py")


def test_update_names_template_changes_to_a_file_the_project_renamed(tmp_path: Path, template_copy: Path) -> None:
    """The user `git mv`-ed loss.py and deleted eda.py; the template then changed both: the update names them, leaves
    the template's change as a patch beside the renamed file (and where the deleted one was), and exits 1 like
    conflicts (copier alone dropped the changes silently)."""
    tagged_fork(template_copy, "v1", "fork v1")
    project = tmp_path / "comp"
    new = ["new", str(project), "--template", str(template_copy), "--defaults", "-d", "project_name=comp"]
    assert runner.invoke(app, new).exit_code == 0
    git(project, "mv", str(LOSS), str(MY_LOSS))
    git(project, "commit", "-qm", "our loss module")
    git(project, "rm", "-q", str(EDA))
    git(project, "commit", "-qm", "no eda")
    tasks = template_copy / "project" / "{{ package_name }}" / "tasks"
    for name in ("loss.py", "eda.py"):
        module = tasks / "{% if task == 'classification' %}classification{% endif %}" / name
        module.write_text(module.read_text() + "\n\nV2 = True  # added by the newer template\n")
    tagged_fork(template_copy, "v2", "fork v2")

    result = runner.invoke(app, ["update", str(project)])
    assert result.exit_code == 1, result.output
    patch = project / f"{MY_LOSS}.template.patch"
    assert f"changed {LOSS}, which this project renamed to {MY_LOSS}" in result.output, result.output
    assert f"changed {EDA}, which this project deleted: its change is in {EDA}.template.patch" in result.output
    assert result.output.strip().splitlines()[-1].startswith("error: "), result.output
    assert "V2 = True" not in (project / MY_LOSS).read_text()
    git(project, "apply", str(patch))
    assert "V2 = True" in (project / MY_LOSS).read_text()
    assert not (project / LOSS).exists() and not (project / EDA).exists()


PAGE = Path("comp") / "core" / "report" / "page.py"
LEDGER = Path("comp") / "core" / "ledger.py"


def test_update_carries_edits_to_files_the_template_moved_or_deleted(tmp_path: Path, template_copy: Path) -> None:
    """The project edited page.py and ledger.py; the next template moves page.py (and changes it) and deletes
    ledger.py. Copier alone drops both edits silently: the update merges the first into the moved file, keeps the
    second, and names both."""
    tagged_fork(template_copy, "v1", "fork v1")
    project = tmp_path / "comp"
    new = ["new", str(project), "--template", str(template_copy), "--defaults", "-d", "project_name=comp"]
    assert runner.invoke(app, new).exit_code == 0
    for path in (PAGE, LEDGER):
        text = (project / path).read_text()
        (project / path).write_text(text.replace("\ndef ", "\n# our edit\ndef ", 1))
    git(project, "commit", "-qam", "our edits")
    package = template_copy / "project" / "{{ package_name }}"
    moved = package / "core" / "report" / "pages.py"
    (package / "core" / "report" / "page.py").rename(moved)
    moved.write_text(moved.read_text() + "\n\nV2 = True  # added by the newer template\n")
    (package / "core" / "ledger.py").unlink()
    tagged_fork(template_copy, "v2", "fork v2")

    result = runner.invoke(app, ["update", str(project)])
    assert result.exit_code == 0, result.output
    merged = (project / PAGE.with_name("pages.py")).read_text()
    assert "# our edit\ndef " in merged and "V2 = True" in merged and "<<<<<<<" not in merged
    assert not (project / PAGE).exists()
    assert f"the template moved {PAGE} to {PAGE.with_name('pages.py')}: this project's edits" in result.output
    assert "# our edit\ndef " in (project / LEDGER).read_text()
    assert f"the template deleted {LEDGER}, which this project had edited: your copy is kept" in result.output


def test_edits_that_clash_with_the_templates_move_are_left_as_conflicts(tmp_path: Path, template_copy: Path) -> None:
    tagged_fork(template_copy, "v1", "fork v1")
    project = tmp_path / "comp"
    new = ["new", str(project), "--template", str(template_copy), "--defaults", "-d", "project_name=comp"]
    assert runner.invoke(app, new).exit_code == 0
    first_line = (project / PAGE).read_text().splitlines()[0]
    (project / PAGE).write_text((project / PAGE).read_text().replace(first_line, '"""Our report pages."""', 1))
    git(project, "commit", "-qam", "our docstring")
    package = template_copy / "project" / "{{ package_name }}"
    moved = package / "core" / "report" / "pages.py"
    (package / "core" / "report" / "page.py").rename(moved)
    moved.write_text(moved.read_text().replace(first_line, '"""The template\'s report pages."""', 1))
    tagged_fork(template_copy, "v2", "fork v2")

    result = runner.invoke(app, ["update", str(project)])
    assert result.exit_code == 1, result.output
    assert "merged there with conflict markers to resolve" in result.output
    assert f"conflicts in 1 file(s): {PAGE.with_name('pages.py')}" in result.output
    assert "<<<<<<< before updating" in (project / PAGE.with_name("pages.py")).read_text()
