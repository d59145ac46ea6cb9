"""The house's import graph has no circle, and no module of atomgym/agents outgrows a floor.

Every ``import`` and ``from ... import`` in atomgym/ and the checkout's agents/ is read from the
source (module level and inside functions alike: an import moved into a function to dodge a circle
still counts), resolved to the module it loads, and the graph is searched for a cycle.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("atomgym", "agents")
MAX_AGENTS_LINES = 450


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    """Every module of the two packages: dotted name -> file."""
    out = {}
    for pkg in PACKAGES:
        for p in sorted((ROOT / pkg).rglob("*.py")):
            out[_module_name(p)] = p
    return out


def _resolve(name: str, mods: dict[str, Path]) -> str | None:
    """The module of ours a dotted name loads (``a.b.c`` where c is a function of a.b: a.b)."""
    while name:
        if name in mods:
            return name
        name = name.rpartition(".")[0]
    return None


def imports_of(name: str, path: Path, mods: dict[str, Path]) -> set[str]:
    """The modules of ours that ``name`` imports, anywhere in its source."""
    is_pkg = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = name.split(".") if is_pkg else name.split(".")[:-1]
                pkg = pkg[:len(pkg) - (node.level - 1)]
                base = ".".join([*pkg, base] if base else pkg)
            # ``from pkg import sub`` loads pkg.sub when it is a module, else a name of pkg
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
        for t in targets:
            r = _resolve(t, mods)
            if r is not None and r != name:
                out.add(r)
    return out


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    return {n: imports_of(n, p, mods) for n, p in mods.items()}


# Circles tolerated, each as the edge (importer, imported) that closes it: none. (An entry would
# let every other circle fail now; test_known_circles_are_real fails once its edge closes none.)
KNOWN: list[tuple[str, str]] = []


def without_known(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    return {a: {b for b in bs if (a, b) not in KNOWN} for a, bs in graph.items()}


def reaches(graph: dict[str, set[str]], src: str, dst: str) -> bool:
    seen, todo = {src}, [src]
    while todo:
        for n in graph.get(todo.pop(), ()):
            if n == dst:
                return True
            if n not in seen:
                seen.add(n)
                todo.append(n)
    return False


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as [a, b, ..., a], or None (iterative DFS, three colours)."""
    colour = dict.fromkeys(graph, 0)
    for start in sorted(graph):
        if colour[start]:
            continue
        stack = [(start, iter(sorted(graph[start])))]
        path = [start]
        colour[start] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                colour[node] = 2
                stack.pop()
                path.pop()
            elif colour.get(nxt, 2) == 1:
                return path[path.index(nxt):] + [nxt]
            elif colour.get(nxt) == 0:
                colour[nxt] = 1
                stack.append((nxt, iter(sorted(graph[nxt]))))
                path.append(nxt)
    return None


def test_no_import_cycle():
    cycle = find_cycle(without_known(import_graph()))
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_known_circles_are_real():
    """An exemption outlives its circle by no commit: remove it from KNOWN once the circle is gone."""
    graph = import_graph()
    for a, b in KNOWN:
        assert b in graph[a] and reaches(graph, b, a), f"{a} -> {b} closes no circle any more"


def test_the_walker_sees_function_level_imports(tmp_path):
    """The detector is not blind: a circle made by an import inside a function is found."""
    graph = import_graph()
    assert "atomgym.agents.baselines" in graph["agents.baselines"]
    graph = without_known(graph)
    assert find_cycle(graph) is None
    graph["atomgym.suites"].add("atomgym.agents.evaluate")     # as a function-level import would
    assert find_cycle(graph) is not None
    src = tmp_path / "m.py"
    src.write_text("def f():\n    from atomgym.agents import evaluate\n")
    mods = {**modules(), "m": src}
    assert imports_of("m", src, mods) == {"atomgym.agents.evaluate"}


def test_agents_modules_are_floors_not_towers():
    """No module of atomgym/agents grows past ~450 lines: a concern per module."""
    big = {str(p.relative_to(ROOT)): n for p in sorted((ROOT / "atomgym" / "agents").rglob("*.py"))
           if (n := len(p.read_text().splitlines())) > MAX_AGENTS_LINES}
    assert not big, f"modules over {MAX_AGENTS_LINES} lines: {big}"
