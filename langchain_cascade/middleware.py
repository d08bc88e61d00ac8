"""``CascadeMiddleware``: the cascade for ``create_agent`` users who keep their model.

The agent's own model stays the final tier. Each model call of the agent first
runs on the middleware's cheaper models, through the agent's own model-call
handler (so tools, ``response_format`` and other middleware apply to every
tier), and a gate judges each draft. A rejected draft is never returned: its
tool calls are not executed, it never enters the agent's messages, and its
tokens never reach the message stream (the draft's model run is tagged
``nostream``). The escalation rules are the cascade's own (``_run.decide``); this
module only performs its effects through the handler.

Example:
    .. code-block:: python

        from langchain.agents import create_agent
        from langchain_cascade.middleware import CascadeMiddleware

        agent = create_agent(
            strong_model,
            tools=[get_weather],
            middleware=[CascadeMiddleware([cheap_model], sticky="run")],
        )
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

from langchain.agents.middleware.types import (
    AgentMiddleware,
    AgentState,
    ModelRequest,
    ModelResponse,
)
from langchain.agents.structured_output import (
    AutoStrategy,
    ProviderStrategy,
    ToolStrategy,
)
from langchain_core.callbacks import (
    BaseCallbackHandler,
    UsageMetadataCallbackHandler,
    adispatch_custom_event,
    dispatch_custom_event,
)
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.runnables import RunnableConfig, ensure_config
from langchain_core.runnables.config import merge_configs
from langchain_core.utils.function_calling import convert_to_openai_tool

from langchain_cascade._run import (
    CallGate,
    CallTier,
    Effect,
    Event,
    Outcome,
    Plan,
    TierOutput,
    decide,
)
from langchain_cascade.chat_models import _Stepper, model_name
from langchain_cascade.gates.base import Gate, GateLike, coerce_gate
from langchain_cascade.gates.tools import ToolCallGate
from langchain_cascade.gates.turns import by_turn
from langchain_cascade.pricing import ModelPrice
from langchain_cascade.sticky import StickyScope, sticky_tier

__all__ = ["CascadeMiddleware"]

_DEFAULT = object()
Handler = Callable[[ModelRequest[Any]], ModelResponse[Any]]
AsyncHandler = Callable[[ModelRequest[Any]], Awaitable[ModelResponse[Any]]]


class CascadeMiddleware(AgentMiddleware[AgentState[Any], Any, Any]):
    """Try cheaper models before the agent's own, escalating on a failed gate.

    The tiers are ``models`` (cheapest first) followed by the agent's model,
    which is the safety net: its answer is returned whatever its quality. Each
    non-final tier's draft is judged by ``by_turn(tool_calls=tool_gate,
    answer=gate)``: a draft that calls tools by ``tool_gate`` (``ToolCallGate``
    by default: every call names a bound tool with valid arguments), a final
    answer by the tier's gate from ``gates`` (accepted when none is given).

    Every answer the agent keeps carries ``response_metadata["cascade"]`` as a
    :class:`~langchain_cascade.CascadingChatModel` answer does (tier, attempts,
    gate verdicts, costs, and the tiers a sticky call skipped, with the reason)
    plus ``usage``, the tokens of every attempt and gate of the call.

    Args:
        models: The cheaper tiers, cheapest first (at least one).
        gates: The answer-turn gate of each cheaper tier, or one for all of them.
        tool_gate: The tool-turn gate of every cheaper tier; ``None`` judges tool
            turns with ``gates`` too (then ``gates`` must handle both kinds).
        review_gate: Optional check of the final tier's answer (``needs_review``).
        prices: Prices by model name, for costs and ``max_cost``.
        max_cost: Per-call budget in dollars (see ``CascadingChatModel``).
        sticky: ``"run"`` or ``"thread"``: later model calls start at the highest
            tier that answered earlier in the agent run or the thread (see
            :mod:`langchain_cascade.sticky`); ``None`` (default) for no stickiness.
    """

    def __init__(
        self,
        models: Sequence[BaseChatModel],
        *,
        gates: Sequence[GateLike] | GateLike | None = None,
        tool_gate: GateLike | object | None = _DEFAULT,
        review_gate: GateLike | None = None,
        prices: dict[str, ModelPrice] | None = None,
        max_cost: float | None = None,
        sticky: StickyScope | None = None,
    ) -> None:
        super().__init__()
        self.models = list(models)
        if not self.models:
            msg = (
                "CascadeMiddleware needs at least one cheaper model before the agent's"
            )
            raise ValueError(msg)
        for i, model in enumerate(self.models):
            if not isinstance(model, BaseChatModel):
                msg = f"models[{i}] is a {type(model).__name__}, not a chat model"
                raise TypeError(msg)
        if sticky not in (None, "run", "thread"):
            msg = f"sticky must be None, 'run' or 'thread', got {sticky!r}"
            raise ValueError(msg)
        if max_cost is not None and max_cost <= 0:
            msg = f"max_cost must be positive, got {max_cost}"
            raise ValueError(msg)
        self.gates = self._tier_gates(gates, tool_gate)
        self.review_gate = (
            None
            if review_gate is None
            else coerce_gate(review_gate, where="review_gate")
        )
        self.prices = dict(prices or {})
        self.max_cost = max_cost
        self.sticky: StickyScope | None = sticky
        self._names = [model_name(m) for m in self.models]
        self._copies: dict[
            tuple[int, int, bool], tuple[BaseChatModel, BaseChatModel]
        ] = {}

    def _tier_gates(self, gates: object, tool_gate: object) -> list[Gate]:
        needed = len(self.models)
        if gates is None:
            answer: list[object] = [None] * needed
        elif isinstance(gates, list | tuple):
            if len(gates) not in (1, needed):
                msg = (
                    f"{needed} cheaper models need {needed} gates or 1 gate for all, "
                    f"got {len(gates)}"
                )
                raise ValueError(msg)
            answer = list(gates) * (needed if len(gates) == 1 else 1)
        else:
            answer = [gates] * needed
        if tool_gate is None:
            return [
                coerce_gate(g, where=f"gates[{i}]") if g is not None else by_turn()
                for i, g in enumerate(answer)
            ]
        tools = ToolCallGate() if tool_gate is _DEFAULT else tool_gate
        return [by_turn(tool_calls=tools, answer=g) for g in answer]

    # --- the call ------------------------------------------------------------

    def _tier_model(
        self, model: BaseChatModel, tier: int, *, live: bool
    ) -> BaseChatModel:
        """The tier's model tagged for traces; ``nostream`` unless it streams live."""
        key = (id(model), tier, live)
        cached = self._copies.get(key)
        if cached is not None and cached[0] is model:
            return cached[1]
        tags = [*(model.tags or []), f"cascade:tier:{tier}"]
        if not live:
            tags.append("nostream")
        copy = model.model_copy(update={"tags": tags})
        self._copies[key] = (model, copy)
        return copy

    def _start(self, request: ModelRequest[Any]) -> tuple[_Call, _Stepper]:
        """The request's call and the decision loop stepping through it."""
        models = [*self.models, request.model]
        names = [*self._names, model_name(request.model)]
        messages: list[BaseMessage] = list(request.messages)
        if request.system_message is not None:
            messages = [request.system_message, *messages]
        start = (
            sticky_tier(messages, self.sticky, names)
            if self.sticky is not None
            else None
        )
        plan = Plan(
            messages=messages,
            models=models,
            model_names=names,
            gates=self.gates,
            review_gate=self.review_gate,
            tools=_tool_schemas(request),
            prices=self.prices,
            max_cost=self.max_cost,
            first_tier=start["first_tier"] if start else 0,
            skip_reason=start["reason"] if start else "",
        )
        return _Call(self, request, models), _Stepper(decide(plan))

    def wrap_model_call(
        self, request: ModelRequest[Any], handler: Handler
    ) -> ModelResponse[Any]:
        """Run the request on the cheaper tiers first, then the agent's model."""
        call, steps = self._start(request)
        while (effect := steps.next()) is not None:
            try:
                steps.send(call.perform(effect, handler))
            except Exception as exc:  # noqa: BLE001 - decide() records it
                steps.throw(exc)
        return call.response(steps.outcome)

    async def awrap_model_call(
        self, request: ModelRequest[Any], handler: AsyncHandler
    ) -> ModelResponse[Any]:
        """Run the request on the cheaper tiers first, then the agent's model."""
        call, steps = self._start(request)
        while (effect := steps.next()) is not None:
            try:
                steps.send(await call.aperform(effect, handler))
            except Exception as exc:  # noqa: BLE001 - decide() records it
                steps.throw(exc)
        return call.response(steps.outcome)


