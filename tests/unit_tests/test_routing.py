"""The router protocol and the built-in RuleRouter."""

from __future__ import annotations

import doctest

import pytest
from langchain_core.messages import HumanMessage
from langchain_core.runnables import RunnableLambda

from langchain_cascade import routing
from langchain_cascade.routing import (
    RouteInput,
    RouteRule,
    RuleRouter,
    coerce_router,
    route,
)


def test_doctests() -> None:
    result = doctest.testmod(routing)
    assert result.attempted > 5
    assert result.failed == 0


def rin(text: str, tools: bool = False) -> RouteInput:
    bound = [{"type": "function", "function": {"name": "add"}}] if tools else []
    return RouteInput(messages=[HumanMessage(text)], tools=bound)


def test_rules_in_order_first_match_wins() -> None:
    router = RuleRouter(
        rules=[
            RouteRule(tier=2, pattern=r"\bintegral\b"),
            RouteRule(tier=1, min_chars=30),
            RouteRule(tier=1, tools=["add"]),
        ],
        default_tier=0,
    )
    assert router.choose(rin("integral of x")) == (
        2,
        "pattern '\\\\bintegral\\\\b' -> tier 2",
    )
    assert router.choose(rin("x" * 30))[0] == 1
    assert router.choose(rin("hi", tools=True))[0] == 1
    assert router.choose(rin("hi")) == (0, "no rule matched")


def test_keywords_match_whole_words_only() -> None:
    rule = RouteRule(tier=1, keywords=["prove"])
    assert rule.matches(rin("Please PROVE it"))
    assert not rule.matches(rin("improve it"))


def test_a_rule_needs_a_condition_and_valid_regex() -> None:
    with pytest.raises(ValueError, match="at least one condition"):
        RouteRule(tier=1)
    with pytest.raises(ValueError, match="not a valid regular expression"):
        RouteRule(tier=1, pattern="(")
    with pytest.raises(TypeError, match="not one string"):
        RouteRule(tier=1, keywords="prove")


def test_functions_and_runnables_get_the_messages() -> None:
    seen = []

    def by_length(messages: list) -> int:  # type: ignore[type-arg]
        seen.append(messages)
        return 1 if len(messages[-1].text) > 5 else 0

    decision = route(coerce_router(by_length), rin("long question"), ["a", "b"])
    assert decision == {
        "router": "by_length",
        "first_tier": 1,
        "reason": "by_length chose 1",
        "error": None,
    }
    assert isinstance(seen[0], list)
    by_name = coerce_router(RunnableLambda(lambda m: "b"))
    assert route(by_name, rin("x"), ["a", "b"])["first_tier"] == 1


@pytest.mark.parametrize(
    ("answer", "error"),
    [(7, "tier 7"), ("zzz", "'zzz'"), (True, "True"), (None, "NoneType")],
)
def test_a_router_answering_no_tier_starts_at_tier_0(
    answer: object, error: str
) -> None:
    decision = route(coerce_router(lambda m: answer), rin("x"), ["a", "b"])
    assert decision["first_tier"] == 0
    assert decision["error"] is not None
    assert error in decision["error"]


def test_a_raising_router_starts_at_tier_0() -> None:
    def broken(messages: list) -> int:  # type: ignore[type-arg]
        raise RuntimeError("down")

    decision = route(coerce_router(broken), rin("x"), ["a", "b"])
    assert decision["first_tier"] == 0
    assert decision["error"] == "RuntimeError: down"


def test_coerce_refuses_non_callables() -> None:
    with pytest.raises(TypeError, match="router must be a Router"):
        coerce_router(3)
