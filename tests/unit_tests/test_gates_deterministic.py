"""Deterministic gates: arithmetic checks, tool-call and structured-output schemas."""

from __future__ import annotations

import asyncio
import builtins
from typing import Any, Literal, TypedDict

import pytest
import typing_extensions
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import BaseModel, ValidationError

from langchain_cascade import CascadingChatModel, GateInput, GateResult
from langchain_cascade.gates import (
    ArithmeticGate,
    StructuredOutputGate,
    ToolCallGate,
    all_of,
)
from langchain_cascade.gates.arithmetic import find_calculations
from langchain_cascade.gates.tools import parse_json_answer, schema_errors
from tests.unit_tests.fake_models import ScriptedChatModel, call, cascade_meta


def gate_input(
    response: AIMessage | str, tools: list[dict[str, Any]] | None = None
) -> GateInput:
    message = AIMessage(response) if isinstance(response, str) else response
    return GateInput(
        messages=[HumanMessage("question")], response=message, tools=tools or []
    )


def judge(gate: Any, response: AIMessage | str, **kwargs: Any) -> GateResult:
    result: GateResult = gate.invoke(gate_input(response, **kwargs))
    return result


# --- ArithmeticGate ----------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "12 * 7 = 84",
        "She pays $45 - $17 = $28.",
        "3/4 of 120 = 90 pages",
        "2 + 3 * 4 = 14",
        "1,200 / 4 = 300",
        "50% of 80 = 40",
        "6 \u00d7 7 = 42 and 84 ÷ 2 = 42",
        "3 x 4 = 12 boxes",
        "5 + 3 = 8 + 2 = 10",
        "(20 / 80) * 100 = 25%",
        "2^3 = 8 and 2(3 + 4) = 14",
        "10 / 3 = 3.33",
        "100 / 7 = 14.29",
        "5 - 8 = -3",
        "1 1/2 * 2 = 3",
        "12.8 / 2/5 = 32",
        "16 eggs - 3 eggs = 13 eggs",
        "3 sprints * 60 meters/sprint = 180 meters",
        "$204 (donuts) + $160 (cupcakes) = $364",
        r"\[ \frac{19.50}{0.75} = 26 \]",
        r"She downloads 200 / 100 \* 40 = <<200/100*40=80>>80 GB.",
        "Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 eggs.\n#### 9",
    ],
)
def test_arithmetic_passes_right_calculations(text: str) -> None:
    result = judge(ArithmeticGate(), text)
    assert result.passed, result.reason
    assert result.score == 1.0
    assert result.reason.startswith("all ")
    assert result.details["calculations"]
    assert all(c["correct"] for c in result.details["calculations"])


@pytest.mark.parametrize(
    ("text", "wrong"),
    [
        ("12 * 7 = 74", "12 * 7 = 74 (is 84)"),
        ("She pays $45 - $17 = $38.", "$45 - $17 = $38 (is 28)"),
        ("3/4 of 120 = 80", "3/4 * 120 = 80 (is 90)"),
        ("2 + 3 * 4 = 20", "2 + 3 * 4 = 20 (is 14)"),
        ("1,200 / 4 = 400", "1,200 / 4 = 400 (is 300)"),
        ("50% of 80 = 30", "50% * 80 = 30 (is 40)"),
        ("6 \u00d7 7 = 48", "6 * 7 = 48 (is 42)"),
        ("3 x 4 = 7", "3 * 4 = 7 (is 12)"),
        ("5 + 3 = 9 + 2 = 11", "5 + 3 = 9 + 2 (is 8)"),
        ("10 / 3 = 3.5", "10 / 3 = 3.5 (is 3.33333)"),
        ("16 eggs - 3 eggs = 12 eggs", "16 eggs - 3 eggs = 12 (is 13)"),
        ("The total is <<48/2=25>>25.", "48/2 = 25 (is 24)"),
        ("3150 + 1300 + 48 + 2 = 4490 pounds", "= 4490 (is 4500)"),
    ],
)
def test_arithmetic_fails_a_wrong_calculation_and_names_it(
    text: str, wrong: str
) -> None:
    result = judge(ArithmeticGate(), text)
    assert not result.passed
    calculations = result.details["calculations"]
    assert result.score == 1 - 1 / len(calculations)
    assert result.reason.startswith(f"1 of {len(calculations)} calculations wrong: ")
    assert wrong in result.reason
    assert [c["correct"] for c in calculations].count(False) == 1


