"""The gate contract: what a gate receives, what it returns, and how to write one.

A gate is a :class:`~langchain_core.runnables.Runnable` that takes a
:class:`GateInput` and returns a :class:`GateResult`. Subclass :class:`Gate` and
implement :meth:`Gate.evaluate` (and :meth:`Gate.aevaluate` when the gate does I/O);
or pass a plain function or any Runnable, which :func:`coerce_gate` wraps.
"""

from __future__ import annotations

import inspect
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, cast

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, UsageMetadata
from langchain_core.runnables import (
    Runnable,
    RunnableConfig,
    RunnableLambda,
    RunnableSerializable,
)
from langchain_core.runnables.config import (
    ensure_config,
    get_async_callback_manager_for_config,
    get_callback_manager_for_config,
    patch_config,
    set_config_context,
)
from langchain_core.runnables.utils import coro_with_context
from pydantic import BaseModel, ConfigDict, Field

from langchain_cascade._sync import run_coroutine

__all__ = [
    "Gate",
    "GateInput",
    "GateLike",
    "GateResult",
    "coerce_gate",
    "response_text",
]


class GateInput(BaseModel):
    """What a gate sees: one tier's answer to one conversation.

    Attributes:
        messages: The conversation the tier answered.
        response: The tier's answer.
        tier: The tier's index, ``0`` for the cheapest.
        model: The tier's model name.
        tools: OpenAI-format schemas of the tools bound for this call, empty when none.
        chat_model: The tier's chat model (not serialized into traces), for gates
            that ask the same model again, such as a self-check.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    messages: list[BaseMessage]
    response: AIMessage
    tier: int = 0
    model: str = ""
    tools: list[dict[str, Any]] = Field(default_factory=list)
    chat_model: BaseChatModel | None = Field(default=None, exclude=True, repr=False)

    @property
    def text(self) -> str:
        """The answer's text content, without tool calls or other blocks."""
        return response_text(self.response)

    @property
    def tool_calls_only(self) -> bool:
        """Whether the answer is tool calls with no text (nothing for a text gate)."""
        return bool(self.response.tool_calls) and not self.text.strip()

    @property
    def question(self) -> str:
        """The text of the last human message (the question being answered)."""
        for message in reversed(self.messages):
            if message.type == "human":
                return message.text
        return self.messages[-1].text if self.messages else ""


class GateResult(BaseModel):
    """A gate's verdict on one answer.

    Attributes:
        passed: Whether the answer may be returned without escalating.
        score: Confidence in ``[0, 1]`` when the gate has one; higher is better.
            Anything else (148.4, ``inf``, ``nan``) is refused, so a gate that
            computes an impossible score fails closed.
        reason: A short, human-readable explanation.
        usage: Tokens the gate itself spent on model calls, when it made any.
        details: Gate-specific extra facts (for example the parts of a combination).
    """

    model_config = ConfigDict(frozen=True)

    passed: bool
    score: float | None = Field(default=None, ge=0.0, le=1.0, allow_inf_nan=False)
    reason: str = ""
    usage: UsageMetadata | None = None
    details: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def coerce(cls, value: object, *, name: str = "gate") -> GateResult:
        """Turn what a gate returned into a :class:`GateResult`.

        The one coercion every gate form goes through (a :class:`Gate` subclass, a
        function, a Runnable, a part of a combination, a review gate). Accepts a
        ``GateResult``, a ``bool`` or a numpy bool (score 1.0 or 0.0) or a mapping
        with the same fields; anything else raises, and the cascade records the
        raise as a failed gate (fail closed).

        Args:
            value: The gate's return value.
            name: The gate's name, for the error message.

        Returns:
            The verdict.

        Raises:
            TypeError: If ``value`` is none of the accepted kinds.
        """
        if isinstance(value, GateResult):
            return value
        if _is_bool(value):
            verdict = bool(value)
            return cls(
                passed=verdict,
                score=float(verdict),
                reason=f"{name} returned {verdict}",
            )
        if isinstance(value, Mapping):
            if "passed" not in value:
                msg = f"{name} returned a mapping without a 'passed' key"
                raise TypeError(msg)
            return cls.model_validate(dict(value))
        msg = (
            f"{name} returned {type(value).__name__}; a gate must return a "
            "GateResult, a bool or a dict with a 'passed' key"
        )
        raise TypeError(msg)


def _is_bool(value: object) -> bool:
    """``True`` for a ``bool`` or a numpy bool (without importing numpy)."""
    if isinstance(value, bool):
        return True
    numpy = sys.modules.get("numpy")
    return numpy is not None and isinstance(value, numpy.bool_)


def response_text(message: BaseMessage) -> str:
    """The text of a message, ignoring tool calls and non-text blocks.

    Args:
        message: Any message.

    Returns:
        The concatenated text.
    """
    return message.text


