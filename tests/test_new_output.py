"""What `podium new` prints: no copier per-file lines unless --verbose, no escape codes when piped, and one
next-steps block whose data line tells what happened to the data."""

from __future__ import annotations

import re
from pathlib import Path
from unittest import mock

from podium.cli import INSTALL, app
from podium.demo import write_digits_competition
from typer.testing import CliRunner

from .conftest import git

runner = CliRunner()  # not a terminal, as when the output is piped
PER_FILE = re.compile(r"^\s*(create|overwrite|identical|conflict|skip)\s+\S")
PUT_DATA = "# put the competition's files in data/ (data/README.md lists them)"


def next_steps(output: str) -> list[str]:
    """The lines of the one next-steps block (the output's last lines), stripped."""
    assert output.count("Next steps:") == 1, output
    assert "Next:" not in output and "then:" not in output, output  # no second, older hint
    return [line.strip() for line in output.split("Next steps:\n", 1)[1].splitlines() if line.strip()]


def commands(block: list[str]) -> list[str]:
    """The block's commands without their comments."""
    return [line.split("  #", 1)[0].strip() for line in block if not line.startswith("#")]


def test_new_prints_no_file_list_and_no_escape_codes_by_default(tmp_path: Path) -> None:
    project = tmp_path / "comp"
    result = runner.invoke(app, ["new", str(project), "--defaults"])
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output
    assert not [line for line in result.output.splitlines() if PER_FILE.match(line)], result.output
    assert "Put the competition files under" not in result.output  # the template's copier message is not shown
    block = next_steps(result.output)
    assert commands(block) == [
        f"cd {project}",
        INSTALL,
        "comp check",
        "comp eda",
        "comp run -e smoke",
        "comp run",
    ]
    assert block[2] == PUT_DATA  # no data given: where it goes, after the install and before check
    assert "Linked" not in result.output
    # The block's commands are the project's own: its README's install command and its console script.
    assert INSTALL in (project / "README.md").read_text()
    assert '[project.scripts]\ncomp = "comp.cli:main"\n' in (project / "pyproject.toml").read_text()


def test_verbose_lists_each_file_the_template_wrote(tmp_path: Path) -> None:
    project = tmp_path / "comp"
    result = runner.invoke(app, ["new", str(project), "--defaults", "--verbose"])
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output
    listed = {line.split()[1] for line in result.output.splitlines() if PER_FILE.match(line)}
    written = {path.relative_to(project).as_posix() for path in project.rglob("*") if path.is_file()}
    written = {path for path in written if not path.startswith(".git/")}
    assert listed == written and "    create  README.md" in result.output.splitlines()
    assert f"Created {project} ({len(written)} files)" in result.output
    assert len(next_steps(result.output)) == 7


def test_new_from_a_competition_says_where_its_data_went(tmp_path: Path) -> None:
    """With --from the data line tells what was linked, and nothing asks for the files to be put there."""
    source = tmp_path / "digits"
    write_digits_competition(source, tmp_path / "holdout")
    project = tmp_path / "comp"
    result = runner.invoke(app, ["new", str(project), "--from", str(source), "--defaults"])
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output
    linked = f"Linked 4 item(s) from {source} into data/: sample_submission.csv, test, train, train.csv"
    assert linked in result.output.splitlines(), result.output
    assert result.output.index(linked) < result.output.index("Next steps:")
    block = next_steps(result.output)
    assert "put the competition's files" not in result.output and PUT_DATA not in block
    assert commands(block) == [f"cd {project}", INSTALL, "comp check", "comp eda", "comp run -e smoke", "comp run"]
    assert (project / "data" / "train.csv").is_symlink()


def fake_render(src: str, dst: Path, **kwargs) -> None:
    Path(dst).mkdir(parents=True, exist_ok=True)
    (Path(dst) / ".copier-answers.yml").write_text("package_name: fake_comp\n")


def test_colour_only_on_a_terminal_and_never_with_no_color(tmp_path: Path) -> None:
    """click keeps colour where it thinks the output is a terminal (color=True here); NO_COLOR still drops it."""
    with mock.patch("copier.run_copy", side_effect=fake_render):
        coloured = runner.invoke(app, ["new", str(tmp_path / "a"), "--defaults"], color=True)
        plain = runner.invoke(app, ["new", str(tmp_path / "b"), "--defaults"], color=True, env={"NO_COLOR": "1"})
    assert coloured.exit_code == 0 and plain.exit_code == 0, coloured.output + plain.output
    assert "\x1b[32m" in coloured.output
    assert "\x1b" not in plain.output
    assert "fake-comp run -e smoke" in plain.output  # the console script: the package name with dashes
    assert git(tmp_path / "b", "log", "--format=%s").strip() == "Render the competition project with podium"
