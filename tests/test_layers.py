"""Imports go one way (docs/design.md section 2): a package imports only packages to its right,
also inside functions."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ("scripts", "workflows", "controller", "rnn", "vae", "env", "common")


def imported_packages(path: Path) -> set[str]:
    """The project's packages a file imports (every import statement, at any depth)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names & set(LAYERS)


def upward_imports(package: str) -> list[str]:
    allowed = set(LAYERS[LAYERS.index(package) :])
    return [f"{path.relative_to(ROOT)} imports {name}" for path in sorted((ROOT / package).rglob("*.py")) for name in sorted(imported_packages(path) - allowed)]


@pytest.mark.parametrize("package", LAYERS)
def test_a_package_imports_only_packages_to_its_right(package):
    assert upward_imports(package) == []


def test_the_check_finds_an_upward_import(tmp_path):
    module = tmp_path / "upward.py"
    module.write_text("import numpy\n\ndef late():\n    from workflows import fidelity\n    import rnn.model\n")
    assert imported_packages(module) == {"workflows", "rnn"}


def test_the_layer_order_is_the_one_the_docs_state():
    order = " -> ".join(f"`{package}`" for package in LAYERS)
    for document in ("README.md", "docs/design.md"):
        assert order in (ROOT / document).read_text(), document
