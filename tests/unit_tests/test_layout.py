"""House rules of the test tree that a reviewer would otherwise check by hand."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent


def _imported_modules(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.append(node.module)
        elif isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
    return found


def test_no_test_file_imports_another_test_file() -> None:
    # Shared helpers live in helper modules (fake_models.py, run_recorder.py) and
    # shared fixtures in conftest.py; a test module is never a library.
    offenders = [
        f"{path.relative_to(TESTS)} imports {module}"
        for path in sorted(TESTS.rglob("*.py"))
        for module in _imported_modules(path)
        if module.rsplit(".", 1)[-1].startswith("test_")
    ]
    assert offenders == []
