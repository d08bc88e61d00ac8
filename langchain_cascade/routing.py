"""Routing: choose the first tier a call tries, before the cascade starts.

A router sends a query that is plainly hard straight to a stronger tier, so it
does not pay for a cheap attempt that would be rejected anyway; the cascade then
goes on from that tier as usual (routing and cascading combine). The tiers below
the chosen one are recorded as ``skipped_tiers`` in the answer's metadata.

A router is any of:

- a :class:`Router` (such as the built-in :class:`RuleRouter`), which sees a
  :class:`RouteInput`: the messages and the tools bound for the call;
- any other Runnable or plain function, which gets the messages
  (``list[BaseMessage]``), like a chat model.

It returns the tier to start from: its index (``0`` for the cheapest) or its
model name. :func:`route` runs a router and reads its answer; a router that
raises or answers something that is not a tier never loses the call: the call
starts at tier 0 and the metadata says why.

Example:
    >>> from langchain_core.messages import HumanMessage
    >>> router = RuleRouter(
    ...     rules=[
    ...         RouteRule(tier=1, keywords=["prove", "derive"]),
    ...         RouteRule(tier=1, min_chars=400),
    ...     ]
    ... )
    >>> router.invoke(RouteInput(messages=[HumanMessage("Prove that 2 is prime.")]))
    1
    >>> router.invoke(RouteInput(messages=[HumanMessage("Capital of France?")]))
    0
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, TypedDict

from langchain_core.messages import BaseMessage
from langchain_core.runnables import (
    Runnable,
    RunnableConfig,
    RunnableLambda,
    RunnableSerializable,
)
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from langchain_cascade.gates.rules import _valid_pattern

__all__ = [
    "RouteDecision",
    "RouteInput",
    "RouteRule",
    "Router",
    "RouterLike",
    "RuleRouter",
    "aroute",
    "coerce_router",
    "route",
]


class RouteInput(BaseModel):
    """What a :class:`Router` sees: the call's messages and its bound tools.

    Attributes:
        messages: The conversation to answer.
        tools: OpenAI-format schemas of the tools bound for this call.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    messages: list[BaseMessage]
    tools: list[dict[str, Any]] = Field(default_factory=list)

    @property
    def question(self) -> str:
        """The text of the last human message (the question being routed).

        >>> from langchain_core.messages import AIMessage, HumanMessage
        >>> RouteInput(messages=[HumanMessage("hi"), AIMessage("yes?"), HumanMessage("2+2?")]).question
        '2+2?'
        """
        for message in reversed(self.messages):
            if message.type == "human":
                return message.text
        return self.messages[-1].text if self.messages else ""

    @property
    def tool_names(self) -> list[str]:
        """The names of the bound tools.

        >>> RouteInput(messages=[], tools=[{"type": "function", "function": {"name": "add"}}]).tool_names
        ['add']
        """
        names = []
        for tool in self.tools:
            function = tool.get("function", tool)
            if isinstance(function, dict) and isinstance(function.get("name"), str):
                names.append(function["name"])
        return names


