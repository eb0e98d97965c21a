"""Tolerant parsing: every tool-call form small models write, JSON answers found among prose and
repaired, and partial JSON read while it streams."""

from __future__ import annotations

import contextlib
import itertools
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from byzer_agents.core.parsing import (
    MAX_NESTING,
    MAX_SEARCH_CHARS,
    JSONTooLargeError,
    NoJSONFoundError,
    ParsedToolCall,
    extract_json,
    parse_partial_json,
    parse_tool_calls,
)
from byzer_agents.exceptions import ByzerAgentsError


def call(name: str, arguments: dict[str, Any] | str | None = None, id: str | None = None):
    return ParsedToolCall(name, {} if arguments is None else arguments, id)


# --- tool calls: the forms models write ---------------------------------------------------------


def test_our_prompt_format_is_read():
    text = '```json\n{"tool_calls": [{"name": "compute_now", "arguments": {"utc": true}}]}\n```'
    assert parse_tool_calls(text) == [call("compute_now", {"utc": True})]


def test_several_calls_in_tool_calls_keep_their_order():
    text = json.dumps(
        {
            "tool_calls": [
                {"name": "get_weather", "arguments": {"city": "Paris"}},
                {"name": "get_weather", "arguments": {"city": "Oslo"}},
                {"name": "compute_now", "arguments": {}},
            ]
        }
    )
    assert parse_tool_calls(text) == [
        call("get_weather", {"city": "Paris"}),
        call("get_weather", {"city": "Oslo"}),
        call("compute_now"),
    ]


def test_a_single_call_object_is_read():
    text = (
        "Sure! Here is the call:\n```json\n"
        '{"name": "compute_date_range", "arguments": {"count": 2, "unit": "week"}}\n```'
    )
    assert parse_tool_calls(text) == [call("compute_date_range", {"count": 2, "unit": "week"})]


def test_a_list_of_call_objects_is_read():
    text = (
        '[{"name": "add", "arguments": {"a": 1, "b": 2}}, {"name": "neg", "arguments": {"x": 3}}]'
    )
    assert parse_tool_calls(text) == [call("add", {"a": 1, "b": 2}), call("neg", {"x": 3})]


@pytest.mark.parametrize("key", ["parameters", "args"])
def test_parameters_and_args_stand_for_arguments(key: str):
    text = json.dumps({"name": "get_weather", key: {"city": "Paris"}})
    assert parse_tool_calls(text) == [call("get_weather", {"city": "Paris"})]


def test_a_function_wrapper_is_unwrapped():
    text = '{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}'
    assert parse_tool_calls(text) == [call("get_weather", {"city": "Paris"})]


def test_the_openai_shape_keeps_its_id_and_decodes_string_arguments():
    text = json.dumps(
        {
            "id": "call_abc123",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris", "days": 3}'},
        }
    )
    assert parse_tool_calls(text) == [
        call("get_weather", {"city": "Paris", "days": 3}, id="call_abc123")
    ]


def test_an_id_beside_name_is_kept():
    text = '{"tool_calls": [{"id": "call_1", "name": "compute_now", "arguments": {}}]}'
    assert parse_tool_calls(text) == [call("compute_now", id="call_1")]


def test_string_arguments_are_decoded():
    text = json.dumps({"name": "add", "arguments": json.dumps({"a": 1, "b": 2})})
    assert parse_tool_calls(text) == [call("add", {"a": 1, "b": 2})]


def test_broken_string_arguments_are_repaired():
    text = json.dumps({"name": "add", "arguments": "{'a': 1, 'b': 2,"})
    assert parse_tool_calls(text) == [call("add", {"a": 1, "b": 2})]


def test_string_arguments_that_are_no_object_stay_a_string_for_validation_to_report():
    text = json.dumps({"name": "get_weather", "arguments": "city=Paris"})
    assert parse_tool_calls(text) == [call("get_weather", "city=Paris")]


def test_a_json_string_holding_a_list_stays_a_string():
    text = json.dumps({"name": "get_weather", "arguments": '["Paris"]'})
    assert parse_tool_calls(text) == [call("get_weather", '["Paris"]')]


def test_arguments_that_are_no_object_come_back_as_their_json():
    text = '{"name": "get_weather", "arguments": ["Paris", 3]}'
    assert parse_tool_calls(text) == [call("get_weather", '["Paris", 3]')]


@pytest.mark.parametrize(
    "text",
    [
        '{"name": "compute_now"}',
        '{"name": "compute_now", "arguments": null}',
        '{"name": "compute_now", "arguments": ""}',
    ],
)
def test_a_name_without_arguments_gets_empty_arguments(text: str):
    assert parse_tool_calls(text) == [call("compute_now")]