def test_arithmetic_score_is_the_share_of_right_equations() -> None:
    text = "First 16 - 3 = 13. Then 13 * 2 = 27. Then 27 + 3 = 30. Then 30 / 2 = 15."
    result = judge(ArithmeticGate(), text)
    assert not result.passed
    assert result.score == pytest.approx(0.75)
    assert result.details["calculations"] == [
        {"equation": "16 - 3 = 13", "computed": 13.0, "stated": 13.0, "correct": True},
        {"equation": "13 * 2 = 27", "computed": 26.0, "stated": 27.0, "correct": False},
        {"equation": "27 + 3 = 30", "computed": 30.0, "stated": 30.0, "correct": True},
        {"equation": "30 / 2 = 15", "computed": 15.0, "stated": 15.0, "correct": True},
    ]
    assert result.reason == "1 of 4 calculations wrong: 13 * 2 = 27 (is 26)"


def test_arithmetic_reason_lists_three_errors_then_counts_the_rest() -> None:
    text = "\n".join(f"{i} + 1 = {i + 2}" for i in range(5))
    result = judge(ArithmeticGate(), text)
    assert result.reason.startswith("5 of 5 calculations wrong: 0 + 1 = 2 (is 1)")
    assert result.reason.endswith("; and 2 more")


def test_arithmetic_without_calculation_passes_and_says_so() -> None:
    result = judge(ArithmeticGate(), "The capital of France is Paris.")
    assert result.passed
    assert result.score == 1.0
    assert result.reason == "no calculation found to check"
    assert result.details["calculations"] == []


def test_arithmetic_require_calculation_fails_when_none_found() -> None:
    gate = ArithmeticGate(require_calculation=True)
    result = judge(gate, "It is 42.")
    assert not result.passed
    assert result.score == 0.0
    assert "no calculation found" in result.reason
    assert judge(gate, "6 * 7 = 42").passed


@pytest.mark.parametrize(
    "text",
    [
        "2 hours + 30 minutes = 150 minutes",  # a unit conversion
        "2 dozen * 3 = 72 eggs",  # a dozen is 12
        "2S + 30 = 110, so 2S = 80 and S = 40",  # algebra with a variable
        "75 - 35 = 5C - 3C",
        "x + 3 * 2 = 10",  # the left side goes on before "3 * 2"
        "3 * (4 + 2 = 18)",
        "Day 3 = Monday",
        "Call 555-1234 now; rooms 12-14 are free.",
        "10^1000 = 1",  # too large a power is left alone
        "6 / 0 = 0",  # so is a division by zero
    ],
)
def test_arithmetic_skips_what_it_cannot_read(text: str) -> None:
    result = judge(ArithmeticGate(), text)
    assert result.passed, result.reason
    assert result.details["calculations"] == []


def test_arithmetic_rounding_tolerance() -> None:
    # Whole numbers must agree exactly; fractions within rel_tol or shown decimals.
    assert find_calculations("1000 + 5 = 1006")[0].correct is False
    assert find_calculations("10 / 3 = 3")[0].correct is True
    assert find_calculations("2/3 * 60 = 40")[0].correct is True
    assert find_calculations("1/3 * 10 = 3.3")[0].correct is True
    assert find_calculations("1/3 * 10 = 3.2")[0].correct is False
    assert find_calculations("100 / 7 ≈ 14")[0].correct is True
    assert find_calculations("19.99 * 3 = 60.0")[0].correct is True  # rounded
    assert find_calculations("19.99 * 3 = 59.9")[0].correct is True  # cut off
    strict = ArithmeticGate(rel_tol=0.0)
    assert judge(strict, "19.99 * 3 = 59.8").passed is False
    assert judge(ArithmeticGate(), "19.99 * 3 = 59.8").passed is True


