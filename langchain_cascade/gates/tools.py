"""Check tool calls and structured answers against their schemas.

A cheap model's most damaging mistakes in an agent are not wrong prose but broken
tool calls: a tool that does not exist, a missing argument, a string where an
integer belongs. :class:`ToolCallGate` catches them before the agent runs the
call; :class:`StructuredOutputGate` checks that an answer is the JSON object it
was asked for.

Both validate with a small JSON-schema reader of their own (the subset tool
schemas use), so the package needs no ``jsonschema`` dependency.
"""

from __future__ import annotations

import json
import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.utils.function_calling import convert_to_json_schema
from pydantic import BaseModel, ConfigDict, PrivateAttr, TypeAdapter, ValidationError
from pydantic import Field as PydanticField
from typing_extensions import is_typeddict

from langchain_cascade.gates.base import Gate, GateInput, GateResult

__all__ = [
    "StructuredOutputGate",
    "ToolCallGate",
    "parse_json_answer",
    "schema_errors",
]

_SHOWN_ERRORS = 3

# --- a JSON-schema subset -----------------------------------------------------------

_TYPE_NAMES = ("null", "boolean", "integer", "number", "string", "array", "object")


_PYTHON_TYPES: tuple[tuple[type | tuple[type, ...], str], ...] = (
    (type(None), "null"),
    (bool, "boolean"),
    (int, "integer"),
    (str, "string"),
    ((list, tuple), "array"),
    (Mapping, "object"),
)


def _json_type(value: object) -> str:
    """The JSON type of a Python value (``integer`` for whole numbers)."""
    if isinstance(value, float):
        return "integer" if value.is_integer() else "number"
    for python_type, name in _PYTHON_TYPES:
        if isinstance(value, python_type):
            return name
    return type(value).__name__


def _is_type(value: object, expected: str) -> bool:
    actual = _json_type(value)
    if expected == "number":
        return actual in ("integer", "number")
    return actual == expected


def _show(value: object) -> str:
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