def test_keys_beside_name_and_arguments_are_ignored():
    text = '{"name": "add", "arguments": {"a": 1, "b": 2}, "reason": "the user wants a sum"}'
    assert parse_tool_calls(text) == [call("add", {"a": 1, "b": 2})]


def test_a_hermes_tool_call_block_is_read():
    # Qwen2.5-0.5B-Instruct with its own chat template's tool prompt.
    text = (
        "<tool_call>\n"
        '{"name": "get_current_weather", "arguments": {"location": "Boston, MA", '
        '"unit": "fahrenheit"}}\n'
        "</tool_call>"
    )
    assert parse_tool_calls(text) == [
        call("get_current_weather", {"location": "Boston, MA", "unit": "fahrenheit"})
    ]


def test_several_hermes_blocks_give_every_call_in_order():
    text = (
        "I'll check both cities.\n"
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n'
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>'
    )
    assert parse_tool_calls(text) == [
        call("get_weather", {"city": "Paris"}),
        call("get_weather", {"city": "Oslo"}),
    ]


def test_an_unclosed_final_hermes_block_is_read():
    text = (
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n'
        '<tool_call>\n{"name": "compute_now", "arguments": {"utc": true}}'
    )
    assert parse_tool_calls(text) == [
        call("get_weather", {"city": "Paris"}),
        call("compute_now", {"utc": True}),
    ]


def test_a_hermes_block_cut_off_inside_its_json_is_repaired():
    text = '<tool_call>\n{"name": "search", "arguments": {"query": "ray serve"'
    assert parse_tool_calls(text) == [call("search", {"query": "ray serve"})]


def test_a_fence_without_a_language_tag_is_read():
    # SmolLM2-135M-Instruct fences its JSON without a tag and keeps talking.
    text = (
        '```\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n```\n'
        "This will get the weather in Paris. Let me know if you need anything else!"
    )
    assert parse_tool_calls(text) == [call("get_weather", {"city": "Paris"})]


def test_an_unclosed_fence_is_read():
    text = '```json\n{"tool_calls": [{"name": "compute_now", "arguments": {}}]}'
    assert parse_tool_calls(text) == [call("compute_now")]


def test_a_bare_call_among_prose_is_read():
    text = (
        'To answer this I will call {"name": "get_weather", "arguments": {"city": "Paris"}} '
        "and then report back."
    )
    assert parse_tool_calls(text) == [call("get_weather", {"city": "Paris"})]


@pytest.mark.parametrize(
    "text",
    [
        # trailing commas
        '{"tool_calls": [{"name": "add", "arguments": {"a": 1, "b": 2,},},]}',
        # single quotes
        "{'name': 'add', 'arguments': {'a': 1, 'b': 2}}",
        # unquoted keys
        '{name: "add", arguments: {a: 1, b: 2}}',
        # missing closing brackets: cut off by the token limit
        '```json\n{"tool_calls": [{"name": "add", "arguments": {"a": 1, "b": 2',
        # a comment
        '{"name": "add", // adds\n "arguments": {"a": 1, "b": 2}}',
    ],
)
def test_repairable_json_gives_the_call(text: str):
    assert parse_tool_calls(text) == [call("add", {"a": 1, "b": 2})]


def test_python_literals_are_repaired():
    text = "{'name': 'search', 'arguments': {'exact': True, 'since': None, 'fuzzy': False}}"
    assert parse_tool_calls(text) == [
        call("search", {"exact": True, "since": None, "fuzzy": False})
    ]


def test_a_mistral_style_marker_before_the_list_is_skipped():
    text = '[TOOL_CALLS] [{"name": "get_weather", "arguments": {"city": "Paris"}}]'
    assert parse_tool_calls(text) == [call("get_weather", {"city": "Paris"})]


def test_the_first_value_that_is_a_call_wins_over_earlier_json():
    text = (
        'The user wants {"title": "A story"}, so I call '
        '{"name": "write_story", "arguments": {"title": "A story"}} now. '
        'Later maybe {"name": "publish", "arguments": {}}.'
    )
    assert parse_tool_calls(text) == [call("write_story", {"title": "A story"})]


def test_a_fenced_call_wins_over_a_bare_one_before_it():
    text = (
        'I could call {"name": "draft", "arguments": {}} but better:\n'
        '```json\n{"name": "publish", "arguments": {"now": true}}\n```'
    )
    assert parse_tool_calls(text) == [call("publish", {"now": True})]


