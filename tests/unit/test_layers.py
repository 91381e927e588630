"""The package-level import graph: one way, no cycle (the contract itself is in
pyproject.toml and runs in ``make lint``; this catches a cycle in ``make test`` too)."""

from __future__ import annotations

import graphlib

import grimp
import pytest

PACKAGES = ("federation.core", "federation.router", "federation.tools", "ingest", "alerts")


def package_of(module: str) -> str:
    # A ``__main__`` module is a program's entry point: nothing imports it, so it
    # stands alone (``python -m ingest`` starts the ingester process of the tools).
    if module.endswith(".__main__"):
        return module
    return next((p for p in PACKAGES if module == p or module.startswith(p + ".")), module)


def package_graph() -> dict[str, set[str]]:
    graph = grimp.build_graph("federation", "ingest", "alerts")
    edges: dict[str, set[str]] = {}
    for module in graph.modules:
        for imported in graph.find_modules_directly_imported_by(module):
            source, target = package_of(module), package_of(imported)
            if source != target:
                edges.setdefault(source, set()).add(target)
    return edges


def test_package_graph_has_no_cycle() -> None:
    graphlib.TopologicalSorter(package_graph()).prepare()  # raises CycleError on a cycle


@pytest.mark.parametrize(
    ("source", "target"),
    [
        ("federation.router", "federation.core"),
        ("federation.router", "alerts"),
        ("ingest", "federation.core"),
        ("federation.tools", "federation.router"),
    ],
    ids=["router-core", "router-alerts", "ingest-core", "tools-router"],
)
def test_package_graph_sees_the_layers(source: str, target: str) -> None:
    assert target in package_graph()[source]  # the graph is read, not empty


def test_core_imports_nothing_else_of_the_project() -> None:
    assert package_graph().get("federation.core", set()) == set()
