"""The error types the CLI turns into a red one-line message and an exit code."""

from __future__ import annotations


class PodiumError(Exception):
    """A problem the user can fix; its message is one line that says what and where."""

    exit_code = 2


class UpdateConflicts(PodiumError):
    """`podium update` merged with conflicts: the user resolves them and commits (exit 1, not 2: no bad input)."""

    exit_code = 1


class Interrupted(PodiumError):
    """Ctrl-C: the message says what was left behind and how to go on (exit 130, as a shell reports SIGINT)."""

    exit_code = 130