def _tool_schemas(request: ModelRequest[Any]) -> list[dict[str, Any]]:
    """OpenAI-format schemas of every tool the model may call in this request.

    The agent's tools, and the tools ``create_agent`` adds for a
    ``ToolStrategy`` response format, so a structured answer passes the
    tool-call gate.
    """
    schemas = [convert_to_openai_tool(t) for t in request.tools]
    for spec in _tool_strategy_specs(request):
        schemas.append(
            {
                "type": "function",
                "function": {"name": spec.name, "parameters": spec.json_schema},
            }
        )
    return schemas


def _tool_strategy_specs(request: ModelRequest[Any]) -> list[Any]:
    response_format: Any = request.response_format
    if response_format is None or isinstance(response_format, ProviderStrategy):
        return []
    if isinstance(response_format, ToolStrategy):
        return list(response_format.schema_specs)
    schema = (
        response_format.schema
        if isinstance(response_format, AutoStrategy)
        else response_format
    )
    return list(ToolStrategy(schema=schema).schema_specs)


def _ai_message(response: ModelResponse[Any]) -> AIMessage:
    for message in response.result:
        if isinstance(message, AIMessage):
            return message
    msg = "the model call returned no AIMessage"
    raise TypeError(msg)


def _parse_error(
    response: ModelResponse[Any], request: ModelRequest[Any]
) -> str | None:
    """Why a structured answer did not parse, when the agent asked for one."""
    names = {spec.name for spec in _tool_strategy_specs(request)}
    if not names or response.structured_response is not None:
        return None
    message = _ai_message(response)
    if not any(call["name"] in names for call in message.tool_calls):
        return None
    errors = [m.text for m in response.result if isinstance(m, ToolMessage)]
    return errors[0] if errors else "the structured answer did not parse"


