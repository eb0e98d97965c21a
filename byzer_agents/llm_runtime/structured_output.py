"""What a typed answer must be, engine-free: the JSON schema a request's ``response_format`` or
``tools`` ask for, and the check every constrained output goes through before it is returned.

Tool calls are written as one object, ``{"tool_calls": [{"name": ..., "arguments": {...}}]}``,
one ``anyOf`` branch per tool. Grammar engines cannot all follow a ``$ref`` through that list, so
parameters that hold ``$ref``s move to a ``$defs`` entry of their own, their ``$ref``s re-rooted
there. The grammar is never trusted alone (see constrained.py): ``OutputSpec.check`` validates
with jsonschema and every known format.
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Mapping, Sequence
from typing import Any

import jsonschema
import jsonschema.exceptions

from byzer_agents.core.prompted_tools import tool_calls_in_text
from byzer_agents.exceptions import ConfigurationError
from byzer_agents.tools import Tool, ToolChoice, ToolSet
from byzer_agents.tools.schema_bounds import check_depth, check_refs, check_size
from byzer_agents.types import ChatRequest

__all__ = [
    "ANY_OBJECT",
    "OutputSpec",
    "answer_schema",
    "offered_tools",
    "output_spec",
    "schema_error",
    "tool_calls_in_text",
    "tool_calls_schema",
    "tool_calls_schema_of",
    "wants_constraint",
]

# "additionalProperties" said outright: xgrammar's strict mode reads a bare {"type": "object"}
# reached through a $ref as "{}" only.
ANY_OBJECT: dict[str, Any] = {"type": "object", "additionalProperties": True}
_LITERAL_PREFIXES = ("t", "tr", "tru", "f", "fa", "fal", "fals", "n", "nu", "nul")


def wants_constraint(request: ChatRequest) -> bool:
    """Whether a request lets the engine constrain it (``llm_config={"constrained_decoding":
    False}`` turns it off; unset means yes)."""
    return request.constrained_decoding is not False


def output_spec(request: ChatRequest, *, max_new_tokens: int) -> OutputSpec | None:
    """What ``request`` asks its answer to be, or None when it asks nothing of it (no
    ``response_format`` of type json_schema / json_object, and no tools or ``tool_choice="none"``).

    Raises ConfigurationError (a ValueError) for a malformed ``response_format`` or
    ``tool_choice``, ToolDefinitionError for a malformed tool, UnsupportedSchemaError (a
    ValueError) for schemas past the bounds of ``tools.schema_bounds``: too deep, too large for a
    grammar, a ``$ref`` loop.
    """
    if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ConfigurationError(f"max_new_tokens must be a positive int, got {max_new_tokens!r}")
    answer = answer_schema(request.response_format)
    tools, choice = offered_tools(request)
    if not tools and answer is None:
        return None
    if tools and answer is not None:
        check_size(
            [answer, *(tool.parameters for tool in tools)], what="the response_format and tools"
        )
    if tools and choice.mode != "auto":
        answer = None  # a call is forced: the answer schema is no alternative
    return OutputSpec(
        answer_schema=answer,
        tools=tools,
        allows_text=bool(tools) and choice.mode == "auto" and answer is None,
        single_call=request.parallel_tool_calls is False,
        max_new_tokens=max_new_tokens,
    )


class OutputSpec:
    """What an answer to one request must be, and how to read and check it: a content answer
    fitting ``answer_schema``, tool calls fitting ``tool_calls_schema``, or (``allows_text``)
    plain text. Engines that constrain decoding their own way (xgrammar here, vLLM's structured
    outputs) read their schema from it and hold every output to ``check()``."""

    answer_schema: dict[str, Any] | None
    """The schema a content answer must fit (``response_format``); None when only tool calls or
    plain text may come back."""
    tool_calls_schema: dict[str, Any] | None
    """The schema of ``{"tool_calls": [...]}`` when tools are offered, else None."""
    allows_text: bool
    """``tool_choice="auto"`` without a response_format: a plain-text answer is allowed too."""
    single_call: bool
    """``parallel_tool_calls=False``: one call at most."""
    max_new_tokens: int

    def __init__(
        self,
        *,
        answer_schema: dict[str, Any] | None,
        tools: Sequence[Tool[..., Any]],
        allows_text: bool,
        single_call: bool,
        max_new_tokens: int,
    ) -> None:
        self.answer_schema = answer_schema
        self.tools = list(tools)
        self._tools = {tool.name: tool for tool in tools}
        self.tool_calls_schema = (
            tool_calls_schema(tools, single_call=single_call) if tools else None
        )
        self.allows_text = allows_text
        self.single_call = single_call
        self.max_new_tokens = max_new_tokens

    @property
    def output_schema(self) -> dict[str, Any] | None:
        """The one JSON schema an engine can constrain to: the tool calls' when a call is the only
        answer, else the answer's; None when plain text is allowed."""
        if self.allows_text:
            return None
        if self.tool_calls_schema is not None and self.answer_schema is None:
            return self.tool_calls_schema
        if self.tool_calls_schema is None:
            return self.answer_schema
        return {"anyOf": [self.tool_calls_schema, self.answer_schema]}

    def to_message(self, text: str) -> tuple[str | None, list[tuple[str, str]]]:
        """``(content, [(tool_name, arguments_json), ...])`` of the generated ``text``: the JSON
        text for a response_format, ``(None, calls)`` for tool calls, ``(text, [])`` for plain text.
        Output that is not a complete tool-call object (cut off) comes back as content: call
        ``check()`` to learn what is wrong with it."""
        body = text.strip()
        if self.tool_calls_schema is None:
            return body, []
        if body.startswith("{"):
            try:
                value = json.loads(body)
            except json.JSONDecodeError:
                return text, []
            calls = value.get("tool_calls") if isinstance(value, dict) else None
            named = isinstance(calls, list) and all(
                isinstance(call, dict) and isinstance(call.get("name"), str) for call in calls
            )
            if isinstance(calls, list) and calls and named:
                return None, [
                    (call["name"], _compact_json(call.get("arguments"))) for call in calls
                ]
            return body, []
        return text, []

    def check(self, text: str) -> str | None:
        """None when ``text`` is a complete output that fits the schema; otherwise what is wrong,
        saying so when it was cut off. Plain text is fine where ``allows_text``."""
        body = text.strip()
        if self.allows_text and body and not body.startswith("{"):
            return None
        if not body:
            return (
                f"the output is empty: cut off before any JSON (max_new_tokens="
                f"{self.max_new_tokens})"
            )
        try:
            value = json.loads(body)
        except json.JSONDecodeError as exc:
            if _is_cut_off(body):
                return (
                    f"the JSON was cut off after {len(body)} characters, with a string, object or "
                    f"array still open (max_new_tokens={self.max_new_tokens}); it ends "
                    f"{body[-40:]!r}"
                )
            return f"the output is not JSON: {exc.msg} at character {exc.pos}"
        except RecursionError:
            return "the output nests its JSON too deep to read"
        is_call = isinstance(value, dict) and "tool_calls" in value
        if self.tool_calls_schema is not None and (self.answer_schema is None or is_call):
            return self._tool_calls_error(value)
        assert self.answer_schema is not None
        error = schema_error(self.answer_schema, value)
        return None if error is None else f"the answer does not fit the schema: {error}"

    def _tool_calls_error(self, value: Any) -> str | None:
        calls = value.get("tool_calls") if isinstance(value, dict) else None
        for index, call in enumerate(calls if isinstance(calls, list) else []):
            name = call.get("name") if isinstance(call, dict) else None
            tool = self._tools.get(name) if isinstance(name, str) else None
            if tool is not None and "arguments" in call:
                error = schema_error(tool.parameters, call["arguments"])
                if error is not None:
                    return f"tool_calls[{index}] ({tool.name}) has bad arguments: {error}"
        assert self.tool_calls_schema is not None
        error = schema_error(self.tool_calls_schema, value)
        if error is None:
            return None
        return f"the tool calls do not fit their schema (tools: {sorted(self._tools)}): {error}"


