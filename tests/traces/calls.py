"""OpenAI-shaped requests and answers for the trace tests, and a shorthand to record them."""

from __future__ import annotations

from typing import Any

from openai.types.chat import ChatCompletion

from byzer_agents.traces import EventStatus, TraceStore

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def completion(
    content: str | None = "Hello!", tool_calls: list[dict[str, Any]] | None = None
) -> ChatCompletion:
    """A ChatCompletion as the openai SDK returns it."""
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls is not None:
        message["tool_calls"] = tool_calls
    return ChatCompletion.model_validate(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": "test-model",
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": "tool_calls" if tool_calls else "stop",
                }
            ],
            "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15},
        }
    )


def weather_call(call_id: str = "call_1", city: str = "Paris") -> dict[str, Any]:
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": "get_weather", "arguments": f'{{"city": "{city}"}}'},
    }


def record_chat(
    store: TraceStore,
    run_id: str,
    *,
    step: int = 1,
    messages: list[dict[str, Any]] | None = None,
    response: ChatCompletion | None = None,
    status: EventStatus = "ok",
    **request: Any,
) -> str:
    """Record one model call (a plain user question and answer unless told otherwise)."""
    if response is None and status != "error":
        response = completion()
    return store.record_model_call(
        run_id=run_id,
        step=step,
        request={"messages": messages or [{"role": "user", "content": "Hi"}], **request},
        response=response,
        model="test-model",
        usage=response.usage if response is not None else None,
        latency_s=0.25,
        attempt=1,
        status=status,
        error="endpoint failed" if status == "error" else None,
    )


def record_tool(
    store: TraceStore,
    run_id: str,
    *,
    step: int = 1,
    tool_name: str = "get_weather",
    arguments: Any = None,
    result: Any = "sunny",
    status: EventStatus = "ok",
    parent_id: str | None = None,
) -> str:
    return store.record_tool_call(
        run_id=run_id,
        step=step,
        tool_name=tool_name,
        arguments={"city": "Paris"} if arguments is None else arguments,
        result=result,
        status=status,
        error="tool raised" if status != "ok" else None,
        latency_s=0.01,
        parent_id=parent_id,
    )
