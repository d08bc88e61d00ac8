"""Check tool calls and structured answers against their schemas.

A cheap model's most damaging mistakes in an agent are not wrong prose but broken
tool calls: a tool that does not exist, a missing argument, a string where an
integer belongs. :class:`ToolCallGate` catches them before the agent runs the
call; :class:`StructuredOutputGate` checks that an answer is the JSON object it
was asked for.

Both validate JSON schemas with the ``jsonschema`` library (every keyword of the
schema's dialect) and fail closed on what it cannot check.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from jsonschema import Draft202012Validator, ValidationError
from jsonschema.exceptions import SchemaError
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for
from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.utils.function_calling import convert_to_json_schema
from langchain_core.utils.json import parse_json_markdown
from pydantic import BaseModel, ConfigDict, PrivateAttr, TypeAdapter
from pydantic import Field as PydanticField
from pydantic import ValidationError as PydanticValidationError
from referencing.exceptions import PointerToNowhere, Unresolvable
from typing_extensions import is_typeddict

from langchain_cascade.gates.base import Gate, GateInput, GateResult

__all__ = [
    "StructuredOutputGate",
    "ToolCallGate",
    "parse_json_answer",
    "schema_errors",
]

_SHOWN_ERRORS = 3

# --- JSON-schema validation (the jsonschema library) -------------------------------


def _json_type(value: object) -> str:
    """The JSON type of a Python value (``integer`` for whole numbers)."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, float):
        return "integer" if value.is_integer() else "number"
    names: tuple[tuple[type | tuple[type, ...], str], ...] = (
        (type(None), "null"),
        (int, "integer"),
        (str, "string"),
        ((list, tuple), "array"),
        (Mapping, "object"),
    )
    for python_type, name in names:
        if isinstance(value, python_type):
            return name
    return type(value).__name__


def _show(value: object) -> str:
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def _path(error: ValidationError) -> str:
    path = ""
    for part in error.absolute_path:
        path += (
            f"[{part}]"
            if isinstance(part, int)
            else (f".{part}" if path else str(part))
        )
    return path


_REQUIRED = re.compile(r"^(.+) is a required property$")
_BOUNDS = {
    "minimum": ">=",
    "maximum": "<=",
    "exclusiveMinimum": ">",
    "exclusiveMaximum": "<",
}


class _SchemaUncheckableError(Exception):
    """The schema itself cannot be used: the value is not checked (fail closed)."""


@functools.lru_cache(maxsize=256)
def _validator(schema_json: str) -> Validator:
    """A checked validator for a schema (given as canonical JSON, for the cache).

    Raises:
        _SchemaUncheckableError: When the schema is invalid or names a dialect
            (``$schema``) the library does not know.
    """
    schema = json.loads(schema_json)
    unknown = object()
    cls = validator_for(schema, default=cast("Any", unknown))
    if cls is unknown:
        if isinstance(schema, Mapping) and "$schema" in schema:
            msg = f"unknown $schema {schema['$schema']!r}"
            raise _SchemaUncheckableError(msg)
        cls = Draft202012Validator
    try:
        cls.check_schema(schema)
    except SchemaError as exc:
        msg = f"the schema is invalid: {exc.message}"
        raise _SchemaUncheckableError(msg) from exc
    # No registry retrieval: a remote $ref is never fetched, it is unresolvable.
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def _extras(error: ValidationError, what: str) -> list[str]:
    """``additionalProperties: false``: one message per unexpected name."""
    schema: Any = error.schema
    instance: Any = error.instance
    known = schema.get("properties") or {}
    patterns = schema.get("patternProperties") or {}
    return [
        f"unexpected {what} {name!r}"
        for name in instance
        if name not in known and not any(re.search(p, name) for p in patterns)
    ]


def _types(expected: Any) -> str:
    return " or ".join([expected] if isinstance(expected, str) else list(expected))


def _bound(sign: str) -> Callable[[Any, Any], str]:
    def message(value: Any, expected: Any) -> str:
        return f"{_show(value)} is not {sign} {_show(expected)}"

    return message


_MESSAGES: dict[str, Callable[[Any, Any], str]] = {
    "type": lambda value, expected: (
        f"expected {_types(expected)}, got {_json_type(value)}"
    ),
    "enum": lambda value, expected: (
        f"{_show(value)} is not one of {', '.join(map(_show, expected))}"
    ),
    "const": lambda value, expected: f"expected {_show(expected)}, got {_show(value)}",
    "minLength": lambda _, expected: f"shorter than {expected} characters",
    "maxLength": lambda _, expected: f"longer than {expected} characters",
    "minItems": lambda _, expected: f"fewer than {expected} items",
    "maxItems": lambda _, expected: f"more than {expected} items",
    "pattern": lambda value, expected: f"{_show(value)} does not match {expected!r}",
    **{keyword: _bound(sign) for keyword, sign in _BOUNDS.items()},
}