def test_a_fenced_schema_before_a_bare_call_does_not_hide_it():
    text = (
        'The schema is\n```json\n{"type": "object", "properties": {}}\n```\n'
        'so: {"name": "compute_now", "arguments": {}}'
    )
    assert parse_tool_calls(text) == [call("compute_now")]


def test_a_stray_open_brace_in_prose_does_not_hide_the_call_after_it():
    text = 'Use { as a separator. {"name": "split", "arguments": {"sep": "{"}}'
    assert parse_tool_calls(text) == [call("split", {"sep": "{"})]


def test_braces_inside_argument_strings_do_not_end_the_call():
    text = 'Call: {"name": "format", "arguments": {"template": "use {x} here]}"}} done'
    assert parse_tool_calls(text) == [call("format", {"template": "use {x} here]}"})]


# --- tool calls: what is not a call -------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "",
        "The weather in Paris is sunny, 21 degrees.",
        "use {x} here",
        "Fill in {name} and {arguments} in the template.",
        "See [1] and [the docs].",
        '{"title": "A story"}',
        '```json\n{"title": "A story", "tags": ["cats"]}\n```',
        "42",
        '"compute_now"',
        "[1, 2, 3]",
        '{"name": "Alice Smith", "age": 31}',
        '{"name": "Alice Smith"}',
        '{"name": "Ada", "age": 36}',
        '{"name": 3, "arguments": {}}',
        '{"tool_calls": []}',
        '{"type": "web_search", "function": {"name": "search", "arguments": {}}}',
        '[{"name": "add", "arguments": {}}, {"title": "A story"}]',
        '{"title": "A story", "meta": {"name": "f"}',
    ],
)
def test_text_without_a_tool_call_gives_none(text: str):
    assert parse_tool_calls(text) is None


# --- extract_json --------------------------------------------------------------------------------


def test_a_json_fence_is_extracted():
    assert extract_json('Here you go:\n```json\n{"title": "A story"}\n```\nEnjoy!') == {
        "title": "A story"
    }


def test_a_bare_fence_is_extracted():
    assert extract_json('```\n{"title": "A story"}\n```') == {"title": "A story"}


def test_a_fence_is_preferred_to_bare_json_before_it():
    text = 'I considered {"title": "draft"} but settled on\n```json\n{"title": "final"}\n```'
    assert extract_json(text) == {"title": "final"}


def test_a_fence_quoted_inside_a_json_string_does_not_close_the_block():
    value = {"code": "```python\nprint(1)\n```", "lang": "python"}
    assert extract_json(f"```json\n{json.dumps(value)}\n```") == value


def test_bare_json_surrounded_by_prose_is_extracted():
    assert extract_json('The answer is {"city": "Paris", "days": 3}. Hope that helps!') == {
        "city": "Paris",
        "days": 3,
    }


def test_the_first_of_several_objects_is_extracted_not_their_merge():
    # json_repair alone would answer [{"a": 1}, {"b": 2}].
    assert extract_json('{"a": 1} and {"b": 2}') == {"a": 1}


def test_valid_json_is_preferred_to_prose_in_brackets_that_only_a_repair_reads():
    # json_repair reads "[the docs]" as ["the docs"].
    assert extract_json('See [the docs] and {"a": 1}') == {"a": 1}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"a": 1, "b": [1, 2,],}', {"a": 1, "b": [1, 2]}),
        ("{'name': 'Ada', 'tags': ['x']}", {"name": "Ada", "tags": ["x"]}),
        ("{name: 'Ada', age: 36}", {"name": "Ada", "age": 36}),
        ('{"ok": True, "missing": None}', {"ok": True, "missing": None}),
        (
            '{"title": "A story", "tags": ["cats", "dogs"',
            {"title": "A story", "tags": ["cats", "dogs"]},
        ),
        ('Result: {"a": {"b": [1, {"c": 2}', {"a": {"b": [1, {"c": 2}]}}),
    ],
)
def test_broken_json_is_repaired(text: str, expected: Any):
    assert extract_json(text) == expected


def test_an_unclosed_object_is_repaired_whole_not_cut_to_its_inner_object():
    assert extract_json('{"title": "x", "meta": {"pages": 1}') == {
        "title": "x",
        "meta": {"pages": 1},
    }


def test_nested_json_comes_back_whole():
    value = {"user": {"name": "Ada", "langs": [{"name": "en", "level": 5}]}, "ok": [True, None]}
    assert extract_json(f"Sure:\n{json.dumps(value, indent=2)}\nDone.") == value


