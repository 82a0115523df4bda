"""The package is a one-way pipeline: every module imports only from the layers below its own
(or from its own folder), and no import cycle exists between modules or between packages.

Read from the source (``ast``), so nothing is imported: every ``import`` counts, at module level,
inside functions and under ``TYPE_CHECKING`` alike. ``docs/architecture.md`` draws the layers.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "fleetopt"

#: the layers, bottom to top: a module may import from a lower layer, or its own folder
#: (``planners`` and ``sim`` are siblings: neither imports the other)
LAYERS: dict[str, int] = {
    "core": 0, "physics": 1, "problem": 2, "sizing": 3, "evaluation": 4, "planners": 5, "sim": 5,
    "studies": 6, "report": 7,
}
#: packages of data files only (no Python imports of fleetopt)
DATA = {"data", "examples"}
#: the top: the public API facade (``fleetopt/__init__.py``) and ``python -m fleetopt``
TOP = {"fleetopt", "fleetopt.__main__"}


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def lazy_exports(path: Path) -> dict[str, str]:
    """``{name: module}`` a package ``__init__`` re-exports under ``TYPE_CHECKING``."""
    out: dict[str, str] = {}
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and \
                node.test.id == "TYPE_CHECKING":
            for stmt in node.body:
                if isinstance(stmt, ast.ImportFrom) and stmt.module:
                    for a in stmt.names:
                        out[a.asname or a.name] = stmt.module
    return out


def imports(name: str, path: Path, mods: dict[str, Path]) -> set[str]:
    """The fleetopt modules ``name`` imports (a ``from PACKAGE import NAME`` of a lazily
    re-exported name counts as an import of the module that defines it)."""
    out: set[str] = set()
    pkg = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "fleetopt"}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative
                up = pkg.split(".")[: len(pkg.split(".")) - (node.level - 1)]
                base = ".".join(up + ([base] if base else []))
            if base.split(".")[0] != "fleetopt":
                continue
            for a in node.names:
                sub = f"{base}.{a.name}"
                if sub in mods:
                    out.add(sub)
                elif base in mods and mods[base].name == "__init__.py" and \
                        a.name in lazy_exports(mods[base]):
                    out.add(lazy_exports(mods[base])[a.name])
                else:
                    out.add(base)
    out.discard(name)
    return {m for m in out if m in mods}


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {n: imports(n, p, mods) for n, p in mods.items()}


def folder(name: str) -> str:
    """The layer folder of a module: ``fleetopt.sizing.sizer`` -> ``sizing``."""
    if name in TOP:
        return "fleetopt"
    return name.split(".")[1]


def upward(g: dict[str, set[str]]) -> list[str]:
    """Every import of a higher layer (or of a sibling layer) than the importer's own."""
    bad = []
    for src, dsts in g.items():
        if src in TOP:
            continue
        a = folder(src)
        for dst in dsts:
            b = folder(dst)
            if b == a:
                continue
            if b in TOP or b == "fleetopt" or a in DATA or b in DATA or \
                    LAYERS.get(b, 99) >= LAYERS.get(a, -1):
                bad.append(f"{src} imports {dst} ({a} -> {b})")
    return bad


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in g.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def package_graph(g: dict[str, set[str]]) -> dict[str, set[str]]:
    """Packages (folders, at every depth) and the packages they import from. A package's
    ``__init__`` only re-exports its own submodules, so its edges are left out."""
    mods = modules()
    pg: dict[str, set[str]] = defaultdict(set)

    def pkg(m: str) -> str:
        return m if mods[m].name == "__init__.py" else m.rpartition(".")[0]

    for src, dsts in g.items():
        if mods[src].name == "__init__.py":
            continue
        for dst in dsts:
            a, b = pkg(src), pkg(dst)
            if a != b and not b.startswith(a + "."):  # a package may use its subpackages
                pg[a].add(b)
    return pg


def test_every_module_is_in_a_layer() -> None:
    for name in modules():
        assert name in TOP or folder(name) in LAYERS or folder(name) in DATA, name


def test_no_module_imports_from_a_higher_layer() -> None:
    bad = upward(graph())
    assert not bad, "\n".join(bad)


def test_no_import_cycle_between_modules() -> None:
    found = cycles(graph())
    assert not found, found


def test_no_import_cycle_between_packages() -> None:
    found = cycles(package_graph(graph()))
    assert not found, found


def test_the_engine_and_the_physics_import_no_pool_level_code() -> None:
    g = graph()
    for name, dsts in g.items():
        if folder(name) == "physics":
            assert all(folder(d) in ("core", "physics") for d in dsts), (name, dsts)


@pytest.mark.parametrize("edge, kind", [
    (("fleetopt.physics.kv", "fleetopt.sizing.sizer"), "upward"),
    (("fleetopt.sim.api", "fleetopt.planners.baselines"), "upward"),  # siblings
    (("fleetopt.core.errors", "fleetopt.problem.problem"), "upward"),
    (("fleetopt.sizing.sizer", "fleetopt.sizing.candidates"), "cycle"),
])
def test_the_checks_can_fail(edge: tuple[str, str], kind: str) -> None:
    g = {k: set(v) for k, v in graph().items()}
    src, dst = edge
    g[src].add(dst)
    if kind == "upward":
        assert any(s.startswith(f"{src} imports {dst}") for s in upward(g))
    else:
        assert cycles(g)
