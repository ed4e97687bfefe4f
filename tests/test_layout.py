"""The source layout a newcomer relies on: folders are layers (the layers themselves are
checked by ``lint-imports`` in ``make lint``), and no module imports its own package's
``__init__`` (the import-order cycles issue 17 removed)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("monitor", "detectors", "streams", "dashboard")


def _modules() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def own_package_imports(path: Path, root: Path = ROOT) -> list[str]:
    """``from P import …`` / ``import P`` in a submodule of package ``P`` (line: statement)."""
    package = ".".join(path.relative_to(root).parent.parts)
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module == package:
            found.append(f"{node.lineno}: from {package} import …")
        elif isinstance(node, ast.ImportFrom) and node.level == 1 and not node.module:
            found.append(f"{node.lineno}: from . import …")
        elif isinstance(node, ast.Import):
            found += [f"{node.lineno}: import {package}" for a in node.names if a.name == package]
    return found


@pytest.mark.parametrize("path", [p for p in _modules() if p.name != "__init__.py"], ids=str)
def test_no_submodule_imports_its_own_package(path: Path) -> None:
    assert own_package_imports(path) == []


def test_the_check_sees_an_own_package_import(tmp_path: Path) -> None:
    module = tmp_path / "detectors" / "probe.py"
    module.parent.mkdir()
    module.write_text(
        "from detectors import evidence\nimport detectors.evidence\n", encoding="utf-8"
    )
    assert own_package_imports(module, tmp_path) == ["1: from detectors import …"]


def test_every_layer_is_a_folder_named_in_the_import_contract() -> None:
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    (contract,) = config["tool"]["importlinter"]["contracts"]
    layers = [name for layer in contract["layers"] for name in layer.split(" : ")]
    for layer in layers:
        path = ROOT / layer.replace(".", "/")
        assert path.is_dir() or path.with_suffix(".py").is_file(), layer
    # every top-level module of monitor/ is in a layer folder (no module left at the root)
    loose = {p.stem for p in (ROOT / "monitor").glob("*.py")} - {"__init__", "__main__"}
    assert loose == set()
