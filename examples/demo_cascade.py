"""The demo's cascade: three local models and their gates, in one place.

``fit_demo_thresholds.py`` fits the logprob thresholds on labelled questions and
writes ``demo_thresholds.json``; ``demo.py`` builds the cascade from that file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel

from langchain_cascade import CascadingChatModel
from langchain_cascade.gates import HedgingGate, LogprobGate, MinLengthGate, all_of
from langchain_cascade.local_models import LocalModels, example_prices

TIERS = ("smollm2-135m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b")
THRESHOLDS_FILE = Path(__file__).with_name("demo_thresholds.json")
AGGREGATION = "geometric_mean"


def tier_models(models: LocalModels, max_tokens: int = 24) -> list[BaseChatModel]:
    """The three tiers as chat models: greedy decoding, logprobs on."""
    return [
        models.chat_model(name, temperature=0, max_tokens=max_tokens, logprobs=True)
        for name in TIERS
    ]


def load_thresholds(path: Path = THRESHOLDS_FILE) -> dict[str, Any]:
    """The fitted thresholds, with a clear error when they were never fitted."""
    if not path.exists():
        msg = (
            f"{path} is missing: fit the thresholds first with "
            "`python examples/fit_demo_thresholds.py`"
        )
        raise FileNotFoundError(msg)
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def build_cascade(
    tiers: list[BaseChatModel], fitted: dict[str, Any]
) -> CascadingChatModel:
    """The demo's cascade: deterministic rules first, then the fitted logprob gate."""
    gates = [
        all_of(
            MinLengthGate(min_chars=1),
            HedgingGate(),
            LogprobGate(threshold=threshold, aggregation=AGGREGATION),
        )
        for threshold in fitted["thresholds"]
    ]
    review = all_of(
        HedgingGate(),
        LogprobGate(threshold=fitted["review_threshold"], aggregation=AGGREGATION),
    )
    return CascadingChatModel(
        models=tiers, gates=gates, review_gate=review, prices=example_prices()
    )