def tool_calls_schema(
    tools: Sequence[Tool[..., Any]], *, single_call: bool = False
) -> dict[str, Any]:
    """The schema of ``{"tool_calls": [{"name": ..., "arguments": {...}}, ...]}`` over ``tools``:
    one ``anyOf`` branch per tool (parameters holding ``$ref``s go under ``$defs``, re-rooted)."""
    return tool_calls_schema_of(tools, single_call=single_call, loose=frozenset())


def answer_schema(response_format: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The schema a ``response_format`` asks the answer to fit (any object for json_object), or
    None for none or "text"; ConfigurationError for a malformed one, UnsupportedSchemaError for a
    schema past the bounds of ``tools.schema_bounds``."""
    if response_format is None:
        return None
    kind = response_format.get("type")
    if kind in (None, "text"):
        return None
    if kind == "json_object":
        return dict(ANY_OBJECT)
    if kind != "json_schema":
        raise ConfigurationError(
            f"response_format type {kind!r} is not supported: use 'text', 'json_object' or "
            "'json_schema'"
        )
    spec = response_format.get("json_schema")
    schema = spec.get("schema") if isinstance(spec, Mapping) else None
    if not isinstance(schema, Mapping):
        raise ConfigurationError(
            "response_format of type 'json_schema' needs {'json_schema': {'name': ..., "
            f"'schema': {{...}}}}, got {response_format!r:.200}"
        )
    schema = dict(schema)
    what = "the response_format schema"
    check_depth(schema, what=what)  # first: check_schema recurses once per level
    check_size([schema], what=what)
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = "/".join(map(str, exc.absolute_path)) or "the root"
        raise ConfigurationError(
            f"response_format schema is not a valid JSON Schema: {exc.message} (at {where})"
        ) from exc
    check_refs(schema, what=what)  # a loop would make every check of an answer recurse forever
    return schema


def offered_tools(request: ChatRequest) -> tuple[list[Tool[..., Any]], ToolChoice]:
    """The tools the model may call under ``tool_choice`` (none for "none"), and the choice."""
    if not request.tools:
        return [], ToolChoice()
    for index, definition in enumerate(request.tools):
        check_depth(definition, what=f"tools[{index}]")  # before ToolSet checks the schemas
    check_size(request.tools, what="the tools")
    toolset = ToolSet(request.tools)
    for tool in toolset:
        check_refs(tool.parameters, what=f"the parameters of tool {tool.name!r}")
    choice = ToolChoice.parse(request.tool_choice, toolset)
    if choice.mode == "none":
        return [], choice
    if choice.tool is not None:
        named = toolset.get(choice.tool)
        assert named is not None  # ToolChoice.parse found it
        return [named], choice
    return list(toolset), choice


def tool_calls_schema_of(
    tools: Sequence[Tool[..., Any]], *, single_call: bool, loose: frozenset[str]
) -> dict[str, Any]:
    """``tool_calls_schema``, with the tools named in ``loose`` taking any arguments object (for
    parameters a grammar engine cannot compile; ``OutputSpec.check`` still holds them to theirs)."""
    definitions: dict[str, Any] = {}
    branches = []
    for index, tool in enumerate(tools):
        arguments = ANY_OBJECT if tool.name in loose else tool.parameters
        if _has_local_ref(arguments):
            # xgrammar cannot follow a $ref through the anyOf list: re-root it under $defs.
            key = f"tool_{index}_arguments"
            definitions[key] = _rerooted(arguments, f"#/$defs/{key}")
            arguments = {"$ref": f"#/$defs/{key}"}
        branches.append(
            {
                "type": "object",
                "properties": {"name": {"const": tool.name}, "arguments": arguments},
                "required": ["name", "arguments"],
                "additionalProperties": False,
            }
        )
    calls: dict[str, Any] = {"type": "array", "minItems": 1, "items": {"anyOf": branches}}
    if single_call:
        calls["maxItems"] = 1
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {"tool_calls": calls},
        "required": ["tool_calls"],
        "additionalProperties": False,
    }
    if definitions:
        schema["$defs"] = definitions
    return schema


def _has_local_ref(node: Any) -> bool:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#"):
            return True
        return any(_has_local_ref(value) for value in node.values())
    if isinstance(node, list):
        return any(_has_local_ref(item) for item in node)
    return False


def _rerooted(schema: Mapping[str, Any], base: str) -> dict[str, Any]:
    """``schema`` as it reads when placed at ``base``: every local ``$ref`` made to point there."""

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            out = {}
            for key, value in node.items():
                if key == "$ref" and isinstance(value, str) and value.startswith("#"):
                    out[key] = base + value[1:]
                else:
                    out[key] = walk(value)
            return out
        if isinstance(node, list):
            return [walk(item) for item in node]
        return node

    moved = walk(copy.deepcopy(dict(schema)))
    for key in ("$schema", "$id", "id"):
        if isinstance(moved.get(key), str):
            del moved[key]
    return moved


@functools.lru_cache(maxsize=256)
def _validator(schema_json: str) -> jsonschema.protocols.Validator:
    schema = json.loads(schema_json)
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    return cls(schema, format_checker=jsonschema.FormatChecker())


def schema_error(schema: Mapping[str, Any], value: Any) -> str | None:
    """None when ``value`` fits ``schema`` (every format checked), else where and why it does
    not."""
    validator = _validator(json.dumps(schema, sort_keys=True))
    try:
        error = jsonschema.exceptions.best_match(validator.iter_errors(value))
    except RecursionError:
        return "the value nests too deep to check against the schema"
    if error is None:
        return None
    where = "/".join(map(str, error.absolute_path)) or "the root"
    return f"at {where}: {error.message}"


def _is_cut_off(text: str) -> bool:
    """Whether ``text`` reads as the start of a JSON value that stopped early: a string, object or
    array still open, or a literal half written."""
    stack: list[str] = []
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "{[":
            stack.append("}" if char == "{" else "]")
        elif char in "}]" and (not stack or stack.pop() != char):
            return False
    if in_string or stack:
        return True
    return text in _LITERAL_PREFIXES


def _compact_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