def test_arithmetic_never_calls_eval(monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("eval was called")

    monkeypatch.setattr(builtins, "eval", forbidden)
    text = "__import__('os').system('echo hi') = 0 and 2 + 2 = 4"
    result = judge(ArithmeticGate(), text)
    assert result.passed
    assert [c["equation"] for c in result.details["calculations"]] == ["2 + 2 = 4"]


def test_arithmetic_skips_huge_expressions_quickly() -> None:
    nested = "(" * 500 + "1" + ")" * 500 + " = 1"
    long_sum = " + ".join(["1"] * 5000) + " = 5000 and 2 + 2 = 4"
    for text in (nested, long_sum):
        result = judge(ArithmeticGate(), text)
        assert result.passed
    assert [c.equation for c in find_calculations(long_sum)] == ["2 + 2 = 4"]


def test_arithmetic_checks_duplicate_notes_once() -> None:
    calculations = find_calculations("9 * $2 = $<<9*2=18>>18")
    assert [c.equation for c in calculations] == ["9 * $2 = $18"]


def test_arithmetic_bad_settings_fail_at_construction() -> None:
    with pytest.raises(ValidationError, match="rel_tol"):
        ArithmeticGate(rel_tol=-0.1)
    with pytest.raises(ValidationError, match="rel_tol"):
        ArithmeticGate(rel_tol=1.5)


def test_arithmetic_async_matches_sync() -> None:
    gate = ArithmeticGate()
    gi = gate_input("12 * 7 = 74")
    assert asyncio.run(gate.ainvoke(gi)) == gate.invoke(gi)


# --- ToolCallGate --------------------------------------------------------------------


class Location(BaseModel):
    city: str
    country: str | None = None


class Forecast(BaseModel):
    """Get the forecast for a place."""

    location: Location
    days: int
    unit: Literal["c", "f"] = "c"
    hourly: bool = False
    hours: list[int] = []


@tool
def get_weather(city: str, days: int = 1) -> str:
    """Get the weather in a city for some days."""
    return f"sunny in {city} for {days} days"


WEATHER = convert_to_openai_tool(get_weather)
FORECAST = convert_to_openai_tool(Forecast)
STRICT = {
    "type": "function",
    "function": {
        "name": "lookup",
        "parameters": {
            "type": "object",
            "properties": {"id": {"type": "integer"}, "note": {"type": "null"}},
            "required": ["id"],
            "additionalProperties": False,
        },
    },
}


def tool_call(name: str, args: dict[str, Any], call_id: str = "call_1") -> AIMessage:
    return AIMessage("", tool_calls=[{"name": name, "args": args, "id": call_id}])


def check_call(name: str, args: dict[str, Any]) -> GateResult:
    return judge(
        ToolCallGate(), tool_call(name, args), tools=[WEATHER, FORECAST, STRICT]
    )


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("get_weather", {"city": "Oslo"}),
        ("get_weather", {"city": "Oslo", "days": 3}),
        ("get_weather", {"city": "Oslo", "days": 3.0}),  # JSON: 3.0 is an integer
        ("Forecast", {"location": {"city": "Oslo"}, "days": 2}),
        (
            "Forecast",
            {
                "location": {"city": "Oslo", "country": None},
                "days": 2,
                "unit": "f",
                "hourly": True,
                "hours": [6, 12],
            },
        ),
        ("lookup", {"id": 7, "note": None}),
    ],
)
def test_tool_call_gate_passes_valid_calls(name: str, args: dict[str, Any]) -> None:
    result = check_call(name, args)
    assert result.passed, result.reason
    assert result.score == 1.0
    assert result.reason == "1 valid tool call"
    assert result.details["tool_calls"][0]["valid"] is True


