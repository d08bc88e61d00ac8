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


PACKAGE = TESTS.parent / "langchain_cascade"


def _docstrings(path: Path) -> list[tuple[str, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(
            node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef
        ):
            doc = ast.get_docstring(node, clean=True)
            if doc:
                found.append((getattr(node, "name", path.stem), doc))
    return found


def test_every_docstring_example_is_a_doctest_or_a_code_block() -> None:
    # `make test` runs the ">>>" examples (--doctest-modules); an example that
    # needs a model or a server is shown as a literal block instead, which no
    # one mistakes for a checked one.
    loose = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for name, doc in _docstrings(path):
            lines = doc.splitlines()
            for i, line in enumerate(lines):
                header = line.strip()
                if header.rstrip(":") not in ("Example", "Examples", "Typical use"):
                    continue
                if header.endswith("::"):
                    continue
                following = next((x.strip() for x in lines[i + 1 :] if x.strip()), "")
                if not following.startswith((">>>", ".. code-block::")):
                    loose.append(f"{path.relative_to(PACKAGE)}:{name}: {following!r}")
    assert loose == []


# The public names of the modules split in #12, importable where they were.
_KEPT_PATHS = {
    "langchain_cascade.gates.llm": [
        "DEFAULT_JUDGE_CRITERIA",
        "JudgeGate",
        "SelfCheckGate",
        "parse_rating",
        "parse_verdict",
        "screen_candidate",
    ],
    "langchain_cascade.gates.arithmetic": [
        "ArithmeticGate",
        "Calculation",
        "find_calculations",
    ],
    "langchain_cascade.gates.consistency": [
        "ConsistencyGate",
        "Extractor",
        "extract_choice",
        "extract_number",
        "normalize_text",
    ],
}


def test_split_modules_keep_their_public_names() -> None:
    import importlib

    missing = [
        f"{module}.{name}"
        for module, names in _KEPT_PATHS.items()
        for name in names
        if not hasattr(importlib.import_module(module), name)
        or name not in importlib.import_module(module).__all__
    ]
    assert missing == []