class RouteRule(BaseModel):
    """One rule of a :class:`RuleRouter`: when every condition given holds, go to ``tier``.

    Conditions left unset are not checked; a rule must set at least one. Text
    conditions look at the last human message.

    Attributes:
        tier: The tier to start from (its index) when the rule matches.
        min_chars: The question has at least this many characters.
        max_chars: The question has at most this many characters.
        keywords: The question contains one of these words or phrases
            (case-insensitive, whole words).
        pattern: The question matches this regular expression (``re.search``,
            case-insensitive).
        tools: ``True``: tools are bound; ``False``: none are; or a list of tool
            names of which at least one is bound.
        name: A label for the metadata; by default the rule describes itself.

    >>> RouteRule(tier=2, pattern="integral|derivative").describe()
    "pattern 'integral|derivative' -> tier 2"
    """

    model_config = ConfigDict(frozen=True)

    tier: int = Field(ge=0)
    min_chars: int | None = Field(default=None, ge=0)
    max_chars: int | None = Field(default=None, ge=0)
    keywords: tuple[str, ...] = ()
    pattern: str | None = None
    tools: bool | tuple[str, ...] | None = None
    name: str = ""

    @field_validator("keywords", mode="before")
    @classmethod
    def _keywords(cls, value: object) -> object:
        if isinstance(value, str):
            msg = "keywords must be a list of strings, not one string"
            raise TypeError(msg)
        return value

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        return None if value is None else _valid_pattern(value)

    @model_validator(mode="after")
    def _has_condition(self) -> RouteRule:
        if (
            self.min_chars is None
            and self.max_chars is None
            and not self.keywords
            and self.pattern is None
            and self.tools is None
        ):
            msg = (
                "a RouteRule needs at least one condition (min_chars, max_chars, "
                "keywords, pattern or tools); use RuleRouter(default_tier=...) "
                "for the fallback"
            )
            raise ValueError(msg)
        return self

    def describe(self) -> str:
        """The rule in words, for the metadata."""
        if self.name:
            return self.name
        parts = []
        if self.min_chars is not None:
            parts.append(f">= {self.min_chars} chars")
        if self.max_chars is not None:
            parts.append(f"<= {self.max_chars} chars")
        if self.keywords:
            parts.append(f"keyword in {list(self.keywords)}")
        if self.pattern is not None:
            parts.append(f"pattern {self.pattern!r}")
        if self.tools is True:
            parts.append("tools bound")
        elif self.tools is False:
            parts.append("no tools bound")
        elif self.tools is not None:
            parts.append(f"tool in {list(self.tools)}")
        return " and ".join(parts) + f" -> tier {self.tier}"

    def matches(self, route_input: RouteInput) -> bool:
        """Whether every condition of the rule holds for ``route_input``.

        >>> from langchain_core.messages import HumanMessage
        >>> rule = RouteRule(tier=1, keywords=["step by step"], max_chars=100)
        >>> rule.matches(RouteInput(messages=[HumanMessage("Solve it Step by Step.")]))
        True
        >>> rule.matches(RouteInput(messages=[HumanMessage("Solve it stepwise.")]))
        False
        """
        text = route_input.question
        checks = [
            self.min_chars is None or len(text) >= self.min_chars,
            self.max_chars is None or len(text) <= self.max_chars,
            not self.keywords
            or any(
                re.search(rf"(?<!\w){re.escape(k)}(?!\w)", text, re.IGNORECASE)
                for k in self.keywords
            ),
            self.pattern is None
            or re.search(self.pattern, text, re.IGNORECASE) is not None,
            self._tools_match(route_input),
        ]
        return all(checks)

    def _tools_match(self, route_input: RouteInput) -> bool:
        if self.tools is None:
            return True
        if isinstance(self.tools, bool):
            return bool(route_input.tools) == self.tools
        return bool(set(self.tools) & set(route_input.tool_names))


class RouteDecision(TypedDict):
    """How a call was routed, as stored in ``response_metadata["cascade"]["route"]``.

    Attributes:
        router: The router's name.
        first_tier: The tier the call started from.
        reason: Why (the matching rule, or what went wrong with the router).
        error: The router's error when it raised or answered no tier, else ``None``.
    """

    router: str
    first_tier: int
    reason: str
    error: str | None


