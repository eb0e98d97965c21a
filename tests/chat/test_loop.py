"""The chat -> parse -> validate -> execute loop, driven by scripted replies.

These check the loop's logic (feedback, retries, parallel calls, typed errors, traces); the real
path over HTTP is tested in tests/chat/test_openai_path.py.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Literal

import pytest
from pydantic import BaseModel

from byzer_agents import (
    LLM,
    ExtractionError,
    ModelCallError,
    ModelNotFoundError,
    ToolCallError,
    tool,
)
from byzer_agents.exceptions import ToolExecutionError, ToolTimeoutError
from byzer_agents.traces import TraceStore
from tests.chat.conftest import NATIVE


@tool
def compute_date_range(count: int, unit: Literal["day", "week", "month", "year"]) -> list[str]:
    """Compute a date range that ends now."""
    return [f"-{count} {unit}", "now"]


class Story(BaseModel):
    """A short story."""

    title: str
    body: str


def fenced(payload: object) -> str:
    return f"Sure.\n```json\n{json.dumps(payload)}\n```"


def call(name: str, **arguments: object) -> dict:
    return {"name": name, "arguments": arguments}


# --- tool calls, prompt mode ------------------------------------------------------------------


def test_prompt_mode_offers_tools_in_the_prompt_and_runs_the_call(scripted) -> None:
    llm, backend = scripted(
        fenced({"tool_calls": [call("compute_date_range", count=2, unit="week")]})
    )
    (response,) = llm.chat_oai(
        [{"role": "user", "content": "Two weeks ago?"}],
        tools=[compute_date_range],
        execute_tool=True,
    )
    assert response.values == [["-2 week", "now"]]
    assert response.tool_calls[0].arguments == {"count": 2, "unit": "week"}
    sent = backend.requests[0]
    assert sent.tools is None  # prompt mode: the tools are in the text
    assert "### compute_date_range" in sent.messages[-1]["content"]
    assert sent.messages[-1]["content"].endswith("Two weeks ago?")


def test_malformed_json_then_a_fix(scripted) -> None:
    truncated = (
        '{"tool_calls": [{"name": "compute_date_range", "arguments": {"count": 2, "unit": "week"'
    )
    llm, _ = scripted(
        f"```json\n{truncated}",
        fenced({"tool_calls": [call("compute_date_range", count=3, unit="day")]}),
    )
    (response,) = llm.chat_oai("q", tools=[compute_date_range], execute_tool=True)
    # json-repair closes the brackets, so the first answer already parses.
    assert response.values == [["-2 week", "now"]]
    assert response.metadata["attempts"] == 1


def test_unparseable_arguments_are_fed_back_then_fixed(scripted) -> None:
    llm, backend = scripted(
        fenced(
            {"tool_calls": [{"name": "compute_date_range", "arguments": "count two, unit week"}]}
        ),
        fenced({"tool_calls": [call("compute_date_range", count=2, unit="week")]}),
    )
    (response,) = llm.chat_oai("q", tools=[compute_date_range], execute_tool=True)
    assert response.values == [["-2 week", "now"]]
    feedback = backend.requests[1].messages[-1]["content"]
    assert "could not be run" in feedback and "compute_date_range" in feedback


def test_wrong_enum_is_fed_back_naming_the_field_then_fixed(scripted) -> None:
    llm, backend = scripted(
        fenced({"tool_calls": [call("compute_date_range", count=2, unit="fortnight")]}),
        fenced({"tool_calls": [call("compute_date_range", count=2, unit="week")]}),
    )
    (response,) = llm.chat_oai("q", tools=[compute_date_range], execute_tool=True)
    assert response.values == [["-2 week", "now"]]
    assert response.metadata["attempts"] == 2
    feedback = backend.requests[1].messages
    assert feedback[-3]["role"] == "assistant" and "fortnight" in feedback[-3]["content"]
    result = feedback[-2]["content"]
    assert result.startswith("Result of compute_date_range: Error:")
    assert "unit: Input should be 'day', 'week', 'month' or 'year'" in result


def test_unknown_tool_is_fed_back_with_the_tool_names(scripted) -> None:
    llm, backend = scripted(
        fenced({"tool_calls": [call("get_weather", city="Paris")]}),
        fenced({"tool_calls": [call("compute_date_range", count=1, unit="day")]}),
    )
    (response,) = llm.chat_oai("q", tools=[compute_date_range], execute_tool=True)
    assert response.values == [["-1 day", "now"]]
    result = backend.requests[1].messages[-2]["content"]
    assert result.startswith("Result of get_weather: Error:")
    assert "no tool named 'get_weather'" in result and "['compute_date_range']" in result


def test_a_raising_tool_is_reported_on_the_response_and_not_retried(scripted) -> None:
    attempts = []

    @tool
    def divide(a: float, b: float) -> float:
        attempts.append((a, b))
        return a / b

    llm, backend = scripted(fenced({"tool_calls": [call("divide", a=1, b=0)]}))
    (response,) = llm.chat_oai("q", tools=[divide], execute_tool=True)
    assert response.values == []
    (error,) = response.tool_errors
    assert isinstance(error, ToolExecutionError) and error.tool_name == "divide"
    assert error.reason == "ZeroDivisionError: float division by zero"
    assert isinstance(error.__cause__, ZeroDivisionError)
    assert attempts == [(1.0, 0.0)] and len(backend.requests) == 1


def test_a_tool_that_times_out_is_reported_as_maybe_still_running(scripted) -> None:
    release = threading.Event()

    @tool
    def slow() -> str:
        release.wait(5)
        return "late"

    llm, _ = scripted(fenced({"tool_calls": [call("slow")]}), tool_timeout_s=0.2)
    try:
        (response,) = llm.chat_oai("q", tools=[slow], execute_tool=True)
    finally:
        release.set()
    (error,) = response.tool_errors
    assert isinstance(error, ToolTimeoutError) and error.still_running
    assert "timed out after 0.2 s and may still be running" in str(error)


def test_parallel_calls_run_concurrently_and_keep_order(scripted) -> None:
    started: list[str] = []
    barrier = threading.Barrier(3, timeout=5)

    @tool
    def fetch(key: str) -> str:
        started.append(key)
        barrier.wait()  # all three must be running at once, or this times out
        return key.upper()

    llm, _ = scripted(fenced({"tool_calls": [call("fetch", key=k) for k in ("a", "b", "c")]}))
    (response,) = llm.chat_oai("q", tools=[fetch], execute_tool=True)
    assert response.values == ["A", "B", "C"]
    assert sorted(started) == ["a", "b", "c"]


def test_max_retries_exhausted_raises_with_every_attempt(scripted) -> None:
    bad = fenced({"tool_calls": [call("compute_date_range", count="many", unit="day")]})
    llm, backend = scripted(bad, bad, bad)
    with pytest.raises(ToolCallError) as caught:
        llm.chat_oai("q", tools=[compute_date_range], execute_tool=True, max_retries=2)
    error = caught.value
    assert len(error.attempts) == 3 and len(backend.requests) == 3
    assert all("count" in attempt.error and "many" in attempt.output for attempt in error.attempts)


def test_plain_answer_when_no_tool_fits(scripted) -> None:
    llm, _ = scripted("It is sunny today.")
    (response,) = llm.chat_oai("q", tools=[compute_date_range], execute_tool=True)
    assert response.output == "It is sunny today."
    assert response.values == [] and response.tool_calls == []


def test_tool_choice_required_refuses_a_plain_answer(scripted) -> None:
    llm, backend = scripted(
        "No need.", fenced({"tool_calls": [call("compute_date_range", count=1, unit="day")]})
    )
    (response,) = llm.chat_oai(
        "q", tools=[compute_date_range], tool_choice="required", execute_tool=True
    )
    assert response.values == [["-1 day", "now"]]
    assert "a tool call was required" in backend.requests[1].messages[-1]["content"]


def test_tool_choice_as_the_function_forces_that_tool(scripted) -> None:
    @tool
    def other() -> str:
        return "x"

    llm, backend = scripted(
        fenced({"tool_calls": [call("other")]}),
        fenced({"tool_calls": [call("compute_date_range", count=1, unit="year")]}),
    )
    (response,) = llm.chat_oai(
        "q", tools=[other, compute_date_range], tool_choice=compute_date_range, execute_tool=True
    )
    assert response.values == [["-1 year", "now"]]
    assert (
        "You must call the tool compute_date_range" in backend.requests[0].messages[-1]["content"]
    )


def test_without_execute_tool_calls_are_validated_but_not_run(scripted) -> None:
    ran = []

    @tool
    def record(x: int) -> None:
        ran.append(x)

    llm, _ = scripted(fenced({"tool_calls": [call("record", x="5")]}))
    (response,) = llm.chat_oai("q", tools=[record])
    assert response.tool_calls[0].arguments == {"x": 5}
    assert response.values == [] and ran == []


def test_custom_function_calling_format(scripted) -> None:
    llm, backend = scripted(
        fenced({"name": "compute_date_range", "arguments": {"count": 1, "unit": "day"}})
    )
    llm.setup_function_calling_format_func(
        "scripted", lambda prompt, tools, choice: f"TOOLS! {prompt}"
    )
    llm.chat_oai("q", tools=[compute_date_range])
    assert backend.requests[0].messages[-1]["content"] == "TOOLS! q"


# --- tool calls, native mode ------------------------------------------------------------------


def test_native_mode_sends_tools_and_feeds_errors_back_as_tool_messages(scripted) -> None:
    llm, backend = scripted(
        {
            "tool_calls": [
                {
                    "id": "c1",
                    "name": "compute_date_range",
                    "arguments": {"count": 2, "unit": "hour"},
                }
            ]
        },
        {
            "tool_calls": [
                {"id": "c2", "name": "compute_date_range", "arguments": {"count": 2, "unit": "day"}}
            ]
        },
        capabilities=NATIVE,
    )
    (response,) = llm.chat_oai("q", tools=[compute_date_range], execute_tool=True)
    assert response.values == [["-2 day", "now"]]
    first = backend.requests[0]
    assert first.tools == [compute_date_range.to_openai()] and first.tool_choice == "auto"
    assert first.messages == [{"role": "user", "content": "q"}]
    retry = backend.requests[1].messages
    assert retry[1]["role"] == "assistant" and retry[1]["tool_calls"][0]["id"] == "c1"
    assert retry[2]["role"] == "tool" and retry[2]["tool_call_id"] == "c1"
    assert retry[2]["content"].startswith("Error:") and "hour" in retry[2]["content"]


# --- typed answers ----------------------------------------------------------------------------


def test_typed_answer_prompt_mode_with_a_fix(scripted) -> None:
    llm, backend = scripted(fenced({"title": "Cats"}), fenced({"title": "Cats", "body": "Meow."}))
    (response,) = llm.chat_oai("Tell me a story", response_class=Story)
    assert response.value == Story(title="Cats", body="Meow.")
    assert "JSON Schema" in backend.requests[0].messages[-1]["content"]
    assert "body: Field required" in backend.requests[1].messages[-1]["content"]


def test_extract_from_text_and_list_of_classes(scripted) -> None:
    llm, backend = scripted(fenced([{"title": "A", "body": "1"}, {"title": "B", "body": "2"}]))
    stories = llm.extract(list[Story], "Story A: 1. Story B: 2.")
    assert [story.title for story in stories] == ["A", "B"]
    assert "Story A: 1. Story B: 2." in backend.requests[0].messages[-1]["content"]


def test_extraction_error_carries_every_raw_output(scripted) -> None:
    llm, _ = scripted("no json here", "still none")
    with pytest.raises(ExtractionError) as caught:
        llm.extract(Story, "text", max_retries=1)
    assert [attempt.output for attempt in caught.value.attempts] == ["no json here", "still none"]


def test_json_schema_mode_sends_response_format(scripted) -> None:
    llm, backend = scripted('{"title": "T", "body": "B"}', capabilities=NATIVE)
    assert llm.extract(Story, "text") == Story(title="T", body="B")
    response_format = backend.requests[0].response_format
    assert response_format["type"] == "json_schema"
    assert response_format["json_schema"]["schema"]["properties"].keys() == {"title", "body"}


def test_json_schema_mode_wraps_a_non_object_answer(scripted) -> None:
    llm, backend = scripted('{"value": [1, 2, 3]}', capabilities=NATIVE)
    assert llm.extract(list[int], "numbers") == [1, 2, 3]
    assert backend.requests[0].response_format["json_schema"]["schema"]["required"] == ["value"]


def test_truncated_answer_is_reported_as_such(scripted) -> None:
    from byzer_agents.types import make_completion

    cut = make_completion(
        model="scripted", content='{"title": "T", "body": "B"}', finish_reason="length"
    )
    llm, _ = scripted(cut)
    with pytest.raises(ExtractionError, match="cut off at the token limit"):
        llm.extract(Story, "text", max_retries=0)


@pytest.mark.parametrize("native", [False, True])
def test_a_typed_answer_nested_too_deeply_is_fed_back_then_typed(scripted, native: bool) -> None:
    deep = '{"title": ' + "[" * 10_000 + "]" * 10_000 + ', "body": "b"}'
    llm, backend = scripted(deep, deep, capabilities=NATIVE if native else None)
    started = time.perf_counter()
    with pytest.raises(ExtractionError) as caught:
        llm.extract(Story, "text", max_retries=1)
    assert time.perf_counter() - started < 5
    assert len(backend.requests) == 2
    assert all(attempt.error for attempt in caught.value.attempts)


def test_response_after_chat_answers_freely_then_extracts(
    scripted, trace_store: TraceStore
) -> None:
    llm, backend = scripted(
        "Once upon a time, a cat named Tom.", fenced({"title": "Tom", "body": "A cat."})
    )
    (response,) = llm.chat_oai("Tell a story", response_class=Story, response_after_chat=True)
    assert response.value == Story(title="Tom", body="A cat.")
    assert response.metadata["attempts"] == 2
    assert "JSON Schema" not in backend.requests[0].messages[-1]["content"]
    second = backend.requests[1].messages
    assert second[-2] == {"role": "assistant", "content": "Once upon a time, a cat named Tom."}
    assert "your answer above" in second[-1]["content"]
    events = trace_store.events(response.metadata["run_id"])
    assert [event.kind for event in events] == ["model_call", "model_call"]


def test_stream_extract_yields_growing_partials_then_the_answer(scripted) -> None:
    llm, _ = scripted(
        json.dumps({"title": "Whiskers the brave", "body": "A cat who sailed the seas."})
    )
    partials = list(llm.stream_extract(Story, "text"))
    assert partials[-1] == Story(title="Whiskers the brave", body="A cat who sailed the seas.")
    assert isinstance(partials[0], Story)
    assert any(p.body is None for p in partials[:-1])
    assert len(partials) >= 3


def test_stream_chat_yields_deltas(scripted) -> None:
    llm, _ = scripted("Hello there, friend.")
    pieces = list(llm.stream_chat_oai("hi"))
    assert len(pieces) > 1 and "".join(pieces) == "Hello there, friend."


# --- errors, traces, seed surface -------------------------------------------------------------


def test_backend_failure_is_a_typed_model_error(scripted) -> None:
    llm, _ = scripted(ConnectionError("refused"))
    with pytest.raises(ModelCallError, match="ConnectionError: refused"):
        llm.chat_oai("hi")


def test_unknown_model_lists_the_available_ones(scripted) -> None:
    llm, _ = scripted("x")
    with pytest.raises(ModelNotFoundError, match=r"'nope'.*\['scripted'\]"):
        llm.chat_oai("hi", model="nope")


def test_bad_conversation_and_bad_llm_config_are_named(scripted) -> None:
    llm, _ = scripted("x")
    with pytest.raises(TypeError, match=r"conversations\[0\]"):
        llm.chat_oai([{"content": "no role"}])
    with pytest.raises(ValueError, match="temperature='hot'"):
        llm.chat_oai("hi", llm_config={"temperature": "hot"})
    with pytest.raises(ValueError, match="tools or response_class"):
        llm.chat_oai("hi", tools=[compute_date_range], response_class=Story)


def test_traces_record_model_and_tool_calls_with_parents(scripted, trace_store: TraceStore) -> None:
    llm, _ = scripted(
        fenced({"tool_calls": [call("compute_date_range", count=2, unit="hour")]}),
        fenced({"tool_calls": [call("compute_date_range", count=2, unit="day")]}),
    )
    (response,) = llm.chat_oai("q", tools=[compute_date_range], execute_tool=True)
    events = trace_store.events(response.metadata["run_id"])
    assert [(e.kind, e.status) for e in events] == [
        ("model_call", "invalid"),
        ("model_call", "ok"),
        ("tool_call", "ok"),
    ]
    assert events[2].parent_id == events[1].id
    assert events[2].tool_name == "compute_date_range"
    assert [event.attempt for event in events[:2]] == [1, 2]
    assert trace_store.failed()[0].error and "hour" in trace_store.failed()[0].error


def test_seed_chat_emb_and_meta(scripted) -> None:
    from byzer_agents import LLMRequest

    llm, _ = scripted("one", "two")
    answers = llm.chat("scripted", LLMRequest(instruction=["a", "b"], max_length=32))
    assert [answer.output for answer in answers] == ["one", "two"]
    vectors = llm.emb("scripted", LLMRequest(instruction="hello"))
    assert len(vectors[0].output) == 8 and vectors[0].input == "hello"
    assert llm.emb(None, "hello")[0].output == vectors[0].output
    meta = (
        llm.setup_max_model_length("scripted", 2048).setup_template("scripted", "qwen").get_meta()
    )
    assert meta["max_model_len"] == 2048 and meta["template"] == "qwen"


def test_async_twins_run_concurrently(scripted) -> None:
    llm, _ = scripted(*[fenced({"title": f"T{i}", "body": "b"}) for i in range(5)])

    async def main() -> list[str]:
        stories = await asyncio.gather(*(llm.aextract(Story, f"text {i}") for i in range(5)))
        return sorted(story.title for story in stories)

    assert asyncio.run(main()) == ["T0", "T1", "T2", "T3", "T4"]


def test_async_tool_calls_execute_with_gather(scripted) -> None:
    @tool
    async def ping(n: int) -> int:
        await asyncio.sleep(0.01)
        return n

    llm, _ = scripted(fenced({"tool_calls": [call("ping", n=1), call("ping", n=2)]}))
    (response,) = asyncio.run(llm.achat_oai("q", tools=[ping], execute_tool=True))
    assert response.values == [1, 2]


def test_llm_is_usable_without_tracing() -> None:
    from byzer_agents import ScriptedBackend

    llm = LLM.from_backend(ScriptedBackend(["fine"]))
    (response,) = llm.chat_oai("hi")
    assert response.output == "fine" and response.metadata["run_id"] is None


def test_extract_dataclass_and_typeddict(scripted) -> None:
    import dataclasses

    from typing_extensions import TypedDict

    @dataclasses.dataclass
    class Point:
        x: int
        y: int

    class Contact(TypedDict):
        email: str

    llm, _ = scripted(fenced({"x": "1", "y": 2}), fenced({"email": "a@b.c"}))
    assert llm.extract(Point, "one two") == Point(x=1, y=2)
    assert llm.extract(Contact, "mail a@b.c") == {"email": "a@b.c"}


def test_closing_a_stream_extract_early_leaves_the_llm_usable(scripted) -> None:
    llm, _ = scripted(json.dumps({"title": "A long title here", "body": "text"}), "next")
    stream = llm.stream_extract(Story, "text")
    next(stream)
    stream.close()
    assert llm.chat_oai("hi")[0].output == "next"
