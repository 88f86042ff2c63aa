"""The tests tree mirrors the package (STYLE.md): tests/<folder>/ holds the tests of clipswap/<folder>/, and tests of
the top-level modules, of cross-package rules (layering, backends) and of tools/ sit in tests/ itself.

The test folders are not packages (no __init__.py): pytest's default "prepend" import mode puts each test file's own
folder on sys.path and imports the file by its basename, so two test files with one basename in two folders would
clash. That keeps `from conftest import ...` and `from harness import ...` working from every folder (tests/ is on
sys.path through conftest.py), at the price of unique basenames, which the second test checks.
"""

from __future__ import annotations

from collections import defaultdict

from conftest import REPO_ROOT, TESTS

PACKAGE = REPO_ROOT / "clipswap"
#: Folders of tests/ that are not test folders: golden tensors (and their writer) and the Keras 2 fixture writers.
SUPPORT = {"golden", "fixtures"}


def _test_folders() -> list:
    """Every folder under tests/ except the support folders, caches and hidden folders."""
    return [path for path in sorted(TESTS.rglob("*")) if path.is_dir()
            and not any(part in SUPPORT or part.startswith((".", "__")) for part in path.relative_to(TESTS).parts)]


def test_every_test_folder_mirrors_a_package_folder():
    strays = [str(folder.relative_to(REPO_ROOT)) for folder in _test_folders()
              if not (PACKAGE / folder.relative_to(TESTS) / "__init__.py").is_file()]
    assert not strays, (f"test folders with no package folder of the same path under clipswap/: {strays}; put each "
                        "test file in the folder of the code it mainly tests (or in tests/ itself)")


def test_test_file_basenames_are_unique():
    where = defaultdict(list)
    for folder in [TESTS, *_test_folders()]:
        for path in folder.glob("test_*.py"):
            where[path.name].append(str(path.relative_to(REPO_ROOT)))
    clashes = {name: paths for name, paths in where.items() if len(paths) > 1}
    assert not clashes, f"test files sharing a basename (pytest imports them by it): {clashes}"
