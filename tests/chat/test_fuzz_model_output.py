"""Malformed model replies (random text, truncated JSON, deep nesting, huge strings, odd unicode
with lone surrogates) thrown at the parser and at the loop: every outcome is a valid answer or
a typed project error, within a time bound."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from byzer_agents import LLM
from byzer_agents.chat.results import LLMResponse
from byzer_agents.core.parsing import extract_json, parse_partial_json, parse_tool_calls
from byzer_agents.exceptions import ByzerAgentsError, NoJSONFoundError
from byzer_agents.llm_runtime.backends.scripted import ScriptedBackend
from byzer_agents.tools import tool
from byzer_agents.traces import TraceStore

SECONDS_PER_REPLY = 5.0
"""Generous: a reply is read in well under a second; before the bounds some took minutes."""

FUZZ = settings(
    max_examples=100,
    deadline=timedelta(seconds=SECONDS_PER_REPLY),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

odd_text = st.text(st.characters(blacklist_categories=()), max_size=200)
"""Any code point, lone surrogates included."""
json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | odd_text
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(odd_text, children, max_size=4)
    ),
    max_leaves=12,
)
fragments = st.sampled_from(
    ["{", "}", "[", "]", '"', "'", ":", ",", " ", "\n", "\\", "```", "```json\n", "<tool_call>",
     "</tool_call>", '"name": "add"', '"arguments": ', '{"a": 1, "b": 2}', "true", "None", "\ud800",
     "\U0001f600", "\x00", "1e999", "-", "/*", "//"]
)  # fmt: skip


@st.composite
def truncated_json(draw: st.DrawFn) -> str:
    text = json.dumps(draw(json_values), ensure_ascii=draw(st.booleans()))
    return text[: draw(st.integers(0, len(text)))]


@st.composite
def deep_nesting(draw: st.DrawFn) -> str:
    depth = draw(st.integers(150, 20_000))
    opener = draw(st.sampled_from(["[", "{", '{"a": ', '{"name": "add", "arguments": {"a": ']))
    closer = {"[": "]"}.get(opener, "}")
    return opener * depth + draw(st.sampled_from(["", "1", "1" + closer * depth]))


@st.composite
def huge_string(draw: st.DrawFn) -> str:
    body = draw(st.sampled_from(["x", " ", "{", '\\"', "\ud800"])) * draw(st.integers(1, 100_000))
    return draw(st.sampled_from(['{"a": "', '{"name": "add", "arguments": "', "", "[`"])) + body


@st.composite
def junk(draw: st.DrawFn) -> str:
    return "".join(draw(st.lists(fragments | odd_text, max_size=40)))


@st.composite
def tool_call_shaped(draw: st.DrawFn) -> str:
    arguments = draw(truncated_json() | odd_text | st.builds(json.dumps, json_values) | junk())
    call = f'{{"name": "add", "arguments": {arguments}}}'
    frame = draw(
        st.sampled_from(["{}", "```json\n{}\n```", "<tool_call>{}</tool_call>", "a {{ {}"])
    )
    return frame.replace("{}", call, 1) if frame != "a {{ {}" else "a { " + call


replies = st.one_of(
    odd_text, truncated_json(), deep_nesting(), huge_string(), junk(), tool_call_shaped()
)


def within_time(action: Any) -> Any:
    start = time.perf_counter()
    outcome = action()
    assert time.perf_counter() - start < SECONDS_PER_REPLY
    return outcome


@FUZZ
@given(text=replies)
def test_the_parser_answers_a_value_or_a_typed_error(text: str) -> None:
    def read() -> None:
        with contextlib.suppress(NoJSONFoundError):
            extract_json(text)
        calls = parse_tool_calls(text)
        assert calls is None or all(call.name for call in calls)
        parse_partial_json(text)

    within_time(read)


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


class Story(BaseModel):
    title: str
    body: str


@pytest.fixture(scope="module")
def trace_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TraceStore]:
    store = TraceStore(Path(tmp_path_factory.mktemp("fuzz")) / "traces.db")
    yield store
    store.close()


def llm_replying(text: str, store: TraceStore) -> LLM:
    """An LLM whose model answers ``text`` to every try (one first try and one retry)."""
    return LLM.from_backend(
        ScriptedBackend([text] * 2), model="fuzz", trace_store=store, max_retries=1
    )


@FUZZ
@given(text=replies)
def test_chat_oai_with_tools_answers_or_raises_a_typed_error(
    text: str, trace_store: TraceStore
) -> None:
    llm = llm_replying(text, trace_store)

    def chat() -> None:
        try:
            (response,) = llm.chat_oai("add 1 and 2", tools=[add], execute_tool=True)
        except ByzerAgentsError:
            return
        assert isinstance(response, LLMResponse)

    within_time(chat)


@FUZZ
@given(text=replies)
def test_extract_answers_a_valid_instance_or_raises_a_typed_error(
    text: str, trace_store: TraceStore
) -> None:
    llm = llm_replying(text, trace_store)

    def extract() -> None:
        try:
            story = llm.extract(Story, "a story")
        except ByzerAgentsError:
            return
        assert isinstance(story, Story)

    within_time(extract)
