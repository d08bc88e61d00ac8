"""LangChain's standard integration tests, on a cascade of real local models.

The tiers are ``ChatOpenAI`` clients of the xllamacpp servers: SmolLM2-135M, gated,
then Qwen2.5-Coder-0.5B served with the package's tool-calling chat template
(``qwen2.5-coder-0.5b-tools``), which returns real OpenAI tool calls. The gate
judges tool turns by ``ToolCallGate`` and answer turns by length, hedging and
``ToolFirstGate`` (a fresh question with tools bound needs a call), so a tool
request that SmolLM2 answers in text escalates. Tests that need an ability
these models do not have are marked xfail with the reason measured here. The
suite's own conditional skips that remain, each printed with its reason by
``pytest -rs``: model override (a cascade picks its model per tier, so
``supports_model_override`` is False), image and PDF tool messages and Anthropic-format inputs (the local models are
text-only and speak the OpenAI format), and VCR (no recorded cassettes: every
call here is live against the local servers).
"""

from __future__ import annotations

from typing import Any, Literal

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_tests.integration_tests import ChatModelIntegrationTests

from langchain_cascade import CascadingChatModel
from langchain_cascade.gates import (
    HedgingGate,
    MinLengthGate,
    ToolCallGate,
    ToolFirstGate,
    all_of,
    by_turn,
)
from langchain_cascade.local_models import LocalModels

pytestmark = pytest.mark.real_models

NAMED_TOOL_CHOICE = (
    "measured: with tool_choice naming one tool (magic_function) the final tier "
    "(qwen2.5-coder-0.5b-tools) wrote the call as unfenced JSON text with JSON-"
    "schema keywords in its arguments, so the server parsed no tool call "
    "(tool_calls == []); xllamacpp ignores a named tool_choice. The other "
    "tool-calling tests pass on these models"
)
NEEDS_INTERNET = (
    "measured: the standard test downloads its image/audio/PDF from the internet, "
    "which tests here cannot reach (and the local GGUF models are text-only)"
)
ONE_START_PER_CALL = (
    "by design: each attempt is a child chat-model run (cascade:tier:<i>), so a "
    "callback handler sees on_chat_model_start for the cascade and for each "
    "attempt, while this test expects exactly one; the structured output itself "
    "is checked on the real models in test_cascade_real.py"
)
RUNS_OUT_OF_TOKENS = (
    "measured: on this test's optional-field schema both local tiers keep "
    "generating until max_tokens (160) without closing the JSON "
    "(openai.LengthFinishReasonError on each tier, so CascadeError)"
)
PYDANTIC_V1 = (
    "measured: ChatOpenAI turns method='json_schema' into tool calling for "
    "pydantic.v1 schemas, so the tier answers with a tool call and empty text, "
    "while the cascade parses the json_schema method's JSON text: "
    "OutputParserException 'Invalid json output: ' (a cascade limitation, not "
    "the model's)"
)

_servers: dict[str, LocalModels] = {}


@pytest.fixture(autouse=True)
def _local(local_models: LocalModels, tool_models: LocalModels) -> None:
    _servers["models"] = local_models
    _servers["tools"] = tool_models


def _xfail(reason: str) -> pytest.MarkDecorator:
    return pytest.mark.xfail(reason=reason, strict=True)


class TestCascadeOnLocalModels(ChatModelIntegrationTests):
    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        return CascadingChatModel

    @property
    def chat_model_params(self) -> dict[str, Any]:
        models = _servers["models"]
        tier = {
            "temperature": 0,
            "max_tokens": 160,
            "timeout": 120,
            "stream_usage": True,
        }
        answer = all_of(MinLengthGate(min_chars=2), HedgingGate(), ToolFirstGate())
        return {
            "models": [
                models.chat_model("smollm2-135m", **tier),
                _servers["tools"].chat_model("qwen2.5-coder-0.5b-tools", **tier),
            ],
            "gates": [by_turn(tool_calls=ToolCallGate(), answer=answer)],
        }

    @property
    def standard_chat_model_params(self) -> dict[str, Any]:
        # temperature, max_tokens and timeouts belong to the tiers.
        return {}

    @property
    def has_tool_calling(self) -> bool:
        return True

    @property
    def has_tool_choice(self) -> bool:
        return True

    @property
    def has_structured_output(self) -> bool:
        return True

    @property
    def structured_output_kwargs(self) -> dict[str, Any]:
        # Native JSON-schema output works on these models; tool calls do not.
        return {"method": "json_schema"}

    @property
    def supports_json_mode(self) -> bool:
        return True

    @property
    def supports_image_inputs(self) -> bool:
        return True

    @property
    def supports_audio_inputs(self) -> bool:
        return True

    @property
    def supports_pdf_inputs(self) -> bool:
        return True

    @property
    def supports_model_override(self) -> bool:
        # A cascade chooses its model per call from its tiers.
        return False

    @property
    def returns_usage_metadata(self) -> bool:
        return True

    # --- abilities the local models do not have ----------------------------------

    @_xfail(NAMED_TOOL_CHOICE)
    def test_tool_choice(self, model: BaseChatModel) -> None:
        super().test_tool_choice(model)

    @_xfail(PYDANTIC_V1)
    def test_structured_output_pydantic_2_v1(self, model: BaseChatModel) -> None:
        super().test_structured_output_pydantic_2_v1(model)

    @_xfail(RUNS_OUT_OF_TOKENS)
    def test_structured_output_optional_param(self, model: BaseChatModel) -> None:
        super().test_structured_output_optional_param(model)

    @_xfail(ONE_START_PER_CALL)
    @pytest.mark.parametrize("schema_type", ["pydantic", "typeddict", "json_schema"])
    def test_structured_output(
        self,
        model: BaseChatModel,
        schema_type: Literal["pydantic", "typeddict", "json_schema"],
    ) -> None:
        super().test_structured_output(model, schema_type)

    @_xfail(ONE_START_PER_CALL)
    @pytest.mark.parametrize("schema_type", ["pydantic", "typeddict", "json_schema"])
    async def test_structured_output_async(
        self,
        model: BaseChatModel,
        schema_type: Literal["pydantic", "typeddict", "json_schema"],
    ) -> None:
        await super().test_structured_output_async(model, schema_type)

    @_xfail(NEEDS_INTERNET)
    def test_image_inputs(self, model: BaseChatModel) -> None:
        super().test_image_inputs(model)

    @_xfail(NEEDS_INTERNET)
    def test_audio_inputs(self, model: BaseChatModel) -> None:
        super().test_audio_inputs(model)

    @_xfail(NEEDS_INTERNET)
    def test_pdf_inputs(self, model: BaseChatModel) -> None:
        super().test_pdf_inputs(model)
