"""The command-line package has no import circle, and the library never imports the command line.

Two checks that fail on a circle however it is introduced: the static graph of ``session_store.cli``'s
intra-package imports (read from the source with :mod:`ast`, so an import inside a function counts too) must
be acyclic, and every module of the package must import first in a fresh interpreter (the order in which a
circle would surface as a partially initialised module).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import processes
import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "session_store"
CLI = PACKAGE / "cli"
IMPORT_TIMEOUT_SECONDS = 60


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def cli_modules() -> list[str]:
    return sorted(module_name(path) for path in CLI.glob("*.py"))


def imported_modules(path: Path) -> set[str]:
    """Every ``session_store`` module the file at ``path`` imports, absolute names, at any depth of the code."""
    this = module_name(path)
    package = this if path.name == "__init__.py" else this.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            origin = (f"{base}.{node.module}" if node.module else base) if node.level else (node.module or "")
            found.add(origin)
            # ``from . import x`` / ``from .pkg import x`` may name a submodule
            found.update(f"{origin}.{alias.name}" for alias in node.names)
    return {name for name in found if name == "session_store" or name.startswith("session_store.")}


def cli_import_graph() -> dict[str, set[str]]:
    modules = set(cli_modules())
    return {module_name(path): imported_modules(path) & modules for path in CLI.glob("*.py")}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a list of modules (first repeated last), or None when it is acyclic."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for successor in sorted(graph.get(node, ())):
            if state.get(successor) == "open":
                return [*stack[stack.index(successor) :], successor]
            if successor not in state and (cycle := visit(successor)):
                return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_finder_finds_a_circle_and_accepts_a_chain() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_the_graph_reader_resolves_relative_imports_to_module_names() -> None:
    graph = cli_import_graph()
    assert "session_store.cli.parser" in graph["session_store.cli.dispatch"]
    assert "session_store.cli.output" in graph["session_store.cli.demo"]
    assert "session_store.watching" in imported_modules(CLI / "mirror.py")


def test_the_cli_package_has_no_import_circle() -> None:
    graph = cli_import_graph()
    assert len(graph) >= 10, sorted(graph)
    cycle = find_cycle(graph)
    assert cycle is None, "import circle in session_store.cli: " + " -> ".join(cycle or [])


def test_no_cli_module_imports_the_package_itself() -> None:
    """A submodule importing ``session_store.cli`` (its ``__init__``) would close a circle through dispatch."""
    offenders = {
        name: sorted(imports & {"session_store.cli"})
        for name, imports in cli_import_graph().items()
        if name != "session_store.cli" and "session_store.cli" in imports
    }
    assert offenders == {}


def test_the_library_never_imports_the_command_line() -> None:
    offenders = {
        module_name(path): sorted(name for name in imported_modules(path) if name.startswith("session_store.cli"))
        for path in PACKAGE.rglob("*.py")
        if CLI not in path.parents and path.name != "__main__.py"
    }
    assert {name: found for name, found in offenders.items() if found} == {}


@pytest.mark.parametrize("module", cli_modules())
def test_each_cli_module_imports_first_in_a_fresh_interpreter(module: str) -> None:
    result = processes.run(
        [sys.executable, "-c", f"import {module}"], cwd=REPO, text=True, timeout=IMPORT_TIMEOUT_SECONDS
    )
    assert result.returncode == 0, result.stderr


def test_the_entry_points_still_lead_to_main() -> None:
    """``python -m session_store`` and the ``session-store`` script (``session_store.cli:main``) both resolve."""
    import tomllib

    from session_store import cli

    with (REPO / "pyproject.toml").open("rb") as file:
        script = tomllib.load(file)["project"]["scripts"]["session-store"]
    assert script == "session_store.cli:main"
    assert callable(cli.main)
    result = processes.run(
        [sys.executable, "-m", "session_store", "--help"], cwd=REPO, text=True, timeout=IMPORT_TIMEOUT_SECONDS
    )
    assert result.returncode == 0, result.stderr
    assert "usage: session-store" in result.stdout
