"""The real path: LLM.from_openai -> the official openai SDK -> real HTTP on 127.0.0.1 -> an
OpenAI-compatible server (tests/openai_server.py until the project's own server lands)."""

from __future__ import annotations

import asyncio
import json
from typing import Literal

import pytest
from pydantic import BaseModel

from byzer_agents import LLM, ByzerLLM, ModelCallError, tool
from byzer_agents.core.protocol import Capabilities
from byzer_agents.llm_runtime.backends.scripted import ScriptedBackend
from tests.openai_server import serve_backend

KEY = "sk-test-not-a-real-key-0123456789"


@tool
def compute_date_range(count: int, unit: Literal["day", "week", "month", "year"]) -> list[str]:
    """Compute a date range that ends now."""
    return [f"-{count} {unit}", "now"]


class Story(BaseModel):
    title: str
    body: str


def test_tool_call_round_trip_over_http_with_a_fix(tmp_path) -> None:
    backend = ScriptedBackend(
        [
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
                    {
                        "id": "c2",
                        "name": "compute_date_range",
                        "arguments": {"count": 2, "unit": "week"},
                    }
                ]
            },
        ]
    )
    with serve_backend(backend, api_key=KEY) as base_url:
        llm = LLM.from_openai(
            model="scripted", base_url=base_url, api_key=KEY, trace_store=tmp_path / "t.db"
        )
        (response,) = llm.chat_oai("Two weeks ago?", tools=[compute_date_range], execute_tool=True)
        sent = base_url.bodies()
    assert response.values == [["-2 week", "now"]]
    assert sent[0]["tools"] == [compute_date_range.to_openai()]
    assert sent[1]["messages"][2] == {
        "role": "tool",
        "tool_call_id": "c1",
        "content": sent[1]["messages"][2]["content"],
    }
    assert "hour" in sent[1]["messages"][2]["content"]
    llm.close()
    stored = b"".join(path.read_bytes() for path in tmp_path.glob("t.db*"))
    assert KEY.encode() not in stored


def test_extract_uses_response_format_over_http() -> None:
    backend = ScriptedBackend([json.dumps({"title": "Cats", "body": "Meow."})])
    with serve_backend(backend) as base_url:
        llm = LLM.from_openai(model="scripted", base_url=base_url, api_key="unused")
        story = llm.extract(Story, "A story about cats: Meow.")
        sent = base_url.bodies()
    assert story == Story(title="Cats", body="Meow.")
    assert sent[0]["response_format"]["type"] == "json_schema"


def test_prompt_mode_over_http_when_the_endpoint_lacks_native_tools() -> None:
    backend = ScriptedBackend(
        ['```json\n{"name": "compute_date_range", "arguments": {"count": 1, "unit": "day"}}\n```']
    )
    with serve_backend(backend) as base_url:
        llm = LLM.from_openai(
            model="scripted", base_url=base_url, api_key="unused", capabilities=Capabilities()
        )
        (response,) = llm.chat_oai("Yesterday?", tools=[compute_date_range], execute_tool=True)
        sent = base_url.bodies()
    assert response.values == [["-1 day", "now"]]
    assert "tools" not in sent[0]
    assert "### compute_date_range" in sent[0]["messages"][-1]["content"]


def test_streaming_and_async_streaming_over_http() -> None:
    backend = ScriptedBackend(["Hello there, friend.", "Second stream."])
    with serve_backend(backend) as base_url:
        llm = LLM.from_openai(model="scripted", base_url=base_url, api_key="unused")
        assert "".join(llm.stream_chat_oai("hi")) == "Hello there, friend."

        async def collect() -> str:
            return "".join([piece async for piece in llm.astream_chat_oai("hi")])

        assert asyncio.run(collect()) == "Second stream."


def test_embeddings_over_http_match_the_backend() -> None:
    backend = ScriptedBackend()
    with serve_backend(backend) as base_url:
        llm = ByzerLLM.from_openai(model="scripted", base_url=base_url, api_key="unused")
        (vector,) = llm.emb(None, "hello")
    assert vector.output == pytest.approx(backend.embed(["hello"])[0])


def test_wrong_key_is_a_model_error_without_the_key() -> None:
    with serve_backend(ScriptedBackend(["x"]), api_key=KEY) as base_url:
        llm = LLM.from_openai(
            model="scripted", base_url=base_url, api_key="sk-wrong-key-abcdef", max_retries=0
        )
        with pytest.raises(ModelCallError) as caught:
            llm.chat_oai("hi")
    assert caught.value.status_code == 401
    assert "sk-wrong-key-abcdef" not in str(caught.value)
    assert "sk-wrong" not in repr(llm.get_meta())
