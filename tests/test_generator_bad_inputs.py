"""Every bad input to the generator ends as one red `error:` line and a non-zero exit, with nothing half-written.

One table of inputs, plus the interactive path: answers picked from copier's menus go through the same validators.
"""

from __future__ import annotations

import io
import shutil
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import pytest
from PIL import Image
from podium.cli import app
from typer.testing import CliRunner

from .conftest import TEMPLATE_DIR, git
from .test_discover import cassava, unlabelled_metadata

runner = CliRunner()


@dataclass(frozen=True)
class Case:
    """A command line built in `tmp_path`, the exit code it must end with and what its one line must name."""

    id: str
    args: Callable[[Path], list[str]]
    names: tuple[str, ...]
    exit_code: int = 2
    setup: Callable[[Path], None] | None = None
    watched: str = "dest"  # the folder that must be left absent, or exactly as it was


def non_empty_dest(tmp_path: Path) -> None:
    (tmp_path / "dest").mkdir()
    (tmp_path / "dest" / "README.md").write_text("mine\n")


def template_without_copier_yml(tmp_path: Path) -> None:
    (tmp_path / "fork").mkdir()
    (tmp_path / "fork" / "README.md").write_text("not a template\n")


def answers_files(tmp_path: Path) -> None:
    (tmp_path / "bad.yml").write_text("task: [classification\n")
    (tmp_path / "list.yml").write_text("- task\n")


def project_outside_git(tmp_path: Path) -> None:
    (tmp_path / "dest").mkdir()
    (tmp_path / "dest" / ".copier-answers.yml").write_text("_commit: v1\npackage_name: comp\n")


def project_with_untracked_report(tmp_path: Path) -> None:
    """What the rendered project's `eda` command leaves in a project made before reports/ was git-ignored."""
    project_outside_git(tmp_path)
    project = tmp_path / "dest"
    git(project, "init", "-q", "-b", "main")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "render")
    (project / "reports").mkdir()
    (project / "reports" / "eda.html").write_text("<html></html>\n")


def dest_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "dest").write_text("a file\n")


def new(*extra: str) -> Callable[[Path], list[str]]:
    return lambda tmp_path: ["new", str(tmp_path / "dest"), "--defaults", *extra]


