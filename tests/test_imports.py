"""The package's imports run one way.

Which package may import which is import-linter's contracts in pyproject.toml ([tool.importlinter]);
this file runs them. It keeps what import-linter cannot say: no import cycle anywhere in the package
(function-level imports included), package imports that stay light, and every package listed for the
wheel.

users/, agents/ and scenarios/ are mapped into ``recoworld`` by setuptools' package-dir, so the import
graph is built over a tree of links in which they sit inside recoworld/ (``package_tree``).
``python tests/test_imports.py`` prints import-linter's report for the working tree.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"recoworld": ROOT / "recoworld", "recoworld.users": ROOT / "users", "recoworld.agents": ROOT / "agents",
           "recoworld.scenarios": ROOT / "scenarios"}


def _link_folder(source: Path, target: Path, replaced: dict[str, str]) -> None:
    """``target``: a folder of links to ``source``'s entries; a file named in ``replaced`` is written instead."""
    target.mkdir(parents=True, exist_ok=True)
    nested = {}
    for rel, text in replaced.items():
        head, _, tail = rel.partition("/")
        if tail:
            nested.setdefault(head, {})[tail] = text
        else:
            (target / head).write_text(text)
    for entry in source.iterdir():
        if entry.name == "__pycache__" or (target / entry.name).exists():
            continue
        if entry.name in nested:
            _link_folder(entry, target / entry.name, nested[entry.name])
        else:
            (target / entry.name).symlink_to(entry)


def package_tree(folder: Path, replaced: dict[str, str] | None = None) -> Path:
    """A tree under ``folder`` in which ``recoworld/`` holds links to the package's modules, users/,
    agents/ and scenarios/ included (``replaced``: paths relative to recoworld/ -> their text instead)."""
    replaced = dict(replaced or {})
    mapped = {"users": FOLDERS["recoworld.users"], "agents": FOLDERS["recoworld.agents"],
              "scenarios": FOLDERS["recoworld.scenarios"]}
    package = folder / "recoworld"
    _link_folder(FOLDERS["recoworld"], package, {k: v for k, v in replaced.items() if k.partition("/")[0] not in mapped})
    for name, source in mapped.items():
        inner = {k.partition("/")[2]: v for k, v in replaced.items() if k.partition("/")[0] == name}
        if inner:
            _link_folder(source, package / name, inner)
        else:
            (package / name).symlink_to(source)
    return folder


def lint_imports(tree: Path) -> subprocess.CompletedProcess:
    """import-linter's contracts from pyproject.toml, checked over ``tree`` (from a folder outside the repo,
    so that the tree's ``recoworld`` is the one imported)."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    command = [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())",
               str(ROOT / "pyproject.toml"), "--no-cache"]
    return subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True)


def import_graph(tree: Path):
    """The grimp graph of every import in the package, function-level ones included (not TYPE_CHECKING)."""
    code = ("import grimp, json; g = grimp.build_graph('recoworld', cache_dir=None, exclude_type_checking_imports=True); "
            "print(json.dumps({m: sorted(g.find_modules_directly_imported_by(m)) for m in g.modules}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=tree, env={**os.environ, "PYTHONPATH": str(tree)},
                         capture_output=True, text=True, check=True).stdout
    return {k: set(v) for k, v in json.loads(out).items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The graph's strongly connected components of more than one module (each a circle of imports)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10_000))
    try:
        for node in sorted(graph):
            if node not in index:
                visit(node)
    finally:
        sys.setrecursionlimit(limit)
    return sorted(found)


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return package_tree(tmp_path_factory.mktemp("tree"))


def test_the_contracts_are_kept(tree) -> None:
    result = lint_imports(tree)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "BROKEN" not in result.stdout and "0 broken" in result.stdout


def test_a_violation_breaks_the_contracts(tmp_path) -> None:
    """The world's catalog (the bottom layer) importing the population runner (near the top) is refused."""
    catalog = (ROOT / "recoworld" / "world" / "catalog.py").read_text()
    tree = package_tree(tmp_path, {"world/catalog.py": catalog + "\n\ndef _runner():\n    from recoworld.runs.runner import PopulationRun\n"})
    result = lint_imports(tree)
    assert result.returncode != 0
    assert "recoworld.world.catalog is not allowed to import recoworld.runs.runner" in " ".join(result.stdout.split())


def test_the_graph_sees_the_package(tree) -> None:
    graph = import_graph(tree)
    assert "recoworld.world.simulation" in graph and "recoworld.users.parametric" in graph
    assert "recoworld.world.catalog" in graph["recoworld.world.simulation"]


def test_cycles_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle(tree) -> None:
    """No circle of imports, function-level imports included."""
    assert cycles(import_graph(tree)) == []


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
    found = set()
    for package, folder in FOLDERS.items():
        for path in folder.rglob("__init__.py"):
            found.add(".".join([package, *path.parent.relative_to(folder).parts]))
    assert found <= listed, sorted(found - listed)


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as folder:
        result = lint_imports(package_tree(Path(folder)))
        print(result.stdout + result.stderr)
        sys.exit(result.returncode)
