"""The one error type the CLI turns into a red one-line message and an exit code."""

from __future__ import annotations


class PodiumError(Exception):
    """A problem the user can fix; its message is one line that says what and where."""

    exit_code = 2
