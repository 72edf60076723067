"""The engine's shape, where an import-linter contract cannot say it: no module reaches into kopf's
private packages (a contract cannot name an external package's submodules), and every module of the
reconcile package stays small enough to read in one sitting (docs/architecture.md, "Layers")."""

from __future__ import annotations

import ast
from pathlib import Path

import jitgrant

PRODUCT = Path(jitgrant.__file__).parent
RECONCILE_LIMIT = 300


def _imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            names.add(node.module)
    return names


def test_nothing_imports_kopf_s_private_modules() -> None:
    private = {
        f"{path.relative_to(PRODUCT)}: {name}"
        for path in PRODUCT.rglob("*.py")
        for name in _imported(path)
        if name.startswith("kopf._")
    }
    assert private == set()


def test_every_module_of_the_reconcile_package_is_under_300_lines() -> None:
    modules = sorted((PRODUCT / "reconcile").glob("*.py"))
    assert len(modules) > 5  # the package is there, cut along its concerns
    long = {path.name: n for path in modules if (n := len(path.read_text().splitlines())) >= RECONCILE_LIMIT}
    assert long == {}
