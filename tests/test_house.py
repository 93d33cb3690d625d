"""The house rules of docs/architecture.md, read from the code itself (issue #14).

- Layers by location: fitcalc/core/ imports only the standard library, pydantic and the core;
  fitcalc/edges/ never imports the facade (fitcalc.api) or the shell; the facade never imports the shell.
- No import cycles among fitcalc's modules (lazy imports inside functions count too).
- No function longer than 80 lines.
A new module is covered by where it stands: nothing here lists modules by name.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "fitcalc"
MAX_FUNCTION_LINES = 80


def _modules() -> dict[str, Path]:
    out = {}
    for f in sorted(PKG.rglob("*.py")):
        parts = f.relative_to(PKG.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = f
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """Every module ``name`` imports, top level or inside a function, as absolute dotted names."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            for a in node.names:
                sub = f"{base}.{a.name}"
                found.add(sub if sub in MODULES else base)
    return found


def _layer(name: str) -> str:
    for layer in ("core", "edges", "shell"):
        if name == f"fitcalc.{layer}" or name.startswith(f"fitcalc.{layer}."):
            return layer
    return "api" if name == "fitcalc.api" else "package"


def test_every_module_sits_in_a_layer():
    loose = [n for n in MODULES if _layer(n) == "package" and n not in ("fitcalc", "fitcalc.__main__")]
    assert loose == [], f"modules outside core/, edges/, shell/ and api.py: {loose}"


@pytest.mark.parametrize("name", [n for n in MODULES if _layer(n) == "core"])
def test_core_imports_only_the_standard_library_pydantic_and_the_core(name):
    allowed_third_party = {"pydantic", "pydantic_core", "typing_extensions", "annotated_types"}
    bad = []
    for imp in _imports(name, MODULES[name]):
        top = imp.split(".")[0]
        if top == "fitcalc":
            if _layer(imp) != "core" and imp not in ("fitcalc",):
                bad.append(imp)
        elif top not in sys.stdlib_module_names and top not in allowed_third_party:
            bad.append(imp)
    assert bad == [], f"{name} (CORE) imports {sorted(bad)}"


@pytest.mark.parametrize("name", [n for n in MODULES if _layer(n) == "core"])
def test_core_does_no_io_and_prints_nothing(name):
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    calls = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    attrs = {n.func.attr for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)}
    assert not calls & {"print", "open", "input"}, f"{name} calls {sorted(calls & {'print', 'open', 'input'})}"
    assert not attrs & {"read_text", "write_text", "read_bytes", "write_bytes"}, name


@pytest.mark.parametrize("name", [n for n in MODULES if _layer(n) in ("edges", "api")])
def test_lower_layers_do_not_reach_up(name):
    above = {"edges": ("api", "shell"), "api": ("shell",)}[_layer(name)]
    bad = sorted(i for i in _imports(name, MODULES[name]) if i.startswith("fitcalc") and _layer(i) in above)
    assert bad == [], f"{name} ({_layer(name)}) imports {bad}"


def test_no_import_cycles():
    graph = {n: {i for i in _imports(n, p) if i in MODULES and i != n and not n.startswith(i + ".")}
             for n, p in MODULES.items()}
    # Tarjan's strongly connected components: any component of two or more modules is a cycle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
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
                cycles.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    assert cycles == [], f"import cycles: {cycles}"


def test_no_function_over_80_lines():
    long = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(PKG.parent)}:{node.name} ({n} lines)")
    assert long == [], "functions over 80 lines: " + ", ".join(long)


def test_no_private_name_is_imported_across_modules():
    roots = [PKG, PKG.parent / "tests", PKG.parent / "benchmarks"]
    bad = []
    for root in roots:
        for f in root.rglob("*.py"):
            for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("fitcalc"):
                    bad += [f"{f.name}: {node.module}.{a.name}" for a in node.names
                            if a.name.startswith("_") and not a.name.startswith("__")]
    assert bad == [], bad


def test_the_facade_stays_thin():
    lines = len((PKG / "api.py").read_text(encoding="utf-8").splitlines())
    assert lines < 400, f"fitcalc/api.py has {lines} lines (issue #14: under 400)"
