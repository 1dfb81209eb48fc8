"""Answers given as `-d key=value` or in an answers file, checked against the template's questions before copier
runs (an unknown key names the closest question, a value of the wrong type the type expected); a project's own."""

from __future__ import annotations

import difflib
import importlib.machinery
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from podium.errors import PodiumError

Questions = dict[str, dict[str, Any]]
ANSWERS_FILE = ".copier-answers.yml"

# copier's question types that constrain a value: whether a value fits, and what was expected.
TYPES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "int": (lambda value: isinstance(value, int) and not isinstance(value, bool), "an integer"),
    "float": (lambda value: isinstance(value, int | float) and not isinstance(value, bool), "a number"),
    "bool": (lambda value: isinstance(value, bool), "true or false"),
}
# copier infers a question's type from its default when `type` is not given.
INFERRED = {bool: "bool", int: "int", float: "float"}


def question_type(question: dict[str, Any]) -> str:
    """The question's copier type: given, else inferred from its default (str when it cannot tell)."""
    return str(question.get("type") or INFERRED.get(type(question.get("default")), "str"))


def parse_value(text: str, question: dict[str, Any] | None) -> Any:
    """A `-d` value: text as given for a str question (so `-d wandb_mode=off` stays "off"), else parsed as YAML so
    numbers and booleans keep their type (text that is not YAML stays text)."""
    if question is not None and question_type(question) == "str":
        return text
    try:
        return yaml.safe_load(text) if text else ""
    except yaml.YAMLError:
        return text  # e.g. `-d project_name=a: b` on a template we cannot read: keep the text as given


def check_answer(key: str, value: Any, questions: Questions | None, where: str) -> None:
    """Refuse, in one line starting with `where`, a key that is no question or a value its type does not take.

    Args:
        key: The question's name as given.
        value: The answer, parsed.
        questions: The template's questions; None (a template not on this machine) checks nothing.
        where: How the line names the answer, e.g. `-d image_size=abc`.
    """
    if questions is None:
        return
    if key not in questions:
        raise PodiumError(f"{where}: no such question; {closest_question(key, list(questions))}")
    fits, expected = TYPES.get(question_type(questions[key]), (None, ""))
    if fits is not None and not fits(value):
        raise PodiumError(f"{where}: expected {expected}")


def check_answers(answers: dict[str, Any], questions: Questions | None, where: str) -> None:
    """`check_answer` for each answer of a file; `where` names the file."""
    for key, value in answers.items():
        check_answer(str(key), value, questions, f"{where}: {key} {value!r}")


def closest_question(key: str, names: list[str]) -> str:
    """`did you mean NAME?` for the question nearest `key` (a dotted config path by its last part, as
    `model.backbone` means backbone), else the list of questions."""
    last = key.rsplit(".", 1)[-1]
    match = last if last in names else next(iter(difflib.get_close_matches(last, names, n=1, cutoff=0.6)), None)
    return f"did you mean {match}?" if match else f"the questions are {', '.join(names)}"


def parse_data_pairs(pairs: list[str], questions: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """`key=value` strings into answers, each checked against the template's `questions` (when known): an unknown
    key or a value of the wrong type is refused in one line naming the pair."""
    data: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise PodiumError(f"-d {pair!r}: expected key=value")
        data[key] = parse_value(text, (questions or {}).get(key))
        check_answer(key, data[key], questions, f"-d {pair}")
    return data


def load_answers_file(path: Path) -> dict[str, Any]:
    """Answers from a YAML file (see examples/); keys starting with `_` are copier's own and dropped."""
    try:
        loaded = yaml.safe_load(path.read_text())
    except OSError as error:
        raise PodiumError(f"answers file {path}: cannot read ({error.strerror})") from error
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or "cannot parse"
        raise PodiumError(f"answers file {path}: not valid YAML{where} ({problem})") from error
    if not isinstance(loaded, dict):
        raise PodiumError(f"answers file {path}: expected a mapping of question: answer")
    return {key: value for key, value in loaded.items() if not str(key).startswith("_")}


def check_package_name(name: object) -> None:
    """Refuse a package name that would shadow the standard library or an installed module.

    copier.yml's validator knows the standard library and the project's dependencies; this also catches any other
    module installed where podium runs. Folders on the path that are not packages (namespace packages) and the
    current folder do not count: `python -m podium new my_comp` run beside `my_comp/` must still work.
    """
    if not isinstance(name, str) or not name.isidentifier():
        return  # copier's validator explains what a package name must look like
    if name in sys.stdlib_module_names or name in sys.builtin_module_names:
        where = "the standard-library module"
    elif _installed_module(name):
        where = "the installed module"
    else:
        return
    raise PodiumError(
        f"package_name {name!r}: it would shadow a library ({where} {name}); choose another (e.g. {name}_comp)"
    )


def _installed_module(name: str) -> bool:
    cwd = Path.cwd().resolve()
    search = [entry for entry in sys.path if entry and Path(entry).resolve() != cwd]
    spec = importlib.machinery.PathFinder.find_spec(name, search)
    return spec is not None and spec.origin not in (None, "namespace")


def read_answers(project: Path) -> dict[str, Any]:
    answers = project / ANSWERS_FILE
    if not answers.is_file():
        raise PodiumError(f"{project}: no {ANSWERS_FILE}; is this a project made by podium new?")
    return yaml.safe_load(answers.read_text()) or {}
