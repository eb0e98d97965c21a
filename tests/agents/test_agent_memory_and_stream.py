"""Memory (a run continued from an earlier one's messages, long histories trimmed to the model's
context) and streaming (the run's events, in order)."""

from __future__ import annotations

import asyncio

from pydantic import BaseModel

from byzer_agents import Agent
from byzer_agents.agents import (
    FinalOutput,
    PartialOutput,
    TextDelta,
    ToolCallFinished,
    ToolCallStarted,
)
from byzer_agents.agents.memory import rough_tokens, trim_history
from tests.agents.conftest import call, calls


class Story(BaseModel):
    title: str
    words: int


def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


def test_message_history_continues_a_run(scripted) -> None:
    llm, backend = scripted(calls(call("add", {"a": 1, "b": 2})), "3", "Your first sum was 3.")
    agent = Agent(llm, tools=[add], instructions="You add.")
    first = agent.run("1 + 2?")
    second = agent.run("What was my first sum?", message_history=first.messages)

    sent = backend.requests[-1].messages
    assert sent[: len(first.messages)] == list(first.messages)
    assert [m["role"] for m in sent].count("system") == 1
    assert sent[-1] == {"role": "user", "content": "What was my first sum?"}
    assert second.messages[: len(first.messages)] == list(first.messages)
    assert second.output == "Your first sum was 3."


def test_a_long_history_is_trimmed_to_the_context(scripted) -> None:
    long = "word " * 400  # about 500 tokens each, counted roughly
    history = [{"role": "system", "content": "Be kind."}]
    for index in range(10):
        history += [
            {"role": "user", "content": f"question {index} {long}"},
            {"role": "assistant", "content": f"answer {index} {long}"},
        ]
    llm, backend = scripted("fine")
    Agent(llm, max_context_tokens=3000).run("last question", message_history=history)
    sent = backend.requests[0].messages
    assert sent[0] == {"role": "system", "content": "Be kind."}
    assert sent[-1] == {"role": "user", "content": "last question"}
    assert sent[-2]["content"].startswith("answer 9")
    assert len(sent) < len(history)
    assert sum(rough_tokens(m) for m in sent) <= 3000 - 750


def test_the_models_context_length_is_used_when_known(scripted) -> None:
    history = [{"role": "user", "content": "x " * 20000}, {"role": "assistant", "content": "ok"}]
    llm, backend = scripted("fine")  # the scripted model says max_model_len=4096
    Agent(llm).run("now", message_history=history)
    assert [m["content"] for m in backend.requests[0].messages] == ["ok", "now"]


def test_trimming_never_splits_tool_calls_from_their_results() -> None:
    big = "z" * 2000
    messages = [
        {"role": "system", "content": "s"},
        {"role": "user", "content": big},
        {"role": "assistant", "tool_calls": [{"id": "1", "function": {"name": "f"}}]},
        {"role": "tool", "tool_call_id": "1", "content": big},
        {"role": "tool", "tool_call_id": "2", "content": "small"},
        {"role": "user", "content": "next"},
    ]
    budget = rough_tokens(messages[0]) + rough_tokens(messages[-1]) + 100
    kept = trim_history(messages, budget)
    assert [m["role"] for m in kept] == ["system", "user"]
    roomy = budget + sum(rough_tokens(m) for m in messages[2:5])
    kept = trim_history(messages, roomy)
    assert [m["role"] for m in kept] == ["system", "assistant", "tool", "tool", "user"]
    assert trim_history(messages, None) == messages


def test_stream_yields_the_events_in_order(scripted) -> None:
    llm, _ = scripted(
        calls(call("add", {"a": 1, "b": 2}, "c1"), content="Adding."),
        '{"title": "Sum", "words": 3}',
    )
    agent = Agent(llm, tools=[add], output_type=Story)
    events = list(agent.stream("add 1 and 2"))

    kinds = [type(event).__name__ for event in events]
    assert kinds[0] == "TextDelta" and kinds[-1] == "FinalOutput"
    started = kinds.index("ToolCallStarted")
    finished = kinds.index("ToolCallFinished")
    assert started < finished
    assert all(kind == "TextDelta" for kind in kinds[:started])
    assert "".join(e.text for e in events[:started] if isinstance(e, TextDelta)) == "Adding."
    start_event = events[started]
    assert isinstance(start_event, ToolCallStarted)
    assert (start_event.step, start_event.name, start_event.arguments) == (
        1,
        "add",
        {"a": 1, "b": 2},
    )
    finish_event = events[finished]
    assert isinstance(finish_event, ToolCallFinished) and finish_event.run.value == 3
    later = events[finished + 1 : -1]
    assert all(isinstance(e, TextDelta | PartialOutput) and e.step == 2 for e in later)
    partials = [e.output for e in later if isinstance(e, PartialOutput)]
    assert partials and partials[-1].title == "Sum"
    final = events[-1]
    assert isinstance(final, FinalOutput) and final.result.output == Story(title="Sum", words=3)
    assert len(final.result.steps) == 2


def test_astream_yields_the_same_events(scripted, trace_store) -> None:
    llm, _ = scripted(calls(call("add", {"a": 2, "b": 2})), "4")
    agent = Agent(llm, tools=[add])

    async def collect() -> list:
        return [event async for event in agent.astream("2 + 2")]

    events = asyncio.run(collect())
    assert [type(e).__name__ for e in events] == [
        "ToolCallStarted",
        "ToolCallFinished",
        "TextDelta",
        "FinalOutput",
    ]
    assert events[-1].result.output == "4"
    assert trace_store.run(events[-1].result.run_id).status == "ok"
