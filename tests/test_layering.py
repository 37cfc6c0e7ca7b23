"""The engine's layering, read from the code: every import counts, at module level or inside a
function. The protocol is a leaf, the adapters never reach the registry, reports never load an
implementation, and no module imports its way back to itself."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("convbench", "impls", "reports")


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            out[name.removesuffix(".__init__")] = path
    return out


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The project modules ``name`` imports (its own parent packages left out)."""
    pkg = name if path.name == "__init__.py" else name.rpartition(".")[0]
    got = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name and not name.startswith(t + "."):
                got.add(t)
    return got


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    return {m: _imports(m, p, set(mods)) for m, p in mods.items()}


def _reach(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for n in graph.get(todo.pop(), ()):
            if n not in seen:
                seen.add(n)
                todo.append(n)
    return seen


def test_no_module_imports_its_way_back_to_itself():
    graph = _graph()
    assert [m for m in graph if m in _reach(graph, m)] == []


def test_the_protocol_is_a_leaf_and_the_adapters_sit_below_the_registry():
    graph = _graph()
    assert _reach(graph, "convbench.protocol") <= {"convbench.ops", "convbench._errors"} | {
        m for m in graph if m.startswith("convbench.ops.")}
    adapt = {m for m in graph if m == "convbench.adapt" or m.startswith("convbench.adapt.")}
    assert adapt and all("convbench.registry" not in _reach(graph, m) for m in adapt)
    assert not [m for m in graph if m.startswith("impls.") and "convbench.adapt" in graph[m]]


def test_the_engine_imports_no_implementation_and_reports_no_registry():
    graph = _graph()
    engine = [m for m in graph if m.startswith("convbench")]
    assert [m for m in engine if any(n.startswith(("impls", "reports")) for n in graph[m])
            and m != "convbench.cli"] == []
    # (the package's __init__ imports the registry for the public API; reports never call it)
    assert [m for m in graph if m.startswith("reports")
            and ("convbench.registry" in graph[m] or "impls" in _reach(graph, m))] == []


def _function_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import of the project's own modules inside a function of ``path``."""
    out = []
    for fn in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(fn):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     ["." * node.level + (node.module or "")] if isinstance(node, ast.ImportFrom) else [])
            out += [(node.lineno, n) for n in names if n.startswith(".") or n.split(".")[0] in PACKAGES]
    return out


def test_the_project_imports_its_own_modules_at_the_top():
    """An import inside a function hides a dependency: only the command line may defer ``reports``
    (pandas and matplotlib take seconds to import, and only report-making commands need them)."""
    hidden = [f"{name}:{line} {mod}" for name, path in _modules().items() for line, mod in _function_imports(path)
              if not (name == "convbench.cli" and mod.split(".")[0] == "reports")]
    assert hidden == []
