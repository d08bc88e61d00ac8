"""Every invalid configuration and call argument, with the exact message a user sees.

One table, :data:`CASES`: what the user wrote, the exception they get and its
whole text (``str(exc)``, pydantic's wrapping included, since that is what a
traceback shows). Gates that return something that is no verdict do not raise:
the attempt fails closed and the call escalates, so their row holds the reason
recorded on the attempt. ``python -m benchmarks.bad_input`` prints the table and
writes ``benchmarks/results/bad_input.md``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from pydantic import ValidationError

from langchain_cascade import CascadingChatModel, GateInput, GateResult, ModelPrice
from langchain_cascade.gates import (
    Gate,
    HedgingGate,
    LogprobGate,
    MinLengthGate,
    RegexGate,
    StructuredOutputGate,
    all_of,
    weighted,
)
from tests.unit_tests.fake_models import ScriptedChatModel

__all__ = ["CASES", "Case", "observe"]


def _models(n: int = 2) -> list[ScriptedChatModel]:
    return [ScriptedChatModel(model=f"m{i}", reply=f"answer {i}") for i in range(n)]


def _cascade(**kwargs: Any) -> CascadingChatModel:
    settings: dict[str, Any] = {"models": _models(), "gates": [HedgingGate()]}
    settings.update(kwargs)
    return CascadingChatModel(**settings)


def _call(**kwargs: Any) -> Callable[[], object]:
    return lambda: _cascade().invoke("q", **kwargs)


class _NoneGate(Gate):
    def evaluate(self, gate_input: GateInput, config: Any) -> GateResult:
        return None  # type: ignore[return-value]


def _escalation_reason(gate: object) -> Callable[[], object]:
    """The reason attempt 0 records when its gate returns ``gate``'s value."""

    def run() -> object:
        answer = _cascade(gates=[gate]).invoke("q")
        return answer.response_metadata["cascade"]["attempts"][0]["reason"]

    return run


@dataclass(frozen=True)
class Case:
    """One bad input.

    Attributes:
        input: What the user wrote.
        run: Does it.
        error: The exception type, or ``None`` when the call goes on (a gate's bad
            verdict fails closed) and ``message`` is the attempt's reason.
        message: The exact text the user sees.
    """

    input: str
    run: Callable[[], object]
    error: type[BaseException] | None
    message: str


_ECHO = re.compile(r"input_value=.*?, input_type=")


def observe(case: Case) -> tuple[str, str]:
    """What ``case`` does now: ``(exception type or "escalated", message)``.

    Pydantic echoes the input in its message (``input_value=...``), with object
    addresses in it; that echo is shown as ``input_value=...``.
    """
    try:
        value = case.run()
    except Exception as exc:
        return type(exc).__name__, _ECHO.sub("input_value=..., input_type=", str(exc))
    return "escalated", _ECHO.sub("input_value=..., input_type=", str(value))