class Gate(RunnableSerializable[GateInput, GateResult], ABC):
    """Base class of gates: a Runnable from :class:`GateInput` to :class:`GateResult`.

    Subclasses implement :meth:`evaluate`; those that call models also override
    :meth:`aevaluate` and pass ``config`` on to the models they call, so their runs
    nest under the gate's run.

    Example:
        .. code-block:: python

            from langchain_cascade.gates import Gate, GateInput, GateResult


            class MentionsUnitsGate(Gate):
                def evaluate(self, gate_input: GateInput, config) -> GateResult:
                    ok = "kg" in gate_input.text
                    return GateResult(passed=ok, reason="units present" if ok else "no units")
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    @classmethod
    def is_lc_serializable(cls) -> bool:
        """Gates may hold functions or models, so they are not serialized."""
        return False

    # Gates are compared and hashed by identity, so they can key a dict (see
    # ``weighted``): two gates with equal settings are still two gates.
    def __eq__(self, other: object) -> bool:
        return self is other

    def __hash__(self) -> int:
        return id(self)

    @property
    def gate_name(self) -> str:
        """A short name for reasons and traces."""
        return self.name or type(self).__name__

    def get_name(self, suffix: str | None = None, *, name: str | None = None) -> str:
        """Name the gate's runs by the gate."""
        return super().get_name(suffix, name=name or self.gate_name)

    @abstractmethod
    def evaluate(self, gate_input: GateInput, config: RunnableConfig) -> GateResult:
        """Judge one answer.

        Args:
            gate_input: The answer and its context.
            config: The config of the gate's own run; pass it to any model you call.

        Returns:
            The verdict.
        """

    def evaluate_partial(self, gate_input: GateInput) -> GateResult | None:
        """Judge an answer that is still streaming: can it already be told to fail?

        ``early_abort`` calls this with the answer received so far, many times
        per answer, so it must be cheap and do no I/O. Return a failing verdict
        only when no continuation of the answer could pass (a hedging phrase
        already written stays written); its ``score`` is the best score the
        finished answer could still reach, ``None`` when unknown. Return
        ``None`` ("can't tell yet") otherwise. By default a gate cannot judge
        partial answers, and so never aborts one.

        Args:
            gate_input: The answer so far (``response`` is the partial message).

        Returns:
            A failing verdict, or ``None``.
        """
        return None

    @property
    def judges_partial(self) -> bool:
        """Whether :meth:`evaluate_partial` can ever answer (it is overridden)."""
        return type(self).evaluate_partial is not Gate.evaluate_partial

    @property
    def runs_async(self) -> bool:
        """Whether the gate has an async path of its own (``aevaluate`` overridden).

        The cascade bounds such a gate by cancelling it; a gate without one runs
        :meth:`evaluate` on a thread when a timeout bounds it (a thread cannot be
        interrupted: past the timeout the cascade stops waiting for it).
        """
        return type(self).aevaluate is not Gate.aevaluate

    async def aevaluate(
        self, gate_input: GateInput, config: RunnableConfig
    ) -> GateResult:
        """Judge one answer asynchronously; by default runs :meth:`evaluate`.

        Args:
            gate_input: The answer and its context.
            config: The config of the gate's own run.

        Returns:
            The verdict.
        """
        return self.evaluate(gate_input, config)

    # The gate's own run, by hand: ``_call_with_config`` inspects the signature
    # of the function it calls on every call, a third of a cheap gate's cost.
    def invoke(
        self,
        input: GateInput,  # noqa: A002
        config: RunnableConfig | None = None,
        **kwargs: Any,
    ) -> GateResult:
        """Evaluate the gate as its own traced run."""
        config = ensure_config(config)
        run_manager = get_callback_manager_for_config(config).on_chain_start(
            None,
            input,
            name=config.get("run_name") or self.get_name(),
            run_id=config.pop("run_id", None),
        )
        child = patch_config(config, callbacks=run_manager.get_child())
        try:
            with set_config_context(child) as context:
                result = context.run(self.verdict, input, child)
        except BaseException as exc:
            run_manager.on_chain_error(exc)
            raise
        run_manager.on_chain_end(result)
        return result

    async def ainvoke(
        self,
        input: GateInput,  # noqa: A002
        config: RunnableConfig | None = None,
        **kwargs: Any,
    ) -> GateResult:
        """Evaluate the gate asynchronously as its own traced run."""
        config = ensure_config(config)
        manager = get_async_callback_manager_for_config(config)
        run_manager = await manager.on_chain_start(
            None,
            input,
            name=config.get("run_name") or self.get_name(),
            run_id=config.pop("run_id", None),
        )
        child = patch_config(config, callbacks=run_manager.get_child())
        try:
            with set_config_context(child) as context:
                result = await coro_with_context(self.averdict(input, child), context)
        except BaseException as exc:
            await run_manager.on_chain_error(exc)
            raise
        await run_manager.on_chain_end(result)
        return result

    def verdict(self, gate_input: GateInput, config: RunnableConfig) -> GateResult:
        """:meth:`evaluate`, its answer coerced by :meth:`GateResult.coerce`.

        What callers of a gate use (the cascade, combinations): a subclass whose
        ``evaluate`` returns ``True`` or a dict still gives a verdict, and one that
        returns anything else raises ``TypeError``, which fails the gate closed.

        Args:
            gate_input: The answer and its context.
            config: The config of the gate's own run.

        Returns:
            The verdict.
        """
        return GateResult.coerce(self.evaluate(gate_input, config), name=self.gate_name)

    async def averdict(
        self, gate_input: GateInput, config: RunnableConfig
    ) -> GateResult:
        """:meth:`aevaluate`, its answer coerced by :meth:`GateResult.coerce`.

        Args:
            gate_input: The answer and its context.
            config: The config of the gate's own run.

        Returns:
            The verdict.
        """
        value = await self.aevaluate(gate_input, config)
        return GateResult.coerce(value, name=self.gate_name)


