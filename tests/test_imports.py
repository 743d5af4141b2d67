"""The package's imports run one way: no module-level import cycle, light package imports."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"recoworld": ROOT / "recoworld", "recoworld.users": ROOT / "users", "recoworld.agents": ROOT / "agents"}


def _modules() -> dict[str, Path]:
    out = {}
    for package, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            parts = [p for p in path.relative_to(folder).with_suffix("").parts if p != "__init__"]
            out[".".join([package, *parts])] = path
    return out


def _imported(body: list[ast.stmt]) -> set[str]:
    """Modules a module's top level imports (``if TYPE_CHECKING:`` blocks and function bodies excluded)."""
    names: set[str] = set()
    for node in body:
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.If) and "TYPE_CHECKING" not in ast.unparse(node.test):
            names |= _imported(node.body) | _imported(node.orelse)
        elif isinstance(node, ast.Try):
            names |= _imported(node.body) | _imported(node.orelse) | _imported(node.finalbody)
            for handler in node.handlers:
                names |= _imported(handler.body)
    return names


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports at module level (a package's ``__init__`` included)."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges = set()
        for target in _imported(ast.parse(path.read_text()).body):
            while target and target not in modules:
                target = target.rpartition(".")[0]
            while target:  # importing a.b.c runs a's and a.b's __init__ too
                if target in modules and target != name and not name.startswith(target + "."):
                    edges.add(target)
                target = target.rpartition(".")[0]
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a path of module names, or None."""
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_graph_sees_the_package() -> None:
    graph = import_graph()
    assert "recoworld.world.simulation" in graph and "recoworld.users.parametric" in graph
    assert "recoworld.world.catalog" in graph["recoworld.world.simulation"]


def test_find_cycle_reports_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_module_level_import_cycle() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def _loaded(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_package_imports_load_only_what_they_use() -> None:
    for statement in ("import recoworld", "import recoworld.agents", "import recoworld.users", "import recoworld.llm"):
        loaded = _loaded(statement)
        assert not {"numba", "pandas", "torch", "litellm"} & loaded, statement
        assert len([m for m in loaded if m.startswith("recoworld.")]) <= 3, statement


def test_pyproject_lists_every_package() -> None:
    """A package missing from pyproject's list would be left out of the wheel."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {name for name, path in _modules().items() if path.name == "__init__.py"}
    assert found <= listed, sorted(found - listed)
