"""langchain-cascade: LLM cascading as a LangChain chat model.

Try a cheap model first, check its answer with a quality gate, and escalate to a
stronger model only when the answer is not good enough.
"""

from importlib import metadata

from langchain_cascade.chat_models import CascadingChatModel
from langchain_cascade.errors import CascadeError
from langchain_cascade.gates.base import GateInput, GateResult

try:
    __version__ = metadata.version(__package__ or "langchain-cascade")
except metadata.PackageNotFoundError:  # pragma: no cover - running from a checkout
    __version__ = ""

__all__ = [
    "CascadeError",
    "CascadingChatModel",
    "GateInput",
    "GateResult",
    "__version__",
]