def template_writing_train_csv(tmp_path: Path) -> None:
    """A fork whose template writes data/train.csv, and a competition that holds its own train.csv."""
    shutil.copytree(TEMPLATE_DIR, tmp_path / "fork", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (tmp_path / "fork" / "project" / "{{ data_dir }}" / "train.csv.jinja").write_text("id,label\n")
    cassava(tmp_path / "comp")


def competition_without_label_evidence(tmp_path: Path) -> None:
    unlabelled_metadata(tmp_path / "comp")


def nested_zip(inner: bytes | None, member: str = "../evil.txt") -> Callable[[Path], None]:
    """comp.zip holding train.zip: `inner` bytes as given (None: a zip whose member leaves the folder)."""

    def write(tmp_path: Path) -> None:
        buffer = io.BytesIO()
        if inner is None:
            with zipfile.ZipFile(buffer, "w") as handle:
                handle.writestr(member, "x")
        with zipfile.ZipFile(tmp_path / "comp.zip", "w") as outer:
            outer.writestr("sample_submission.csv", "id,label\n")
            outer.writestr("train.zip", inner if inner is not None else buffer.getvalue())

    return write


def zip_with_unreadable_csv(tmp_path: Path) -> None:
    """comp.zip: an image and a train.csv that is not UTF-8 text."""
    png = io.BytesIO()
    Image.new("L", (8, 8)).save(png, format="PNG")
    with zipfile.ZipFile(tmp_path / "comp.zip", "w") as archive:
        archive.writestr("train/a.png", png.getvalue())
        archive.writestr("train.csv", b"id,label\n\xff\xfe\xfa,1\n")


def answers_file_with_unknown_key(tmp_path: Path) -> None:
    (tmp_path / "unknown.yml").write_text("task: classification\nimagesize: 128\n")


def from_source(*extra: str) -> Callable[[Path], list[str]]:
    return lambda tmp_path: [*new("--from", str(tmp_path / "comp"), *extra)(tmp_path)]


CASES = [
    # Template sources that cannot be read.
    Case(
        "unreachable-url", new("--template", "https://127.0.0.1:9/nope.git"), ("https://127.0.0.1:9/nope.git", "failed")
    ),
    Case("missing-template-path", lambda p: [*new()(p), "--template", str(p / "nope.git")], ("nope.git", "no such")),
    Case(
        "template-without-copier-yml",
        lambda p: [*new()(p), "--template", str(p / "fork")],
        ("fork", "no copier.yml"),
        setup=template_without_copier_yml,
    ),
    # Package names that would shadow a module the project imports.
    *(
        Case(f"package-{name}", new("-d", f"package_name={name}"), (f"package_name '{name}'", f"module {name}"))
        for name in ("numpy", "yaml", "wandb", "json")
    ),
    Case("package-not-identifier", new("-d", "package_name=2fast"), ("package_name '2fast'", "identifier")),
    # Answers that do not fit the task.
    Case(
        "coco-for-classification", new("-d", "task=classification", "-d", "data_layout=coco"), ("data_layout 'coco'",)
    ),
    Case("dice-for-classification", new("-d", "metric=dice"), ("metric 'dice'", "segmentation")),
    Case("accuracy-for-detection", new("--task", "detection", "-d", "metric=accuracy"), ("metric 'accuracy'",)),
    Case("qwk-multi-label", new("-d", "label_mode=multi_label", "-d", "metric=qwk"), ("metric 'qwk'", "single-label")),
    Case("two-class-columns", new("-d", "task=segmentation", "-d", "target_columns=a,b"), ("target_columns 'a,b'",)),
    Case("image-ext-without-dot", new("-d", "image_ext=png"), ("image_ext 'png'", "dot")),
    Case("package-in-the-data-folder", new("-d", "package_name=data"), ("data_dir", "package's folder (data/)")),
    # -d and answers-file keys and values, checked against copier.yml's questions.
    Case("unknown-question", new("-d", "imagesize=128"), ("-d imagesize=128", "no such question", "image_size?")),
    Case("dotted-question", new("-d", "model.backbone=resnet50"), ("-d model.backbone=resnet50", "backbone?")),
    Case("not-an-integer", new("-d", "image_size=abc"), ("-d image_size=abc", "expected an integer")),
    Case("not-a-boolean", new("-d", "pretrained=maybe"), ("-d pretrained=maybe", "expected true or false")),
    Case(
        "answers-file-unknown-key",
        lambda p: [*new()(p), "--answers-file", str(p / "unknown.yml")],
        ("unknown.yml", "imagesize", "image_size?"),
        setup=answers_file_with_unknown_key,
    ),
    # --from sources the files cannot settle.
    Case(
        "from-clash-with-the-template",
        lambda p: [*from_source()(p), "--template", str(p / "fork")],
        ("comp", "train.csv clashes with data/train.csv", "the template writes"),
        setup=template_writing_train_csv,
    ),
    Case(
        "from-label-column-unknown",
        from_source(),
        ("comp", "train.csv", "candidates: patient_id, age, site", "-d target_columns="),
        setup=competition_without_label_evidence,
    ),
    Case(
        "from-nested-zip-corrupt-member",
        lambda p: new("--from", str(p / "comp.zip"))(p),
        ("comp.zip", "member 'train.zip'", "not a readable zip"),
        setup=nested_zip(b"not a zip at all"),
    ),
    Case(
        "from-zip-unreadable-csv",
        lambda p: new("--from", str(p / "comp.zip"))(p),
        ("comp.zip: train.csv: not a readable CSV",),
        setup=zip_with_unreadable_csv,
    ),
    Case(
        "from-nested-zip-slip",
        lambda p: new("--from", str(p / "comp.zip"))(p),
        ("comp.zip", "member 'train.zip'", "'../evil.txt'", "outside"),
        setup=nested_zip(None),
    ),
    # The command line and its files.
    Case("non-empty-dest", new(), ("dest", "is not empty", "--force"), setup=non_empty_dest),
    Case("dest-is-a-file", new(), ("dest", "not a folder"), setup=dest_is_a_file),
    Case("bad-data-pair", new("-d", "novalue"), ("-d 'novalue'", "key=value")),
    Case("unknown-task", new("--task", "tabular"), ("--task 'tabular'",)),
    Case("unreadable-answers-file", lambda p: [*new()(p), "--answers-file", str(p / "none.yml")], ("none.yml", "read")),
    Case(
        "answers-file-bad-yaml",
        lambda p: [*new()(p), "--answers-file", str(p / "bad.yml")],
        ("bad.yml", "not valid YAML", "line"),
        setup=answers_files,
    ),
    Case(
        "answers-file-not-a-mapping",
        lambda p: [*new()(p), "--answers-file", str(p / "list.yml")],
        ("list.yml", "mapping"),
        setup=answers_files,
    ),
    # podium update.
    Case(
        "update-bad-conflict-mode", lambda p: ["update", str(p / "dest"), "--conflict", "both"], ("--conflict 'both'",)
    ),
    Case("update-not-a-project", lambda p: ["update", str(p / "dest")], ("dest", ".copier-answers.yml")),
    Case(
        "update-outside-git",
        lambda p: ["update", str(p / "dest")],
        ("dest", "not a git repository"),
        setup=project_outside_git,
    ),
    Case(
        "update-dirty-tree",
        lambda p: ["update", str(p / "dest")],
        ("dest", "uncommitted changes", "reports/"),
        setup=project_with_untracked_report,
    ),
]


def snapshot(path: Path) -> dict[str, bytes] | None:
    """A folder's files and bytes (git's own folder aside: `git status` may refresh its index), None if absent."""
    if not path.exists():
        return None
    if path.is_file():
        return {"": path.read_bytes()}
    return {
        p.relative_to(path).as_posix(): p.read_bytes() if p.is_file() else b"<dir>"
        for p in path.rglob("*")
        if ".git" not in p.relative_to(path).parts
    }


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_bad_input_is_one_red_line_and_writes_nothing(tmp_path: Path, case: Case) -> None:
    if case.setup:
        case.setup(tmp_path)
    watched = tmp_path / case.watched
    before = snapshot(watched)
    result = runner.invoke(app, case.args(tmp_path))
    assert result.exit_code == case.exit_code, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: "), result.output
    for name in case.names:
        assert name in lines[0], (name, lines[0])
    assert snapshot(watched) == before


class Menu:
    """Stands in for copier's questionary prompt: picks answers, records what each menu offered."""

    def __init__(self, picks: dict[str, object], interrupt_at: str | None = None) -> None:
        self.picks = picks
        self.interrupt_at = interrupt_at
        self.asked: list[str] = []
        self.enabled: dict[str, list[object]] = {}

    def __call__(self, questions: list[dict], answers: dict) -> dict:
        question = questions[0]
        name = question["name"]
        if not question["when"](answers):
            return answers  # questionary skips a question whose `when` is false
        self.asked.append(name)
        if name == self.interrupt_at:
            raise KeyboardInterrupt
        if "choices" in question:
            self.enabled[name] = [choice.value for choice in question["choices"] if not choice.disabled]
        return {name: self.picks.get(name, answers[name])}


def ask(tmp_path: Path, menu: Menu, *extra: str) -> object:
    with (
        mock.patch("copier._main.unsafe_prompt", menu),
        mock.patch("podium.cli._stdin_is_a_terminal", return_value=True),
    ):
        return runner.invoke(app, ["new", str(tmp_path / "dest"), *extra])


def test_menus_offer_only_what_fits_the_task(tmp_path: Path) -> None:
    menu = Menu({"task": "segmentation", "data_layout": "masks", "target_columns": ""})
    result = ask(tmp_path, menu)
    assert result.exit_code == 0, result.output
    assert menu.asked[:3] == ["project_name", "package_name", "task"]
    assert menu.enabled["data_layout"] == ["masks", "rle_csv", "coco_polygons"]
    assert menu.enabled["metric"] == ["dice", "iou"]
    # The masks layout asks for the sample submission's class column; empty means one row per image.
    assert "target_columns" in menu.asked
    assert "  target_columns: []" in (tmp_path / "dest" / "configs" / "default.yaml").read_text()


@pytest.mark.parametrize(
    ("picks", "message"),
    [
        ({"task": "classification", "data_layout": "coco"}, "data_layout 'coco'"),
        ({"task": "classification", "metric": "dice"}, "metric 'dice'"),
        ({"package_name": "pandas"}, "package_name 'pandas'"),
    ],
    ids=["coco-layout", "dice-metric", "package"],
)
def test_asked_answers_are_validated_like_given_ones(tmp_path: Path, picks: dict, message: str) -> None:
    """A pick the menu would not offer (or a typed name) is refused before anything is written."""
    result = ask(tmp_path, Menu(picks))
    assert result.exit_code == 2, result.output
    assert result.output.strip().startswith("error: ") and message in result.output, result.output
    assert not (tmp_path / "dest").exists()


def test_ctrl_c_at_a_question_writes_nothing(tmp_path: Path) -> None:
    result = ask(tmp_path, Menu({}, interrupt_at="metric"))
    assert result.exit_code == 130, result.output
    assert result.output.strip().startswith("error: interrupted; nothing was committed"), result.output
    assert not (tmp_path / "dest").exists()
