"""LangChain's standard unit tests for chat models, run on the cascade."""

from __future__ import annotations

from typing import Any

from langchain_tests.unit_tests import ChatModelUnitTests

from langchain_cascade import CascadingChatModel
from langchain_cascade.gates import HedgingGate
from tests.unit_tests.fake_models import ScriptedChatModel


class TestCascadingChatModelStandard(ChatModelUnitTests):
    @property
    def chat_model_class(self) -> type[CascadingChatModel]:
        return CascadingChatModel

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {
            "models": [
                ScriptedChatModel(model="cheap", reply="I am not sure."),
                ScriptedChatModel(model="strong", reply="Hello!"),
            ],
            "gates": [HedgingGate()],
        }

    @property
    def standard_chat_model_params(self) -> dict[str, Any]:
        # temperature, max_tokens, timeout and retries belong to the children.
        return {}

    @property
    def has_tool_calling(self) -> bool:
        return True

    @property
    def has_structured_output(self) -> bool:
        return True

    @property
    def returns_usage_metadata(self) -> bool:
        return True

    @property
    def supports_model_override(self) -> bool:
        # A cascade picks its model per call from its tiers: one `model` kwarg
        # cannot name several tiers' models, so it is not a cascade feature.
        return False