GateLike = Gate | Runnable[GateInput, Any] | Callable[[GateInput], Any]
"""Anything :func:`coerce_gate` accepts."""


class RunnableGate(Gate):
    """Adapts a plain function or any Runnable into a :class:`Gate`.

    The wrapped callable may return a :class:`GateResult`, a ``bool`` or a dict; an
    async function is awaited on the async path.
    """

    runnable: Runnable[GateInput, Any]

    @property
    def gate_name(self) -> str:
        """The wrapped function's or Runnable's name."""
        return self.name or self.runnable.get_name()

    @property
    def runs_async(self) -> bool:
        """Whether the wrapped Runnable has an async path (an async function's has)."""
        runnable = self.runnable
        if isinstance(runnable, RunnableLambda):
            return hasattr(runnable, "afunc")
        return type(runnable).ainvoke is not Runnable.ainvoke

    def evaluate(self, gate_input: GateInput, config: RunnableConfig) -> GateResult:
        """Call the wrapped Runnable and coerce its answer."""
        value = self.runnable.invoke(gate_input, config)
        return GateResult.coerce(value, name=self.gate_name)

    async def aevaluate(
        self, gate_input: GateInput, config: RunnableConfig
    ) -> GateResult:
        """Await the wrapped Runnable and coerce its answer."""
        value = await self.runnable.ainvoke(gate_input, config)
        return GateResult.coerce(value, name=self.gate_name)

    def invoke(
        self,
        input: GateInput,  # noqa: A002
        config: RunnableConfig | None = None,
        **kwargs: Any,
    ) -> GateResult:
        """Run the wrapped Runnable directly: its own run is the gate's run."""
        value = self.runnable.invoke(input, config, **kwargs)
        return GateResult.coerce(value, name=self.gate_name)

    async def ainvoke(
        self,
        input: GateInput,  # noqa: A002
        config: RunnableConfig | None = None,
        **kwargs: Any,
    ) -> GateResult:
        """Await the wrapped Runnable directly: its own run is the gate's run."""
        value = await self.runnable.ainvoke(input, config, **kwargs)
        return GateResult.coerce(value, name=self.gate_name)


def coerce_gate(gate: object, *, where: str = "gate") -> Gate:
    """Turn a Gate, a Runnable or a plain function into a :class:`Gate`.

    Args:
        gate: The candidate.
        where: Where the candidate was given, for the error message.

    Returns:
        A gate.

    Raises:
        TypeError: If ``gate`` is neither a Runnable nor callable.

    Example:
        .. code-block:: python

            from langchain_cascade.gates import coerce_gate

            gate = coerce_gate(lambda gi: len(gi.text) > 3)
    """
    if isinstance(gate, Gate):
        return gate
    if isinstance(gate, type):
        msg = (
            f"{where} is the class {gate.__name__}: pass an instance, {gate.__name__}()"
        )
        raise TypeError(msg)
    if isinstance(gate, Runnable):
        return RunnableGate(runnable=gate)
    if callable(gate):
        func = cast("Callable[[GateInput], Any]", gate)
        name = getattr(func, "__name__", "gate")
        if name == "<lambda>":
            name = "lambda_gate"
        if inspect.iscoroutinefunction(func):
            afunc = cast("Callable[[GateInput], Coroutine[Any, Any, Any]]", func)

            def sync_func(gate_input: GateInput) -> Any:
                # On a worker thread's loop: works inside a running loop too.
                return run_coroutine(lambda: afunc(gate_input))

            return RunnableGate(
                runnable=RunnableLambda(sync_func, afunc=afunc, name=name)
            )
        return RunnableGate(runnable=RunnableLambda(func, name=name))
    msg = (
        f"{where} must be a Gate, a Runnable or a function of GateInput, "
        f"got {type(gate).__name__}"
    )
    raise TypeError(msg)