@pytest.mark.parametrize(
    ("name", "args", "reason"),
    [
        (
            "get_wether",
            {"city": "Oslo"},
            "unknown tool 'get_wether' (bound: get_weather, Forecast, lookup)",
        ),
        ("get_weather", {}, "get_weather: missing required argument 'city'"),
        (
            "get_weather",
            {"city": "Oslo", "days": "3"},
            "get_weather.days: expected integer, got string",
        ),
        (
            "get_weather",
            {"city": "Oslo", "days": 2.5},
            "get_weather.days: expected integer, got number",
        ),
        (
            "get_weather",
            {"city": 7},
            "get_weather.city: expected string, got integer",
        ),
        (
            "Forecast",
            {"location": {"country": "NO"}, "days": 1},
            "Forecast.location: missing required property 'city'",
        ),
        (
            "Forecast",
            {"location": {"city": "Oslo", "country": 47}, "days": 1},
            "Forecast.location.country: expected string or null, got integer",
        ),
        (
            "Forecast",
            {"location": {"city": "Oslo"}, "days": 1, "unit": "kelvin"},
            'Forecast.unit: "kelvin" is not one of "c", "f"',
        ),
        (
            "Forecast",
            {"location": {"city": "Oslo"}, "days": 1, "hourly": 1},
            "Forecast.hourly: expected boolean, got integer",
        ),
        (
            "Forecast",
            {"location": {"city": "Oslo"}, "days": True},
            "Forecast.days: expected integer, got boolean",
        ),
        (
            "Forecast",
            {"location": {"city": "Oslo"}, "days": 1, "hours": [6, "noon"]},
            "Forecast.hours[1]: expected integer, got string",
        ),
        (
            "Forecast",
            {"location": "Oslo", "days": 1},
            "Forecast.location: expected object, got string",
        ),
        (
            "lookup",
            {"id": 7, "extra": 1},
            "lookup: unexpected argument 'extra'",
        ),
        ("lookup", {"id": 7, "note": "x"}, "lookup.note: expected null, got string"),
    ],
)
def test_tool_call_gate_fails_broken_calls(
    name: str, args: dict[str, Any], reason: str
) -> None:
    result = check_call(name, args)
    assert not result.passed
    assert result.score == 0.0
    assert result.reason == reason
    (detail,) = result.details["tool_calls"]
    assert detail["valid"] is False
    assert detail["errors"] == [reason]
    assert result.details["bound_tools"] == ["get_weather", "Forecast", "lookup"]


def test_tool_call_gate_fails_malformed_json_arguments() -> None:
    message = AIMessage(
        "",
        invalid_tool_calls=[
            {
                "name": "get_weather",
                "args": '{"city": "Oslo"',
                "id": "call_1",
                "error": "Expecting ',' delimiter",
                "type": "invalid_tool_call",
            }
        ],
    )
    result = judge(ToolCallGate(), message, tools=[WEATHER])
    assert not result.passed
    assert result.reason == (
        "get_weather: arguments are not valid JSON (Expecting ',' delimiter)"
    )


def test_tool_call_gate_scores_the_share_of_valid_calls() -> None:
    message = AIMessage(
        "",
        tool_calls=[
            {"name": "get_weather", "args": {"city": "Oslo"}, "id": "a"},
            {"name": "get_weather", "args": {"days": 2}, "id": "b"},
        ],
    )
    result = judge(ToolCallGate(), message, tools=[WEATHER])
    assert not result.passed
    assert result.score == 0.5
    assert [c["valid"] for c in result.details["tool_calls"]] == [True, False]


def test_tool_call_gate_without_tool_calls() -> None:
    result = judge(ToolCallGate(), "It is sunny.", tools=[WEATHER])
    assert result.passed
    assert result.reason == "no tool calls"
    required = judge(ToolCallGate(require_tool_call=True), "Sunny.", tools=[WEATHER])
    assert not required.passed
    assert required.reason == "no tool calls, and one is required"


def test_tool_call_gate_without_bound_tools_checks_only_json() -> None:
    result = judge(ToolCallGate(), tool_call("anything", {"x": 1}))
    assert result.passed
    assert result.reason == "1 valid tool call (no tools bound: names not checked)"


def test_schema_errors_follows_refs_and_combinators() -> None:
    schema = {
        "type": "object",
        "$defs": {"Point": {"type": "object", "required": ["x"]}},
        "properties": {
            "p": {"$ref": "#/$defs/Point"},
            "n": {"type": "number", "minimum": 0, "maximum": 10},
            "s": {"type": "string", "minLength": 2, "pattern": "^[a-z]+$"},
            "k": {"oneOf": [{"type": "integer"}, {"type": "number"}]},
            "t": {"type": "array", "prefixItems": [{"type": "string"}], "maxItems": 2},
            "c": {"const": "fixed"},
        },
    }
    assert schema_errors({"p": {"x": 1}, "n": 3, "s": "ab", "k": 1.5}, schema) == []
    errors = schema_errors(
        {
            "p": {},
            "n": 11,
            "s": "A",
            "k": 2,
            "t": [1, "a", "b"],
            "c": "other",
        },
        schema,
    )
    assert errors == [
        ("p", "missing required property 'x'"),
        ("n", "11 is not <= 10"),
        ("s", "shorter than 2 characters"),
        ("s", "\"A\" does not match '^[a-z]+$'"),
        ("k", "matches 2 of the schemas, expected exactly one"),
        ("t[0]", "expected string, got integer"),
        ("t", "more than 2 items"),
        ("c", 'expected "fixed", got "other"'),
    ]