CASES: list[Case] = [
    # --- models -------------------------------------------------------------------
    Case("models=[]", lambda: CascadingChatModel(models=[]), ValidationError,
         '1 validation error for CascadingChatModel\nmodels\n  Value error, models is empty: give at least one chat model, cheapest first [type=value_error, input_value=..., input_type=list]\n    For further information visit https://errors.pydantic.dev/2.14/v/value_error'),
    Case("models='gpt-4o'", lambda: CascadingChatModel(models="gpt-4o"), TypeError,
         'models must be a list of chat models, got str'),
    Case("models=[object()]", lambda: CascadingChatModel(models=[object()]), TypeError,
         'models[0] is an object, not a chat model (langchain_core BaseChatModel)'),
    Case("models=[FakeListChatModel] (the class)",
         lambda: CascadingChatModel(models=[FakeListChatModel]), TypeError,
         'models[0] is the class FakeListChatModel: pass an instance, FakeListChatModel(...)'),
    Case("models=[m0, 'gpt-4o']",
         lambda: CascadingChatModel(models=[_models(1)[0], "gpt-4o"], gates=[HedgingGate()]),
         TypeError,
         'models[1] is a str, not a chat model (langchain_core BaseChatModel)'),
    # --- gates ----------------------------------------------------------------------
    Case("gates=[] with 2 models", lambda: _cascade(gates=[]), ValidationError,
         "1 validation error for CascadingChatModel\n  Value error, 2 models need 1 gate (one per non-final tier) or 1 gate for all of them, got 0 [type=value_error, input_value=..., input_type=dict]\n    For further information visit https://errors.pydantic.dev/2.14/v/value_error"),
    Case("gates=[g, g] with 2 models",
         lambda: _cascade(gates=[HedgingGate(), HedgingGate()]), ValidationError,
         "1 validation error for CascadingChatModel\n  Value error, 2 models need 1 gate (one per non-final tier) or 1 gate for all of them, got 2 [type=value_error, input_value=..., input_type=dict]\n    For further information visit https://errors.pydantic.dev/2.14/v/value_error"),
    Case("gates=[g] with 1 model",
         lambda: CascadingChatModel(models=_models(1), gates=[HedgingGate()]), ValidationError,
         "1 validation error for CascadingChatModel\n  Value error, one model needs no gates, got 1: the final tier is always returned (use review_gate to check it) [type=value_error, input_value=..., input_type=dict]\n    For further information visit https://errors.pydantic.dev/2.14/v/value_error"),
    Case("gates=[HedgingGate] (the class)", lambda: _cascade(gates=[HedgingGate]), TypeError,
         'gates[0] is the class HedgingGate: pass an instance, HedgingGate()'),
    Case("gates=[42]", lambda: _cascade(gates=[42]), TypeError,
         'gates[0] must be a Gate, a Runnable or a function of GateInput, got int'),
    Case("gates=['hedging']", lambda: _cascade(gates=["hedging"]), TypeError,
         'gates[0] must be a Gate, a Runnable or a function of GateInput, got str'),
    Case("review_gate='strict'", lambda: _cascade(review_gate="strict"), TypeError,
         'review_gate must be a Gate, a Runnable or a function of GateInput, got str'),
    Case("review_gate=HedgingGate (the class)", lambda: _cascade(review_gate=HedgingGate),
         TypeError,
         'review_gate is the class HedgingGate: pass an instance, HedgingGate()'),
    Case("LogprobGate(threshold=1.5)", lambda: LogprobGate(threshold=1.5), ValidationError,
         '1 validation error for LogprobGate\nthreshold\n  Input should be less than or equal to 1 [type=less_than_equal, input_value=..., input_type=float]\n    For further information visit https://errors.pydantic.dev/2.14/v/less_than_equal'),
    Case("LogprobGate(threshold=0.5, aggregation='median')",
         lambda: LogprobGate(threshold=0.5, aggregation="median"), ValidationError,
         "1 validation error for LogprobGate\naggregation\n  Input should be 'geometric_mean', 'mean_prob', 'min_prob', 'quantile' or 'first_token_margin' [type=literal_error, input_value=..., input_type=str]\n    For further information visit https://errors.pydantic.dev/2.14/v/literal_error"),
    Case("MinLengthGate(min_chars=-1)", lambda: MinLengthGate(min_chars=-1), ValidationError,
         '1 validation error for MinLengthGate\nmin_chars\n  Input should be greater than or equal to 1 [type=greater_than_equal, input_value=..., input_type=int]\n    For further information visit https://errors.pydantic.dev/2.14/v/greater_than_equal'),
    Case("RegexGate(pattern='(')", lambda: RegexGate(pattern="("), ValidationError,
         "1 validation error for RegexGate\npattern\n  Value error, pattern '(' is not a valid regular expression: missing ), unterminated subpattern at position 0 [type=value_error, input_value=..., input_type=str]\n    For further information visit https://errors.pydantic.dev/2.14/v/value_error"),
    Case("all_of()", all_of, ValidationError,
         '1 validation error for AllOf\ngates\n  List should have at least 1 item after validation, not 0 [type=too_short, input_value=..., input_type=list]\n    For further information visit https://errors.pydantic.dev/2.14/v/too_short'),
    Case("all_of(HedgingGate)", lambda: all_of(HedgingGate), TypeError,
         'AllOf part is the class HedgingGate: pass an instance, HedgingGate()'),
    Case("weighted({g: -1.0}, threshold=0.5)",
         lambda: weighted({HedgingGate(): -1.0}, threshold=0.5), ValidationError,
         "1 validation error for Weighted\n  Value error, weighted: weights must be >= 0 with a positive sum, got [-1.0] [type=value_error, input_value=..., input_type=dict]\n    For further information visit https://errors.pydantic.dev/2.14/v/value_error"),
    Case("weighted({g: 1.0}, threshold=2)",
         lambda: weighted({HedgingGate(): 1.0}, threshold=2), ValidationError,
         '1 validation error for Weighted\nthreshold\n  Input should be less than or equal to 1 [type=less_than_equal, input_value=..., input_type=int]\n    For further information visit https://errors.pydantic.dev/2.14/v/less_than_equal'),
    Case("StructuredOutputGate(42)", lambda: StructuredOutputGate(42), TypeError,
         'schema must be a Pydantic model class, a TypedDict or a JSON schema dict, got int'),
    Case("StructuredOutputGate({})", lambda: StructuredOutputGate({}), ValidationError,
         "1 validation error for StructuredOutputGate\n  Value error, schema is an empty dict: give a JSON schema with 'type' or 'properties' [type=value_error, input_value=..., input_type=dict]\n    For further information visit https://errors.pydantic.dev/2.14/v/value_error"),
    # --- prices ---------------------------------------------------------------------
    Case("prices={'m0': 5}", lambda: _cascade(prices={"m0": 5}), ValidationError,
         '1 validation error for CascadingChatModel\nprices.m0\n  Input should be a valid dictionary or instance of ModelPrice [type=model_type, input_value=..., input_type=int]\n    For further information visit https://errors.pydantic.dev/2.14/v/model_type'),
    Case("ModelPrice(input_per_million=-1, output_per_million=1)",
         lambda: ModelPrice(input_per_million=-1, output_per_million=1), ValidationError,
         '1 validation error for ModelPrice\ninput_per_million\n  Input should be greater than or equal to 0 [type=greater_than_equal, input_value=..., input_type=int]\n    For further information visit https://errors.pydantic.dev/2.14/v/greater_than_equal'),
    Case("prices=[1, 2]", lambda: _cascade(prices=[1, 2]), ValidationError,
         '1 validation error for CascadingChatModel\nprices\n  Input should be a valid dictionary [type=dict_type, input_value=..., input_type=list]\n    For further information visit https://errors.pydantic.dev/2.14/v/dict_type'),
    # --- max_cost, timeout, unknown arguments ------------------------------------------
    Case("max_cost=-1", lambda: _cascade(max_cost=-1), ValidationError,
         '1 validation error for CascadingChatModel\nmax_cost\n  Value error, max_cost must be a finite number of dollars greater than 0, got -1 [type=value_error, input_value=..., input_type=int]\n    For further information visit https://errors.pydantic.dev/2.14/v/value_error'),
    Case("max_cost=0", lambda: _cascade(max_cost=0), ValidationError,
         '1 validation error for CascadingChatModel\nmax_cost\n  Value error, max_cost must be a finite number of dollars greater than 0, got 0 [type=value_error, input_value=..., input_type=int]\n    For further information visit https://errors.pydantic.dev/2.14/v/value_error'),
    Case("max_cost=float('nan')", lambda: _cascade(max_cost=float("nan")), ValidationError,
         '1 validation error for CascadingChatModel\nmax_cost\n  Value error, max_cost must be a finite number of dollars greater than 0, got nan [type=value_error, input_value=..., input_type=float]\n    For further information visit https://errors.pydantic.dev/2.14/v/value_error'),
    Case("max_cost='0.01'", lambda: _cascade(max_cost="0.01"), TypeError,
         "max_cost must be a number of dollars or None, got str '0.01'"),
    Case("max_cost=True", lambda: _cascade(max_cost=True), TypeError,
         'max_cost must be a number of dollars or None, got bool True'),
    Case("timeout=0", lambda: _cascade(timeout=0), ValidationError,
         '1 validation error for CascadingChatModel\ntimeout\n  Value error, timeout must be a finite number of seconds greater than 0, got 0 [type=value_error, input_value=..., input_type=int]\n    For further information visit https://errors.pydantic.dev/2.14/v/value_error'),
    Case("timeout=-5", lambda: _cascade(timeout=-5), ValidationError,
         '1 validation error for CascadingChatModel\ntimeout\n  Value error, timeout must be a finite number of seconds greater than 0, got -5 [type=value_error, input_value=..., input_type=int]\n    For further information visit https://errors.pydantic.dev/2.14/v/value_error'),
    Case("timeout='30s'", lambda: _cascade(timeout="30s"), TypeError,
         "timeout must be a number of seconds or None, got str '30s'"),
    Case("timeout=float('inf')", lambda: _cascade(timeout=float("inf")), ValidationError,
         '1 validation error for CascadingChatModel\ntimeout\n  Value error, timeout must be a finite number of seconds greater than 0, got inf [type=value_error, input_value=..., input_type=float]\n    For further information visit https://errors.pydantic.dev/2.14/v/value_error'),
    Case("timeout=[1.0] with 2 models", lambda: _cascade(timeout=[1.0]), ValidationError,
         "1 validation error for CascadingChatModel\n  Value error, timeout has 1 value for 2 models: give one value for all tiers, or a list of 2 (one per tier) [type=value_error, input_value=..., input_type=dict]\n    For further information visit https://errors.pydantic.dev/2.14/v/value_error"),
    Case("timeout=[1.0, 'x']", lambda: _cascade(timeout=[1.0, "x"]), TypeError,
         "timeout[1] must be a number of seconds or None, got str 'x'"),
    Case("max_cots=0.01 (a typo)", lambda: _cascade(max_cots=0.01), ValidationError,
         "1 validation error for CascadingChatModel\n  Value error, CascadingChatModel got unknown argument 'max_cots' (did you mean 'max_cost'?); its own arguments are: early_abort, formatter, gates, max_cost, max_latency, max_tokens, models, prices, review_gate, router, speculative, sticky, stop, streaming, timeout (plus those of every LangChain chat model: callbacks, tags, cache...) [type=value_error, input_value=..., input_type=dict]\n    For further information visit https://errors.pydantic.dev/2.14/v/value_error"),
    Case("gate=HedgingGate() (gate, not gates)", lambda: _cascade(gate=HedgingGate()),
         ValidationError,
         "1 validation error for CascadingChatModel\n  Value error, CascadingChatModel got unknown argument 'gate' (did you mean 'gates'?); its own arguments are: early_abort, formatter, gates, max_cost, max_latency, max_tokens, models, prices, review_gate, router, speculative, sticky, stop, streaming, timeout (plus those of every LangChain chat model: callbacks, tags, cache...) [type=value_error, input_value=..., input_type=dict]\n    For further information visit https://errors.pydantic.dev/2.14/v/value_error"),
    Case("formatter=42", lambda: _cascade(formatter=42), TypeError,
         'formatter must be a Runnable or a function, got int'),
    Case("max_latency=-1", lambda: _cascade(max_latency=-1), ValidationError,
         '1 validation error for CascadingChatModel\nmax_latency\n  Input should be greater than 0 [type=greater_than, input_value=..., input_type=int]\n    For further information visit https://errors.pydantic.dev/2.14/v/greater_than'),
    Case("router=42", lambda: _cascade(router=42), TypeError,
         'router must be a Router, a Runnable or a function of the messages returning a tier, got int'),
    Case("sticky=-1", lambda: _cascade(sticky=-1), ValidationError,
         "1 validation error for CascadingChatModel\nsticky\n  Input should be 'run' or 'thread' [type=literal_error, input_value=..., input_type=int]\n    For further information visit https://errors.pydantic.dev/2.14/v/literal_error"),
    Case("early_abort='x'", lambda: _cascade(early_abort="x"), ValidationError,
         '1 validation error for CascadingChatModel\nearly_abort\n  Input should be a valid boolean [type=bool_type, input_value=..., input_type=str]\n    For further information visit https://errors.pydantic.dev/2.14/v/bool_type'),
    Case("early_abort='yes'", lambda: _cascade(early_abort="yes"), ValidationError,
         '1 validation error for CascadingChatModel\nearly_abort\n  Input should be a valid boolean [type=bool_type, input_value=..., input_type=str]\n    For further information visit https://errors.pydantic.dev/2.14/v/bool_type'),
    Case("speculative='yes'", lambda: _cascade(speculative="yes"), TypeError,
         "speculative must be a bool or a number of tiers >= 0, got str 'yes'"),
    Case("speculative=-1", lambda: _cascade(speculative=-1), ValidationError,
         '1 validation error for CascadingChatModel\nspeculative\n  Value error, speculative must be a bool or a number of tiers >= 0, got -1 [type=value_error, input_value=..., input_type=int]\n    For further information visit https://errors.pydantic.dev/2.14/v/value_error'),
    Case("streaming='yes'", lambda: _cascade(streaming="yes"), ValidationError,
         '1 validation error for CascadingChatModel\nstreaming\n  Input should be a valid boolean [type=bool_type, input_value=..., input_type=str]\n    For further information visit https://errors.pydantic.dev/2.14/v/bool_type'),
    Case("invoke(q, early_abort='yes')", _call(early_abort="yes"), TypeError,
         "early_abort must be True or False, got str 'yes'"),
    Case("invoke(q, speculative='yes')", _call(speculative="yes"), TypeError,
         "speculative must be a bool or a number of tiers >= 0, got str 'yes'"),
    # --- call arguments -------------------------------------------------------------
    Case("invoke(q, max_cost=-1)", _call(max_cost=-1), ValueError,
         'max_cost must be a finite number of dollars greater than 0, got -1'),
    Case("invoke(q, max_cost=float('nan'))", _call(max_cost=float("nan")), ValueError,
         'max_cost must be a finite number of dollars greater than 0, got nan'),
    Case("invoke(q, max_cost='cheap')", _call(max_cost="cheap"), TypeError,
         "max_cost must be a number of dollars or None, got str 'cheap'"),
    Case("invoke(q, timeout=0)", _call(timeout=0), ValueError,
         'timeout must be a finite number of seconds greater than 0, got 0'),
    Case("invoke(q, timeout='1')", _call(timeout="1"), TypeError,
         "timeout must be a number of seconds or None, got str '1'"),
    Case("invoke(q, max_cots=0.01) (a typo)", _call(max_cots=0.01), TypeError,
         "unknown call argument 'max_cots' (did you mean 'max_cost'?); arguments the cascade does not read are passed to every tier"),
    Case("invoke(q, timeuot=1) (a typo)", _call(timeuot=1), TypeError,
         "unknown call argument 'timeuot' (did you mean 'timeout'?); arguments the cascade does not read are passed to every tier"),
    Case("invoke(q, max_latency=0)", _call(max_latency=0), ValueError,
         'max_latency must be a number of seconds > 0, got 0'),
    Case("invoke(q, first_tier=5)", _call(first_tier=5), ValueError,
         'first_tier must be between 0 and 1 (the final tier), got 5'),
    Case("invoke(q, first_tier='0')", _call(first_tier="0"), TypeError,
         "first_tier must be a tier index (int), got str '0'"),
    Case("invoke(42)", lambda: _cascade().invoke(42), ValueError,  # type: ignore[arg-type]
         "Invalid input type <class 'int'>. Must be a PromptValue, str, or list of BaseMessages."),
    # --- gate return values (no exception: the attempt fails closed) ---------------
    Case("a gate function returns 42", _escalation_reason(lambda gi: 42), None,
         "gate raised TypeError: lambda_gate returned int; a gate must return a GateResult, a bool or a dict with a 'passed' key"),
    Case("a gate function returns None", _escalation_reason(lambda gi: None), None,
         "gate raised TypeError: lambda_gate returned NoneType; a gate must return a GateResult, a bool or a dict with a 'passed' key"),
    Case("a gate function returns {'ok': True}",
         _escalation_reason(lambda gi: {"ok": True}), None,
         "gate raised TypeError: lambda_gate returned a mapping without a 'passed' key"),
    Case("a gate function returns 'yes'", _escalation_reason(lambda gi: "yes"), None,
         "gate raised TypeError: lambda_gate returned str; a gate must return a GateResult, a bool or a dict with a 'passed' key"),
    Case("a Gate subclass returns None", _escalation_reason(_NoneGate()), None,
         "gate raised TypeError: _NoneGate returned NoneType; a gate must return a GateResult, a bool or a dict with a 'passed' key"),
    Case("a gate function returns GateResult(score=1.5)",
         _escalation_reason(lambda gi: {"passed": True, "score": 1.5}), None,
         'gate raised ValidationError: 1 validation error for GateResult\nscore\n  Input should be less than or equal to 1 [type=less_than_equal, input_value=..., input_type=float]\n    For further information visit https://errors.pydantic.dev/2.14/v/less_than_equal'),
]  # fmt: skip


def _id(case: Case) -> str:
    return case.input


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_bad_input_message(case: Case) -> None:
    kind, message = observe(case)
    expected = "escalated" if case.error is None else case.error.__name__
    assert (kind, message) == (expected, case.message)


def test_every_kind_of_input_is_covered() -> None:
    inputs = " ".join(c.input for c in CASES)
    for name in (
        "models=",
        "gates=",
        "review_gate=",
        "prices=",
        "max_cost=",
        "timeout=",
        "max_cots=",
        "formatter=",
        "invoke(",
        "returns",
    ):
        assert name in inputs, name
