"""Tools written into the prompt and calls read back out of the reply (``core.prompted_tools``),
and the backend adapter built on them (``core.prompted_backend``) that gives a model without
native tools the native shape."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from byzer_agents.core.prompted_backend import PromptedToolsBackend, with_prompted_tools
from byzer_agents.core.prompted_tools import (
    prompt_with_tools,
    tool_calls_in_text,
    tool_history_as_text,
)
from byzer_agents.core.protocol import Capabilities
from byzer_agents.llm_runtime.backends.scripted import ScriptedBackend
from byzer_agents.types import ChatRequest
from tests.tool_definitions import WEATHER

CALL_TEXT = (
    '```json\n{"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]}\n```'
)
PAST_CALL = {
    "id": "call_7",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'},
}
HISTORY: list[dict[str, Any]] = [
    {"role": "user", "content": "Weather in Rome?"},
    {"role": "assistant", "content": None, "tool_calls": [PAST_CALL]},
    {"role": "tool", "tool_call_id": "call_7", "content": '{"sky": "rain"}'},
    {"role": "user", "content": "And in Paris?"},
]


def ask(messages: list[dict[str, Any]] | None = None, **fields: Any) -> ChatRequest:
    return ChatRequest(messages=messages or [{"role": "user", "content": "Weather?"}], **fields)


# --- writing ------------------------------------------------------------------------------------


def test_tools_are_offered_in_the_last_user_message_only() -> None:
    written = prompt_with_tools(HISTORY, [WEATHER], "auto")
    assert "### get_weather" in written[-1]["content"]
    assert written[-1]["content"].endswith("And in Paris?")
    assert "### get_weather" not in written[0]["content"]


def test_earlier_calls_and_results_are_written_as_text() -> None:
    written = tool_history_as_text(HISTORY)
    assert [message["role"] for message in written] == ["user", "assistant", "user", "user"]
    assert '{"name": "get_weather", "arguments": {"city": "Rome"}}' in written[1]["content"]
    assert written[2]["content"] == 'Result of get_weather: {"sky": "rain"}'
    assert all("tool_calls" not in message for message in written)


def test_tool_choice_none_writes_the_history_but_offers_nothing() -> None:
    written = prompt_with_tools(HISTORY, [WEATHER], "none")
    assert written == tool_history_as_text(HISTORY)


def test_a_conversation_ending_in_a_result_offers_the_tools_with_it() -> None:
    written = prompt_with_tools(HISTORY[:3], [WEATHER], "required")
    assert len(written) == 3 and written[-1]["role"] == "user"
    assert "### get_weather" in written[-1]["content"]
    assert written[-1]["content"].endswith('Result of get_weather: {"sky": "rain"}')


def test_a_conversation_ending_with_the_assistant_gets_the_offer_as_a_new_user_message() -> None:
    written = prompt_with_tools([*HISTORY, {"role": "assistant", "content": "Hm."}], [WEATHER])
    assert len(written) == 6 and written[-1]["role"] == "user"
    assert "### get_weather" in written[-1]["content"]


def test_the_format_is_replaceable_and_gets_tools_and_choice() -> None:
    seen: list[Any] = []

    def tool_format(prompt: str, tools: list[Any], choice: Any) -> str:
        seen.append(([tool.name for tool in tools], choice))
        return f"TOOLS! {prompt}"

    written = prompt_with_tools(HISTORY, [WEATHER], "required", tool_format=tool_format)
    assert written[-1]["content"] == "TOOLS! And in Paris?"
    assert seen == [(["get_weather"], "required")]


# --- reading ------------------------------------------------------------------------------------


def test_calls_in_text_come_back_as_openai_tool_calls() -> None:
    (call,) = tool_calls_in_text(f"Sure.\n{CALL_TEXT}")
    assert (call.function.name, json.loads(call.function.arguments)) == (
        "get_weather",
        {"city": "Paris"},
    )
    assert call.id.startswith("call_")


def test_calls_without_an_id_are_numbered_when_asked() -> None:
    text = json.dumps({"tool_calls": [{"name": "a"}, {"name": "b", "id": "mine"}]})
    assert [call.id for call in tool_calls_in_text(text, first_number=3)] == ["call_3", "mine"]


def test_text_without_a_call_reads_as_none() -> None:
    assert tool_calls_in_text("It is sunny in Paris.") == []


# --- the adapter --------------------------------------------------------------------------------


def test_a_backend_with_native_tools_is_not_wrapped() -> None:
    native = ScriptedBackend(capabilities=Capabilities(native_tools=True))
    constrained = ScriptedBackend(capabilities=Capabilities(constrained_decoding=True))
    assert with_prompted_tools(native) is native
    assert with_prompted_tools(constrained) is constrained
    wrapped = with_prompted_tools(ScriptedBackend())
    assert isinstance(wrapped, PromptedToolsBackend) and wrapped.capabilities.native_tools


def test_the_adapter_sends_text_and_answers_with_tool_calls() -> None:
    backend = ScriptedBackend([CALL_TEXT])
    completion = PromptedToolsBackend(backend).chat(
        ask(HISTORY, tools=[WEATHER], tool_choice="auto", parallel_tool_calls=False)
    )
    sent = backend.requests[0]
    assert (sent.tools, sent.tool_choice, sent.parallel_tool_calls) == (None, None, None)
    assert "### get_weather" in sent.messages[-1]["content"]
    choice = completion.choices[0]
    assert choice.message.content is None and choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls or []
    assert call.id == "call_1"  # after the one call already in the conversation


def test_the_adapter_leaves_a_text_answer_as_it_is() -> None:
    backend = ScriptedBackend(["It is sunny."])
    completion = PromptedToolsBackend(backend).chat(ask(tools=[WEATHER]))
    message = completion.choices[0].message
    assert (message.content, message.tool_calls) == ("It is sunny.", None)


def test_without_tools_offered_calls_in_the_text_stay_text() -> None:
    backend = ScriptedBackend([CALL_TEXT])
    completion = PromptedToolsBackend(backend).chat(ask(tools=[WEATHER], tool_choice="none"))
    assert completion.choices[0].message.content == CALL_TEXT
    assert "### get_weather" not in backend.requests[0].messages[-1]["content"]


def test_the_adapter_uses_the_format_it_was_given() -> None:
    backend = ScriptedBackend(["ok"])
    adapter = PromptedToolsBackend(backend, tool_format=lambda prompt, tools, choice: "X " + prompt)
    adapter.chat(ask(tools=[WEATHER]))
    assert backend.requests[0].messages[-1]["content"] == "X Weather?"


def test_a_stream_that_may_call_tools_comes_whole_with_its_calls() -> None:
    backend = ScriptedBackend([CALL_TEXT])
    chunks = list(PromptedToolsBackend(backend).stream(ask(tools=[WEATHER])))
    deltas = [chunk.choices[0].delta for chunk in chunks if chunk.choices]
    assert [call.function.name for call in deltas[0].tool_calls or []] == ["get_weather"]
    assert not any(delta.content for delta in deltas)
    assert chunks[-1].usage is not None
    finishes = [chunk.choices[0].finish_reason for chunk in chunks if chunk.choices]
    assert "tool_calls" in finishes


def test_a_stream_without_tools_passes_through_piece_by_piece() -> None:
    backend = ScriptedBackend(["Hello there, friend."])
    chunks = list(PromptedToolsBackend(backend).stream(ask()))
    text = [chunk.choices[0].delta.content for chunk in chunks if chunk.choices]
    assert "".join(piece or "" for piece in text) == "Hello there, friend."
    assert backend.pieces_streamed > 1


def test_async_chat_and_stream_read_calls_as_the_sync_ones_do() -> None:
    backend = ScriptedBackend([CALL_TEXT, CALL_TEXT])
    adapter = PromptedToolsBackend(backend)

    async def both() -> tuple[Any, list[Any]]:
        completion = await adapter.achat(ask(tools=[WEATHER]))
        chunks = [chunk async for chunk in adapter.astream(ask(tools=[WEATHER]))]
        return completion, chunks

    completion, chunks = asyncio.run(both())
    assert completion.choices[0].message.tool_calls is not None
    assert chunks[0].choices[0].delta.tool_calls is not None