class _Validator:
    """Collects ``(path, message)`` errors of a value against a JSON schema."""

    def __init__(self, root: Mapping[str, Any], noun: str) -> None:
        self.root = root
        self.noun = noun
        self.errors: list[tuple[str, str]] = []

    def check(self, value: object, schema: object, path: str) -> None:
        if schema is True or not isinstance(schema, Mapping):
            return
        schema = self._resolve(schema)
        if "$ref" in schema:
            return  # a reference we cannot follow: nothing to check against
        if not self._check_type(value, schema, path):
            return
        self._check_value(value, schema, path)
        self._check_combinators(value, schema, path)
        if isinstance(value, Mapping):
            self._check_object(value, schema, path)
        elif isinstance(value, list | tuple):
            self._check_array(value, schema, path)

    def _add(self, path: str, message: str) -> None:
        self.errors.append((path, message))

    def _resolve(self, schema: Mapping[str, Any]) -> Mapping[str, Any]:
        seen: set[str] = set()
        while isinstance(ref := schema.get("$ref"), str) and ref.startswith("#"):
            if ref in seen:
                break
            seen.add(ref)
            target: Any = self.root
            for raw in ref[1:].split("/")[1:]:
                part = raw.replace("~1", "/").replace("~0", "~")
                if not isinstance(target, Mapping) or part not in target:
                    return schema
                target = target[part]
            if not isinstance(target, Mapping):
                return schema
            siblings = {k: v for k, v in schema.items() if k != "$ref"}
            schema = {**target, **siblings}
        return schema

    def _check_type(self, value: object, schema: Mapping[str, Any], path: str) -> bool:
        expected = schema.get("type")
        if expected is None:
            return True
        options = [expected] if isinstance(expected, str) else list(expected)
        if any(_is_type(value, t) for t in options):
            return True
        wanted = " or ".join(str(t) for t in options)
        self._add(path, f"expected {wanted}, got {_json_type(value)}")
        return False

    def _check_value(self, value: object, schema: Mapping[str, Any], path: str) -> None:
        if "enum" in schema and not any(
            _equal(value, option) for option in schema["enum"]
        ):
            options = ", ".join(_show(o) for o in schema["enum"])
            self._add(path, f"{_show(value)} is not one of {options}")
        if "const" in schema and not _equal(value, schema["const"]):
            self._add(path, f"expected {_show(schema['const'])}, got {_show(value)}")
        if isinstance(value, int | float) and not isinstance(value, bool):
            self._check_number(value, schema, path)
        if isinstance(value, str):
            self._check_string(value, schema, path)

    def _check_number(self, value: float, schema: Mapping[str, Any], path: str) -> None:
        bounds: tuple[tuple[str, Callable[[float, float], bool], str], ...] = (
            ("minimum", operator.ge, ">="),
            ("maximum", operator.le, "<="),
            ("exclusiveMinimum", operator.gt, ">"),
            ("exclusiveMaximum", operator.lt, "<"),
        )
        for key, holds, sign in bounds:
            bound = schema.get(key)
            if not isinstance(bound, int | float) or isinstance(bound, bool):
                continue
            if not holds(value, bound):
                self._add(path, f"{_show(value)} is not {sign} {_show(bound)}")
        step = schema.get("multipleOf")
        if isinstance(step, int | float) and step > 0:
            ratio = value / step
            if not math.isclose(ratio, round(ratio), abs_tol=1e-9):
                self._add(path, f"{_show(value)} is not a multiple of {_show(step)}")

    def _check_string(self, value: str, schema: Mapping[str, Any], path: str) -> None:
        low, high = schema.get("minLength"), schema.get("maxLength")
        if isinstance(low, int) and len(value) < low:
            self._add(path, f"shorter than {low} characters")
        if isinstance(high, int) and len(value) > high:
            self._add(path, f"longer than {high} characters")
        pattern = schema.get("pattern")
        if isinstance(pattern, str):
            try:
                if re.search(pattern, value) is None:
                    self._add(path, f"{_show(value)} does not match {pattern!r}")
            except re.error:
                pass  # a pattern Python cannot read is not the answer's fault

    def _check_combinators(
        self, value: object, schema: Mapping[str, Any], path: str
    ) -> None:
        for part in schema.get("allOf") or []:
            self.check(value, part, path)
        for key in ("anyOf", "oneOf"):
            branches = schema.get(key)
            if isinstance(branches, list) and branches:
                self._check_branches(value, branches, path, exactly_one=key == "oneOf")

    def _check_branches(
        self, value: object, branches: list[Any], path: str, *, exactly_one: bool
    ) -> None:
        results = []
        for branch in branches:
            sub = _Validator(self.root, self.noun)
            sub.check(value, branch, path)
            results.append((branch, sub.errors))
        passing = sum(1 for _, errors in results if not errors)
        if passing == 1 or (passing > 1 and not exactly_one):
            return
        if passing > 1:
            self._add(path, f"matches {passing} of the schemas, expected exactly one")
            return
        # Report the branch of the value's own type ("string or null" given 3).
        typed = [
            errors
            for branch, errors in results
            if not (
                errors and errors[0][0] == path and errors[0][1].startswith("expected")
            )
        ]
        if len(typed) == 1:
            self.errors.extend(typed[0])
            return
        wanted = []
        for branch, _ in results:
            resolved = self._resolve(branch) if isinstance(branch, Mapping) else {}
            kind = resolved.get("type")
            wanted.append(kind if isinstance(kind, str) else "a schema")
        unique = " or ".join(dict.fromkeys(wanted))
        self._add(path, f"expected {unique}, got {_json_type(value)}")

    def _check_object(
        self, value: Mapping[str, Any], schema: Mapping[str, Any], path: str
    ) -> None:
        properties = schema.get("properties")
        properties = properties if isinstance(properties, Mapping) else {}
        what = self.noun if not path else "property"
        for name in schema.get("required") or []:
            if name not in value:
                self._add(path, f"missing required {what} {name!r}")
        extra = schema.get("additionalProperties", True)
        for name, item in value.items():
            where = f"{path}.{name}" if path else str(name)
            if name in properties:
                self.check(item, properties[name], where)
            elif extra is False:
                self._add(path, f"unexpected {what} {name!r}")
            elif isinstance(extra, Mapping):
                self.check(item, extra, where)

    def _check_array(
        self, value: Sequence[Any], schema: Mapping[str, Any], path: str
    ) -> None:
        low, high = schema.get("minItems"), schema.get("maxItems")
        if isinstance(low, int) and len(value) < low:
            self._add(path, f"fewer than {low} items")
        if isinstance(high, int) and len(value) > high:
            self._add(path, f"more than {high} items")
        prefix = schema.get("prefixItems")
        prefix = prefix if isinstance(prefix, list) else []
        items = schema.get("items")
        for i, item in enumerate(value):
            where = f"{path}[{i}]"
            if i < len(prefix):
                self.check(item, prefix[i], where)
            elif isinstance(items, list):  # the old tuple form of "items"
                if i < len(items):
                    self.check(item, items[i], where)
            elif items is not None:
                self.check(item, items, where)


