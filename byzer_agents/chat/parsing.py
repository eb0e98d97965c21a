"""Tolerant parsing of what a model writes when it has no native tool calling: tool calls and JSON
answers found in code fences, ``<tool_call>`` tags or bare among prose, repaired where broken.

What is fragile here is telling JSON from prose. Text is searched in a fixed order (``<tool_call>``
blocks, then fenced blocks, then bare top-level objects and arrays found by scanning balanced
brackets outside strings), strictly valid JSON before repaired JSON, and a repair is only believed
when it keeps the bracket it started from and is not empty: ``json_repair`` turns ``{x}`` into
``["x}"]`` and garbage into ``""`` or ``{}``. A tool call must look like one (a tool-like ``name``
and, unless ``arguments`` are given, no other keys), so ``{"title": "A story"}``,
``{"name": "Ada", "age": 36}`` or ``use {x} here`` stay answers.
Partial documents (streaming) are read by pydantic-core's partial JSON parser, which drops
unfinished keys and values, with ``json_repair`` behind it for documents that are not valid JSON.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import json_repair
import pydantic_core

from byzer_agents.exceptions import NoJSONFoundError

__all__ = [
    "NoJSONFoundError",
    "ParsedToolCall",
    "extract_json",
    "parse_partial_json",
    "parse_tool_calls",
]


@dataclass(frozen=True)
class ParsedToolCall:
    """One tool call read from a model's text, before its arguments are validated."""

    name: str
    arguments: dict[str, Any] | str
    """A dict when the arguments were (or were repaired into) a JSON object; otherwise the raw
    string (or the JSON of a non-object value), so validation can show the model what it wrote."""
    id: str | None = None
    """The call's id when the model wrote one (OpenAI shape)."""


_FENCE = re.compile(r"```([\w+.-]*)(.*?)(?:```(?=[ \t]*(?:\r?\n|\Z))|\Z)", re.DOTALL)
"""A code fence and its language tag; the closing fence ends its line (a JSON string holds no raw
newline, so a fence quoted inside one never closes the block); an unclosed fence runs to the end,
as in a reply cut off by the token limit."""
_JSON_FENCE_TAGS = frozenset({"", "json", "json5", "jsonc"})
_FENCE_OPENER = re.compile(r"```[\w+.-]*")
_HERMES_BLOCK = re.compile(r"<tool_call>(.*?)(?:</tool_call>|\Z)", re.DOTALL)
_OPENERS = re.compile(r"[{\[]")
_CLOSER_OF = {"{": "}", "[": "]"}
_OPENER_OF = {"}": "{", "]": "["}
_TOOL_NAME = re.compile(r"[A-Za-z_][\w.\-]*")
_ARGUMENT_KEYS = ("arguments", "parameters", "args")
_CALL_KEYS = frozenset({"name", "id", "type", *_ARGUMENT_KEYS})
_FUNCTION_WRAPPER_KEYS = frozenset({"function", "id", "type", "index"})
_TRAILING_WORD = re.compile(r"[\w.+\-]+\Z")
_COMPLETE_LITERALS = frozenset({"true", "false", "null", "True", "False", "None"})


def parse_tool_calls(text: str) -> list[ParsedToolCall] | None:
    """The tool calls written in a model's text, in order; None when the text holds none (a plain
    answer).

    Accepted: ``{"tool_calls": [...]}``; one call object or a list of them, each
    ``{"name": ..., "arguments": {...}}`` (or ``"parameters"`` / ``"args"``; missing: ``{}``;
    a JSON string: decoded) or OpenAI's ``{"type": "function", "function": {...}, "id": ...}``;
    Hermes / Qwen ``<tool_call>...</tool_call>`` blocks, the last one possibly unclosed; all of
    these fenced or bare among prose, and repaired where broken.
    """
    calls: list[ParsedToolCall] = []
    for block in _HERMES_BLOCK.findall(text):
        found = _first_tool_calls(_json_values(block))
        if found:
            calls.extend(found)
    if calls:
        return calls
    return _first_tool_calls(_json_values(text))


