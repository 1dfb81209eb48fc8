"""The package's shape: no import cycles (lazy and type-only imports included), no import up a floor (core, tasks,
settings, stages, tools, entry points), no function over the statement limit of pyproject.toml's ruff settings, and
every module importable in this project's task."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import PACKAGE

PACKAGE_DIR = Path(__file__).resolve().parents[1]


def modules() -> dict[str, Path]:
    """Dotted name -> file of every module of the package except the tests."""
    found = {}
    for path in PACKAGE_DIR.rglob("*.py"):
        parts = path.relative_to(PACKAGE_DIR).with_suffix("").parts
        if parts[0] == "tests" or "__pycache__" in parts:
            continue
        name = ".".join((PACKAGE, *parts)).removesuffix(".__init__")
        found[name] = path
    return found


def _type_checking_only(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def imports_of(name: str, path: Path, known: set[str], type_only: bool = False) -> set[str]:
    """Package modules `name` imports at run time, anywhere in the file (parents of a submodule included:
    importing a.b.c runs a and a.b first); with `type_only`, its TYPE_CHECKING imports too."""
    tree = ast.parse(path.read_text())
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    targets = set()
    for node in ast.walk(tree):
        if not type_only and _type_checking_only(node, parents):
            continue
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            candidates = [module, *(f"{module}.{alias.name}" for alias in node.names)]
        elif isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        else:
            continue
        for candidate in candidates:
            parts = candidate.split(".")
            targets.update(".".join(parts[:end]) for end in range(1, len(parts) + 1))
    return {target for target in targets if target in known and target != name}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 on the current path, 2 done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state and (cycle := visit(target, [*path, target])):
                return cycle
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start, [start])):
            return cycle
    return None


def test_the_package_has_no_import_cycle() -> None:
    found = modules()
    # Importing a subpackage runs its parent package first; that edge alone is not a cycle.
    graph = {
        name: {t for t in imports_of(name, path, set(found)) if not name.startswith(f"{t}.")}
        for name, path in found.items()
    }
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_stages_read_the_fold_file_through_core_not_through_the_folds_stage() -> None:
    """Stages meet in the run folder: only what runs the `folds` stage imports it (its command, `run`, `tune`'s
    trials and `check`'s preview of the split); the fold file's readers are core/fold_file.py."""
    found = modules()
    importers = {name for name, path in found.items() if f"{PACKAGE}.folds" in imports_of(name, path, set(found))}
    expected = {f"{PACKAGE}.{name}" for name in ("cli", "pipeline", "check", "tools.tune")}
    assert importers == expected


def test_the_import_reader_sees_lazy_imports_and_skips_type_checking_ones() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None
    known = set(modules())
    cli_imports = imports_of(f"{PACKAGE}.cli", PACKAGE_DIR / "cli.py", known)
    assert f"{PACKAGE}.submit" in cli_imports  # imported inside the submit command only
    engine_imports = imports_of(f"{PACKAGE}.core.engine", PACKAGE_DIR / "core" / "engine.py", known)
    assert f"{PACKAGE}.tasks" not in engine_imports  # only under TYPE_CHECKING


@pytest.mark.parametrize("name", sorted(name for name in modules() if not name.endswith("__main__")))
def test_every_module_imports(name: str) -> None:
    importlib.import_module(name)


def test_no_function_is_over_the_statement_limit() -> None:
    """ruff's PLR0915 with the project's max-statements (50): the package's own lint settings, its tests included."""
    command = [sys.executable, "-m", "ruff", "check", "--select", "PLR0915", "--output-format", "concise"]
    result = subprocess.run([*command, str(PACKAGE_DIR)], cwd=PACKAGE_DIR.parent, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


# Floors, lowest first: a module imports its own floor and those below (TYPE_CHECKING imports are exempt).
# `settings` loads and checks a command's config against the task; entry points run stages and tools in order.
FLOORS = ("core", "tasks", "settings", "stages", "tools", "entry")
ENTRY = {"cli", "pipeline", "__main__"}
# Stages meet in the run folder; the one sideways edge is `check`'s preview of the fold split.
SIDEWAYS = {("check", "folds")}


def floor_of(name: str) -> str:
    parts = name.split(".")[1:]
    if not parts or parts[0] in ("core", "config"):
        return "core"
    if parts[0] in ("tasks", "settings", "tools"):
        return parts[0]
    return "entry" if parts[0] in ENTRY else "stages"


def test_no_import_runs_up_a_floor_or_sideways_between_stages() -> None:
    found = modules()
    wrong = []
    for name, path in found.items():
        for target in imports_of(name, path, set(found)):
            if name.startswith(f"{target}."):
                continue
            low, high = FLOORS.index(floor_of(target)), FLOORS.index(floor_of(name))
            pair = (name.split(".")[-1], target.split(".")[-1])
            if low > high or (low == high == FLOORS.index("stages") and pair not in SIDEWAYS):
                wrong.append(f"{name} -> {target}")
    assert wrong == []


def test_type_only_imports_make_no_cycle_either() -> None:
    found = modules()
    graph = {
        name: {t for t in imports_of(name, path, set(found), type_only=True) if not name.startswith(f"{t}.")}
        for name, path in found.items()
    }
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_the_floor_check_sees_an_upward_import() -> None:
    assert floor_of(f"{PACKAGE}.core.report.page") == "core"
    assert floor_of(f"{PACKAGE}.tasks.x.analysis") == "tasks"
    assert floor_of(f"{PACKAGE}.predict") == "stages"
    assert FLOORS.index(floor_of(f"{PACKAGE}.tools.eda")) > FLOORS.index(floor_of(f"{PACKAGE}.tasks"))


def test_every_rendered_module_is_imported_from_the_command_line() -> None:
    """Only what the task uses is rendered: every module is reached from `cli` (lazy imports included), so none
    sits in the project unused."""
    found = modules()
    reached, waiting = set(), [f"{PACKAGE}.__main__"]
    while waiting:
        name = waiting.pop()
        if name not in reached:
            reached.add(name)
            waiting.extend(imports_of(name, found[name], set(found)))
    assert sorted(set(found) - reached) == []
