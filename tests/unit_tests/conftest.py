"""Fixtures shared by the unit tests.

Helpers that are plain functions or classes (fake chat models, the ``call``
driver, the run recorder) live in ``fake_models.py`` and ``run_recorder.py``;
test files import them from there, never from another test file.
"""

from __future__ import annotations

import pytest

from tests.unit_tests.fake_models import MODES
from tests.unit_tests.run_recorder import RunRecorder


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    """Each entry point in turn: ``invoke``, ``ainvoke``, ``stream``, ``astream``.

    A test taking ``mode`` runs once per entry point (drive it with ``call``).
    """
    value: str = request.param
    return value


@pytest.fixture
def recorder() -> RunRecorder:
    """A fresh callback handler recording the run tree of one test."""
    return RunRecorder()
