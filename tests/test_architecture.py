"""Imports run one way, as docs/architecture.md draws them.

Every ``import edgefit.X`` anywhere in a package's files (function-level imports
included) is an edge from that package to X. The table below is the one in
docs/architecture.md; a package not listed here (a new one) is held to the rules
that hold for all: nothing imports cli, and there are no cycles.
"""

import ast
import collections
from pathlib import Path

import pytest

import edgefit

ROOT = Path(edgefit.__file__).parent
BASE = {"errors", "_io", "_lazy", "units"}  # leaf modules every package may use

# package -> the edgefit packages it may import (besides BASE)
ALLOWED = {
    "trace": set(),
    "metrics": {"trace"},
    "zoo": set(),
    "data": set(),
    "memory": {"trace", "metrics"},
    "hardware": {"metrics", "memory"},
    "measure": {"trace", "metrics", "hardware", "zoo"},
    "compress": {"trace", "metrics", "zoo", "data", "hardware", "measure"},
    "accel": {"metrics", "hardware", "measure", "compress", "data", "zoo"},
    "report": {"metrics", "hardware", "memory", "measure", "compress", "data", "zoo"},
    "search": {"trace", "metrics", "hardware", "measure", "compress", "data", "zoo", "report"},
}


def import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = collections.defaultdict(set)
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT).parts
        if len(rel) == 1:
            continue  # edgefit/__init__.py and leaf modules
        pkg = rel[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                parts = name.split(".")
                if parts[0] == "edgefit" and len(parts) > 1 and parts[1] != pkg:
                    graph[pkg].add(parts[1])
    return graph


GRAPH = import_graph()


def test_graph_is_found():
    assert GRAPH["metrics"] == {"trace", "errors"}
    assert GRAPH["cli"] >= {"metrics", "hardware", "report"}


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_only_what_the_table_allows(package):
    extra = GRAPH.get(package, set()) - ALLOWED[package] - BASE
    assert not extra, f"{package} imports {sorted(extra)}, not in docs/architecture.md"


def test_nothing_imports_cli():
    assert [p for p, targets in GRAPH.items() if "cli" in targets and p != "cli"] == []


def test_metrics_does_not_import_report_and_hardware_does_not_import_measure():
    assert "report" not in GRAPH["metrics"]
    assert "measure" not in GRAPH["hardware"]


def test_no_cycles():
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        if state.get(node) == 1:
            raise AssertionError(f"import cycle: {' -> '.join([*path, node])}")
        if state.get(node) == 2:
            return
        state[node] = 1
        for nxt in sorted(GRAPH.get(node, ())):
            visit(nxt, [*path, node])
        state[node] = 2

    for pkg in sorted(GRAPH):
        visit(pkg, [])