def _equal(value: object, other: object) -> bool:
    if isinstance(value, bool) != isinstance(other, bool):
        return False
    return value == other


def schema_errors(
    value: object, schema: Mapping[str, Any], *, noun: str = "property"
) -> list[tuple[str, str]]:
    """Validate a value against a JSON schema (the subset tool schemas use).

    Checks ``type`` (``string``, ``number``, ``integer``, ``boolean``, ``array``,
    ``object``, ``null`` or a list of them), ``enum``, ``const``, ``properties``,
    ``required``, ``additionalProperties``, ``items``, ``prefixItems``, ``anyOf``,
    ``oneOf``, ``allOf``, local ``$ref`` s, number bounds, ``multipleOf``, string
    lengths and ``pattern``, and array lengths. Other keywords are ignored.

    Args:
        value: The parsed JSON value.
        schema: The JSON schema.
        noun: What the top-level object's properties are called in messages
            (``"argument"`` for tool calls).

    Returns:
        ``(path, message)`` pairs, empty when the value is valid; the path is
        ``""`` for the value itself, else like ``"location.city"`` or ``"days[0]"``.

    Example:
        .. code-block:: python

            from langchain_cascade.gates.tools import schema_errors

            schema = {"type": "object", "properties": {"days": {"type": "integer"}}}
            schema_errors({"days": "3"}, schema)  # [('days', 'expected integer, got string')]
    """
    validator = _Validator(schema, noun)
    validator.check(value, schema, "")
    return validator.errors


# --- tool calls ----------------------------------------------------------------------


def _tool_name_and_schema(tool: Mapping[str, Any]) -> tuple[str, Any]:
    """A bound tool's name and parameter schema, in OpenAI or similar format."""
    function = tool.get("function")
    if isinstance(function, Mapping):
        return str(function.get("name", "")), function.get("parameters")
    name = tool.get("name") or tool.get("type") or ""
    return str(name), tool.get("parameters", tool.get("input_schema"))


def _joined(problems: Sequence[str]) -> str:
    shown = "; ".join(problems[:_SHOWN_ERRORS])
    more = len(problems) - _SHOWN_ERRORS
    return shown + (f"; and {more} more" if more > 0 else "")