def extract_json(text: str) -> Any:
    """The JSON value a model's answer holds: in a ```json (or bare ```) fence, or bare with text
    around it, repaired where broken (trailing commas, single quotes, unquoted keys, missing
    closing brackets, Python True/None...). Raises NoJSONFoundError when there is none.

    A text that is itself valid JSON comes back whole, so a scalar answer (``42``, ``"text"``)
    works; among prose only objects and arrays are looked for.
    """
    for value in _json_values(text):
        return value
    raise NoJSONFoundError(text)


def parse_partial_json(text: str) -> Any | None:
    """The value an incomplete JSON prefix holds so far (for streaming partial objects):
    '{"title": "Cats', -> {"title": "Cats"}; None when nothing usable yet. Never raises.

    Only objects and arrays are read, from the first ``{`` or ``[`` (after an opening code fence,
    when there is one). Keys still being written are left out, and so are unfinished numbers and
    literals (``12`` may yet become ``125``); an unfinished string is kept as written so far. So a
    longer prefix of the same document gives a value holding everything the shorter one gave.
    """
    try:
        return _parse_partial(text)
    except Exception:  # the stream goes on; a later prefix may parse
        return None


def _parse_partial(text: str) -> Any | None:
    opener = _OPENERS.search(text)
    fence = _FENCE_OPENER.search(text, 0, opener.start() if opener else len(text))
    if fence is not None:
        opener = _OPENERS.search(text, fence.end())
    if opener is None:
        return None
    body = text[opener.start() :]
    end, in_string = _scan(body, 0)
    if end is not None:
        parsed, value = _load_container(body[:end])
        return value if parsed else None
    if not in_string:
        word = _TRAILING_WORD.search(body)
        if word and word.group() not in _COMPLETE_LITERALS:
            body = body[: word.start()]
    try:
        value = pydantic_core.from_json(body, allow_partial="trailing-strings")
    except ValueError:
        value = json_repair.repair_json(body, return_objects=True, skip_json_loads=True)
    return value if isinstance(value, _container_type(body[0])) else None


def _json_values(text: str) -> Iterator[Any]:
    """Every JSON value the text may hold, most likely first: the whole text when it is valid
    JSON, then each fenced block's, then the bare objects and arrays among the prose."""
    parsed, value = _load_strict(text)
    if parsed:
        yield value
    for tag, content in _FENCE.findall(text):
        if tag.lower() in _JSON_FENCE_TAGS:
            parsed, value = _load_strict(content)
            if parsed:
                yield value
            yield from _bare_containers(content)
    yield from _bare_containers(text)


def _bare_containers(text: str) -> Iterator[Any]:
    """The top-level objects and arrays in prose: strictly valid ones first, then repaired ones.

    When the last one never closes and cannot be repaired, its ``{`` or ``[`` was probably prose
    (``a { b``), so the objects nested in it are searched in turn.
    """
    while True:
        spans = _top_level_spans(text)
        strict: set[int] = set()
        for start, end, _ in spans:
            parsed, value = _load_strict(text[start:end])
            if parsed:
                strict.add(start)
                yield value
        repaired = False
        for start, end, _ in spans:
            if start not in strict:
                repaired, value = _load_repaired(text[start:end])
                if repaired:
                    yield value
        if not spans or spans[-1][2] or repaired:
            return
        text = text[spans[-1][0] + 1 :]


def _top_level_spans(text: str) -> list[tuple[int, int, bool]]:
    """Where each top-level object or array starts and ends, and whether it closes: the last may
    run unclosed to the end of the text."""
    spans = []
    position = 0
    while (opener := _OPENERS.search(text, position)) is not None:
        end, _ = _scan(text, opener.start())
        if end is None:
            spans.append((opener.start(), len(text), False))
            break
        spans.append((opener.start(), end, True))
        position = end
    return spans


