"""``CascadingChatModel``: a chat model that escalates to stronger tiers on quality."""

from __future__ import annotations

import asyncio
import dataclasses
import difflib
import json
import math
import threading
import uuid
from collections.abc import (
    AsyncIterator,
    Callable,
    Generator,
    Iterable,
    Iterator,
    Sequence,
)
from dataclasses import dataclass, field, replace
from operator import itemgetter
from typing import Any, Literal, Self, cast

from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    CallbackManagerForLLMRun,
    UsageMetadataCallbackHandler,
    adispatch_custom_event,
    dispatch_custom_event,
)
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    UsageMetadata,
)
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.messages.utils import message_chunk_to_message
from langchain_core.output_parsers import (
    JsonOutputKeyToolsParser,
    JsonOutputParser,
    PydanticOutputParser,
    PydanticToolsParser,
)
from langchain_core.outputs import (
    ChatGeneration,
    ChatGenerationChunk,
    ChatResult,
    LLMResult,
)
from langchain_core.runnables import (
    Runnable,
    RunnableConfig,
    RunnableLambda,
    RunnableMap,
    RunnablePassthrough,
    ensure_config,
)
from langchain_core.utils.function_calling import (
    convert_to_json_schema,
    convert_to_openai_tool,
)
from langchain_core.utils.pydantic import is_basemodel_subclass
from pydantic import (
    ConfigDict,
    Field,
    PrivateAttr,
    StrictBool,
    StrictInt,
    field_validator,
    model_validator,
)

from langchain_cascade._callbacks import (
    ParentRun,
    agenerate_unobserved,
    ainvoke_nested,
    astream_nested,
    generate_unobserved,
    invoke_nested,
    stream_nested,
)
from langchain_cascade._run import (
    CallFormatter,
    CallGate,
    CallRouter,
    CallTier,
    CancelTier,
    Effect,
    LatencyEstimator,
    Outcome,
    Partial,
    Plan,
    StartTier,
    TierOutput,
    decide,
)
from langchain_cascade._sync import in_thread, iterate_async, run_coroutine
from langchain_cascade._tiers import (
    chat_model_of,
    fingerprint,
    model_name,
    with_tools,
)
from langchain_cascade.errors import GateTimeoutError, TierTimeoutError
from langchain_cascade.events import (
    FORMATTER_TAG,
    GATE_TAG,
    LS_PROVIDER,
    NOSTREAM_TAG,
    ROUTER_TAG,
    tier_tag,
)
from langchain_cascade.gates.base import Gate, GateResult, coerce_gate
from langchain_cascade.pricing import ModelPrice
from langchain_cascade.routing import aroute, coerce_router, route
from langchain_cascade.sticky import StickyScope, sticky_tier

__all__ = ["LS_PROVIDER", "CascadingChatModel", "model_name"]


_STREAM_PARENT = "_cascade_stream_parent"
_STREAM_CALLS = "_cascade_stream_calls"
_CONFIGURABLE = "_cascade_configurable"
_PRIVATE_KWARGS = (_STREAM_PARENT, _STREAM_CALLS, _CONFIGURABLE)
_CALL_KWARGS = (
    "max_cost",
    "timeout",
    "first_tier",
    "speculative",
    "early_abort",
    "max_latency",
    "router",
)
"""Per-call arguments the cascade itself reads (any other goes to every tier)."""
_BOUND_KWARGS = (
    "tools",
    "tool_choice",
    "tool_kwargs",
    "structured_output",
    "ls_structured_output_format",
)
Timeout = float | list[float | None] | None
StructuredMethod = Literal["function_calling", "json_schema", "json_mode"]


@dataclass(frozen=True)
class _StructuredOutput:
    """A ``with_structured_output`` request, passed to every tier."""

    schema: Any
    method: StructuredMethod
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        # Stable across processes: it is part of the cache key and the trace.
        schema = json.dumps(convert_to_json_schema(self.schema), sort_keys=True)
        return f"StructuredOutput(method={self.method!r}, schema={schema})"


