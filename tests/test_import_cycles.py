"""No import cycles between the packages of fermtl_tf (every import counted, lazy ones too).

A package here is the first name below ``fermtl_tf`` (``methods``, ``training``, ``data``,
``experiments``, ...; a top-level module such as ``export.py`` is its own node). An edge
A -> B means some module of A imports something of B; a cycle means two packages can
only be understood (and loaded) together.
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "fermtl_tf"


def _node(module):
    """``fermtl_tf.methods.hu2018.model`` -> ``methods``; non-package modules -> None."""
    parts = module.split(".")
    if parts[0] != "fermtl_tf" or len(parts) < 2:
        return None
    return parts[1]


def _module_name(path):
    return ".".join(("fermtl_tf", *path.relative_to(PACKAGE).with_suffix("").parts))


def _imports(path):
    """Absolute module names imported anywhere in ``path`` (relative imports resolved)."""
    tree = ast.parse(path.read_text())
    here = _module_name(path).split(".")
    if path.name == "__init__.py":
        here = here[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - node.level + (path.name == "__init__.py")]
                yield ".".join([*base, *(node.module.split(".") if node.module else [])])
            elif node.module:
                yield node.module


def package_graph():
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        source = _node(_module_name(path))
        for module in _imports(path):
            target = _node(module)
            if target is not None and target != source:
                graph.setdefault(source, set()).add(target)
    return graph


def find_cycle(graph):
    """One cycle as a list of nodes (first == last), or None."""
    state = {}

    def visit(node, path):
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return [*path[path.index(nxt):], nxt]
            if nxt not in state:
                found = visit(nxt, [*path, nxt])
                if found:
                    return found
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state:
            found = visit(start, [start])
            if found:
                return found
    return None


def test_find_cycle_finds_a_planted_cycle_and_accepts_a_dag():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}}) is None


def test_the_graph_sees_the_known_dependencies():
    graph = package_graph()
    assert "training" in graph["methods"] and "methods" in graph["experiments"]


def test_no_import_cycle_between_packages():
    cycle = find_cycle(package_graph())
    assert cycle is None, "import cycle between packages: " + " -> ".join(cycle)
