"""Trace the cascade to LangSmith: one child run per attempt and per gate.

Tracing goes wherever the environment says, as for any LangChain app:
``LANGSMITH_TRACING=true``, ``LANGSMITH_API_KEY`` and, for a self-hosted or local
endpoint, ``LANGSMITH_ENDPOINT``. In the LangSmith UI each call of the cascade is
one LLM run with children ``tier 0: ...`` (tag ``cascade:tier:0``), the gate run
(tag ``cascade:gate``), and so on; the answer's metadata holds the whole story.

Run: ``LANGSMITH_TRACING=true LANGSMITH_ENDPOINT=... LANGSMITH_API_KEY=... python -m examples.langsmith_tracing``
"""

from __future__ import annotations

import os

from langchain_core.tracers.langchain import wait_for_all_tracers

from examples.demo_cascade import build_cascade, load_thresholds, tier_models
from examples.questions import SYSTEM_PROMPT
from langchain_cascade.local_models import LocalModels


def main() -> None:
    if os.environ.get("LANGSMITH_TRACING", "").lower() != "true":
        raise SystemExit(
            "set LANGSMITH_TRACING=true (and LANGSMITH_ENDPOINT / LANGSMITH_API_KEY)"
        )
    fitted = load_thresholds()
    with LocalModels(fitted["tiers"]) as models:
        cascade = build_cascade(tier_models(models, fitted["tiers"]), fitted)
        answer = cascade.invoke(
            [("system", SYSTEM_PROMPT), ("human", "What is 17 * 6?")],
            {"run_name": "cascade-example", "tags": ["example"]},
        )
    wait_for_all_tracers()
    story = answer.response_metadata["cascade"]
    endpoint = os.environ.get("LANGSMITH_ENDPOINT", "https://api.smith.langchain.com")
    print(
        f"answer {answer.text.strip()!r} from tier {story['tier']}; traced to {endpoint}"
    )


if __name__ == "__main__":
    main()
