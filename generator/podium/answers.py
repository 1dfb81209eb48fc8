"""Answers given as `-d key=value` or in an answers file, checked against the template's questions before copier
runs: an unknown key names the closest question, a value of the wrong type the type the question expects."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

import yaml

from podium.errors import PodiumError

Questions = dict[str, dict[str, Any]]

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