class CascadingChatModel(BaseChatModel):
    """A chat model that answers with the cheapest tier whose answer passes its gate.

    Each call tries ``models[0]`` first. A gate judges the answer; when it passes,
    that answer is returned, otherwise the next, stronger tier is tried. The last
    tier is the safety net: its answer is returned whatever its quality, and
    ``review_gate``, when given, flags it for human review. A tier that raises
    (timeout, rate limit, server error) escalates too; only when the final tier
    raises does the call fail, with a :class:`~langchain_cascade.CascadeError`
    that holds every attempt.

    Every attempt runs as a child run tagged ``cascade:tier:<i>``, every gate as
    a child run tagged ``cascade:gate``, and each escalation dispatches the custom
    event ``cascade_escalation``. The answer's ``response_metadata["cascade"]``
    tells the whole story of the call: ``tier``, ``model``, ``escalated``,
    ``needs_review`` and one entry per attempt in ``attempts``.

    Usage: the answer's ``usage_metadata`` is the total of the call (every attempt
    and every gate's model calls), reported under the cascade's own model name
    (``response_metadata["model_name"]``, default ``"cascade"``). With
    ``get_usage_metadata_callback()`` the children also appear under their own
    names: read either the children's entries or the cascade's, not their sum.

    Setup:
        Not on PyPI yet: install from a checkout (README "Install").

        .. code-block:: bash

            pip install -c constraints.txt -e .

    Instantiate:
        .. code-block:: python

            from langchain_core.language_models.fake_chat_models import FakeListChatModel
            from langchain_cascade import CascadingChatModel
            from langchain_cascade.gates import HedgingGate

            cascade = CascadingChatModel(
                models=[
                    FakeListChatModel(responses=["I'm not sure."]),
                    FakeListChatModel(responses=["Paris."]),
                ],
                gates=[HedgingGate()],
            )

    Invoke:
        .. code-block:: python

            answer = cascade.invoke("What is the capital of France?")
            answer.content  # 'Paris.'
            answer.response_metadata["cascade"]["tier"]  # 1: the first tier hedged

    Stream:
        .. code-block:: python

            for chunk in cascade.stream("What is the capital of France?"):
                print(chunk.content, end="")  # a rejected draft is never streamed

    Async:
        .. code-block:: python

            answer = await cascade.ainvoke("What is the capital of France?")

    Tool calling:
        .. code-block:: python

            from langchain_cascade.gates import ToolCallGate

            cascade_with_tools = cascade.bind_tools([get_weather])  # every tier gets them
    """

    model_config = ConfigDict(extra="forbid")

    models: list[Runnable[Any, Any]] = Field(min_length=1)
    """The tiers, cheapest first. The last one always answers.

    Each is a chat model or a wrapper of one: ``with_retry()``, ``bind(...)``,
    ``with_config(...)``, ``configurable_fields(...)``. The tier is called through
    the wrapper; its name, price, profile and tools come from the chat model inside
    (see :attr:`chat_models`).
    """

    gates: list[Gate] = Field(default_factory=list)
    """One gate per non-final tier, or one gate for all of them."""

    review_gate: Gate | None = None
    """Optional check of the final tier's answer; a failure sets ``needs_review``."""

    stop: list[str] | None = None
    """Stop sequences passed to every tier when the call gives none."""

    prices: dict[str, ModelPrice] = Field(default_factory=dict)
    """Prices by model name (tiers' and gates' models), for costs and budgets.

    A model without a price has an unknown cost, reported as ``None``.
    """

    max_cost: float | None = Field(default=None, gt=0.0)
    """Default per-call budget in dollars; a call may pass its own ``max_cost``.

    When the next tier would take the call over it, the best answer so far is
    returned, flagged ``needs_review`` with the reason.
    """

    sticky: StickyScope | None = None
    """Sticky escalation: ``"run"`` or ``"thread"`` starts a call at the highest
    tier that answered earlier in the agent run or the whole conversation (see
    :mod:`langchain_cascade.sticky`); a call's own ``first_tier`` wins."""

    formatter: Runnable[AIMessage, Any] | None = None
    """Optional Runnable applied to every final answer (returns an AIMessage or
    a string), so answers look alike whichever tier wrote them."""

    speculative: StrictBool | StrictInt = False
    """Start the next tier at the same time as the current one, for the first
    ``k`` tiers tried (``True``: every gated tier). The run not needed is
    cancelled the moment an answer passes; what it spent is recorded in
    ``cancelled_attempts`` and counted in the cost. A call may pass its own."""

    early_abort: StrictBool = False
    """Stream gated tiers internally and stop one as soon as its gate can tell
    from the partial answer that it will fail (a gate's ``evaluate_partial``);
    the call then escalates at once. A call may pass its own."""

    max_latency: float | None = Field(default=None, gt=0.0)
    """Seconds a call may take: when the time left cannot fit another gated
    attempt and the final tier (estimated from each tier's recent latencies),
    the call goes straight to the final tier, recorded in ``skipped_tiers``.
    A call may pass its own."""

    router: Runnable[Any, Any] | None = None
    """Chooses the first tier of each call: a
    :class:`~langchain_cascade.routing.Router` (such as ``RuleRouter``), or any
    Runnable or function of the messages returning a tier index or model name.
    The tiers below its choice are recorded in ``skipped_tiers``. A call may pass
    its own ``router``, or ``first_tier`` directly."""

    _latency: LatencyEstimator = PrivateAttr(default_factory=LatencyEstimator)

    @field_validator("router", mode="before")
    @classmethod
    def _coerce_router(cls, value: object) -> object:
        return None if value is None else coerce_router(value)

    @field_validator("speculative", mode="before")
    @classmethod
    def _check_speculative(cls, value: object) -> object:
        return _valid_speculative(value)

    max_tokens: int | None = Field(default=None, ge=1)
    """When set, passed to every tier as the call argument ``max_tokens`` (a call
    may pass its own), and traced as ``ls_max_tokens``."""

    streaming: StrictBool = False
    """Answer ``invoke`` through the streaming path (the final tier's tokens reach
    token callbacks as they come), as ``streaming=True`` does on other chat models."""

    timeout: Timeout = None
    """Seconds a tier may take: one value for every tier, or one per tier
    (``None`` for no limit). A call may pass its own ``timeout``.

    A tier past it is cancelled and counts as a failed attempt (reason
    ``"timeout after Xs"``), so the call escalates; the final tier past it
    raises :class:`~langchain_cascade.CascadeError`. Async calls use
    ``asyncio.timeout``; a sync call runs the tier's async path on one worker
    event loop the package owns (started on first use, stopped at exit),
    cancels it there and waits until it has stopped. A tier whose own async
    path runs blocking code in a thread cannot be interrupted: the cascade
    stops waiting for it, and that thread ends when the code returns.

    The same value bounds the tier's gate (the review gate on the final tier),
    with its own clock that starts when the gate does: a gate past it fails
    closed with reason ``"gate timeout after Xs"`` (escalate; on the final
    tier, the answer is flagged for review). A gate with an async path of its
    own (LLM gates, async functions) is cancelled, in sync calls on the same
    worker loop; a sync-only gate then runs on a thread, which cannot be
    interrupted: the cascade stops waiting for it, and the thread ends when the
    gate's code returns.
    """

    @model_validator(mode="before")
    @classmethod
    def _refuse_unknown_arguments(cls, data: object) -> object:
        if not isinstance(data, dict):
            return data
        known = set(cls.model_fields) | {
            f.alias for f in cls.model_fields.values() if f.alias
        }
        unknown = [k for k in data if k not in known]
        if unknown:
            own = known - set(BaseChatModel.model_fields)
            raise ValueError(
                _unknown_message(unknown, known, "CascadingChatModel", own=own)
            )
        return data

    @field_validator("max_cost", mode="before")
    @classmethod
    def _check_max_cost(cls, value: object) -> object:
        return _valid_max_cost(value)

    @field_validator("timeout", mode="before")
    @classmethod
    def _check_timeout(cls, value: object) -> object:
        return _valid_timeout(value)

    @field_validator("formatter", mode="before")
    @classmethod
    def _coerce_formatter(cls, value: object) -> object:
        if value is None or isinstance(value, Runnable):
            return value
        if callable(value):
            return RunnableLambda(value, name="formatter")
        msg = f"formatter must be a Runnable or a function, got {type(value).__name__}"
        raise TypeError(msg)

    _identity_cache: (
        tuple[Any, tuple[str, ...], dict[str, Any], tuple[BaseChatModel, ...]] | None
    ) = PrivateAttr(default=None)

    @field_validator("models", mode="before")
    @classmethod
    def _check_models(cls, value: object) -> object:
        if not isinstance(value, Sequence) or isinstance(value, str | bytes):
            msg = f"models must be a list of chat models, got {type(value).__name__}"
            raise TypeError(msg)
        if not value:
            msg = "models is empty: give at least one chat model, cheapest first"
            raise ValueError(msg)
        for i, model in enumerate(value):
            chat_model_of(model, where=f"models[{i}]")
        return list(value)

    @field_validator("gates", mode="before")
    @classmethod
    def _coerce_gates(cls, value: object) -> list[Gate]:
        if value is None:
            return []
        items = value if isinstance(value, list | tuple) else [value]
        return [coerce_gate(g, where=f"gates[{i}]") for i, g in enumerate(items)]

    @field_validator("review_gate", mode="before")
    @classmethod
    def _coerce_review_gate(cls, value: object) -> Gate | None:
        return None if value is None else coerce_gate(value, where="review_gate")

    @model_validator(mode="after")
    def _check_gate_count(self) -> Self:
        needed = len(self.models) - 1
        if needed == 0 and self.gates:
            msg = (
                f"one model needs no gates, got {len(self.gates)}: the final tier is "
                "always returned (use review_gate to check it)"
            )
            raise ValueError(msg)
        if needed > 0 and len(self.gates) not in (1, needed):
            msg = (
                f"{len(self.models)} models need {_count(needed, 'gate')} (one per "
                f"non-final tier) or 1 gate for all of them, got {len(self.gates)}"
            )
            raise ValueError(msg)
        if needed > 1 and len(self.gates) == 1:
            self.gates = self.gates * needed
        if isinstance(self.timeout, list) and len(self.timeout) != len(self.models):
            raise ValueError(_timeout_count_error(len(self.timeout), len(self.models)))
        # Now, before any call (or a batch's threads) can race for them: both
        # repr() every gate, and a gate's repr may touch the gate's state.
        self._identity()
        _ = self._serialized
        return self

    # --- identity --------------------------------------------------------------

    @property
    def _llm_type(self) -> str:
        return "cascade"

    @property
    def cascade_name(self) -> str:
        """The name answers are reported under (``response_metadata["model_name"]``)."""
        return self.name or "cascade"

    @property
    def model_names(self) -> list[str]:
        """The tiers' model names, cheapest first."""
        return list(self._identity()[0])

    @property
    def chat_models(self) -> list[BaseChatModel]:
        """The chat model inside each tier (the tier itself when it is one)."""
        return list(self._identity()[2])

    def _identity(
        self,
    ) -> tuple[tuple[str, ...], dict[str, Any], tuple[BaseChatModel, ...]]:
        # Computed once per configuration: it sits on every call's path.
        key = (tuple(map(id, self.models)), tuple(map(id, self.gates)))
        cached = self._identity_cache
        if cached is not None and cached[0] == key:
            return cached[1], cached[2], cached[3]
        # Once at a time: a batch's threads would otherwise all compute it, each
        # repr() of a gate racing the others (a gate's repr may touch its state).
        with _IDENTITY_LOCK:
            return self._compute_identity(key)

    def _compute_identity(
        self, key: tuple[tuple[int, ...], tuple[int, ...]]
    ) -> tuple[tuple[str, ...], dict[str, Any], tuple[BaseChatModel, ...]]:
        cached = self._identity_cache
        if cached is None or cached[0] != key:
            self._check_tiers()
            chat_models = tuple(
                chat_model_of(m, where=f"models[{i}]")
                for i, m in enumerate(self.models)
            )
            names = tuple(model_name(m) for m in chat_models)
            # A fingerprint of each child's own cache key: two cascades with
            # different children never share cache entries, and the traced
            # params stay small.
            params = {
                "tiers": [
                    f"{name}#{fingerprint(tier, m)}"
                    for name, tier, m in zip(
                        names, self.models, chat_models, strict=True
                    )
                ],
                "gates": [repr(g) for g in self.gates],
                "review_gate": repr(self.review_gate) if self.review_gate else None,
            }
            cached = self._identity_cache = (key, names, params, chat_models)
        return cached[1], cached[2], cached[3]

    def _check_tiers(self) -> None:
        """Refuse ``models`` or ``gates`` changed after construction into a mismatch."""
        needed = len(self.models) - 1
        if not self.models or (needed > 0 and len(self.gates) != needed):
            msg = (
                f"the cascade has {len(self.models)} models and {len(self.gates)} "
                f"gates; it needs {_count(max(needed, 0), 'gate')} (models or gates were "
                "changed after construction: build a new CascadingChatModel)"
            )
            raise ValueError(msg)

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return dict(self._identity()[1])

    def _get_ls_params(
        self, stop: list[str] | None = None, **kwargs: Any
    ) -> Any:  # LangSmithParams
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"] = LS_PROVIDER
        if self.max_tokens is not None:
            params["ls_max_tokens"] = kwargs.get("max_tokens", self.max_tokens)
        override = kwargs.get("model")
        params["ls_model_name"] = (
            override if isinstance(override, str) else self.cascade_name
        )
        return params

    def _get_invocation_params(
        self, stop: list[str] | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        for key in _PRIVATE_KWARGS:
            kwargs.pop(key, None)
        # What the base class builds (``asdict()`` plus ``stop``), without its
        # per-call deprecation-warning guard: it sits on every call's path.
        params = dict(self._identity()[1])
        params["_type"] = self._llm_type
        params["stop"] = stop
        return {**params, **kwargs}

    def _get_llm_string(self, stop: list[str] | None = None, **kwargs: Any) -> str:
        kwargs.pop(_STREAM_PARENT, None)
        configurable = kwargs.pop(_CONFIGURABLE, None)
        llm_string = super()._get_llm_string(stop=stop, **kwargs)
        if configurable:  # it configures the tiers: part of the answer's key
            llm_string += "---" + json.dumps(configurable, sort_keys=True, default=repr)
        return llm_string

    def _resolve_model_profile(self) -> Any:
        # What every tier supports: a feature is on only when all tiers have it.
        profiles = [m.profile for m in self.chat_models]
        if any(p is None for p in profiles):
            return None
        merged: dict[str, Any] = {}
        for key in set().union(*(p.keys() for p in profiles if p)):
            values = [p.get(key) for p in profiles if p is not None]
            if all(isinstance(v, bool) for v in values):
                merged[key] = all(values)
            elif all(isinstance(v, int) for v in values):
                merged[key] = min(int(v) for v in values if isinstance(v, int))
        return merged

    def get_num_tokens(self, text: str) -> int:
        """Count tokens with the first tier's tokenizer."""
        return self.chat_models[0].get_num_tokens(text)

    def get_num_tokens_from_messages(
        self, messages: list[BaseMessage], tools: Sequence[Any] | None = None
    ) -> int:
        """Count tokens with the first tier's tokenizer."""
        return self.chat_models[0].get_num_tokens_from_messages(messages, tools=tools)

    # --- tools and structured output -------------------------------------------

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | Any],
        *,
        tool_choice: str | dict[str, Any] | bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools to every tier.

        Each tier gets them through its own ``bind_tools`` (so provider-specific
        formatting stays with the provider), and gates see their OpenAI-format
        schemas in ``GateInput.tools``.

        Args:
            tools: Tools as accepted by ``convert_to_openai_tool``.
            tool_choice: Passed to every tier's ``bind_tools``.
            **kwargs: Further ``bind_tools`` arguments for every tier (e.g.
                ``strict``, ``parallel_tool_calls``).

        Returns:
            The cascade with the tools bound.
        """
        formatted = [convert_to_openai_tool(t) for t in tools]
        bound: dict[str, Any] = {"tools": formatted}
        if tool_choice is not None:
            bound["tool_choice"] = tool_choice
        if kwargs:
            bound["tool_kwargs"] = kwargs
        return self.bind(**bound)

    def with_structured_output(
        self,
        schema: dict[str, Any] | type,
        *,
        include_raw: bool = False,
        method: StructuredMethod = "function_calling",
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, Any]:
        """Structured output from whichever tier answers.

        Every tier is called through its own ``with_structured_output(schema,
        method=method)``, so each uses its native mechanism. A non-final tier whose
        answer does not parse escalates; a final answer that does not parse is
        flagged ``needs_review``.

        Args:
            schema: A Pydantic class, TypedDict or JSON schema.
            include_raw: Return ``{"raw", "parsed", "parsing_error"}``.
            method: ``"function_calling"`` (default), ``"json_schema"`` or
                ``"json_mode"``.
            **kwargs: Further arguments for every tier's ``with_structured_output``.

        Returns:
            A Runnable that outputs the parsed object.
        """
        request = _StructuredOutput(schema=schema, method=method, kwargs=kwargs)
        llm = self.bind(
            structured_output=request,
            ls_structured_output_format={
                "kwargs": {"method": method},
                "schema": convert_to_json_schema(schema),
            },
        )
        parser = _parser_for(schema, method)
        if not include_raw:
            return llm | parser
        parse = itemgetter("raw") | parser
        with_parsed = RunnablePassthrough.assign(
            parsed=parse, parsing_error=lambda _: None
        )
        on_error = RunnablePassthrough.assign(parsed=lambda _: None)
        return RunnableMap(raw=llm) | with_parsed.with_fallbacks(
            [on_error], exception_key="parsing_error"
        )

    # --- the four entry points, one decision loop --------------------------------

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        call = self._start_call(messages, stop, run_manager, kwargs)
        steps = _Stepper(decide(call.plan))
        try:
            while (effect := steps.next()) is not None:
                try:
                    if call.streams(effect):
                        steps.send(_drained(call.stream_tier(effect)))
                    else:
                        steps.send(call.perform(effect))
                except Exception as exc:  # noqa: BLE001 - decide() records it
                    steps.throw(exc)
        finally:
            call.close()
        return self._chat_result(steps.outcome)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        call = self._start_call(messages, stop, run_manager, kwargs)
        steps = _Stepper(decide(call.plan))
        try:
            while (effect := steps.next()) is not None:
                try:
                    if call.streams(effect):
                        streamed = call.astream_tier(effect)
                        async for _ in streamed.chunks():
                            pass
                        steps.send(streamed.output)
                    else:
                        steps.send(await call.aperform(effect))
                except Exception as exc:  # noqa: BLE001 - decide() records it
                    steps.throw(exc)
        except asyncio.CancelledError as exc:
            # LangChain's agenerate ends no run when its caller is cancelled;
            # end the cascade's, so handlers (a monitor) do not keep it forever.
            if run_manager is not None:
                await run_manager.on_llm_error(exc, response=LLMResult(generations=[]))
            raise
        finally:
            await call.aclose()
        return self._chat_result(steps.outcome)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        call = self._start_call(messages, stop, run_manager, kwargs)
        steps = _Stepper(decide(call.plan))
        live = False
        try:
            while (effect := steps.next()) is not None:
                try:
                    if call.streams_live(effect) or call.streams(effect):
                        live = live or call.streams_live(effect)
                        steps.send((yield from call.stream_tier(effect)))
                    else:
                        steps.send(call.perform(effect))
                except Exception as exc:  # noqa: BLE001 - decide() records it
                    steps.throw(exc)
        finally:
            call.close()
        yield self._last_chunk(steps.outcome, live=live)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        calls: list[_Call] | None = kwargs.pop(_STREAM_CALLS, None)
        call = self._start_call(messages, stop, run_manager, kwargs)
        if calls is not None:
            calls.append(call)
        steps = _Stepper(decide(call.plan))
        live = False
        try:
            while (effect := steps.next()) is not None:
                try:
                    if call.streams_live(effect) or call.streams(effect):
                        live = live or call.streams_live(effect)
                        streamed = call.astream_tier(effect)
                        async for chunk in streamed.chunks():
                            yield chunk
                        steps.send(streamed.output)
                    else:
                        steps.send(await call.aperform(effect))
                except Exception as exc:  # noqa: BLE001 - decide() records it
                    steps.throw(exc)
        finally:
            await call.aclose()
        yield self._last_chunk(steps.outcome, live=live)

    # ``invoke``/``ainvoke`` hand ``_generate`` no config: pass the call's
    # ``configurable`` on, so ``configurable_fields`` tiers are configured.
    def invoke(
        self,
        input: LanguageModelInput,  # noqa: A002
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AIMessage:
        """Answer with the cheapest tier whose answer passes its gate."""
        if config and (configurable := config.get("configurable")):
            kwargs[_CONFIGURABLE] = configurable
        return super().invoke(input, config, stop=stop, **kwargs)

    async def ainvoke(
        self,
        input: LanguageModelInput,  # noqa: A002
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AIMessage:
        """Answer with the cheapest tier whose answer passes its gate."""
        if config and (configurable := config.get("configurable")):
            kwargs[_CONFIGURABLE] = configurable
        return await super().ainvoke(input, config, stop=stop, **kwargs)

    # ``stream()``/``astream()`` call ``_stream`` without a run manager. To nest
    # the attempts under the cascade's run, fix the run id before the base class
    # starts the run and hand it, with the config, to ``_stream``.
    def stream(
        self,
        input: LanguageModelInput,  # noqa: A002
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> Iterator[AIMessageChunk]:
        """Stream the answer; a rejected attempt's tokens are never streamed."""
        config, parent = self._with_run_id(config)
        yield from super().stream(
            input, config, stop=stop, **{_STREAM_PARENT: parent}, **kwargs
        )

    async def astream(
        self,
        input: LanguageModelInput,  # noqa: A002
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[AIMessageChunk]:
        """Stream the answer; a rejected attempt's tokens are never streamed."""
        config, parent = self._with_run_id(config)
        # The base class does not close ``_astream`` when the consumer closes this
        # stream early: cancel the call's background tiers here, at once.
        calls: list[_Call] = []
        try:
            async for chunk in super().astream(
                input,
                config,
                stop=stop,
                **{_STREAM_PARENT: parent, _STREAM_CALLS: calls},
                **kwargs,
            ):
                yield chunk
        finally:
            for call in calls:
                await call.aclose()

    def _with_run_id(
        self, config: RunnableConfig | None
    ) -> tuple[RunnableConfig, ParentRun]:
        config = ensure_config(config)
        run_id = config.get("run_id") or uuid.uuid4()
        config = {**config, "run_id": run_id}
        return config, ParentRun.from_config(run_id, config, self)

    # --- helpers ---------------------------------------------------------------

    def _start_call(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None,
        run_manager: CallbackManagerForLLMRun | AsyncCallbackManagerForLLMRun | None,
        kwargs: dict[str, Any],
    ) -> _Call:
        stream_parent: ParentRun | None = kwargs.pop(_STREAM_PARENT, None)
        configurable: dict[str, Any] = kwargs.pop(_CONFIGURABLE, None) or {}
        if run_manager is not None:
            parent = ParentRun.from_run_manager(run_manager)
            if configurable:
                parent = dataclasses.replace(parent, configurable=dict(configurable))
        elif stream_parent is not None:
            parent = stream_parent
        else:
            parent = ParentRun(run_id=uuid.uuid4(), handlers=(), tags=(), metadata={})
        tools: list[dict[str, Any]] = kwargs.pop("tools", None) or []
        tool_choice = kwargs.pop("tool_choice", None)
        tool_kwargs: dict[str, Any] = kwargs.pop("tool_kwargs", None) or {}
        structured: _StructuredOutput | None = kwargs.pop("structured_output", None)
        kwargs.pop("ls_structured_output_format", None)
        names, _, chat_models = self._identity()
        last = len(self.models) - 1
        max_cost = _valid_max_cost(kwargs.pop("max_cost", self.max_cost))
        timeouts = _timeouts(
            _valid_timeout(kwargs.pop("timeout", self.timeout)), len(self.models)
        )
        latency = self._latency_options(kwargs, structured=structured is not None)
        first_tier, skip_reason, router = self._first_tier(kwargs, messages, last)
        _check_call_kwargs(kwargs)
        runnables = [
            _tier_runnable(
                tier,
                chat_models[i],
                tools,
                tool_choice,
                tool_kwargs,
                structured,
                where=f"models[{i}]",
            )
            for i, tier in enumerate(self.models)
        ]
        plan = Plan(
            messages=messages,
            models=chat_models,
            model_names=names,
            gates=self.gates,
            review_gate=self.review_gate,
            tools=tools,
            prices=self.prices,
            max_cost=max_cost,
            formats=self.formatter is not None,
            first_tier=first_tier,
            skip_reason=skip_reason,
            router=router,
            latency=self._latency,
            timeouts=timeouts,
            **latency,
        )
        return _Call(
            plan=plan,
            parent=parent,
            runnables=runnables,
            formatter=self.formatter,
            structured=structured is not None,
            call_kwargs={
                "stop": stop or self.stop,
                "max_tokens": self.max_tokens,
                **kwargs,
            },
        )

    def _latency_options(
        self, kwargs: dict[str, Any], *, structured: bool
    ) -> dict[str, Any]:
        """The call's ``speculative``, ``early_abort`` and ``max_latency`` (popped).

        Structured-output calls run sequentially: their tiers' streams are not
        messages that a gate could judge part by part.
        """
        speculative = _valid_speculative(kwargs.pop("speculative", self.speculative))
        early_abort = _valid_flag(
            kwargs.pop("early_abort", self.early_abort), "early_abort"
        )
        max_latency = kwargs.pop("max_latency", self.max_latency)
        gated = len(self.models) - 1
        depth = gated if speculative is True else int(speculative)
        if max_latency is not None and not max_latency > 0:
            msg = f"max_latency must be a number of seconds > 0, got {max_latency!r}"
            raise ValueError(msg)
        return {
            "speculative": 0 if structured else min(depth, gated),
            "early_abort": early_abort and not structured,
            "max_latency": max_latency,
        }

    def _first_tier(
        self,
        kwargs: dict[str, Any],
        messages: list[BaseMessage],
        last: int,
    ) -> tuple[int, str, Runnable[Any, Any] | None]:
        """The tier the call starts from, why, and the router to ask instead.

        A call's own ``first_tier`` wins; then sticky escalation (the tier the run
        or thread already escalated to); then the router, which the decision loop
        asks (:class:`~langchain_cascade._run.CallRouter`).
        """
        first_tier = kwargs.pop("first_tier", None)
        router = kwargs.pop("router", self.router)
        if first_tier is not None:
            return _valid_first_tier(first_tier, last), "", None
        if self.sticky is not None:
            start = sticky_tier(messages, self.sticky, self.model_names)
            if start["first_tier"] > 0:
                return (
                    _valid_first_tier(start["first_tier"], last),
                    start["reason"],
                    None,
                )
        return 0, "", None if router is None else coerce_router(router)

    def _response_metadata(
        self, outcome: Outcome, *, drop_logprobs: bool = False
    ) -> dict[str, Any]:
        metadata = dict(outcome.message.response_metadata)
        if drop_logprobs:
            metadata.pop("logprobs", None)
        metadata["model_name"] = self.cascade_name
        metadata["cascade"] = outcome.metadata()
        return metadata

    def _chat_result(self, outcome: Outcome | None) -> ChatResult:
        assert outcome is not None  # noqa: S101 - the loop always ends with one
        message = outcome.message.model_copy(
            update={
                "id": None,
                "response_metadata": self._response_metadata(outcome),
                "usage_metadata": outcome.usage,
            }
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _last_chunk(
        self, outcome: Outcome | None, *, live: bool
    ) -> ChatGenerationChunk:
        assert outcome is not None  # noqa: S101 - the loop always ends with one
        message = outcome.message
        usage: UsageMetadata | None = outcome.usage
        if live and outcome.tier == len(self.models) - 1:
            # The answer's content was streamed already; close it with the story.
            chunk = AIMessageChunk(
                content="" if isinstance(message.content, str) else [],
                response_metadata=self._response_metadata(outcome, drop_logprobs=True),
                usage_metadata=usage,
                chunk_position="last",
            )
        else:
            # Set the calls as parsed: a "last" chunk would re-parse invalid ones
            # leniently into valid calls.
            chunk = _as_chunk(message).model_copy(
                update={
                    "id": None,
                    "tool_calls": message.tool_calls,
                    "invalid_tool_calls": message.invalid_tool_calls,
                    "response_metadata": self._response_metadata(outcome),
                    "usage_metadata": usage,
                    "chunk_position": "last",
                }
            )
        return ChatGenerationChunk(message=chunk)


def _tier_runnable(  # noqa: PLR0917 - one call site, named by position
    tier: Runnable[Any, Any],
    model: BaseChatModel,
    tools: list[dict[str, Any]],
    tool_choice: Any,
    tool_kwargs: dict[str, Any],
    structured: _StructuredOutput | None,
    *,
    where: str,
) -> Runnable[Any, Any]:
    """The tier prepared for this call (tools or structured output)."""
    if structured is not None:
        if tier is not model:
            msg = (
                f"{where} is a {type(tier).__name__} wrapper: with_structured_output "
                "needs the chat model itself as the tier"
            )
            raise TypeError(msg)
        return model.with_structured_output(
            structured.schema,
            method=structured.method,
            include_raw=True,
            **structured.kwargs,
        )
    if tools:
        return with_tools(tier, model, tools, tool_choice, tool_kwargs, where=where)
    return tier


def _unknown_message(
    unknown: Sequence[str], known: Iterable[str], where: str, *, own: Iterable[str]
) -> str:
    """``unknown argument 'max_cots' ... (did you mean 'max_cost'?)``.

    The hint looks among every argument; the list names the cascade's own ones
    (the chat-model plumbing every LangChain model takes is left out).
    """
    choices = sorted(known)
    parts = []
    for name in unknown:
        close = difflib.get_close_matches(name, choices, n=1, cutoff=0.75)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        parts.append(f"{name!r}{hint}")
    return (
        f"{where} got unknown argument{'s' if len(parts) > 1 else ''} "
        f"{', '.join(parts)}; its own arguments are: {', '.join(sorted(own))} "
        "(plus those of every LangChain chat model: callbacks, tags, cache...)"
    )


def _check_call_kwargs(kwargs: dict[str, Any]) -> None:
    """Refuse a per-call argument that looks like a misspelt cascade argument.

    Arguments the cascade does not read go to every tier (``temperature``,
    ``seed``...), as LangChain passes call arguments to a model; one within a
    typo of a per-call argument of the cascade (:data:`_CALL_KWARGS`) is refused
    instead of silently reaching the tiers.
    """
    for name in kwargs:
        if name in _BOUND_KWARGS:
            continue
        close = difflib.get_close_matches(name, _CALL_KWARGS, n=1, cutoff=0.75)
        if close:
            msg = (
                f"unknown call argument {name!r} (did you mean {close[0]!r}?); "
                "arguments the cascade does not read are passed to every tier"
            )
            raise TypeError(msg)


def _number(value: object) -> float | None:
    """``value`` as a float when it is a real number (not a bool), else ``None``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _positive(value: object, where: str, unit: str) -> float | None:
    """``None``, or a finite number above 0 (of ``unit``) named ``where`` in errors."""
    if value is None:
        return None
    number = _number(value)
    if number is None:
        msg = f"{where} must be a number of {unit} or None, got {type(value).__name__} {value!r}"
        raise TypeError(msg)
    if not math.isfinite(number) or number <= 0:
        msg = f"{where} must be a finite number of {unit} greater than 0, got {value!r}"
        raise ValueError(msg)
    return number


def _valid_max_cost(value: object) -> float | None:
    """A per-call budget: ``None`` or a finite number of dollars above 0."""
    return _positive(value, "max_cost", "dollars")


def _one_timeout(value: object, where: str) -> float | None:
    return _positive(value, where, "seconds")


def _valid_timeout(value: object) -> Timeout:
    """A timeout: ``None``, seconds, or a list of seconds-or-None per tier."""
    if isinstance(value, list | tuple):
        return [_one_timeout(v, f"timeout[{i}]") for i, v in enumerate(value)]
    return _one_timeout(value, "timeout")


def _timeouts(value: Timeout, tiers: int) -> tuple[float | None, ...]:
    if isinstance(value, list):
        if len(value) != tiers:
            raise ValueError(_timeout_count_error(len(value), tiers))
        return tuple(value)
    return (value,) * tiers


_IDENTITY_LOCK = threading.RLock()
"""Guards the first computation of a cascade's identity (then cached)."""


def _count(n: int, noun: str) -> str:
    """``"1 gate"``, ``"2 gates"``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _timeout_count_error(values: int, tiers: int) -> str:
    return (
        f"timeout has {_count(values, 'value')} for {tiers} models: give one "
        f"value for all tiers, or a list of {tiers} (one per tier)"
    )


def _valid_flag(value: object, name: str) -> bool:
    """A per-call on/off argument: a bool (a typo such as ``"yes"`` is refused)."""
    if not isinstance(value, bool):
        msg = f"{name} must be True or False, got {type(value).__name__} {value!r}"
        raise TypeError(msg)
    return value


def _valid_speculative(value: object) -> bool | int:
    """``speculative``: a bool or a number of tiers >= 0."""
    if not isinstance(value, int):  # bool is an int
        msg = (
            "speculative must be a bool or a number of tiers >= 0, got "
            f"{type(value).__name__} {value!r}"
        )
        raise TypeError(msg)
    if value < 0:
        msg = f"speculative must be a bool or a number of tiers >= 0, got {value}"
        raise ValueError(msg)
    return value


def _valid_first_tier(value: object, last: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        msg = f"first_tier must be a tier index (int), got {type(value).__name__} {value!r}"
        raise TypeError(msg)
    if not 0 <= value <= last:
        msg = f"first_tier must be between 0 and {last} (the final tier), got {value}"
        raise ValueError(msg)
    return value


def _parser_for(schema: Any, method: StructuredMethod) -> Runnable[Any, Any]:
    pydantic_schema = isinstance(schema, type) and is_basemodel_subclass(schema)
    if method == "function_calling":
        if pydantic_schema:
            return PydanticToolsParser(tools=[schema], first_tool_only=True)
        name = convert_to_openai_tool(schema)["function"]["name"]
        return JsonOutputKeyToolsParser(key_name=name, first_tool_only=True)
    if pydantic_schema:
        return PydanticOutputParser(pydantic_object=schema)
    return JsonOutputParser()


def _tier_output(value: Any, *, structured: bool) -> TierOutput:
    """Read a tier's answer (an AIMessage, or a structured-output dict)."""
    if not structured:
        if not isinstance(value, AIMessage):
            msg = f"the tier returned {type(value).__name__}, not an AIMessage"
            raise TypeError(msg)
        return TierOutput(message=value)
    error = value.get("parsing_error")
    parse_error = None if error is None else f"{type(error).__name__}: {error}"
    if parse_error is None and value.get("parsed") is None:
        parse_error = "the answer holds no structured output"
    return TierOutput(message=value["raw"], parse_error=parse_error)


def _formatted(message: AIMessage, value: Any) -> AIMessage:
    """The formatter's output as the answer, keeping the answer's metadata."""
    if isinstance(value, str):
        return message.model_copy(update={"content": value})
    if isinstance(value, AIMessage):
        return message.model_copy(
            update={"content": value.content, "tool_calls": value.tool_calls}
        )
    msg = f"the formatter returned {type(value).__name__}, not an AIMessage or str"
    raise TypeError(msg)


def _as_chunk(message: BaseMessage) -> AIMessageChunk:
    """A tier's streamed item as a chunk.

    A model that does not stream itself (``disable_streaming``, no ``_stream``)
    yields its whole answer as one ``AIMessage`` from ``.stream()``; it becomes one
    chunk, its tool calls (valid and invalid) as tool-call chunks, so merging the
    chunks gives the message back.
    """
    if isinstance(message, AIMessageChunk):
        return message
    if not isinstance(message, AIMessage):
        msg = f"the tier streamed {type(message).__name__}, not an AIMessage chunk"
        raise TypeError(msg)
    calls = [
        tool_call_chunk(
            name=tc["name"], args=json.dumps(tc["args"]), id=tc["id"], index=i
        )
        for i, tc in enumerate(message.tool_calls)
    ]
    calls += [
        tool_call_chunk(
            name=tc["name"], args=tc["args"], id=tc["id"], index=len(calls) + i
        )
        for i, tc in enumerate(message.invalid_tool_calls)
    ]
    return AIMessageChunk(
        content=message.content,
        additional_kwargs=message.additional_kwargs,
        tool_call_chunks=calls,
        response_metadata=message.response_metadata,
        usage_metadata=message.usage_metadata,
        id=message.id,
    )


def _live_chunk(chunk: AIMessageChunk) -> ChatGenerationChunk | None:
    """A child's chunk as the cascade streams it on, or ``None`` when empty.

    Only content, tool-call chunks and logprobs pass: the child's ids, usage and
    metadata would merge wrongly with the cascade's closing chunk, which carries
    the call's metadata and usage instead.
    """
    logprobs = chunk.response_metadata.get("logprobs")
    if not (chunk.content or chunk.tool_call_chunks or logprobs):
        return None
    return ChatGenerationChunk(
        message=AIMessageChunk(
            content=chunk.content,
            additional_kwargs=chunk.additional_kwargs,
            tool_call_chunks=chunk.tool_call_chunks,
            response_metadata={"logprobs": logprobs} if logprobs else {},
        )
    )


class _Stepper:
    """Steps the decision generator: ``next()`` the effect, ``send``/``throw`` back."""

    def __init__(self, steps: Any) -> None:
        self._steps = steps
        self._value: Any = None
        self._error: BaseException | None = None
        self.outcome: Outcome | None = None

    def next(self) -> Effect | None:
        try:
            if self._error is not None:
                error, self._error = self._error, None
                return self._steps.throw(error)  # type: ignore[no-any-return]
            return self._steps.send(self._value)  # type: ignore[no-any-return]
        except StopIteration as done:
            self.outcome = done.value
            return None

    def send(self, value: Any) -> None:
        self._value = value

    def throw(self, error: BaseException) -> None:
        self._error = error


@dataclass
class _AsyncTierStream:
    """A tier streamed asynchronously; ``output`` is set once it is drained.

    Only a ``live`` tier's chunks are passed on. With ``watch``, the stream is
    stopped (closed, or its background run cancelled) as soon as ``watch``
    returns ``True``, and ``output`` is the partial answer, ``aborted``.
    """

    source: AsyncIterator[Any]
    live: bool = True
    watch: Callable[[AIMessage], bool] | None = None
    timeout: float | None = None
    output: TierOutput | None = None

    async def chunks(self) -> AsyncIterator[ChatGenerationChunk]:
        reader = _ChunkReader(watch=self.watch)
        items = self._items()
        try:
            async for item in items:
                live = reader.add(item)
                if self.live and live is not None:
                    yield live
                if reader.aborted:
                    break
        finally:
            await _aclose(items)
        self.output = reader.output()

    async def _items(self) -> AsyncIterator[Any]:
        """The source's items; past ``timeout`` in all, closed and timed out.

        The deadline covers only the waits for the tier, never the consumer's
        time between chunks.
        """
        if self.timeout is None:
            try:
                async for item in self.source:
                    yield item
            finally:
                await _aclose(self.source)
            return
        at = asyncio.get_running_loop().time() + self.timeout
        try:
            while True:
                deadline = asyncio.timeout_at(at)
                try:
                    async with deadline:
                        item = await anext(self.source)
                except StopAsyncIteration:
                    return
                except TimeoutError:
                    if deadline.expired():
                        raise TierTimeoutError(self.timeout) from None
                    raise
                yield item
        finally:
            await _aclose(self.source)


class _ChunkReader:
    """Merges a tier's chunks, counts them, and asks ``watch`` about each prefix."""

    def __init__(self, watch: Callable[[AIMessage], bool] | None = None) -> None:
        self.watch = watch
        self.merged: AIMessageChunk | None = None
        self.chunks = 0
        self.aborted = False

    def add(self, item: Any) -> ChatGenerationChunk | None:
        """Take one streamed item; the chunk to pass on live, if any."""
        chunk = _as_chunk(item)
        self.merged = chunk if self.merged is None else self.merged + chunk
        if chunk.content or chunk.tool_call_chunks:
            self.chunks += 1
        if self.watch is not None and self.watch(_partial_message(self.merged)):
            self.aborted = True
        return _live_chunk(chunk)

    def output(self) -> TierOutput:
        if self.aborted:
            assert self.merged is not None  # noqa: S101 - watch saw a chunk
            return TierOutput(
                message=_partial_message(self.merged), aborted=True, chunks=self.chunks
            )
        return replace(_merged_output(self.merged), chunks=self.chunks)

    def partial(self) -> Partial:
        message = None if self.merged is None else _partial_message(self.merged)
        return Partial(message=message, chunks=self.chunks)


def _partial_message(merged: AIMessageChunk) -> AIMessage:
    message = message_chunk_to_message(merged)
    assert isinstance(message, AIMessage)  # noqa: S101 - merged AIMessageChunks
    return message


async def _aclose(source: AsyncIterator[Any]) -> None:
    aclose = getattr(source, "aclose", None)
    if aclose is not None:
        await aclose()


def _drained(steps: Generator[Any, None, TierOutput]) -> TierOutput:
    """Run a streaming generator to its end, dropping what it yields."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return cast("TierOutput", done.value)


_CANCEL_WAIT_S = 5.0
"""How long a sync cancel waits for the tier's thread to close its stream."""

_CANCEL_REDELIVER_S = 0.05
"""How often an async cancel is delivered again while the tier's task streams on."""


class _ThreadTier:
    """A tier streamed in the background on a thread of its own (sync calls).

    Its chunks are buffered; :meth:`read` replays them and follows the rest.
    :meth:`cancel` stops it between two chunks, closes its stream (the HTTP
    response) and joins the thread, waiting up to ``_CANCEL_WAIT_S``: no thread
    outlives the call (a stream hung without a chunk keeps its thread until the
    tier's own timeout ends it).
    """

    def __init__(self, open_stream: Callable[[], Any]) -> None:
        self._cond = threading.Condition()
        self._items: list[Any] = []
        self._done = False
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run,
            args=(open_stream,),
            name="cascade-speculative",
            daemon=True,
        )
        self._thread.start()

    def _run(self, open_stream: Callable[[], Any]) -> None:
        try:
            if self._stop.is_set():
                return
            stream = open_stream()
            try:
                for item in stream:
                    with self._cond:
                        self._items.append(item)
                        self._cond.notify_all()
                    if self._stop.is_set():
                        return
            finally:
                stream.close()
        except Exception as exc:  # noqa: BLE001 - handed to the reader
            self._error = exc
        finally:
            with self._cond:
                self._done = True
                self._cond.notify_all()

    def read(self) -> Iterator[Any]:
        """Every item from the first, waiting for new ones; cancels when closed early."""
        i = 0
        try:
            while True:
                with self._cond:
                    while i >= len(self._items) and not self._done:
                        self._cond.wait()
                    if i < len(self._items):
                        item = self._items[i]
                    elif self._error is not None:
                        raise self._error
                    else:
                        return
                i += 1
                yield item
        finally:
            self.cancel()

    def cancel(self) -> Partial:
        """Stop the run and report what it had streamed."""
        self._stop.set()
        self._thread.join(timeout=_CANCEL_WAIT_S)
        reader = _ChunkReader()
        with self._cond:
            items = list(self._items)
        for item in items:
            reader.add(item)
        return reader.partial()


class _TaskTier:
    """A tier streamed in the background as an asyncio task (async calls).

    :meth:`cancel` cancels the task for real and waits for it: the tier's stream
    is closed (``aclose``), which closes its HTTP request.
    """

    def __init__(
        self, open_stream: Callable[[], AsyncIterator[Any]], timeout: float | None
    ) -> None:
        self._items: list[Any] = []
        self._done = False
        self._closing = False
        self._error: BaseException | None = None
        self._changed = asyncio.Event()
        self._task = asyncio.ensure_future(self._run(open_stream, timeout))

    async def _run(
        self, open_stream: Callable[[], AsyncIterator[Any]], timeout: float | None
    ) -> None:
        stream = open_stream()
        deadline = asyncio.timeout(timeout)
        try:
            async with deadline:
                async for item in stream:
                    self._items.append(item)
                    self._changed.set()
        except TimeoutError as exc:
            expired = timeout is not None and deadline.expired()
            self._error = TierTimeoutError(timeout) if timeout and expired else exc
        except Exception as exc:  # noqa: BLE001 - handed to the reader
            self._error = exc
        finally:
            self._closing = True
            try:
                await _aclose(stream)
            finally:
                self._done = True
                self._changed.set()

    async def read(self) -> AsyncIterator[Any]:
        """Every item from the first, waiting for new ones; cancels when closed early."""
        i = 0
        try:
            while True:
                if i < len(self._items):
                    i += 1
                    yield self._items[i - 1]
                elif self._done:
                    if self._error is not None:
                        raise self._error
                    return
                else:
                    self._changed.clear()
                    await self._changed.wait()
        finally:
            await self.cancel()

    async def cancel(self) -> Partial:
        """Cancel the task, wait until it has closed its stream, report what it had.

        The cancellation is delivered again until the task stops streaming: a
        library under the tier may swallow one and carry on (anyio's
        ``connect_tcp`` can, agronholm/anyio#1214), which would leave the request
        running to its end. Once the task is closing its stream it is left alone.
        """
        while not self._task.done() and not self._closing:
            self._task.cancel()
            await asyncio.wait([self._task], timeout=_CANCEL_REDELIVER_S)
        await asyncio.wait([self._task])
        reader = _ChunkReader()
        for item in self._items:
            reader.add(item)
        return reader.partial()


def _merged_output(merged: AIMessageChunk | None) -> TierOutput:
    if merged is None:
        msg = "the tier streamed no chunks"
        raise ValueError(msg)
    message = message_chunk_to_message(merged)
    assert isinstance(message, AIMessage)  # noqa: S101 - merged AIMessageChunks
    return TierOutput(message=message)


@dataclass
class _Call:
    """One call's I/O: how to reach each tier and gate as child runs."""

    plan: Plan
    parent: ParentRun
    runnables: list[Runnable[Any, Any]]
    formatter: Runnable[AIMessage, Any] | None
    structured: bool
    call_kwargs: dict[str, Any]
    threads: dict[int, _ThreadTier] = field(default_factory=dict)
    tasks: dict[int, _TaskTier] = field(default_factory=dict)
    sources: list[AsyncIterator[Any]] = field(default_factory=list)

    def tier_config(self, tier: int) -> RunnableConfig:
        return self.parent.child_config(
            run_name=f"tier {tier}: {self.plan.model_names[tier]}",
            tags=[tier_tag(tier), NOSTREAM_TAG],
            metadata={"cascade_tier": tier},
        )

    def gate_config(
        self, effect: CallGate, usage: UsageMetadataCallbackHandler
    ) -> RunnableConfig:
        return self.parent.child_config(
            run_name=effect.gate.gate_name,
            tags=[GATE_TAG, NOSTREAM_TAG],
            metadata={"cascade_tier": effect.gate_input.tier},
            handlers=[usage],
        )

    def event_config(self) -> RunnableConfig:
        return self.parent.child_config()

    def router_config(self) -> RunnableConfig:
        return self.parent.child_config(
            run_name="router", tags=[ROUTER_TAG, NOSTREAM_TAG]
        )

    def formatter_config(self) -> RunnableConfig:
        return self.parent.child_config(
            run_name="formatter", tags=[FORMATTER_TAG, NOSTREAM_TAG]
        )

    def streams_live(self, effect: Effect) -> bool:
        return isinstance(effect, CallTier) and effect.live and not self.structured

    def streams(self, effect: Effect) -> bool:
        """Whether a tier is read as a stream though not live: watched or started."""
        return isinstance(effect, CallTier) and (
            effect.watch is not None
            or effect.tier in self.threads
            or effect.tier in self.tasks
        )

    def _open_stream(self, tier: int, timeout: float | None) -> Iterator[Any]:
        if timeout is None:
            return stream_nested(
                self.runnables[tier],
                self.plan.messages,
                self.tier_config(tier),
                **self._tier_kwargs(),
            )
        # Cancellable: the tier's async stream on a worker thread.
        return iterate_async(
            lambda: self._aopen_stream(tier),
            timeout=timeout,
            on_timeout=lambda: TierTimeoutError(timeout),
        )

    def _aopen_stream(self, tier: int) -> AsyncIterator[Any]:
        return astream_nested(
            self.runnables[tier],
            self.plan.messages,
            self.tier_config(tier),
            **self._tier_kwargs(),
        )

    def close(self) -> None:
        """Stop every background run still going (the call ended or was closed)."""
        while self.threads:
            self.threads.popitem()[1].cancel()

    async def aclose(self) -> None:
        """Close the call's streams and cancel its background tasks still going."""
        while self.sources:
            await _aclose(self.sources.pop())
        while self.tasks:
            await self.tasks.popitem()[1].cancel()

    def _tier_kwargs(self) -> dict[str, Any]:
        return {k: v for k, v in self.call_kwargs.items() if v is not None}

    def _unobserved(self, tier: int) -> BaseChatModel | None:
        """The tier's chat model when it may be called without a run, else None.

        Nobody listens (``quiet``), the tier is an unwrapped chat model (a
        wrapper's own logic, such as retries, needs its invoke), and the call is
        neither structured nor speculative (with speculation, the tiers keep
        the timing of their runs: a tier 0 that answers sooner than its run
        would exposed a race in cancelling the tier started beside it, seen in
        test_latency_server). Then the run LangChain would build around the tier, seen
        by no one, is skipped: the per-call cost of the quiet path.
        """
        runnable = self.runnables[tier]
        if (
            self.quiet
            and not self.structured
            and not self.plan.speculative
            and isinstance(runnable, BaseChatModel)
        ):
            return runnable
        return None

    async def _atier(self, effect: CallTier) -> Any:
        if (model := self._unobserved(effect.tier)) is not None:
            return await agenerate_unobserved(
                model, self.plan.messages, **self._tier_kwargs()
            )
        return await ainvoke_nested(
            self.runnables[effect.tier],
            self.plan.messages,
            self._tier_call_config(effect.tier),
            **self._tier_kwargs(),
        )

    @property
    def quiet(self) -> bool:
        """No handler listens to the cascade's run: child runs would go unseen.

        Then tiers are called without nesting and gates without a run of their
        own (the cost of building runs nobody reads); with any handler, every
        child run is produced.
        """
        return not self.parent.handlers

    def _tier_call_config(self, tier: int) -> RunnableConfig:
        """The tier's nested run, or, when nobody listens, a config with no run.

        Even then the call runs inside this config (``invoke_nested``), never the
        ambient one: inside a graph node the ambient config carries the node's
        handlers (LangGraph's message stream among them), which would see the
        tier's tokens as if they were the agent's.
        """
        if not self.quiet:
            return self.tier_config(tier)
        config = RunnableConfig(callbacks=[])
        if self.parent.configurable:
            config["configurable"] = dict(self.parent.configurable)
        return config

    def _gate(
        self, effect: CallGate, usage: UsageMetadataCallbackHandler
    ) -> GateResult:
        if self.quiet:
            return effect.gate.verdict(effect.gate_input, {"callbacks": [usage]})
        return effect.gate.invoke(effect.gate_input, self.gate_config(effect, usage))

    async def _agate(
        self, effect: CallGate, usage: UsageMetadataCallbackHandler
    ) -> GateResult:
        if self.quiet:
            return await effect.gate.averdict(effect.gate_input, {"callbacks": [usage]})
        return await effect.gate.ainvoke(
            effect.gate_input, self.gate_config(effect, usage)
        )

    async def _acall_gate(
        self, effect: CallGate
    ) -> tuple[GateResult, dict[str, UsageMetadata]]:
        usage = UsageMetadataCallbackHandler()
        if effect.timeout is None:
            result = await self._agate(effect, usage)
        else:
            deadline = asyncio.timeout(effect.timeout)
            try:
                async with deadline:
                    result = await self._bounded_gate(effect, usage)
            except TimeoutError:
                if deadline.expired():
                    raise GateTimeoutError(effect.timeout) from None
                raise
        return result, dict(usage.usage_metadata)

    async def _bounded_gate(
        self, effect: CallGate, usage: UsageMetadataCallbackHandler
    ) -> GateResult:
        """The gate in a form a timeout can stop: its async path, else a thread.

        A gate without an async path of its own would block the event loop (no
        timeout could fire), so it runs on a thread; past the timeout the cascade
        stops waiting for that thread, which ends when the gate's code returns.
        """
        if effect.gate.runs_async:
            return await self._agate(effect, usage)
        return await in_thread(self._gate, effect, usage)

    def _background(self, effect: StartTier | CancelTier) -> Partial | None:
        """Start a speculative tier on a thread, or cancel it and say what it had."""
        tier = effect.tier
        if isinstance(effect, StartTier):
            timeout = self.plan.timeout(tier)
            self.threads[tier] = _ThreadTier(lambda: self._open_stream(tier, timeout))
            return None
        running = self.threads.pop(tier, None)
        return running.cancel() if running else Partial(message=None, chunks=0)

    async def _abackground(self, effect: StartTier | CancelTier) -> Partial | None:
        """Start a speculative tier as a task, or cancel it and say what it had."""
        tier = effect.tier
        if isinstance(effect, StartTier):
            self.tasks[tier] = _TaskTier(
                lambda: self._aopen_stream(tier), self.plan.timeout(tier)
            )
            return None
        task = self.tasks.pop(tier, None)
        return await task.cancel() if task else Partial(message=None, chunks=0)

    def perform(self, effect: Effect) -> Any:
        if isinstance(effect, CallRouter):
            return route(
                effect.router,
                effect.route_input,
                self.plan.model_names,
                self.router_config(),
            )
        if isinstance(effect, StartTier | CancelTier):
            return self._background(effect)
        if isinstance(effect, CallTier):
            model = self._unobserved(effect.tier)
            if effect.timeout is None and model is not None:
                value = generate_unobserved(
                    model, self.plan.messages, **self._tier_kwargs()
                )
            elif effect.timeout is None:
                value = invoke_nested(
                    self.runnables[effect.tier],
                    self.plan.messages,
                    self._tier_call_config(effect.tier),
                    **self._tier_kwargs(),
                )
            else:  # cancellable: the tier's async path on a worker thread
                seconds = effect.timeout
                value = run_coroutine(
                    lambda: self._atier(effect),
                    timeout=seconds,
                    on_timeout=lambda: TierTimeoutError(seconds),
                )
            return _tier_output(value, structured=self.structured)
        if isinstance(effect, CallGate):
            usage = UsageMetadataCallbackHandler()
            if effect.timeout is None:
                result = self._gate(effect, usage)
            else:  # bounded on the worker loop: cancelled, or waited for no longer
                seconds = effect.timeout
                result = run_coroutine(
                    lambda: self._bounded_gate(effect, usage),
                    timeout=seconds,
                    on_timeout=lambda: GateTimeoutError(seconds),
                )
            return result, dict(usage.usage_metadata)
        if isinstance(effect, CallFormatter):
            assert self.formatter is not None  # noqa: S101 - plan.formats
            return _formatted(
                effect.message,
                invoke_nested(self.formatter, effect.message, self.formatter_config()),
            )
        dispatch_custom_event(effect.name, effect.data, config=self.event_config())
        return None

    async def aperform(self, effect: Effect) -> Any:
        if isinstance(effect, CallRouter):
            return await aroute(
                effect.router,
                effect.route_input,
                self.plan.model_names,
                self.router_config(),
            )
        if isinstance(effect, StartTier | CancelTier):
            return await self._abackground(effect)
        if isinstance(effect, CallTier):
            deadline = asyncio.timeout(effect.timeout)
            try:
                async with deadline:
                    value = await self._atier(effect)
            except TimeoutError:
                if effect.timeout is not None and deadline.expired():
                    raise TierTimeoutError(effect.timeout) from None
                raise
            return _tier_output(value, structured=self.structured)
        if isinstance(effect, CallGate):
            return await self._acall_gate(effect)
        if isinstance(effect, CallFormatter):
            assert self.formatter is not None  # noqa: S101 - plan.formats
            return _formatted(
                effect.message,
                await ainvoke_nested(
                    self.formatter, effect.message, self.formatter_config()
                ),
            )
        await adispatch_custom_event(
            effect.name, effect.data, config=self.event_config()
        )
        return None

    def stream_tier(
        self, effect: Effect
    ) -> Generator[ChatGenerationChunk, None, TierOutput]:
        assert isinstance(effect, CallTier)  # noqa: S101
        running = self.threads.get(effect.tier)
        source = (
            running.read()
            if running
            else self._open_stream(effect.tier, effect.timeout)
        )
        live = self.streams_live(effect)
        reader = _ChunkReader(watch=effect.watch)
        try:
            for item in source:
                chunk = reader.add(item)
                if live and chunk is not None:
                    yield chunk
                if reader.aborted:
                    break
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()
        return reader.output()

    def astream_tier(self, effect: Effect) -> _AsyncTierStream:
        assert isinstance(effect, CallTier)  # noqa: S101
        running = self.tasks.get(effect.tier)
        streamed = _AsyncTierStream(
            source=running.read() if running else self._aopen_stream(effect.tier),
            live=self.streams_live(effect),
            watch=effect.watch,
            timeout=None if running else effect.timeout,
        )
        self.sources.append(streamed.source)
        return streamed


def prepare_call(
    cascade: CascadingChatModel,
    messages: list[BaseMessage],
    parent: ParentRun,
    kwargs: dict[str, Any],
) -> _Call:
    """The plan and drivers ``invoke`` would build for ``messages`` (used by collect).

    Args:
        cascade: The cascade.
        messages: The conversation.
        parent: The run the tiers' and gates' runs nest under.
        kwargs: Call kwargs as a binding passes them (``tools``,
            ``structured_output``, ``stop``...).

    Returns:
        The call, ready to perform the effects of ``decide(call.plan)``.
    """
    stop = kwargs.pop("stop", None)
    return cascade._start_call(messages, stop, None, {**kwargs, _STREAM_PARENT: parent})
