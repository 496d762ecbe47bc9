"""The dashboard's shape: a core without Textual, no import cycles, small modules."""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

PACKAGE = pathlib.Path(__file__).resolve().parents[2] / "saga_tui"
# Operator logic, the live loop, wording and the command line: no Textual, no Rich.
CORE = (
    "saga_tui.operations",
    "saga_tui.live",
    "saga_tui.textfmt",
    "saga_tui.textout",
    "saga_tui.filters",
    "saga_tui.examples",
    "saga_tui.headless",
    "saga_tui.target",
    "saga_tui.cli",
)


def modules() -> dict[str, pathlib.Path]:
    """Every module of saga_tui by dotted name."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def top_level_imports(path: pathlib.Path) -> set[str]:
    """What a module imports when it is imported (not under TYPE_CHECKING, not in functions)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for sub in ast.walk(node) if isinstance(node, ast.If | ast.Try) else [node]:
            if isinstance(sub, ast.Import):
                out.update(alias.name for alias in sub.names)
            elif isinstance(sub, ast.ImportFrom) and sub.module:
                out.add(sub.module)
                out.update(f"{sub.module}.{alias.name}" for alias in sub.names)
    return out


def test_the_core_imports_neither_textual_nor_rich() -> None:
    code = (
        "import sys\n"
        f"for name in {CORE!r}: __import__(name)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich')))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "[]", run.stdout


def test_no_import_cycles() -> None:
    known = modules()
    graph = {
        name: {dep for dep in top_level_imports(path) if dep in known and dep != name}
        for name, path in known.items()
    }
    visiting: list[str] = []
    done: set[str] = set()

    def visit(name: str) -> None:
        if name in done:
            return
        assert name not in visiting, " -> ".join([*visiting[visiting.index(name) :], name])
        visiting.append(name)
        for dep in sorted(graph[name]):
            visit(dep)
        visiting.pop()
        done.add(name)

    for name in sorted(graph):
        visit(name)


def test_no_module_over_450_lines() -> None:
    sizes = {name: len(path.read_text().splitlines()) for name, path in modules().items()}
    assert {n: s for n, s in sizes.items() if s > 450} == {}
