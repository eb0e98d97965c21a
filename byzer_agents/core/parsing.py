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

A reply is read in time linear in its length, whatever it holds, so reading it never costs more
than writing it did. Brackets are matched by one regex-driven pass per span; a prose ``{`` that
never closes is stepped into at most ``_MAX_PROSE_OPENERS`` times, and not at all when what it
holds nests deeper than ``MAX_NESTING``; and
``json_repair``, slow on what it cannot read (about 80 us a character on ``{ {``: 16 s for
200 KB, benchmarks/RESULTS.md, "Hostile model output"), gets a fixed budget per reply: a few
dozen spans, 128 KB, 1M characters re-read. Text longer than ``MAX_SEARCH_CHARS`` is read only
when it is JSON as a whole, and JSON nested deeper than ``MAX_NESTING`` is refused
(``JSONTooLargeError``), never left to raise RecursionError.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

import json_repair
import pydantic_core

from byzer_agents.exceptions import JSONTooLargeError, NoJSONFoundError

__all__ = [
    "MAX_NESTING",
    "MAX_SEARCH_CHARS",
    "JSONTooLargeError",
    "NoJSONFoundError",
    "ParsedToolCall",
    "extract_json",
    "parse_partial_json",
    "parse_tool_calls",
]

MAX_SEARCH_CHARS = 1_000_000
"""Longer replies (about 250k tokens) are read only when they are valid JSON as a whole: nothing is
searched for or repaired in them."""
MAX_NESTING = 200
"""Deeper JSON is refused, as pydantic-core's parser refuses it: no answer nests that deep, and
Python's recursion limit is not far beyond."""
_MAX_PROSE_OPENERS = 2
"""How many unclosed prose ``{`` or ``[`` (``a { b``) are stepped into, each costing a pass over
the rest of the text, before the search gives up."""
_MAX_REPAIRS = 32
_MAX_REPAIR_CHARS = 131_072
"""Characters given to ``json_repair`` in all, per reply (2-80 us a character, by what it reads)."""
_MAX_REPAIR_REREADS = 1_000_000
"""Characters ``json_repair`` may re-read in all, per reply: each object it finds no key in
re-reads the rest of its input (1M is about half a second)."""


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
_BRACKET_OR_QUOTE = re.compile(r"""[{}\[\]"']""")
_STRING_END = {'"': re.compile(r'["\\]'), "'": re.compile(r"['\\]")}
_KEYED_OBJECT_BODY = re.compile(r"""\s*(?:["'}\w]|\Z)""")
"""What an object's body starts with when ``json_repair`` can read it without re-reading the
rest of the text: a key, quoted or bare, or its end."""
_JSON_OBJECT_BODY = re.compile(r'\s*["}]')
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
    these fenced or bare among prose, and repaired where broken. Calls too large to read (see
    ``MAX_SEARCH_CHARS``, ``MAX_NESTING``) are not calls.
    """
    search = _Search()
    calls: list[ParsedToolCall] = []
    for block in _HERMES_BLOCK.findall(text):
        found = _first_tool_calls(_json_values(block, search), search)
        if found:
            calls.extend(found)
    if calls:
        return calls
    return _first_tool_calls(_json_values(text, search), search)


def extract_json(text: str) -> Any:
    """The JSON value a model's answer holds: in a ```json (or bare ```) fence, or bare with text
    around it, repaired where broken (trailing commas, single quotes, unquoted keys, missing
    closing brackets, Python True/None...). Raises NoJSONFoundError when there is none, and
    JSONTooLargeError (a NoJSONFoundError) when what there is was too long or too deep to read.

    A text that is itself valid JSON comes back whole, so a scalar answer (``42``, ``"text"``)
    works; among prose only objects and arrays are looked for.
    """
    search = _Search()
    for value in _json_values(text, search):
        return value
    if search.refused:
        raise JSONTooLargeError(text, search.refused)
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


class _Search:
    """What one reading of a reply may still spend on repairs, and why it refused a value."""

    def __init__(self) -> None:
        self.repairs_left = _MAX_REPAIRS
        self.repair_chars_left = _MAX_REPAIR_CHARS
        self.rereads_left = _MAX_REPAIR_REREADS
        self.refused = ""
        """Why a value was left unread (too long, too deep); empty when none was."""

    def refuse(self, reason: str) -> None:
        self.refused = self.refused or reason


class _Span(NamedTuple):
    """An object or array in a text: ``text[start:end]``, running to the end when unclosed."""

    start: int
    end: int
    closed: bool
    in_string: bool
    """Whether the text ends inside a string (only when unclosed)."""
    depth: int
    """How deep its brackets nest, itself counted."""
    keyless_objects: int
    """Objects whose body starts with neither a key nor their end: each makes ``json_repair``
    re-read the rest of its input."""


def _parse_partial(text: str) -> Any | None:
    opener = _OPENERS.search(text)
    fence = _FENCE_OPENER.search(text, 0, opener.start() if opener else len(text))
    if fence is not None:
        opener = _OPENERS.search(text, fence.end())
    if opener is None:
        return None
    body = text[opener.start() :]
    span = _scan(body, 0)
    search = _Search()
    if span.closed:
        parsed, value = _load_span(body, span, search)
        return value if parsed else None
    if span.depth > MAX_NESTING:
        return None
    if not span.in_string:
        word = _TRAILING_WORD.search(body)
        if word and word.group() not in _COMPLETE_LITERALS:
            body = body[: word.start()]
    try:
        value = pydantic_core.from_json(body, allow_partial="trailing-strings")
    except ValueError:
        _, value = _repair(body, span, search)
    return value if isinstance(value, _container_type(body[0])) else None


def _json_values(text: str, search: _Search) -> Iterator[Any]:
    """Every JSON value the text may hold, most likely first: the whole text when it is valid
    JSON, then each fenced block's, then the bare objects and arrays among the prose."""
    parsed, value = _load_strict(text, search)
    if parsed:
        yield value
    if len(text) > MAX_SEARCH_CHARS:
        search.refuse(
            f"the text is {len(text):,} characters long and not JSON as a whole; JSON is "
            f"searched for only in texts of at most {MAX_SEARCH_CHARS:,}"
        )
        return
    for tag, content in _FENCE.findall(text):
        if tag.lower() in _JSON_FENCE_TAGS:
            parsed, value = _load_strict(content, search)
            if parsed:
                yield value
            yield from _bare_containers(content, search)
    yield from _bare_containers(text, search)


def _bare_containers(text: str, search: _Search) -> Iterator[Any]:
    """The top-level objects and arrays in prose: strictly valid ones first, then repaired ones.

    When the last one never closes and cannot be repaired, its ``{`` or ``[`` was probably prose
    (``a { b``), so the objects nested in it are searched in turn (a few times at most).
    """
    begin = 0
    for _ in range(_MAX_PROSE_OPENERS + 1):
        spans = _top_level_spans(text, begin)
        strict: set[int] = set()
        for span in spans:
            if span.closed:
                parsed, value = _load_strict_span(text, span, search)
                if parsed:
                    strict.add(span.start)
                    yield value
        repaired = False
        for span in spans:
            if span.start not in strict:
                repaired, value = _repair(text[span.start : span.end], span, search)
                if repaired:
                    yield value
        if not spans or spans[-1].closed or repaired or spans[-1].depth > MAX_NESTING:
            return  # a prose opener holding brackets nested that deep is garbage, not prose
        begin = spans[-1].start + 1


def _top_level_spans(text: str, begin: int) -> list[_Span]:
    """Each top-level object or array from ``begin`` on: the last may run unclosed to the end."""
    spans = []
    position = begin
    while (opener := _OPENERS.search(text, position)) is not None:
        span = _scan(text, opener.start())
        spans.append(span)
        if not span.closed:
            break
        position = span.end
    return spans


def _scan(text: str, start: int) -> _Span:
    """The object or array opened at ``start``: where it closes, if it does, and its shape.

    Brackets in double-quoted strings, and in single-quoted ones where a string may begin, do not
    count. A closer that skips an open bracket closes it too (``{"a": [1}``); a closer matching
    nothing open is ignored: both are left for the repair to judge. Only brackets, quotes and
    escapes are visited, so the pass costs little more than a regex search.
    """
    stack = [text[start]]
    still_open = {"{": 0, "[": 0}
    still_open[text[start]] = 1
    depth = 1
    keyless = int(_is_keyless_object(text, start))
    index = start + 1
    while (token := _BRACKET_OR_QUOTE.search(text, index)) is not None:
        index = token.start()
        char = token.group()
        if char == '"' or (char == "'" and _previous_char(text, index) in "{[,:"):
            index = _string_end(text, index)
            if index < 0:
                return _Span(start, len(text), False, True, depth, keyless)
            continue
        if char == "'":
            pass  # an apostrophe in prose, not a string
        elif char in "{[":
            stack.append(char)
            still_open[char] += 1
            depth = max(depth, len(stack))
            keyless += _is_keyless_object(text, index)
        elif still_open[_OPENER_OF[char]]:
            while (opener := stack.pop()) != _OPENER_OF[char]:
                still_open[opener] -= 1
            still_open[opener] -= 1
            if not stack:
                return _Span(start, index + 1, True, False, depth, keyless)
        index += 1
    return _Span(start, len(text), False, False, depth, keyless)


def _previous_char(text: str, index: int) -> str:
    """The last non-space character before ``index``; the span's opener at the latest."""
    index -= 1
    while text[index].isspace():
        index -= 1
    return text[index]


def _string_end(text: str, opening: int) -> int:
    """Where the string opened by the quote at ``opening`` ends; -1 when it runs to the end."""
    pattern = _STRING_END[text[opening]]
    position = opening + 1
    while (found := pattern.search(text, position)) is not None:
        if found.group() != "\\":
            return found.end()
        position = found.start() + 2
    return -1


def _is_keyless_object(text: str, opener: int) -> bool:
    return text[opener] == "{" and _KEYED_OBJECT_BODY.match(text, opener + 1) is None


def _load_strict(text: str, search: _Search) -> tuple[bool, Any]:
    try:
        value = json.loads(text)
    except RecursionError:
        search.refuse(_too_deep())
        return False, None
    except ValueError:
        return False, None
    if _nests_deeper_than(value, MAX_NESTING):
        search.refuse(_too_deep())
        return False, None
    return True, value


def _load_strict_span(text: str, span: _Span, search: _Search) -> tuple[bool, Any]:
    if span.depth > MAX_NESTING:
        search.refuse(_too_deep(span.depth))
        return False, None
    if text[span.start] == "{" and not _JSON_OBJECT_BODY.match(text, span.start + 1):
        return False, None  # prose such as {x}: not worth a JSONDecodeError
    try:
        return True, json.loads(text[span.start : span.end])
    except (ValueError, RecursionError):
        return False, None


def _repair(text: str, span: _Span, search: _Search) -> tuple[bool, Any]:
    """A repair of the object or array ``text`` (which ``span`` describes), believed only when
    it keeps its bracket and is not empty (``json_repair`` answers ``""``, ``{}`` or a stray list
    for what is not JSON); not tried where it could cost more than reading should."""
    if span.depth > MAX_NESTING:
        search.refuse(_too_deep(span.depth))
        return False, None
    rereads = span.keyless_objects * len(text)
    if (
        search.repairs_left <= 0
        or len(text) > search.repair_chars_left
        or rereads > search.rereads_left
    ):
        return False, None
    search.repairs_left -= 1
    search.repair_chars_left -= len(text)
    search.rereads_left -= rereads
    try:
        value = json_repair.repair_json(text, return_objects=True, skip_json_loads=True)
    except (ValueError, RecursionError):
        return False, None
    if not isinstance(value, _container_type(text[0])) or not value:
        return False, None
    if _nests_deeper_than(value, MAX_NESTING):
        return False, None
    return True, value


def _too_deep(depth: int | None = None) -> str:
    levels = f"{depth:,} levels deep" if depth is not None else f"over {MAX_NESTING} levels deep"
    return f"its JSON nests {levels}, and at most {MAX_NESTING} levels are read"


def _load_span(text: str, span: _Span, search: _Search) -> tuple[bool, Any]:
    parsed, value = _load_strict_span(text, span, search)
    if parsed:
        return parsed, value
    return _repair(text[span.start : span.end], span, search)


def _nests_deeper_than(value: Any, limit: int) -> bool:
    """Whether ``value``'s objects and arrays nest deeper than ``limit`` (read iteratively)."""
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if not isinstance(item, list):
            continue
        if depth > limit:
            return True
        pending.extend((child, depth + 1) for child in item)
    return False


def _container_type(opener: str) -> type[dict[str, Any]] | type[list[Any]]:
    return dict if opener == "{" else list


def _first_tool_calls(values: Iterator[Any], search: _Search) -> list[ParsedToolCall] | None:
    for value in values:
        calls = _as_tool_calls(value, search)
        if calls:
            return calls
    return None


def _as_tool_calls(value: Any, search: _Search) -> list[ParsedToolCall] | None:
    """The calls a JSON value stands for, or None when it is not (only) tool calls."""
    if isinstance(value, dict) and "tool_calls" in value:
        value = value["tool_calls"]
        if isinstance(value, dict):
            value = [value]
    items = value if isinstance(value, list) else [value]
    calls = [_as_tool_call(item, search) for item in items]
    if not calls or None in calls:
        return None
    return [call for call in calls if call is not None]


def _as_tool_call(value: Any, search: _Search) -> ParsedToolCall | None:
    if not isinstance(value, dict) or value.get("type", "function") != "function":
        return None
    if isinstance(value.get("function"), dict):
        if not value.keys() <= _FUNCTION_WRAPPER_KEYS:
            return None
        call = _as_tool_call(value["function"], search)
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
    return ParsedToolCall(name, _as_arguments(raw, search), _call_id(value.get("id")))


def _as_arguments(raw: Any, search: _Search) -> dict[str, Any] | str:
    if raw is None:
        return {}
    if isinstance(raw, dict):
        return raw
    if not isinstance(raw, str):
        return json.dumps(raw)
    text = raw.strip()
    if not text:
        return {}
    if not text.startswith("{"):
        return raw
    parsed, value = _load_strict(text, search)
    if not parsed:
        parsed, value = _repair(text, _scan(text, 0), search)
    return value if parsed and isinstance(value, dict) else raw


def _call_id(raw: Any) -> str | None:
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        return None
    return str(raw) or None
