"""Session-wide fixtures for the integration tests."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from langchain_cascade.local_models import (
    DEFAULT_MODEL_NAMES,
    TOOL_MODEL_NAMES,
    LocalModels,
    sigterm_raises_systemexit,
)

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture(scope="session")
def local_models() -> Iterator[LocalModels]:
    """All three local models, served once per session and stopped at its end.

    The first run downloads the models (about 1.7 GB, under a minute); later runs use
    the cache. The servers are stopped when the session ends, also after failures,
    and when the test run is sent SIGTERM (the fixture, not the library, opts in).
    """
    with sigterm_raises_systemexit(), LocalModels(DEFAULT_MODEL_NAMES) as models:
        yield models


@pytest.fixture(scope="session")
def tool_models() -> Iterator[LocalModels]:
    """The tool-calling variants (the Qwen models with the package's tool template).

    Same model files as ``local_models``, served by their own servers with the
    template; started only when a test asks for them.
    """
    with sigterm_raises_systemexit(), LocalModels(TOOL_MODEL_NAMES) as models:
        yield models
