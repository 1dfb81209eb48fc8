"""The server half of `_project.ProjectShell`: one Python process inside a rendered project that runs its CLI
commands and code snippets one after another, so torch and the package are imported once, not once a command."""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import traceback
from typing import Any, TextIO


class Tee(io.TextIOBase):
    """Keeps what a request prints and, with `echo`, passes it on to the terminal as it comes."""

    def __init__(self, echo: TextIO | None) -> None:
        self.kept = io.StringIO()
        self.echo = echo

    def write(self, text: str) -> int:
        self.kept.write(text)
        if self.echo is not None:
            self.echo.write(text)
            self.echo.flush()
        return len(text)

    def isatty(self) -> bool:
        return False


def _exit_code(exit: SystemExit) -> int:
    if exit.code is None:
        return 0
    return exit.code if isinstance(exit.code, int) else 1


def handle(request: dict[str, Any], echo: TextIO | None) -> dict[str, Any]:
    """Runs one request in its project folder ("cwd"): {"argv": [...]} through the Typer app of its "package", or
    {"code": "..."} with exec. Several projects can take turns: their packages have different names."""
    os.chdir(request["cwd"])
    if request["cwd"] not in sys.path:
        sys.path.insert(0, request["cwd"])
    package, stream, code = request["package"], Tee(echo), 0
    with contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream):
        try:
            if "argv" in request:
                from importlib import import_module

                import_module(f"{package}.cli").app(args=request["argv"], prog_name=package)
            else:
                exec(compile(request["code"], "<shell>", "exec"), {"__name__": "__shell__"})
        except SystemExit as exit:  # Typer ends every command, a good one too, with SystemExit
            code = _exit_code(exit)
        except BaseException:
            traceback.print_exc()
            code = 1
    return {"code": code, "output": stream.kept.getvalue()}


def serve(replies: int, echo: bool) -> None:
    """Answers each JSON request line from stdin with one JSON line on the file descriptor `replies`: output
    written below Python (loader workers, C++ warnings) goes to this process's own stdout and stderr instead."""
    with os.fdopen(replies, "w") as answers:
        for line in sys.stdin:
            answers.write(json.dumps(handle(json.loads(line), sys.__stdout__ if echo else None)) + "\n")
            answers.flush()
