"""The dependency rule and the import graph, read from the source of every package.

engine <- sample_sagas <- saga_tui, nothing points the other way, and no module takes
part in an import cycle. Imports are collected by parsing each module: top-level ones,
those under ``if TYPE_CHECKING:`` and those inside functions all count, since each is a
dependency of the module that has it.
"""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
PACKAGES = ("engine", "sample_sagas", "saga_tui")


def modules() -> dict[str, tuple[pathlib.Path, bool]]:
    """Module name -> (file, is a package) for every module of the three packages."""
    found: dict[str, tuple[pathlib.Path, bool]] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            if is_package:
                parts.pop()
            found[".".join(parts)] = (path, is_package)
    return found


def imported_names(name: str, path: pathlib.Path, is_package: bool) -> set[str]:
    """Every module ``name`` imports, absolute, relative imports resolved.

    ``from package import module`` names the module; ``from module import function``
    names the module.
    """
    here = name if is_package else name.rpartition(".")[0]
    known = modules()
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = here.split(".")
                parent = parts[: len(parts) - (node.level - 1)]
                base = ".".join([*parent, base] if base else parent)
            for alias in node.names:
                full = f"{base}.{alias.name}"
                out.add(full if full in known else base)
    return out


def graph() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(first-party module -> first-party modules it imports, module -> every import)."""
    known = modules()
    edges: dict[str, set[str]] = {}
    everything: dict[str, set[str]] = {}
    for name, (path, is_package) in known.items():
        names = imported_names(name, path, is_package)
        everything[name] = names
        edges[name] = set()
        for target in names:
            while target and target not in known:  # import a.b.function -> a.b
                target = target.rpartition(".")[0]
            if target and target != name:
                edges[name].add(target)
    return edges, everything


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def reachable(edges: dict[str, set[str]], start: str) -> set[str]:
    """Every first-party module ``start`` depends on, directly or not."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        for target in edges[todo.pop()]:
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def test_the_graph_reader_sees_a_cycle_and_a_type_checking_import(tmp_path: pathlib.Path) -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(edges) == [["a", "b", "c"]]
    source = tmp_path / "m.py"
    source.write_text(
        "import typing\nif typing.TYPE_CHECKING:\n    from engine.saga.saga import Saga\n"
        "def f():\n    from .sibling import g\n",
    )
    names = imported_names("engine.saga.m", source, is_package=False)
    assert {"engine.saga.saga", "engine.saga.sibling"} <= names


def test_no_import_cycles_in_engine_sample_sagas_or_saga_tui() -> None:
    edges, _ = graph()
    assert cycles(edges) == []


def test_engine_never_imports_the_ui_or_the_samples() -> None:
    edges, everything = graph()
    forbidden = ("textual", "rich", "saga_tui", "sample_sagas")
    for name in (m for m in edges if m.split(".")[0] == "engine"):
        for target in everything[name]:
            assert target.split(".")[0] not in forbidden, f"{name} imports {target}"
        for target in reachable(edges, name):
            assert target.split(".")[0] == "engine", f"{name} depends on {target}"


def test_sample_sagas_never_import_the_ui() -> None:
    edges, everything = graph()
    for name in (m for m in edges if m.split(".")[0] == "sample_sagas"):
        for target in everything[name]:
            assert target.split(".")[0] != "saga_tui", f"{name} imports {target}"
        for target in reachable(edges, name):
            assert target.split(".")[0] != "saga_tui", f"{name} depends on {target}"


def test_importing_the_whole_engine_pulls_in_no_ui_and_no_kafka() -> None:
    forbidden = ("textual", "rich", "saga_tui", "sample_sagas", "aiokafka")
    code = (
        "import sys, engine, engine.saga.bootstrap, engine.saga.recovery, "
        "engine.saga.storage.sqlalchemy, engine.message_brokers.kafka, engine.adapters.kafka\n"
        f"bad = [m for m in sys.modules if m.split('.')[0] in {forbidden!r}]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