# Keywords the hand-written subset ignored (it failed OPEN on them): each now fails.
@pytest.mark.parametrize(
    ("schema", "valid", "invalid", "error"),
    [
        (
            {"type": "array", "uniqueItems": True},
            [1, 2],
            [1, 1],
            ("", "[1, 1] has non-unique elements"),
        ),
        (
            {"type": "object", "minProperties": 1},
            {"a": 1},
            {},
            ("", "{} should be non-empty"),
        ),
        (
            {
                "type": "object",
                "if": {"properties": {"unit": {"const": "f"}}, "required": ["unit"]},
                "then": {"required": ["fahrenheit"]},
            },
            {"unit": "f", "fahrenheit": 50},
            {"unit": "f"},
            ("", "missing required property 'fahrenheit'"),
        ),
        (
            {"type": "object", "dependentRequired": {"start": ["end"]}},
            {"start": 1, "end": 2},
            {"start": 1},
            ("", "'end' is a dependency of 'start'"),
        ),
        (
            {"type": "string", "format": "date"},
            "2024-02-29",
            "yesterday",
            ("", "'yesterday' is not a 'date'"),
        ),
        (
            {"not": {"type": "string"}},
            1,
            "x",
            ("", "'x' should not be valid under {'type': 'string'}"),
        ),
        (
            {"type": "array", "contains": {"type": "integer"}},
            ["a", 1],
            ["a"],
            ("", "['a'] does not contain items matching the given schema"),
        ),
    ],
)
def test_schema_errors_checks_every_keyword(
    schema: dict[str, Any], valid: Any, invalid: Any, error: tuple[str, str]
) -> None:
    assert schema_errors(valid, schema) == []
    assert schema_errors(invalid, schema) == [error]


@pytest.mark.parametrize(
    ("schema", "reason"),
    [
        (
            {"properties": {"a": {"$ref": "https://example.com/a.json"}}},
            "cannot check the value: $ref 'https://example.com/a.json' does not "
            "resolve (remote references are not fetched)",
        ),
        (
            {"properties": {"a": {"$ref": "#/$defs/Missing"}}},
            "cannot check the value: $ref '#/$defs/Missing' points to nothing in "
            "the schema",
        ),
        (
            {"$schema": "https://example.com/my-dialect", "type": "object"},
            "cannot check the value: unknown $schema 'https://example.com/my-dialect'",
        ),
        (
            {"type": "object", "properties": {"a": {"type": "integr"}}},
            "cannot check the value: the schema is invalid: 'integr' is not valid "
            "under any of the given schemas",
        ),
        (
            {"type": "object", "properties": {"a": {"minLength": -1}}},
            "cannot check the value: the schema is invalid: -1 is less than the "
            "minimum of 0",
        ),
    ],
)
def test_schema_errors_fails_closed_on_what_it_cannot_check(
    schema: dict[str, Any], reason: str
) -> None:
    assert schema_errors({"a": "x"}, schema) == [("", reason)]


def test_tool_call_gate_fails_closed_on_a_remote_ref() -> None:
    remote = {
        "type": "function",
        "function": {
            "name": "book",
            "parameters": {
                "type": "object",
                "properties": {"when": {"$ref": "https://example.com/date.json"}},
            },
        },
    }
    result = judge(ToolCallGate(), tool_call("book", {"when": "now"}), tools=[remote])
    assert not result.passed
    assert result.reason == (
        "book: cannot check the value: $ref 'https://example.com/date.json' does "
        "not resolve (remote references are not fetched)"
    )


