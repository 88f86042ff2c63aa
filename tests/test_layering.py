"""The package's layering (issue 10): networks in models/ import nothing from checkpoints/ (converters live there);
training/, evaluation/, facedata/ and the shared folders import nothing from inference/ (the swap pipeline sits on
top; the browser UI, ui/, above it beside commands/). Read from the source with ast, so a lazy import inside a
function counts too."""

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
    sample.write_text("def f():\n    from clipswap.inference.swapper import FaceSwapper\n"
                      "    import clipswap.training\n")
    assert [module for _, module in _imports(sample)] == ["clipswap.inference.swapper", "clipswap.training"]