class ToolCallGate(Gate):
    """Fails when a tool call names an unbound tool or its arguments do not fit.

    With tools bound (``GateInput.tools``), every call in ``response.tool_calls``
    must name one of them and its arguments must validate against that tool's
    JSON schema (required arguments, types, enums, nested objects and arrays,
    ``additionalProperties: false``). Calls whose arguments are not valid JSON
    (``response.invalid_tool_calls``) fail too. The score is the share of valid
    calls; the reason names each problem, like
    ``"get_weather: missing required argument 'city'"``.

    An answer without tool calls passes (the reason says so) unless
    ``require_tool_call`` is set. Without bound tools the names cannot be
    checked: only malformed calls fail.

    Example:
        .. code-block:: python

            from langchain_cascade import CascadingChatModel
            from langchain_cascade.gates import ToolCallGate

            cascade = CascadingChatModel(models=[cheap, strong], gates=[ToolCallGate()])
            agent_model = cascade.bind_tools([get_weather])  # broken calls escalate
    """

    require_tool_call: bool = False
    """Fail answers that call no tool."""

    def evaluate(self, gate_input: GateInput, config: RunnableConfig) -> GateResult:
        """Check every tool call of the answer against the bound tools."""
        response = gate_input.response
        bound = dict(_tool_name_and_schema(t) for t in gate_input.tools)
        calls: list[dict[str, Any]] = []
        for call in response.tool_calls:
            errors = self._call_errors(call["name"], call["args"], bound)
            calls.append({"name": call["name"], "id": call.get("id"), "errors": errors})
        for invalid in response.invalid_tool_calls:
            name = invalid.get("name") or "(unnamed)"
            error = invalid.get("error")
            detail = f" ({error})" if error else ""
            calls.append(
                {
                    "name": name,
                    "id": invalid.get("id"),
                    "errors": [f"{name}: arguments are not valid JSON{detail}"],
                }
            )
        details = {
            "bound_tools": list(bound),
            "tool_calls": [{**c, "valid": not c["errors"]} for c in calls],
        }
        if not calls:
            passed = not self.require_tool_call
            return GateResult(
                passed=passed,
                score=float(passed),
                reason="no tool calls" + ("" if passed else ", and one is required"),
                details=details,
            )
        problems = [e for c in calls for e in c["errors"]]
        valid = sum(1 for c in calls if not c["errors"])
        score = valid / len(calls)
        if problems:
            return GateResult(
                passed=False, score=score, reason=_joined(problems), details=details
            )
        checked = "" if bound else " (no tools bound: names not checked)"
        noun = "call" if len(calls) == 1 else "calls"
        return GateResult(
            passed=True,
            score=score,
            reason=f"{len(calls)} valid tool {noun}{checked}",
            details=details,
        )

    def evaluate_partial(self, gate_input: GateInput) -> GateResult | None:
        """Fail as soon as a streamed tool call names a tool that is not bound."""
        bound = [_tool_name_and_schema(t)[0] for t in gate_input.tools]
        names = [c["name"] for c in gate_input.response.tool_calls]
        names += [c.get("name") or "" for c in gate_input.response.invalid_tool_calls]
        # A name streamed in pieces is judged only once no bound name extends it.
        unknown = [n for n in names if n and not any(b.startswith(n) for b in bound)]
        if not bound:
            return None
        if not unknown:
            return None
        return GateResult(
            passed=False,
            score=None,
            reason=f"unknown tool {unknown[0]!r} (bound: {', '.join(bound)})",
        )

    @staticmethod
    def _call_errors(name: str, args: Any, bound: Mapping[str, Any]) -> list[str]:
        if not bound:
            return []
        if name not in bound:
            names = ", ".join(bound)
            return [f"unknown tool {name!r} (bound: {names})"]
        schema = bound[name]
        if not isinstance(schema, Mapping):
            return []
        return [
            f"{name}.{path}: {message}" if path else f"{name}: {message}"
            for path, message in schema_errors(args, schema, noun="argument")
        ]


# --- structured output -----------------------------------------------------------

_FENCE = re.compile(r"```[ \t]*(?:json|JSON)?[ \t]*\n?(.*?)```", re.DOTALL)


def parse_json_answer(text: str) -> Any:
    """Read the JSON value an answer gives, tolerating fences and prose around it.

    Tries the whole text, then the first fenced block (```` ```json ... ``` ````),
    then the first ``{...}`` or ``[...]`` in the text.

    Args:
        text: The answer's text.

    Returns:
        The parsed value.

    Raises:
        ValueError: If the text holds no JSON value.
    """
    stripped = text.strip()
    if not stripped:
        msg = "the answer is empty"
        raise ValueError(msg)
    try:
        return json.loads(stripped)
    except json.JSONDecodeError as exc:
        first_error = exc
    fenced = _FENCE.search(stripped)
    if fenced is not None:
        try:
            return json.loads(fenced.group(1))
        except json.JSONDecodeError as exc:
            msg = f"the fenced block is not valid JSON: {exc}"
            raise ValueError(msg) from exc
    decoder = json.JSONDecoder()
    for match in re.finditer(r"[{\[]", stripped):
        try:
            value, _ = decoder.raw_decode(stripped, match.start())
        except json.JSONDecodeError:
            continue
        return value
    msg = f"the answer is not JSON: {first_error}"
    raise ValueError(msg) from first_error


def _is_model_class(value: object) -> bool:
    return isinstance(value, type) and issubclass(value, BaseModel)


def _json_schema_of(schema: Mapping[str, Any]) -> Mapping[str, Any]:
    """The JSON schema inside an OpenAI or Anthropic tool dict, or the dict itself."""
    function = schema.get("function")
    if isinstance(function, Mapping) and isinstance(
        function.get("parameters"), Mapping
    ):
        return function["parameters"]  # type: ignore[no-any-return]
    if "name" in schema and isinstance(schema.get("parameters"), Mapping):
        return schema["parameters"]  # type: ignore[no-any-return]
    if "name" in schema and isinstance(schema.get("input_schema"), Mapping):
        return schema["input_schema"]  # type: ignore[no-any-return]
    return schema


