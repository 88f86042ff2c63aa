"""The package's layering: networks in models/ import nothing from checkpoints/ (converters live there);
training/, evaluation/, facedata/ and the shared folders import nothing from inference/ (the swap pipeline sits on
top; the browser UI, ui/, above it beside commands/); and no module imports itself through others (an import circle
works only while every import in it stays lazy or ordered just so). Read from the source with ast, so a lazy import
inside a function counts too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "clipswap"

#: folder -> the clipswap folders it must not import.
FORBIDDEN = {
    "models": ("checkpoints", "inference", "training", "evaluation", "commands", "ui"),
    "layers": ("checkpoints", "inference", "training", "evaluation", "commands", "ui"),
    "losses": ("inference", "training", "evaluation", "commands", "ui"),
    "face": ("inference", "training", "evaluation", "commands", "ui"),
    "media": ("inference", "training", "evaluation", "commands", "models", "checkpoints", "ui"),
    "checkpoints": ("inference", "training", "evaluation", "commands", "ui"),
    "facedata": ("inference", "training", "evaluation", "commands", "ui"),
    "training": ("inference", "evaluation", "commands", "ui"),
    "evaluation": ("inference", "training", "commands", "ui"),
    # the browser UI sits beside the command lines, on top of the pipeline: only its command imports it
    "inference": ("commands", "ui"),
    "ui": ("commands",),
    # the configuration is read by every layer and by the command lines before TensorFlow starts: it imports only
    # the registries, the loss-term table and the conditioning rows, none of which imports TensorFlow
    "config": (
        "checkpoints",
        "inference",
        "training",
        "evaluation",
        "commands",
        "ui",
        "facedata",
        "face",
        "media",
        "layers",
    ),
    # the component registries are read by every layer, so they name their builders as strings and import none
    "registry": ("inference", "training", "evaluation", "commands", "ui", "facedata", "losses", "layers", "media"),
}


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            if node.module == "clipswap":
                found += [(node.lineno, f"clipswap.{alias.name}") for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
    return found


@pytest.mark.parametrize("folder", sorted(FORBIDDEN))
def test_no_folder_imports_a_layer_above_it(folder):
    bad = []
    for path in sorted((PACKAGE / folder).rglob("*.py")):
        for line, module in _imports(path):
            parts = module.split(".")
            if parts[0] == "clipswap" and len(parts) > 1 and parts[1] in FORBIDDEN[folder]:
                bad.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {module}")
    assert not bad, "\n".join(bad)


def test_the_rule_sees_a_lazy_import(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        "def f():\n    from clipswap.inference.swapper import FaceSwapper\n    import clipswap.training\n"
    )
    assert [module for _, module in _imports(sample)] == ["clipswap.inference.swapper", "clipswap.training"]


def _module_graph(package: Path) -> dict[str, set[str]]:
    """Module name -> the package's modules it imports (`from a.b import c` counts as a.b.c when c is a module)."""
    modules = {}
    for path in package.rglob("*.py"):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {}
    for name, path in modules.items():
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    edges.add(full if full in modules else node.module)
            elif isinstance(node, ast.Import):
                edges.update(alias.name for alias in node.names)
        graph[name] = {module for module in edges if module in modules and module != name}
    return graph


def _circle(graph: dict[str, set[str]]) -> list[str]:
    """One import circle of the graph as [a, b, ..., a], or [] when there is none (depth-first search)."""
    state: dict[str, str] = {}
    path: list[str] = []

    def visit(module: str) -> list[str]:
        state[module] = "open"
        path.append(module)
        for imported in sorted(graph[module]):
            if state.get(imported) == "open":
                return path[path.index(imported) :] + [imported]
            if imported not in state:
                found = visit(imported)
                if found:
                    return found
        state[module] = "done"
        path.pop()
        return []

    for module in sorted(graph):
        if module not in state:
            found = visit(module)
            if found:
                return found
    return []


def test_no_module_imports_itself_through_others():
    circle = _circle(_module_graph(PACKAGE))
    assert not circle, "import circle: " + " -> ".join(circle)


def test_the_circle_rule_sees_a_lazy_circle(tmp_path):
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "a.py").write_text("from pkg.sub.b import B\n")
    (package / "sub" / "b.py").write_text("def f():\n    from pkg.sub import c\nB = 1\n")
    (package / "sub" / "c.py").write_text("import pkg.sub.a\n")
    graph = _module_graph(package)
    assert graph["pkg.sub.b"] == {"pkg.sub.c"}
    assert _circle(graph) == ["pkg.sub.a", "pkg.sub.b", "pkg.sub.c", "pkg.sub.a"]
    (package / "sub" / "c.py").write_text("import pkg.sub\n")
    assert _circle(_module_graph(package)) == []
