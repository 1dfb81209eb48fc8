"""Errors the user can fix; the CLI prints them as one red line (see cli.py)."""

from __future__ import annotations

import re

# The last traceback line a DataLoader worker re-raises with: "pkg.errors.DataError: message".
_EXCEPTION_PREFIX = re.compile(r"^[A-Za-z_][\w.]*: ")


class ProjectError(Exception):
    """A problem with inputs or configuration; the message names the file, row or key."""

    exit_code = 2


class ConfigError(ProjectError):
    """A config key is unknown, of the wrong type or out of range."""


class DataError(ProjectError):
    """A competition file is missing, unreadable or inconsistent."""


class ModelError(ProjectError):
    """A model cannot be built or its weights cannot be loaded."""


class SubmissionError(ProjectError):
    """A submission would not be accepted by the competition."""


def one_line(error: BaseException) -> str:
    """The user-facing line of an error, also when a DataLoader worker re-raised it with its traceback."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    if len(lines) > 1 and lines[0].startswith("Caught "):
        return _EXCEPTION_PREFIX.sub("", lines[-1])
    return lines[0]
