"""The demo's cascade: the chosen local tiers and their fitted gate, in one place.

``fit_demo_thresholds.py`` picks the gate and fits its thresholds on the
workload's fitting sample and writes ``demo_thresholds.json``; ``demo.py``
builds the cascade from that file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel

from benchmarks.workload import CHAT_KWARGS, make_gate
from langchain_cascade import CascadingChatModel
from langchain_cascade.local_models import LocalModels, example_prices
from langchain_cascade.pricing import ModelPrice

THRESHOLDS_FILE = Path(__file__).with_name("demo_thresholds.json")


def tier_models(
    models: LocalModels, names: list[str], *, slot: int | None = None
) -> list[BaseChatModel]:
    """The tiers as chat models: greedy decoding, logprobs on, room to reason.

    ``slot`` pins the requests to one of the llama.cpp server's request slots
    (``id_slot``), each with a prompt cache of its own: two callers on separate
    slots never reuse a prompt the other computed.
    """
    extra = {} if slot is None else {"extra_body": {"id_slot": slot}}
    return [models.chat_model(name, **CHAT_KWARGS, **extra) for name in names]


def load_thresholds(path: Path = THRESHOLDS_FILE) -> dict[str, Any]:
    """The fitted gate, with a clear error when it was never fitted."""
    if not path.exists():
        msg = (
            f"{path} is missing: fit it first with "
            "`python -m examples.fit_demo_thresholds`"
        )
        raise FileNotFoundError(msg)
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def build_cascade(
    tiers: list[BaseChatModel],
    fitted: dict[str, Any],
    prices: dict[str, ModelPrice] | None = None,
) -> CascadingChatModel:
    """The demo's cascade: the format rule and the fitted weighted logprob gate.

    ``prices`` defaults to the registry's compute-proportional example prices.
    """
    gates = [
        make_gate(fitted["weight_geometric_mean"], t) for t in fitted["thresholds"]
    ]
    return CascadingChatModel(
        models=tiers, gates=gates, prices=prices or example_prices()
    )
