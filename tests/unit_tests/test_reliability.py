"""Issue #8: streaming, gates, drafts, usage, budget, timeouts, wrappers, arguments.

Each test names the defect it guards against; each failed on the code before its fix.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.runnables import RunnableConfig
from pydantic import BaseModel

from benchmarks.fakes import AsyncFakeChatModel
from langchain_cascade import CascadingChatModel, GateInput, GateResult
from langchain_cascade.gates import Gate, HedgingGate, all_of
from tests.unit_tests.fake_models import (
    MODES,
    ScriptedChatModel,
    call,
    call_cleanly,
    cascade_meta,
    tiers,
)


class NoStreamModel(AsyncFakeChatModel):
    """A chat model without ``_stream``: ``.stream()`` yields one AIMessage."""

    fake_type = "no-stream"

    reply: str = "final answer"
    tool_call: bool = False

    def _reply(
        self, messages: list[BaseMessage], stop: list[str] | None, **kwargs: Any
    ) -> AIMessage:
        calls = (
            [{"name": "get_weather", "args": {"city": "Paris"}, "id": "c1"}]
            if self.tool_call
            else []
        )
        return AIMessage(
            self.reply,
            tool_calls=calls,
            usage_metadata={"input_tokens": 4, "output_tokens": 3, "total_tokens": 7},
        )

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        return self.bind(tools=tools, **kwargs)


class GetWeather(BaseModel):
    """Get the weather of a city."""

    city: str


# --- 1. a final tier that does not stream itself ----------------------------------


def _final_tiers() -> list[tuple[str, BaseChatModel, bool]]:
    return [
        ("no _stream", NoStreamModel(), False),
        (
            "disable_streaming=True",
            ScriptedChatModel(model="m1", reply="final answer", disable_streaming=True),
            False,
        ),
        (
            "disable_streaming='tool_calling' with tools",
            ScriptedChatModel(
                model="m1",
                reply="final answer",
                disable_streaming="tool_calling",
            ),
            True,
        ),
        ("no _stream, tool call", NoStreamModel(tool_call=True), True),
    ]


@pytest.mark.parametrize("case", _final_tiers(), ids=[c[0] for c in _final_tiers()])
def test_final_tier_that_does_not_stream_streams_through_the_cascade(
    mode: str, case: tuple[str, BaseChatModel, bool]
) -> None:
    _, final, with_tools = case
    cascade = CascadingChatModel(
        models=[ScriptedChatModel(model="m0", reply="I'm not sure"), final],
        gates=[HedgingGate()],
    )
    model: Any = cascade.bind_tools([GetWeather]) if with_tools else cascade
    answer = call(model, mode, "q")
    assert answer.text == "final answer"
    meta = cascade_meta(answer)
    assert meta["tier"] == 1
    assert [a["accepted"] for a in meta["attempts"]] == [False, True]
    if isinstance(final, NoStreamModel) and final.tool_call:
        assert [tc["args"] for tc in answer.tool_calls] == [{"city": "Paris"}]


@pytest.mark.parametrize("mode", ["stream", "astream"])
def test_streamed_answer_keeps_invalid_tool_calls(mode: str) -> None:
    broken = AIMessage(
        "",
        invalid_tool_calls=[
            {
                "name": "get_weather",
                "args": "{not json",
                "id": "c9",
                "error": "bad json",
                "type": "invalid_tool_call",
            }
        ],
    )
    cascade = CascadingChatModel(
        models=[ScriptedChatModel(model="m0", script=[broken]), *tiers("x")],
        gates=[lambda gi: True],
    )
    answer = call(cascade, mode, "q")
    assert cascade_meta(answer)["tier"] == 0
    assert [(c["name"], c["args"]) for c in answer.invalid_tool_calls] == [
        ("get_weather", "{not json")
    ]


# --- 2. a gate returning something that is not a GateResult -----------------------


class _Returns(Gate):
    value: Any = None

    def evaluate(self, gate_input: GateInput, config: RunnableConfig) -> Any:
        return self.value


def _np_bool(value: bool) -> Any:
    numpy = pytest.importorskip("numpy")
    return numpy.bool_(value)


@pytest.mark.parametrize("where", ["gate", "review_gate", "all_of part"])
@pytest.mark.parametrize(
    ("value", "passed", "reason"),
    [
        (None, False, "returned NoneType"),
        ({"score": 0.9}, False, "passed"),
        ("sure", False, "returned str"),
        (True, True, "returned True"),
        ("np_true", True, "returned True"),
        ("np_false", False, "returned False"),
        ({"passed": True, "score": 0.7}, True, ""),
    ],
)
def test_gate_subclass_returning_anything_fails_closed_never_crashes(
    mode: str, where: str, value: Any, passed: bool, reason: str
) -> None:
    if value in ("np_true", "np_false"):
        value = _np_bool(value == "np_true")
    gate = _Returns(value=value)
    if where == "review_gate":
        cascade = CascadingChatModel(models=tiers("only"), review_gate=gate)
        meta = cascade_meta(call(cascade, mode, "q"))
        assert meta["tier"] == 0
        assert meta["needs_review"] is (not passed)
        assert reason in meta["attempts"][0]["reason"]
        return
    used: Gate = gate if where == "gate" else all_of(HedgingGate(), gate)
    cascade = CascadingChatModel(models=tiers("cheap", "strong"), gates=[used])
    meta = cascade_meta(call(cascade, mode, "q"))
    assert meta["tier"] == (0 if passed else 1)
    assert reason in meta["attempts"][0]["reason"]


def test_gate_invoke_returns_a_gate_result_whatever_evaluate_returns() -> None:
    gate = _Returns(value=True)
    gate_input = GateInput(messages=[], response=AIMessage("x"))
    assert gate.invoke(gate_input) == GateResult(
        passed=True, score=1.0, reason="_Returns returned True"
    )
    assert asyncio.run(gate.ainvoke(gate_input)).passed is True


def test_numpy_bool_verdict_is_a_bool() -> None:
    verdict = GateResult.coerce(_np_bool(True), name="np_gate")
    assert verdict.passed is True
    assert verdict.score == 1.0


# --- first_tier ----------------------------------------------------------------


def test_first_tier_starts_there_and_records_skipped_tiers(mode: str) -> None:
    models = tiers("I'm not sure", "Lyon", "Paris")
    cascade = CascadingChatModel(models=models, gates=[HedgingGate()])
    answer = call(cascade.bind(first_tier=1), mode, "q")
    meta = cascade_meta(answer)
    assert answer.text == "Lyon"
    assert meta["tier"] == 1
    assert meta["escalated"] is False  # answered by the first tier it tried
    assert meta["skipped_tiers"] == [
        {"tier": 0, "model": "m0", "reason": "first_tier=1"}
    ]
    assert [a["tier"] for a in meta["attempts"]] == [1]
    assert models[0].calls == []
    assert cascade_meta(call(cascade, mode, "q"))["skipped_tiers"] == []


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        (3, ValueError, "first_tier must be between 0 and 2"),
        (-1, ValueError, "first_tier must be between 0 and 2"),
        ("1", TypeError, "first_tier must be a tier index (int), got str"),
        (True, TypeError, "first_tier must be a tier index (int), got bool"),
    ],
)
def test_first_tier_is_validated(
    value: object, error: type[Exception], message: str
) -> None:
    cascade = CascadingChatModel(models=tiers("a", "b", "c"), gates=[HedgingGate()])
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        cascade.invoke("q", first_tier=value)


# --- 4. usage unknown ---------------------------------------------------------------


def test_usage_total_is_unknown_when_one_attempt_reports_none(mode: str) -> None:
    no_usage = ScriptedChatModel(
        model="m1", responder=lambda _: AIMessage("Paris", usage_metadata=None)
    )
    cascade = CascadingChatModel(
        models=[ScriptedChatModel(model="m0", reply="I'm not sure"), no_usage],
        gates=[HedgingGate()],
    )
    answer = call(cascade, mode, "q")
    meta = cascade_meta(answer)
    assert answer.usage_metadata is None  # never the partial 5 tokens as the total
    assert meta["usage_unknown_tiers"] == [1]
    assert meta["attempts"][0]["usage"]["total_tokens"] == 5


def test_usage_total_is_known_when_every_attempt_reports(mode: str) -> None:
    cascade = CascadingChatModel(
        models=tiers("I'm not sure", "Paris"), gates=[HedgingGate()]
    )
    answer = call(cascade, mode, "q")
    assert answer.usage_metadata is not None
    assert answer.usage_metadata["total_tokens"] == 10
    assert cascade_meta(answer)["usage_unknown_tiers"] == []


def test_gate_result_usage_is_counted_when_no_model_reported() -> None:
    def gate(gi: GateInput) -> GateResult:
        return GateResult(
            passed=True,
            usage={"input_tokens": 7, "output_tokens": 1, "total_tokens": 8},
        )

    cascade = CascadingChatModel(models=tiers("a", "b"), gates=[gate])
    answer = cascade.invoke("q")
    assert cascade_meta(answer)["attempts"][0]["gate_usage"] == {
        "gate": {"input_tokens": 7, "output_tokens": 1, "total_tokens": 8}
    }
    assert answer.usage_metadata is not None
    assert answer.usage_metadata["total_tokens"] == 13


# --- 5. budget -----------------------------------------------------------------------


def _prices() -> dict[str, Any]:
    from langchain_cascade import ModelPrice

    return {
        "m0": ModelPrice(input_per_million=1.0, output_per_million=1.0),
        "m1": ModelPrice(input_per_million=1.0, output_per_million=1.0, per_call=1.0),
    }


def test_known_next_tier_estimate_alone_over_budget_stops(mode: str) -> None:
    # Tier 0's cost is unknown (no usage), tier 1 costs $1 a call: over $0.01.
    cascade = CascadingChatModel(
        models=[
            ScriptedChatModel(
                model="m0", responder=lambda _: AIMessage("I'm not sure")
            ),
            ScriptedChatModel(model="m1", reply="Paris"),
        ],
        gates=[HedgingGate()],
        prices=_prices(),
        max_cost=0.01,
    )
    answer = call(cascade, mode, "q")
    meta = cascade_meta(answer)
    assert answer.text == "I'm not sure"
    assert meta["needs_review"] is True
    assert "alone (earlier costs unknown)" in meta["review_reason"]
    assert len(meta["attempts"]) == 1


def test_first_tier_own_estimate_over_budget_stops_before_calling_it(
    mode: str,
) -> None:
    from langchain_cascade import CascadeError

    models = tiers("a", "b")
    cascade = CascadingChatModel(
        models=models, gates=[HedgingGate()], prices=_prices(), max_cost=1e-4
    )
    with pytest.raises(CascadeError, match=r"budget: tier 0 \(m0\) would cost"):
        call(cascade, mode, "x" * 1000)  # ~250 tokens at $1/M = $0.00025
    assert models[0].calls == []
    assert call(cascade, mode, "short").text == "a"


# --- 6. per-call max_cost -------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        (-1, ValueError, "max_cost must be a finite number of dollars greater than 0"),
        (0, ValueError, "max_cost must be a finite number of dollars greater than 0"),
        (
            float("nan"),
            ValueError,
            "max_cost must be a finite number of dollars greater than 0",
        ),
        ("0.01", TypeError, "max_cost must be a number of dollars or None, got str"),
        (True, TypeError, "max_cost must be a number of dollars or None, got bool"),
    ],
)
@pytest.mark.parametrize("where", ["call", "constructor"])
def test_max_cost_is_validated_with_a_message_naming_it(
    value: object, error: type[Exception], message: str, where: str
) -> None:
    models = tiers("a", "b")
    if where == "constructor":
        with pytest.raises((error, ValueError), match=message):
            CascadingChatModel(models=models, gates=[HedgingGate()], max_cost=value)
        return
    cascade = CascadingChatModel(models=models, gates=[HedgingGate()])
    with pytest.raises(error, match=message):
        cascade.invoke("q", max_cost=value)
    assert models[0].calls == []


# --- 10. unknown arguments -------------------------------------------------------------


def test_unknown_constructor_argument_is_refused_with_a_hint() -> None:
    with pytest.raises(
        ValueError, match=r"unknown argument 'max_cots' \(did you mean 'max_cost'\?\)"
    ):
        CascadingChatModel(models=tiers("a", "b"), gates=[HedgingGate()], max_cots=0.01)  # type: ignore[call-arg]
    with pytest.raises(
        ValueError,
        match="unknown argument 'flavour'; its own arguments are: early_abort, formatter, gates",
    ):
        CascadingChatModel(models=tiers("a"), flavour="x")  # type: ignore[call-arg]


def test_misspelt_call_argument_is_refused_others_reach_the_tiers() -> None:
    models = tiers("a", "b")
    cascade = CascadingChatModel(models=models, gates=[HedgingGate()])
    with pytest.raises(TypeError, match=r"'max_cots' \(did you mean 'max_cost'\?\)"):
        cascade.invoke("q", max_cots=0.01)
    cascade.invoke("q", seed=7)
    assert models[0].calls[-1]["seed"] == 7


# --- 9. Runnable wrappers as tiers ------------------------------------------------------


@pytest.mark.parametrize(
    "wrap", ["with_retry", "bind", "with_config", "configurable_fields", "retry+bind"]
)
def test_wrapped_chat_models_are_tiers(mode: str, wrap: str) -> None:
    from langchain_core.runnables import ConfigurableField

    flaky = ScriptedChatModel(
        model="m0", script=[RuntimeError("blip")], reply="I'm not sure"
    )
    strong = ScriptedChatModel(model="m1", reply="Paris")
    wrapped: Any = {
        "with_retry": lambda m: m.with_retry(
            stop_after_attempt=2, wait_exponential_jitter=False
        ),
        "bind": lambda m: m.bind(seed=3),
        "with_config": lambda m: m.with_config(tags=["mine"]),
        "configurable_fields": lambda m: m.configurable_fields(
            reply=ConfigurableField(id="reply")
        ),
        "retry+bind": lambda m: m.bind(seed=3).with_retry(
            stop_after_attempt=2, wait_exponential_jitter=False
        ),
    }[wrap]
    if "retry" not in wrap:
        flaky.script.clear()
    cascade = CascadingChatModel(
        models=[wrapped(flaky), wrapped(strong)], gates=[HedgingGate()]
    )
    assert cascade.model_names == ["m0", "m1"]
    assert cascade.chat_models == [flaky, strong]
    meta = cascade_meta(call(cascade.bind_tools([GetWeather]), mode, "q"))
    assert meta["tier"] == 1
    assert [a["model"] for a in meta["attempts"]] == ["m0", "m1"]
    assert meta["attempts"][0]["error"] is None  # the retry absorbed the blip
    assert flaky.calls[-1]["tools"][0]["function"]["name"] == "GetWeather"
    if "bind" in wrap:
        assert strong.calls[-1]["seed"] == 3


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda m: m.with_fallbacks([m]),
            "its fallbacks are other models, give them as the next tiers",
        ),
        (
            lambda m: m.configurable_alternatives(
                __import__(
                    "langchain_core.runnables", fromlist=["x"]
                ).ConfigurableField(id="alt"),
                other=ScriptedChatModel(reply="x"),
            ),
            "configurable_alternatives wrapper: each alternative is another model",
        ),
        (lambda m: m | (lambda x: x), "a chain's output is not a chat model's answer"),
    ],
)
def test_unsound_wrappers_are_refused_by_name(make: Any, message: str) -> None:
    with pytest.raises((TypeError, ValueError), match=message):
        CascadingChatModel(
            models=[make(ScriptedChatModel(reply="a")), *tiers("b")],
            gates=[HedgingGate()],
        )


# --- 11. the small ones ----------------------------------------------------------------


def test_a_gate_class_instead_of_an_instance_is_refused() -> None:
    with pytest.raises(
        (TypeError, ValueError),
        match=r"gates\[0\] is the class HedgingGate: pass an instance, HedgingGate\(\)",
    ):
        CascadingChatModel(models=tiers("a", "b"), gates=[HedgingGate])


def test_mutating_models_after_construction_gives_a_clear_error() -> None:
    cascade = CascadingChatModel(models=tiers("a", "b"), gates=[HedgingGate()])
    cascade.models.append(ScriptedChatModel(reply="c"))
    with pytest.raises(ValueError, match="changed after construction"):
        cascade.invoke("q")


def test_a_tier_without_tool_support_is_named() -> None:
    from langchain_core.language_models.fake_chat_models import FakeListChatModel

    cascade = CascadingChatModel(
        models=[
            ScriptedChatModel(model="m0", reply="a"),
            FakeListChatModel(responses=["b"]),
        ],
        gates=[HedgingGate()],
    )
    with pytest.raises(NotImplementedError, match=r"models\[1\] \(FakeListChatModel"):
        cascade.bind_tools([GetWeather]).invoke("q")


class BadStrError(Exception):
    def __str__(self) -> str:
        raise RuntimeError


def test_an_exception_whose_str_raises_is_recorded(mode: str) -> None:
    cascade = CascadingChatModel(
        models=[ScriptedChatModel(model="m0", script=[BadStrError()]), *tiers("b")],
        gates=[HedgingGate()],
    )
    meta = cascade_meta(call(cascade, mode, "q"))
    assert meta["attempts"][0]["error"] == "BadStrError: <str() raised RuntimeError>"


def test_huge_exception_text_is_cut() -> None:
    cascade = CascadingChatModel(
        models=[
            ScriptedChatModel(model="m0", script=[RuntimeError("x" * 100_000)]),
            *tiers("b"),
        ],
        gates=[HedgingGate()],
    )
    error = cascade_meta(cascade.invoke("q"))["attempts"][0]["error"]
    assert len(error) < 2100
    assert error.endswith("[100014 chars]")


@pytest.mark.parametrize("score", [148.4, float("inf"), -0.5, float("nan")])
def test_gate_scores_outside_0_1_fail_closed(score: float) -> None:
    cascade = CascadingChatModel(
        models=tiers("a", "b"), gates=[lambda gi: {"passed": True, "score": score}]
    )
    meta = cascade_meta(cascade.invoke("q"))
    assert meta["tier"] == 1
    assert meta["attempts"][0]["reason"].startswith("gate raised ValidationError")


def test_async_gate_from_sync_invoke_inside_a_running_loop() -> None:
    async def gate(gi: GateInput) -> bool:
        await asyncio.sleep(0)
        return True

    cascade = CascadingChatModel(models=tiers("a", "b"), gates=[gate])

    async def main() -> Any:
        return cascade.invoke("q")  # sync call from a coroutine, as in Jupyter

    assert cascade_meta(asyncio.run(main()))["tier"] == 0


# --- 8. timeouts -------------------------------------------------------------------------


def _hung(model: str = "m0", delay_s: float = 30.0) -> ScriptedChatModel:
    return ScriptedChatModel(model=model, reply="never", delay_s=delay_s)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("how", ["field", "per-tier", "per-call"])
def test_a_tier_past_its_timeout_is_cancelled_and_escalates(
    mode: str, how: str
) -> None:
    models = [_hung(), ScriptedChatModel(model="m1", reply="Paris")]
    timeout: Any = {"field": 0.2, "per-tier": [0.2, None], "per-call": None}[how]
    cascade = CascadingChatModel(models=models, gates=[HedgingGate()], timeout=timeout)
    model: Any = cascade.bind(timeout=0.2) if how == "per-call" else cascade
    answer = call_cleanly(model, mode, "q")  # the hung tier cancelled for real
    meta = cascade_meta(answer)
    assert answer.text == "Paris"
    assert meta["tier"] == 1
    assert meta["attempts"][0]["reason"] == "timeout after 0.2s"
    assert meta["attempts"][0]["error"] == "TierTimeoutError: timeout after 0.2s"


@pytest.mark.parametrize("mode", MODES)
def test_the_final_tier_past_its_timeout_raises_cascade_error(mode: str) -> None:
    from langchain_cascade import CascadeError

    cascade = CascadingChatModel(
        models=[ScriptedChatModel(model="m0", reply="I'm not sure"), _hung("m1")],
        gates=[HedgingGate()],
        timeout=0.2,
    )
    with pytest.raises(
        CascadeError, match=r"tier 1 \(m1\): TierTimeoutError: timeout after 0.2s"
    ) as info:
        call(cascade, mode, "q")
    assert info.value.attempts[1]["reason"] == "timeout after 0.2s"


def test_async_timeout_leaves_no_task_running() -> None:
    cascade = CascadingChatModel(
        models=[_hung(), ScriptedChatModel(model="m1", reply="Paris")],
        gates=[HedgingGate()],
        timeout=0.1,
    )

    async def main() -> set[Any]:
        before = asyncio.all_tasks()
        await cascade.ainvoke("q")
        chunks = [c async for c in cascade.astream("q")]
        assert chunks
        await asyncio.sleep(0)
        return asyncio.all_tasks() - before

    assert asyncio.run(main()) == set()


def test_a_childs_own_timeout_error_is_not_the_cascade_timeout() -> None:
    cascade = CascadingChatModel(
        models=[
            ScriptedChatModel(model="m0", script=[TimeoutError("upstream")]),
            *tiers("b"),
        ],
        gates=[HedgingGate()],
        timeout=10,
    )
    meta = cascade_meta(asyncio.run(cascade.ainvoke("q")))
    assert meta["attempts"][0]["reason"] == "tier raised TimeoutError: upstream"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"timeout": -1}, "timeout must be a finite number of seconds greater than 0"),
        ({"timeout": "5"}, "timeout must be a number of seconds or None, got str"),
        ({"timeout": [1.0]}, "timeout has 1 value for 2 models"),
        ({"timeout": [1.0, float("inf")]}, r"timeout\[1\] must be a finite number"),
    ],
)
def test_timeout_is_validated(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        CascadingChatModel(models=tiers("a", "b"), gates=[HedgingGate()], **kwargs)
    cascade = CascadingChatModel(models=tiers("a", "b"), gates=[HedgingGate()])
    with pytest.raises((ValueError, TypeError), match=message):
        cascade.invoke("q", **kwargs)


# --- 3. drafts never reach token handlers or astream_events --------------------------


class StreamingScripted(ScriptedChatModel):
    """A tier with ``streaming=True``: its ``invoke`` streams tokens to handlers."""

    streaming: bool = False


def _streaming_tiers() -> list[ScriptedChatModel]:
    return [
        StreamingScripted(model="m0", reply="I'm not sure", streaming=True),
        StreamingScripted(model="m1", reply="Paris", streaming=True),
    ]


@pytest.mark.parametrize("mode", MODES)
def test_rejected_drafts_never_reach_token_handlers(mode: str) -> None:
    from tests.unit_tests.run_recorder import RunRecorder

    recorder = RunRecorder()
    cascade = CascadingChatModel(models=_streaming_tiers(), gates=[HedgingGate()])
    answer = call(cascade, mode, "q", {"callbacks": [recorder]})
    assert answer.text == "Paris"
    text = "".join(token for _, token in recorder.tokens)
    assert "not sure" not in text
    cascade_runs = {
        r.run_id for r in recorder.runs.values() if r.name == "CascadingChatModel"
    }
    assert {run for run, _ in recorder.tokens} <= cascade_runs
    assert text == ("Paris" if mode in ("stream", "astream") else "")


@pytest.mark.parametrize("final_accepted", [False, True])
def test_astream_events_streams_the_answer_once_and_no_draft(
    final_accepted: bool,
) -> None:
    models = _streaming_tiers()
    if final_accepted:
        models[0] = StreamingScripted(model="m0", reply="Lyon", streaming=True)
    cascade = CascadingChatModel(models=models, gates=[HedgingGate()])

    async def main() -> list[Any]:
        return [
            e
            async for e in cascade.astream_events("q", version="v2")
            if e["event"] == "on_chat_model_stream"
        ]

    streamed = asyncio.run(main())
    text = "".join(e["data"]["chunk"].text for e in streamed)
    assert text == ("Lyon" if final_accepted else "Paris")
    assert {e["name"] for e in streamed} == {"CascadingChatModel"}


def test_withheld_view_is_the_same_handler() -> None:
    from langchain_cascade._callbacks import withhold_tokens
    from tests.unit_tests.run_recorder import RunRecorder

    recorder = RunRecorder()
    view = withhold_tokens(recorder)
    assert isinstance(view, RunRecorder)
    assert view == recorder
    run_id = uuid.uuid4()
    view.on_llm_new_token("x", run_id=run_id)
    assert recorder.tokens == []
    view.on_custom_event("e", None, run_id=run_id)
    assert recorder.events == [("e", None, run_id)]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("listening", [False, True])
def test_configurable_fields_tier_is_configured_by_the_call(
    mode: str, listening: bool
) -> None:
    from langchain_core.runnables import ConfigurableField

    from tests.unit_tests.run_recorder import RunRecorder

    strong = ScriptedChatModel(model="m1", reply="default").configurable_fields(
        reply=ConfigurableField(id="strong_reply")
    )
    cascade = CascadingChatModel(
        models=[ScriptedChatModel(model="m0", reply="I'm not sure"), strong],
        gates=[HedgingGate()],
    )
    config: dict[str, Any] = {"configurable": {"strong_reply": "configured"}}
    if listening:
        config["callbacks"] = [RunRecorder()]
    assert call(cascade, mode, "q", config).text == "configured"  # type: ignore[arg-type]
    assert call(cascade, mode, "q").text == "default"


def test_a_handler_whose_state_is_not_in_its_dict_is_left_as_it_is() -> None:
    from langchain_core.callbacks import BaseCallbackHandler

    from langchain_cascade._callbacks import withhold_tokens

    class Slotted(BaseCallbackHandler):
        __slots__ = ("seen",)

    handler = Slotted()
    assert withhold_tokens(handler) is handler
