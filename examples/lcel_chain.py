"""The cascade in an LCEL chain: prompt | cascade | parser, on the local models.

Run: ``python -m examples.lcel_chain``
"""

from __future__ import annotations

from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

from examples.demo_cascade import build_cascade, load_thresholds, tier_models
from examples.questions import SYSTEM_PROMPT
from langchain_cascade.local_models import LocalModels


def main() -> None:
    prompt = ChatPromptTemplate.from_messages(
        [("system", SYSTEM_PROMPT), ("human", "{question}")]
    )
    fitted = load_thresholds()
    with LocalModels(fitted["tiers"]) as models:
        cascade = build_cascade(tier_models(models, fitted["tiers"]), fitted)
        chain = prompt | cascade | StrOutputParser()
        for question in ("What is the capital of Italy?", "What is 23 * 7?"):
            print(f"{question} -> {chain.invoke({'question': question})}")

        # The whole story of a call is on the message, before the parser.
        answer = (prompt | cascade).invoke({"question": "What is 23 * 7?"})
        story = answer.response_metadata["cascade"]
        print(f"answered by tier {story['tier']} ({story['model']})")
        for attempt in story["attempts"]:
            print(
                f"  tier {attempt['tier']}: accepted={attempt['accepted']} {attempt['reason']}"
            )


if __name__ == "__main__":
    main()