def _explain(error: ValidationError, validator: Validator, noun: str) -> list[str]:
    """Readable messages for one jsonschema error (several for several extras).

    The common keywords get short messages of their own; any other keyword keeps
    the library's message.
    """
    keyword = str(error.validator)
    what = noun if not error.absolute_path else "property"
    if keyword in ("anyOf", "oneOf"):
        return _explain_branches(error, validator, noun)
    if keyword == "additionalProperties" and error.validator_value is False:
        return _extras(error, what)
    if keyword == "required" and (found := _REQUIRED.match(error.message)):
        return [f"missing required {what} {found.group(1)}"]
    if keyword in _MESSAGES:
        return [_MESSAGES[keyword](error.instance, error.validator_value)]
    return [error.message]


def _explain_branches(
    error: ValidationError, validator: Validator, noun: str
) -> list[str]:
    """``anyOf``/``oneOf``: the branch of the value's own type, else the types."""
    branches: Any = error.validator_value
    instance: Any = error.instance
    passing = len(
        [b for b in branches if validator.evolve(schema=b).is_valid(instance)]
    )
    if passing > 1:
        return [f"matches {passing} of the schemas, expected exactly one"]
    by_branch: dict[int, list[ValidationError]] = {}
    for sub in error.context or []:
        by_branch.setdefault(int(sub.schema_path[0]), []).append(sub)
    typed = [
        errors
        for errors in by_branch.values()
        if not (errors[0].validator == "type" and not errors[0].relative_path)
    ]
    if len(typed) == 1:
        return [m for sub in typed[0] for m in _explain(sub, validator, noun)]
    kinds = [
        str(b["type"])
        if isinstance(b, Mapping) and isinstance(b.get("type"), str)
        else "a schema"
        for b in branches
    ]
    return [f"expected {' or '.join(dict.fromkeys(kinds))}, got {_json_type(instance)}"]


def schema_errors(
    value: object, schema: Mapping[str, Any], *, noun: str = "property"
) -> list[tuple[str, str]]:
    """Validate a value against a JSON schema with the ``jsonschema`` library.

    Every keyword of the schema's dialect (``$schema``, default 2020-12) is
    checked, ``format`` included where the library knows the format. What cannot
    be checked fails closed, as one error at the root naming why: an invalid
    schema, an unknown ``$schema``, a ``$ref`` that does not resolve inside the
    schema (remote references are never fetched), a pattern Python cannot read.

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
    try:
        # The schema's JSON text keys the cache (its key order kept: it is the
        # order errors are reported in).
        validator = _validator(json.dumps(schema, default=repr))
        return [
            (_path(error), message)
            for error in validator.iter_errors(cast("Any", value))
            for message in _explain(error, validator, noun)
        ]
    except _SchemaUncheckableError as exc:
        return [("", f"cannot check the value: {exc}")]
    except Unresolvable as exc:
        ref = str(getattr(exc, "ref", "") or exc)
        if isinstance(exc.__cause__, PointerToNowhere):
            why = f"$ref '#{ref}' points to nothing in the schema"
        else:
            why = f"$ref {ref!r} does not resolve (remote references are not fetched)"
        return [("", f"cannot check the value: {why}")]
    except (re.error, TypeError, ValueError, RecursionError) as exc:
        return [("", f"cannot check the value: {type(exc).__name__}: {exc}")]


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
    JSON schema (every keyword, checked by ``jsonschema``; a schema that cannot
    be checked, such as one with a remote ``$ref``, fails the call with the
    reason). Calls whose arguments are not valid JSON
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


def parse_json_answer(text: str) -> Any:
    """Read the JSON value an answer gives, tolerating fences and prose around it.

    Tries the whole text and a fenced block (```` ```json ... ``` ````) with
    langchain_core's ``parse_json_markdown`` (strictly: truncated JSON is not
    completed), then the first ``{...}`` or ``[...]`` in the text.

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
        return parse_json_markdown(stripped, parser=json.loads)
    except json.JSONDecodeError as exc:
        first_error = exc
    decoder = json.JSONDecoder()
    for match in re.finditer(r"[{\[]", stripped):
        try:
            value, _ = decoder.raw_decode(stripped, match.start())
        except json.JSONDecodeError:
            continue
        return value
    where = (
        "the fenced block is not valid JSON"
        if "```" in stripped
        else "the answer is not JSON"
    )
    msg = f"{where}: {first_error}"
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


def _pydantic_errors(error: PydanticValidationError) -> list[str]:
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
            except PydanticValidationError as exc:
                return _pydantic_errors(exc)
            return []
        return [
            f"{path}: {message}" if path else message
            for path, message in schema_errors(data, self._json_schema, noun="field")
        ]