class Router(RunnableSerializable[RouteInput, int]):
    """Base class of routers that see the bound tools as well as the messages.

    Subclasses implement :meth:`choose`, returning the first tier's index and a
    reason. The cascade calls :meth:`choose` directly (a router is meant to be
    cheap, and its decision is in the answer's metadata); ``invoke`` returns the
    tier alone.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    @classmethod
    def is_lc_serializable(cls) -> bool:
        """Routers may hold functions, so they are not serialized."""
        return False

    def choose(self, route_input: RouteInput) -> tuple[int, str]:
        """The tier to start from and why.

        Args:
            route_input: The call's messages and bound tools.

        Returns:
            ``(tier, reason)``.
        """
        raise NotImplementedError

    def invoke(
        self,
        input: RouteInput,  # noqa: A002
        config: RunnableConfig | None = None,
        **kwargs: Any,
    ) -> int:
        """The tier to start from."""
        return self.choose(input)[0]


class RuleRouter(Router):
    """Routes by rules on the question's length, keywords, a regex and the tools bound.

    The first rule that matches gives the tier; when none does, the call starts
    at ``default_tier``.

    Example:
        >>> from langchain_core.messages import HumanMessage
        >>> router = RuleRouter(rules=[RouteRule(tier=1, tools=True)])
        >>> tools = [{"type": "function", "function": {"name": "get_weather"}}]
        >>> router.choose(RouteInput(messages=[HumanMessage("Weather?")], tools=tools))
        (1, 'tools bound -> tier 1')
        >>> router.choose(RouteInput(messages=[HumanMessage("Weather?")]))
        (0, 'no rule matched')
    """

    rules: list[RouteRule] = Field(default_factory=list)
    default_tier: int = Field(default=0, ge=0)

    def choose(self, route_input: RouteInput) -> tuple[int, str]:
        """The tier of the first matching rule, else ``default_tier``."""
        for rule in self.rules:
            if rule.matches(route_input):
                return rule.tier, rule.describe()
        return self.default_tier, "no rule matched"


RouterLike = (
    Router | Runnable[list[BaseMessage], Any] | Callable[[list[BaseMessage]], Any]
)
"""Anything :func:`coerce_router` accepts."""


def coerce_router(router: object, *, where: str = "router") -> Runnable[Any, Any]:
    """Check a router and wrap a plain function into a Runnable.

    Args:
        router: A :class:`Router`, a Runnable or a function of the messages.
        where: Where it was given, for the error message.

    Returns:
        The router, ready for :func:`route`.

    Raises:
        TypeError: If ``router`` is neither a Runnable nor callable.

    >>> coerce_router(lambda messages: 0).get_name()
    'router'
    """
    if isinstance(router, Runnable):
        return router
    if callable(router):
        name = getattr(router, "__name__", "router")
        return RunnableLambda(router, name="router" if name == "<lambda>" else name)
    msg = (
        f"{where} must be a Router, a Runnable or a function of the messages "
        f"returning a tier, got {type(router).__name__}"
    )
    raise TypeError(msg)


def _error_text(exc: BaseException) -> str:
    try:
        return f"{type(exc).__name__}: {exc}"[:500]
    except Exception:  # noqa: BLE001 - an exception whose __str__ raises
        return type(exc).__name__


def _failed(name: str, exc: BaseException) -> RouteDecision:
    error = _error_text(exc)
    return RouteDecision(
        router=name,
        first_tier=0,
        reason=f"router failed, starting at tier 0: {error}",
        error=error,
    )


def _tier_index(value: object, model_names: Sequence[str]) -> int:
    if isinstance(value, bool):
        msg = f"the router returned {value!r}, not a tier index or model name"
        raise TypeError(msg)
    if isinstance(value, int):
        if not 0 <= value < len(model_names):
            msg = f"the router returned tier {value}; the tiers are 0..{len(model_names) - 1}"
            raise ValueError(msg)
        return value
    if isinstance(value, str):
        if value not in model_names:
            msg = f"the router returned {value!r}, not one of the tiers {list(model_names)}"
            raise ValueError(msg)
        return list(model_names).index(value)
    msg = f"the router returned {type(value).__name__}, not a tier index or model name"
    raise TypeError(msg)


def route(
    router: Runnable[Any, Any],
    route_input: RouteInput,
    model_names: Sequence[str],
    config: RunnableConfig | None = None,
) -> RouteDecision:
    """Run ``router`` on one call and read the tier it chose.

    Never raises: a router that fails starts the call at tier 0.

    Args:
        router: From :func:`coerce_router`.
        route_input: The call's messages and tools.
        model_names: The tiers' model names (a router may answer a name).
        config: The config to run a Runnable router with.

    Returns:
        The decision.

    >>> from langchain_core.messages import HumanMessage
    >>> decision = route(coerce_router(lambda m: 5), RouteInput(messages=[HumanMessage("x")]), ["a", "b"])
    >>> decision["first_tier"], decision["error"]
    (0, 'ValueError: the router returned tier 5; the tiers are 0..1')
    >>> route(coerce_router(lambda m: "b"), RouteInput(messages=[]), ["a", "b"])["first_tier"]
    1
    """
    name = router.get_name()
    try:
        if isinstance(router, Router):
            value, reason = router.choose(route_input)
        else:
            value = router.invoke(route_input.messages, config)
            reason = f"{name} chose {value!r}"
        tier = _tier_index(value, model_names)
    except Exception as exc:  # noqa: BLE001 - a broken router must not lose the call
        return _failed(name, exc)
    return RouteDecision(router=name, first_tier=tier, reason=reason, error=None)


async def aroute(
    router: Runnable[Any, Any],
    route_input: RouteInput,
    model_names: Sequence[str],
    config: RunnableConfig | None = None,
) -> RouteDecision:
    """:func:`route` for async calls: a Runnable router runs with ``ainvoke``.

    >>> import asyncio
    >>> from langchain_core.runnables import RunnableLambda
    >>> async def pick(messages): return "b"
    >>> router = coerce_router(RunnableLambda(lambda m: "a", afunc=pick))
    >>> asyncio.run(aroute(router, RouteInput(messages=[]), ["a", "b"]))["first_tier"]
    1
    """
    name = router.get_name()
    try:
        if isinstance(router, Router):
            value, reason = router.choose(route_input)
        else:
            value = await router.ainvoke(route_input.messages, config)
            reason = f"{name} chose {value!r}"
        tier = _tier_index(value, model_names)
    except Exception as exc:  # noqa: BLE001 - a broken router must not lose the call
        return _failed(name, exc)
    return RouteDecision(router=name, first_tier=tier, reason=reason, error=None)