def _pydantic_errors(error: ValidationError) -> list[str]:
    return [
        (".".join(str(part) for part in e["loc"]) or "(root)") + f": {e['msg']}"
        for e in error.errors()
    ]


class StructuredOutputGate(Gate):
    """Fails when the answer is not valid data of a schema.

    The data is the first tool call's arguments when the answer has tool calls
    (``with_structured_output``'s function calling), else the text read as JSON
    (```` ```json ```` fences and prose around the object are tolerated). The
    schema may be a Pydantic model class, a ``TypedDict`` or a JSON schema dict
    (or an OpenAI tool dict); Pydantic validates the first two, so their own
    validators run too. The reason names the validation errors.

    Example:
        .. code-block:: python

            from pydantic import BaseModel
            from langchain_cascade.gates import StructuredOutputGate


            class Person(BaseModel):
                name: str
                age: int


            gate = StructuredOutputGate(Person)
    """

    answer_schema: Any = PydanticField(alias="schema")
    """The schema: a Pydantic model class, a TypedDict or a JSON schema dict."""

    _adapter: TypeAdapter[Any] | None = PrivateAttr(default=None)
    _json_schema: Mapping[str, Any] = PrivateAttr(default_factory=dict)

    model_config = ConfigDict(populate_by_name=True, arbitrary_types_allowed=True)

    def __init__(self, schema: Any = None, /, **data: Any) -> None:
        if schema is not None:
            data["schema"] = schema
        super().__init__(**data)

    def model_post_init(self, context: Any, /) -> None:
        """Check the schema and prepare its validator."""
        schema = self.answer_schema
        if _is_model_class(schema) or is_typeddict(schema):
            try:
                self._adapter = TypeAdapter(schema)
            except Exception:  # noqa: BLE001 - e.g. typing.TypedDict on Python 3.11
                self._json_schema = convert_to_json_schema(schema)
            return
        if isinstance(schema, Mapping):
            json_schema = _json_schema_of(schema)
            if not json_schema:
                msg = "schema is an empty dict: give a JSON schema with 'type' or 'properties'"
                raise ValueError(msg)
            self._json_schema = json_schema
            return
        msg = (
            "schema must be a Pydantic model class, a TypedDict or a JSON schema dict, "
            f"got {type(schema).__name__}"
        )
        raise TypeError(msg)

    @property
    def schema_name(self) -> str:
        """The schema's name for reasons."""
        schema = self.answer_schema
        if isinstance(schema, type):
            return schema.__name__
        title = self._json_schema.get("title")
        if isinstance(schema, Mapping):
            function = schema.get("function")
            name = function.get("name") if isinstance(function, Mapping) else None
            title = name or schema.get("name") or title
        return str(title or "schema")

    def evaluate(self, gate_input: GateInput, config: RunnableConfig) -> GateResult:
        """Read the answer's data and validate it against the schema."""
        data, source, problem = self._answer_data(gate_input.response)
        name = self.schema_name
        if problem is not None:
            return GateResult(
                passed=False, score=0.0, reason=problem, details={"source": source}
            )
        errors = self._errors(data)
        details: dict[str, Any] = {"source": source, "errors": errors}
        if errors:
            noun = "error" if len(errors) == 1 else "errors"
            return GateResult(
                passed=False,
                score=0.0,
                reason=f"{name}: {len(errors)} validation {noun}: {_joined(errors)}",
                details=details,
            )
        return GateResult(
            passed=True,
            score=1.0,
            reason=f"valid {name} ({source})",
            details=details,
        )

    def _answer_data(self, message: AIMessage) -> tuple[Any, str, str | None]:
        if message.tool_calls:
            call = message.tool_calls[0]
            return call["args"], f"tool call {call['name']!r}", None
        if message.invalid_tool_calls:
            invalid = message.invalid_tool_calls[0]
            error = invalid.get("error")
            detail = f": {error}" if error else ""
            return (
                None,
                "tool call",
                f"tool call {invalid.get('name')!r} has arguments that are not "
                f"valid JSON{detail}",
            )
        try:
            return parse_json_answer(message.text), "text", None
        except ValueError as exc:
            return None, "text", str(exc)

    def _errors(self, data: Any) -> list[str]:
        if self._adapter is not None:
            try:
                self._adapter.validate_python(data)
            except ValidationError as exc:
                return _pydantic_errors(exc)
            return []
        return [
            f"{path}: {message}" if path else message
            for path, message in schema_errors(data, self._json_schema, noun="field")
        ]