def test_a_list_is_extracted():
    assert extract_json('Cities: ["Paris", "Oslo"] (two of them)') == ["Paris", "Oslo"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("42", 42), ("  -3.5\n", -3.5), ('"a text"', "a text"), ("true", True), ("null", None)],
)
def test_a_scalar_answer_alone_is_extracted(text: str, expected: Any):
    assert extract_json(text) == expected


def test_a_scalar_in_a_fence_is_extracted():
    assert extract_json("```json\n42\n```") == 42


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "The capital of France is Paris.",
        "use {x} here",
        "{",
        "{ garbage",
        "```json\n```",
    ],
)
def test_text_without_json_raises(text: str):
    with pytest.raises(NoJSONFoundError):
        extract_json(text)


def test_the_error_quotes_the_start_of_the_text_and_says_what_was_looked_for():
    text = "I am sorry, I cannot answer that. " * 10
    with pytest.raises(NoJSONFoundError) as raised:
        extract_json(text)
    message = str(raised.value)
    assert "I am sorry, I cannot answer that." in message
    assert text not in message
    assert "..." in message
    assert "```json" in message
    assert raised.value.text == text


def test_the_error_is_a_value_error_and_ours():
    with pytest.raises(ValueError):
        extract_json("no json")
    with pytest.raises(ByzerAgentsError):
        extract_json("no json")


# --- parse_partial_json ---------------------------------------------------------------------------

DOCUMENT = (
    '```json\n{"title": "Cats and \\"dogs\\"", "tags": ["pets", "animals"], "rating": 4.5, '
    '"pages": 120, "ok": true, "draft": false, "editor": null, '
    '"meta": {"author": {"name": "Ada"}, "years": [2020, 2021]}, "empty": {}}\n```'
)


def holds(later: Any, earlier: Any) -> bool:
    """Whether ``later`` keeps all of ``earlier``, strings only grown at their end."""
    if isinstance(earlier, dict):
        return isinstance(later, dict) and all(
            key in later and holds(later[key], value) for key, value in earlier.items()
        )
    if isinstance(earlier, list):
        return (
            isinstance(later, list)
            and len(later) >= len(earlier)
            and all(
                holds(new, old) for new, old in zip(later[: len(earlier)], earlier, strict=True)
            )
        )
    if isinstance(earlier, str):
        return isinstance(later, str) and later.startswith(earlier)
    return later == earlier and type(later) is type(earlier)


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        ("", None),
        ("Sure, here it", None),
        ("```json\n", None),
        ("{", {}),
        ('{"tit', {}),
        ('{"title": "Cats', {"title": "Cats"}),
        ('{"title": "Cats",', {"title": "Cats"}),
        ('{"title": "Cats", "pages": 12', {"title": "Cats"}),
        ('{"title": "Cats", "pages": 12,', {"title": "Cats", "pages": 12}),
        ('{"title": "Cats", "ok": tr', {"title": "Cats"}),
        ('{"title": "Cats", "ok": true', {"title": "Cats", "ok": True}),
        ('{"tags": ["pets", "ani', {"tags": ["pets", "ani"]}),
        ('```json\n{"title": "Cats"', {"title": "Cats"}),
        ('Here: [1, 2, {"a": "b', [1, 2, {"a": "b"}]),
    ],
)
def test_a_partial_prefix_gives_what_it_holds_so_far(prefix: str, expected: Any):
    assert parse_partial_json(prefix) == expected


def test_the_whole_document_gives_the_whole_value():
    assert parse_partial_json(DOCUMENT) == extract_json(DOCUMENT)


def test_longer_prefixes_give_values_holding_the_shorter_ones():
    values = [parse_partial_json(DOCUMENT[:end]) for end in range(len(DOCUMENT) + 1)]
    seen = [value for value in values if value is not None]
    assert seen[0] == {}
    assert seen[-1]["empty"] == {}
    for earlier, later in itertools.pairwise(seen):
        assert holds(later, earlier), (earlier, later)


def test_a_complete_document_with_prose_after_it_is_read():
    assert parse_partial_json('{"title": "Cats"} I hope this helps!') == {"title": "Cats"}


def test_a_broken_stream_falls_back_to_repair():
    assert parse_partial_json("{'title': 'Cats', 'pages': 12,") == {"title": "Cats", "pages": 12}


@pytest.mark.parametrize("text", ["]", "}", "{]", '{"a": "\\', "[[[[[[[[[", "{'", "```", "\\u"])
def test_odd_prefixes_do_not_raise(text: str):
    parse_partial_json(text)