def _scan(text: str, start: int) -> tuple[int | None, bool]:
    """Where the object or array opened at ``start`` closes (None: it does not) and whether the
    text ends inside a string.

    Brackets in double-quoted strings, and in single-quoted ones where a string may begin, do not
    count. A closer that skips an open bracket closes it too (``{"a": [1}``); a closer matching
    nothing open is ignored: both are left for the repair to judge.
    """
    stack = [text[start]]
    quote = ""
    previous = text[start]
    index = start + 1
    while index < len(text):
        char = text[index]
        if quote:
            if char == "\\":
                index += 2
                continue
            if char == quote:
                quote = ""
                previous = char
        elif char == '"' or (char == "'" and previous in "{[,:"):
            quote = char
        elif char in "{[":
            stack.append(char)
        elif char in "}]" and _OPENER_OF[char] in stack:
            while stack.pop() != _OPENER_OF[char]:
                pass
            if not stack:
                return index + 1, False
        if not quote and not char.isspace():
            previous = char
        index += 1
    return None, bool(quote)


def _load_strict(text: str) -> tuple[bool, Any]:
    try:
        return True, json.loads(text)
    except ValueError:
        return False, None


def _load_repaired(text: str) -> tuple[bool, Any]:
    """A repair of an object or array, believed only when it keeps its bracket and is not empty
    (``json_repair`` answers ``""``, ``{}`` or a stray list for what is not JSON)."""
    try:
        value = json_repair.repair_json(text, return_objects=True, skip_json_loads=True)
    except (ValueError, RecursionError):
        return False, None
    if isinstance(value, _container_type(text[0])) and value:
        return True, value
    return False, None


def _load_container(text: str) -> tuple[bool, Any]:
    parsed, value = _load_strict(text)
    return (parsed, value) if parsed else _load_repaired(text)


def _container_type(opener: str) -> type[dict[str, Any]] | type[list[Any]]:
    return dict if opener == "{" else list


def _first_tool_calls(values: Iterator[Any]) -> list[ParsedToolCall] | None:
    for value in values:
        calls = _as_tool_calls(value)
        if calls:
            return calls
    return None


def _as_tool_calls(value: Any) -> list[ParsedToolCall] | None:
    """The calls a JSON value stands for, or None when it is not (only) tool calls."""
    if isinstance(value, dict) and "tool_calls" in value:
        value = value["tool_calls"]
        if isinstance(value, dict):
            value = [value]
    items = value if isinstance(value, list) else [value]
    calls = [_as_tool_call(item) for item in items]
    if not calls or None in calls:
        return None
    return [call for call in calls if call is not None]


def _as_tool_call(value: Any) -> ParsedToolCall | None:
    if not isinstance(value, dict) or value.get("type", "function") != "function":
        return None
    if isinstance(value.get("function"), dict):
        if not value.keys() <= _FUNCTION_WRAPPER_KEYS:
            return None
        call = _as_tool_call(value["function"])
        if call is None or call.id is not None:
            return call
        return ParsedToolCall(call.name, call.arguments, _call_id(value.get("id")))
    name = value.get("name")
    if not isinstance(name, str) or not _TOOL_NAME.fullmatch(name := name.strip()):
        return None
    key = next((key for key in _ARGUMENT_KEYS if key in value), None)
    if key is None and not value.keys() <= _CALL_KEYS:
        return None  # {"name": "Ada", "age": 36} is data; with "arguments" beside, a call
    raw = value[key] if key is not None else None
    return ParsedToolCall(name, _as_arguments(raw), _call_id(value.get("id")))


def _as_arguments(raw: Any) -> dict[str, Any] | str:
    if raw is None:
        return {}
    if isinstance(raw, dict):
        return raw
    if not isinstance(raw, str):
        return json.dumps(raw)
    if not raw.strip():
        return {}
    if not raw.lstrip().startswith("{"):
        return raw
    parsed, value = _load_container(raw.strip())
    return value if parsed and isinstance(value, dict) else raw


def _call_id(raw: Any) -> str | None:
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        return None
    return str(raw) or None