def test_structured_output_gate_checks_unique_items_in_a_json_schema() -> None:
    schema = {
        "title": "Tags",
        "type": "object",
        "properties": {"tags": {"type": "array", "uniqueItems": True}},
    }
    gate = StructuredOutputGate(schema)
    assert judge(gate, '{"tags": ["a", "b"]}').passed
    result = judge(gate, '{"tags": ["a", "a"]}')
    assert not result.passed
    assert result.reason == (
        "Tags: 1 validation error: tags: ['a', 'a'] has non-unique elements"
    )


# --- StructuredOutputGate --------------------------------------------------------------


class Person(BaseModel):
    name: str
    age: int


class PersonDict(TypedDict):
    name: str
    age: int


class PersonDictExt(typing_extensions.TypedDict):
    name: str
    age: int


PERSON_JSON = {
    "title": "Person",
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
}
SCHEMAS = [
    Person,
    PersonDict,
    PersonDictExt,
    PERSON_JSON,
    convert_to_openai_tool(Person),
]


@pytest.mark.parametrize("schema", SCHEMAS)
@pytest.mark.parametrize(
    "answer",
    [
        '{"name": "Ada", "age": 36}',
        '```json\n{"name": "Ada", "age": 36}\n```',
        'Here you go:\n```\n{"name": "Ada", "age": 36}\n```\nAnything else?',
        'Sure: {"name": "Ada", "age": 36}.',
        tool_call("Person", {"name": "Ada", "age": 36}),
    ],
)
def test_structured_output_gate_passes_valid_data(
    schema: Any, answer: AIMessage | str
) -> None:
    result = judge(StructuredOutputGate(schema), answer)
    assert result.passed, result.reason
    assert result.score == 1.0
    assert result.reason.startswith("valid ")


@pytest.mark.parametrize("schema", SCHEMAS)
def test_structured_output_gate_names_the_validation_error(schema: Any) -> None:
    result = judge(StructuredOutputGate(schema), '{"name": "Ada"}')
    assert not result.passed
    assert result.reason.startswith("Person")
    assert "1 validation error" in result.reason
    assert "age" in result.reason
    wrong = judge(
        StructuredOutputGate(schema), tool_call("Person", {"name": 1, "age": 2})
    )
    assert not wrong.passed
    assert "name" in wrong.reason


def test_structured_output_gate_fails_on_text_that_is_not_json() -> None:
    gate = StructuredOutputGate(Person)
    result = judge(gate, "Ada is 36.")
    assert not result.passed
    assert result.reason.startswith("the answer is not JSON")
    fenced = judge(gate, "```json\n{name: Ada}\n```")
    assert fenced.reason.startswith("the fenced block is not valid JSON")
    assert judge(gate, "").reason == "the answer is empty"


def test_structured_output_gate_reports_pydantic_errors_by_field() -> None:
    result = judge(StructuredOutputGate(Person), '{"name": "Ada", "age": "old"}')
    assert result.reason.startswith("Person: 1 validation error: age: ")
    assert result.details["errors"][0].startswith(
        "age: Input should be a valid integer"
    )


def test_structured_output_gate_bad_schema_fails_at_construction() -> None:
    with pytest.raises(TypeError, match="Pydantic model class, a TypedDict"):
        StructuredOutputGate(42)
    with pytest.raises(ValueError, match="empty dict"):
        StructuredOutputGate({})
    assert StructuredOutputGate(schema=Person).schema_name == "Person"


def test_parse_json_answer_prefers_the_whole_text() -> None:
    assert parse_json_answer(" [1, 2] ") == [1, 2]
    assert parse_json_answer('prose {"a": 1} more {"b": 2}') == {"a": 1}
    with pytest.raises(ValueError, match="not JSON"):
        parse_json_answer("no json here")


def test_parse_json_answer_does_not_complete_truncated_json() -> None:
    # parse_json_markdown completes partial JSON by default; a gate must not.
    with pytest.raises(ValueError, match="the fenced block is not valid JSON"):
        parse_json_answer('```json\n{"name": "Ada", "age": 3\n```')
    with pytest.raises(ValueError, match="the answer is not JSON"):
        parse_json_answer('{"name": "Ada", "age": 3')


# --- a cascade with bound tools ---------------------------------------------------------

BROKEN_CALLS = [
    ("get_wether", {"city": "Oslo", "days": 2}, "unknown tool 'get_wether'"),
    ("get_weather", {"days": 2}, "missing required argument 'city'"),
    ("get_weather", {"city": "Oslo", "days": "two"}, "expected integer, got string"),
]