# --- bounds: hostile replies stay cheap and typed -------------------------------------------------


def seconds_to_read(read: Callable[[str], Any], text: str) -> float:
    start = time.perf_counter()
    with contextlib.suppress(NoJSONFoundError):
        read(text)
    return time.perf_counter() - start


READERS = [extract_json, parse_tool_calls, parse_partial_json]


@pytest.mark.parametrize("read", READERS, ids=lambda read: read.__name__)
def test_400_kb_of_open_braces_is_read_in_linear_time(read: Callable[[str], Any]):
    # 1 KB of this took 17.7 s and 2 KB 81 s: every unclosed { restarted the search and a repair.
    assert seconds_to_read(read, "{ " * 200_000) < 2


@pytest.mark.parametrize("read", READERS, ids=lambda read: read.__name__)
def test_objects_without_keys_are_not_handed_to_json_repair_at_length(read: Callable[[str], Any]):
    # json_repair re-reads the rest of its input for each: 32 KB of these took it 73 s.
    empty_objects = "{ " * 20 + "} " * 20
    assert seconds_to_read(read, "[" + empty_objects * 400) < 2


DEEP = "[" * 10_000 + "]" * 10_000


@pytest.mark.parametrize(
    "text",
    [
        DEEP,
        '{"a": ' * 10_000 + "1" + "}" * 10_000,
        f"Here it is: {DEEP} done",
        f"```json\n{DEEP}\n```",
        "[" * 10_000,
    ],
    ids=["array", "object", "in-prose", "fenced", "unclosed"],
)
def test_json_nested_10k_deep_is_refused_with_a_typed_error(text: str):
    with pytest.raises(JSONTooLargeError, match=f"at most {MAX_NESTING} levels") as raised:
        extract_json(text)
    assert isinstance(raised.value, NoJSONFoundError)
    assert raised.value.text == text


def test_a_tool_call_nested_10k_deep_is_no_call():
    assert parse_tool_calls(f'{{"name": "f", "arguments": {{"x": {DEEP}}}}}') is None


def test_arguments_nested_10k_deep_in_a_string_stay_the_string_for_validation_to_show():
    arguments = f'{{"x": {DEEP}}}'
    text = json.dumps({"name": "f", "arguments": arguments})
    assert parse_tool_calls(text) == [call("f", arguments)]


def test_json_at_the_nesting_limit_is_read_and_one_deeper_is_refused():
    at_limit = "[" * MAX_NESTING + "]" * MAX_NESTING
    assert extract_json(f"see {at_limit}") == json.loads(at_limit)
    with pytest.raises(JSONTooLargeError):
        extract_json(f"see [{at_limit}]")


def test_a_reply_past_the_search_cap_is_read_only_when_it_is_json_as_a_whole():
    document = json.dumps({"story": "x" * MAX_SEARCH_CHARS})
    assert extract_json(document) == {"story": "x" * MAX_SEARCH_CHARS}
    with pytest.raises(JSONTooLargeError, match="characters long"):
        extract_json(f"Here it is: {document}")
    assert parse_tool_calls(f'Here: {{"name": "f", "arguments": {document}}}') is None


# --- properties -----------------------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=12,
)
arguments = st.dictionaries(st.text(), json_values, max_size=5)
tool_names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,30}", fullmatch=True)
prose = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="{}`"))


@given(
    name=tool_names, args=arguments, before=prose, after=prose, indent=st.sampled_from([None, 2])
)
def test_a_fenced_call_inside_any_prose_parses_back_exactly(
    name: str, args: dict[str, Any], before: str, after: str, indent: int | None
):
    payload = json.dumps({"tool_calls": [{"name": name, "arguments": args}]}, indent=indent)
    text = f"{before}\n```json\n{payload}\n```\n{after}"
    assert parse_tool_calls(text) == [ParsedToolCall(name, args)]


@settings(deadline=None)  # every prefix of the document is parsed
@given(document=st.dictionaries(st.text(max_size=8), json_values, max_size=4))
def test_prefixes_of_any_document_grow_monotonically(document: dict[str, Any]):
    text = json.dumps(document)
    seen = [parse_partial_json(text[:end]) for end in range(len(text) + 1)]
    values = [value for value in seen if value is not None]
    assert values[-1] == document
    for earlier, later in itertools.pairwise(values):
        assert holds(later, earlier), (earlier, later)


@given(text=st.text())
def test_partial_parsing_never_raises(text: str):
    parse_partial_json(text)
