"""Where the shared benchmark data lives, for tests and benchmarks."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    """The shared data folder: ``$CASCADE_DATA_DIR``, else ``../shared/data``.

    Returns:
        The folder, which exists.

    Raises:
        FileNotFoundError: If the folder is missing.
    """
    configured = os.environ.get("CASCADE_DATA_DIR")
    path = Path(configured) if configured else REPO_ROOT.parent / "shared" / "data"
    if not path.is_dir():
        source = "CASCADE_DATA_DIR" if configured else "the default ../shared/data"
        msg = (
            f"benchmark data folder {path} (from {source}) does not exist: set "
            "CASCADE_DATA_DIR to the folder holding routellm-gsm8k/ and gsm8k/"
        )
        raise FileNotFoundError(msg)
    return path