@pytest.mark.parametrize(("name", "args", "problem"), BROKEN_CALLS)
def test_cascade_escalates_a_broken_tool_call(
    mode: str, name: str, args: dict[str, Any], problem: str
) -> None:
    cheap = ScriptedChatModel(model="cheap", script=[tool_call(name, args)])
    strong = ScriptedChatModel(
        model="strong",
        script=[tool_call("get_weather", {"city": "Oslo", "days": 2}, "call_9")],
    )
    cascade = CascadingChatModel(models=[cheap, strong], gates=[ToolCallGate()])
    answer = call(cascade.bind_tools([get_weather]), mode, "Weather in Oslo?")
    assert [(tc["name"], tc["args"]) for tc in answer.tool_calls] == [
        ("get_weather", {"city": "Oslo", "days": 2})
    ]
    meta = cascade_meta(answer)
    assert meta["tier"] == 1
    assert meta["escalated"] is True
    assert problem in meta["attempts"][0]["reason"]
    assert meta["attempts"][0]["accepted"] is False
    assert cheap.calls[0]["tools"] == [WEATHER]


def test_cascade_keeps_a_valid_cheap_tool_call(mode: str) -> None:
    cheap = ScriptedChatModel(
        model="cheap", script=[tool_call("get_weather", {"city": "Oslo"})]
    )
    strong = ScriptedChatModel(model="strong", reply="unused")
    cascade = CascadingChatModel(
        models=[cheap, strong], gates=[all_of(ToolCallGate(), ArithmeticGate())]
    )
    answer = call(cascade.bind_tools([get_weather]), mode, "Weather in Oslo?")
    assert answer.tool_calls[0]["args"] == {"city": "Oslo"}
    assert cascade_meta(answer)["tier"] == 0
    assert strong.calls == []


@pytest.mark.parametrize("mode", ["invoke", "ainvoke"])
def test_agent_runs_the_strong_tiers_valid_call_not_the_cheap_broken_one(
    mode: str,
) -> None:
    ran: list[dict[str, Any]] = []

    @tool
    def get_forecast(city: str, days: int) -> str:
        """Get the forecast for a city."""
        ran.append({"city": city, "days": days})
        return f"Sunny in {city} for the next {days} days."

    cheap = ScriptedChatModel(
        model="cheap",
        script=[
            tool_call("get_forcast", {"city": "Oslo", "days": 2}),  # invented tool
            tool_call("get_forecast", {"city": "Oslo"}, "call_2"),  # missing days
        ],
    )
    strong = ScriptedChatModel(
        model="strong",
        script=[
            tool_call("get_forecast", {"city": "Oslo", "days": 2}, "call_ok"),
            AIMessage("It will be sunny in Oslo for the next 2 days."),
        ],
    )
    cascade = CascadingChatModel(models=[cheap, strong], gates=[ToolCallGate()])
    agent = create_agent(cascade, tools=[get_forecast])
    request: Any = {"messages": [HumanMessage("Forecast for Oslo, 2 days?")]}
    if mode == "invoke":
        state = agent.invoke(request)
    else:
        state = asyncio.run(agent.ainvoke(request))

    assert ran == [{"city": "Oslo", "days": 2}]
    messages = state["messages"]
    final = messages[-1]
    assert isinstance(final, AIMessage)
    assert final.text == "It will be sunny in Oslo for the next 2 days."
    tool_messages = [m for m in messages if isinstance(m, ToolMessage)]
    assert [m.content for m in tool_messages] == ["Sunny in Oslo for the next 2 days."]
    assert tool_messages[0].tool_call_id == "call_ok"
    ai_messages = [m for m in messages if isinstance(m, AIMessage)]
    assert [cascade_meta(m)["tier"] for m in ai_messages] == [1, 1]
    reasons = [cascade_meta(m)["attempts"][0]["reason"] for m in ai_messages]
    assert reasons == [
        "unknown tool 'get_forcast' (bound: get_forecast)",
        "get_forecast: missing required argument 'days'",
    ]
    assert cheap.calls[0]["tools"][0]["function"]["name"] == "get_forecast"