class _Call:
    """One model call's I/O: tiers through the handler, gates and events in place."""

    def __init__(
        self,
        middleware: CascadeMiddleware,
        request: ModelRequest[Any],
        models: list[BaseChatModel],
    ) -> None:
        self.middleware = middleware
        self.request = request
        self.models = models
        self.responses: dict[int, ModelResponse[Any]] = {}

    def _tier_request(self, effect: CallTier) -> ModelRequest[Any]:
        model = self.middleware._tier_model(
            self.models[effect.tier], effect.tier, live=effect.live
        )
        return self.request.override(model=model)

    def _output(self, tier: int, response: ModelResponse[Any]) -> TierOutput:
        self.responses[tier] = response
        return TierOutput(
            message=_ai_message(response),
            parse_error=_parse_error(response, self.request),
        )

    @staticmethod
    def _gate_config(
        effect: CallGate, usage: UsageMetadataCallbackHandler
    ) -> RunnableConfig:
        return _child_config(
            [usage],
            run_name=effect.gate.gate_name,
            tags=["cascade:gate", "nostream"],
            metadata={"cascade_tier": effect.gate_input.tier},
        )

    def perform(self, effect: Effect, handler: Handler) -> Any:
        if isinstance(effect, CallTier):
            return self._output(effect.tier, handler(self._tier_request(effect)))
        if isinstance(effect, CallGate):
            usage = UsageMetadataCallbackHandler()
            result = effect.gate.invoke(
                effect.gate_input, self._gate_config(effect, usage)
            )
            return result, dict(usage.usage_metadata)
        if isinstance(effect, Event):
            dispatch_custom_event(effect.name, effect.data)
            return None
        msg = f"CascadeMiddleware has no formatter: unexpected effect {effect!r}"
        raise TypeError(msg)

    async def aperform(self, effect: Effect, handler: AsyncHandler) -> Any:
        if isinstance(effect, CallTier):
            return self._output(effect.tier, await handler(self._tier_request(effect)))
        if isinstance(effect, CallGate):
            usage = UsageMetadataCallbackHandler()
            result = await effect.gate.ainvoke(
                effect.gate_input, self._gate_config(effect, usage)
            )
            return result, dict(usage.usage_metadata)
        if isinstance(effect, Event):
            await adispatch_custom_event(effect.name, effect.data)
            return None
        msg = f"CascadeMiddleware has no formatter: unexpected effect {effect!r}"
        raise TypeError(msg)

    def response(self, outcome: Outcome | None) -> ModelResponse[Any]:
        """The chosen tier's response, its answer carrying the cascade's story."""
        assert outcome is not None  # noqa: S101 - the loop always ends with one
        chosen = self.responses[outcome.tier]
        # The cascade's story, plus the call's total tokens: the kept answer's
        # own usage_metadata stays the answering tier's.
        story: dict[str, Any] = {**outcome.metadata(), "usage": outcome.usage}
        answer = _ai_message(chosen)
        tagged = answer.model_copy(
            update={"response_metadata": {**answer.response_metadata, "cascade": story}}
        )
        result = [tagged if m is answer else m for m in chosen.result]
        return ModelResponse(
            result=result, structured_response=chosen.structured_response
        )


def _child_config(
    handlers: Sequence[BaseCallbackHandler], **fields: Any
) -> RunnableConfig:
    """The current run's child config, with extra handlers, tags and metadata."""
    extra = cast("RunnableConfig", {**fields, "callbacks": list(handlers)})
    return merge_configs(ensure_config(), extra)
