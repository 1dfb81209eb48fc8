"""git for rendered projects: podium's own identity on its commits, one-line errors, `git status` paths."""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from pathlib import Path

from podium.errors import PodiumError

GIT_IDENTITY = ["-c", "user.name=podium", "-c", "user.email=podium@localhost", "-c", "commit.gpgsign=false"]
FIRST_COMMIT = "Render the competition project with podium"


def run_git(cwd: Path, *args: str, check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["git", *GIT_IDENTITY, *args], cwd=cwd, capture_output=True, text=True, input=stdin)
    if check and result.returncode != 0:
        raise PodiumError(f"git {args[0]} failed in {cwd}: {' '.join(result.stderr.split())}")
    return result


def git_failure(where: str, error: Exception) -> PodiumError:
    """plumbum's ProcessExecutionError (copier runs git through plumbum) as one line: git's own `fatal:` line."""
    lines = [line.strip() for line in str(getattr(error, "stderr", "") or "").splitlines() if line.strip()]
    fatal = [line for line in lines if line.lower().startswith(("fatal:", "error:"))]
    argv = [str(arg) for arg in getattr(error, "argv", [])]
    command = " ".join(Path(argv[0]).name.split() + argv[1:2]) if argv else "git"
    detail = (fatal or lines or [f"exit {getattr(error, 'retcode', '?')}"])[-1]
    return PodiumError(f"{where}: {command} failed ({detail})")


def commit_render(dest: Path, paths: Iterable[str] | None, had_git: bool) -> None:
    """Commit the first render: everything in a folder that was empty, else only `paths` (what the template wrote)."""
    if not had_git:
        run_git(dest, "init", "-q", "-b", "main")
    if paths is None:
        run_git(dest, "add", "-A")
        run_git(dest, "commit", "-q", "--allow-empty", "-m", FIRST_COMMIT)
        return
    wanted = sorted(paths)
    ignored = set(run_git(dest, "check-ignore", "--stdin", check=False, stdin="\n".join(wanted)).stdout.splitlines())
    spec = "\n".join(path for path in wanted if path not in ignored)
    run_git(dest, "add", "--pathspec-from-file=-", stdin=spec)
    if run_git(dest, "diff", "--cached", "--quiet", "--pathspec-from-file=-", check=False, stdin=spec).returncode:
        run_git(dest, "commit", "-q", "-m", FIRST_COMMIT, "--pathspec-from-file=-", stdin=spec)


def status_paths(project: Path, *extra: str) -> list[Path]:
    """Paths `git status` reports (porcelain, root-relative), as absolute paths."""
    top = Path(run_git(project, "rev-parse", "--show-toplevel").stdout.strip())
    entries = iter(run_git(project, "status", "--porcelain", "-z", *extra).stdout.split("\0"))
    paths = []
    for entry in entries:
        if len(entry) < 4:
            continue
        paths.append(top / entry[3:])
        if entry[0] in "RC":
            next(entries, None)  # a rename's or copy's source path follows
    return paths
