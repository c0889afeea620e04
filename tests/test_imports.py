"""The import graph of audit/: no import circle and nothing importing upward.

Every import statement counts, wherever it stands: inside functions (they run later, but they still tie the modules
together) and under `if TYPE_CHECKING:` (a circle of types is still a circle in the design).
"""

from __future__ import annotations

import ast
from pathlib import Path


AUDIT = Path(__file__).resolve().parents[1] / "audit"

# Layers by top-level name under audit/ ("__init__" is audit/__init__.py, the library's front door). A module may
# import its own layer and the layers before it, never a later one.
LAYERS = [
    {"errors", "config", "findings", "evidence", "consent"},
    {"media", "models"},
    {"store", "notify"},  # notify: webhooks, a place in the store folder; any layer above may queue findings
    {"enroll", "bulk", "calibrate", "calibrate_voice", "rules", "composite", "scan"},
    {"report", "casefile", "watch"},  # a case file packs an evidence record with its HTML page
    {"cli", "service", "demo", "__main__", "__init__"},
]
LAYER = {name: i for i, names in enumerate(LAYERS) for name in names}


def module_names(root: Path) -> dict[str, Path]:
    """Dotted name -> file for every module of the package at root (a package's __init__ named as the package)."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = (root.name,) + path.relative_to(root).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def import_graph(root: Path) -> dict[str, dict[str, int]]:
    """module -> {imported module of the same package: line of the first such import}, from every import statement."""
    files = module_names(root)

    def known(name: str) -> str | None:
        while name and name not in files:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, dict[str, int]] = {}
    for name, path in files.items():
        tree = ast.parse(path.read_text(), str(path))
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges: dict[str, int] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [known(a.name) for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                # `from pkg import sub` imports the module pkg.sub; `from pkg import name` imports pkg.
                targets = [known(f"{source}.{a.name}") if f"{source}.{a.name}" in files else known(source)
                           for a in node.names]
            else:
                continue
            for target in targets:
                if target is not None and target != name:
                    edges[target] = min(edges.get(target, node.lineno), node.lineno)
        graph[name] = edges
    return graph


def circles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """One circle per strongly connected group of modules: the path that ends where it starts, then the group."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[set[str]] = []

    def visit(v: str) -> None:  # Tarjan's algorithm; audit/ is far too small for the recursion limit
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop()
                group.add(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(group)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    out = []
    for group in groups:  # the shortest way from the group's first module back to itself
        start = min(group)
        paths = {start: [start]}
        queue = [start]
        while queue:
            v = queue.pop(0)
            if start in graph[v]:
                out.append((paths[v] + [start], sorted(group)))
                break
            for w in sorted(graph[v]):
                if w in group and w not in paths:
                    paths[w] = paths[v] + [w]
                    queue.append(w)
    return sorted(out)


def describe(graph: dict[str, dict[str, int]], circle: tuple[list[str], list[str]]) -> str:
    """'a (line 3) -> b (line 9) -> a': each step with the line of the import that makes it; then the whole group."""
    path, group = circle
    steps = [f"{a} (line {graph[a][b]})" for a, b in zip(path, path[1:])]
    more = f"\n  (part of a tangle of {len(group)} modules: {', '.join(group)})" if len(group) > len(path) - 1 else ""
    return " -> ".join(steps + [path[-1]]) + more


def top(name: str) -> str:
    """The top-level name under audit/ of a module ('__init__' for audit itself)."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_top_level_module_has_a_layer():
    names = {top(m) for m in module_names(AUDIT)}
    assert names - set(LAYER) == set(), "give these a layer in LAYERS"


def test_no_import_circle():
    graph = import_graph(AUDIT)
    found = [describe(graph, c) for c in circles(graph)]
    assert found == [], "import circles:\n" + "\n".join(found)


def test_nothing_imports_upward():
    upward = []
    for name, edges in sorted(import_graph(AUDIT).items()):
        for target, line in sorted(edges.items()):
            if LAYER.get(top(target), 0) > LAYER.get(top(name), len(LAYERS)):
                upward.append(f"{name} (line {line}) imports {target}: layer {LAYER[top(name)]} below "
                              f"{LAYER[top(target)]}")
    assert upward == [], "upward imports:\n" + "\n".join(upward)


def test_the_graph_sees_imports_in_functions_and_names_the_circle(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from .a import f\n")
    (pkg / "a.py").write_text("import os\n\n\ndef f():\n    from .sub import b\n    return b\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "b.py").write_text("from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from ..a import f\n"
                                      "\n\ndef g():\n    from pkg import a, sub\n")
    (pkg / "c.py").write_text("import pkg.sub.b\n")
    graph = import_graph(pkg)
    assert graph == {"pkg": {"pkg.a": 1}, "pkg.a": {"pkg.sub.b": 5}, "pkg.sub": {},
                     "pkg.sub.b": {"pkg.a": 4, "pkg.sub": 8}, "pkg.c": {"pkg.sub.b": 1}}
    assert [describe(graph, c) for c in circles(graph)] == ["pkg.a (line 5) -> pkg.sub.b (line 4) -> pkg.a"]
    graph["pkg.sub"] = {"pkg.c": 1}  # a second way round: the group of four is named with the shortest circle
    assert [describe(graph, c) for c in circles(graph)] == [
        "pkg.a (line 5) -> pkg.sub.b (line 4) -> pkg.a\n"
        "  (part of a tangle of 4 modules: pkg.a, pkg.c, pkg.sub, pkg.sub.b)"]
