"""The embedded default end to end: the shipped SmolLM2 deployed on the real local Ray cluster,
reached through LLM like any model; tool calls and typed answers come from constrained decoding;
a stream its reader leaves stops the worker (its CPU measured)."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import time
from collections.abc import Iterator
from typing import Literal

import pytest
from pydantic import BaseModel

from byzer_agents import ByzerLLM, tool
from byzer_agents.llm_runtime.models import default_chat_model, default_embedding_model
from byzer_agents.types import ChatRequest
from tests.tool_definitions import WEATHER_WITH_UNIT

NAME = "test-smollm2"
EMBEDDER = "test-minilm"
GREEDY = {"temperature": 0, "max_tokens": 96}
LONG_ANSWER = "Count from 1 to 1000, one number per line."


@pytest.fixture(scope="module")
def llm(ray_cluster: object) -> Iterator[ByzerLLM]:
    client = ByzerLLM()
    client.undeploy(NAME)
    client.undeploy(EMBEDDER)
    client.setup_cpus_per_worker(0.5).deploy(default_chat_model(), "custom/auto", NAME)
    client.setup_cpus_per_worker(0.25).deploy(default_embedding_model(), "custom/bge", EMBEDDER)
    yield client
    client.undeploy(NAME)
    client.undeploy(EMBEDDER)


@tool
def get_weather(city: str, unit: Literal["celsius", "fahrenheit"] = "celsius") -> str:
    """Get the current weather in a city."""
    return f"21 degrees {unit} in {city}"


class City(BaseModel):
    name: str
    country: str


def test_chat_answers_through_the_deployment(llm: ByzerLLM) -> None:
    (answer,) = llm.chat_oai("Which city is the capital of France?", model=NAME, llm_config=GREEDY)
    assert "Paris" in answer.output
    assert answer.metadata["usage"]["completion_tokens"] > 0


def test_stream_joins_to_the_same_answer(llm: ByzerLLM) -> None:
    question = "Name one colour of the sky."
    (answer,) = llm.chat_oai(question, model=NAME, llm_config=GREEDY)
    assert "".join(llm.stream_chat_oai(question, model=NAME, llm_config=GREEDY)) == answer.output


def test_tool_call_is_constrained_to_the_schema(llm: ByzerLLM) -> None:
    (answer,) = llm.chat_oai(
        "What is the weather in Paris?",
        tools=[get_weather],
        tool_choice="required",
        execute_tool=True,
        model=NAME,
        llm_config=GREEDY,
        max_retries=0,
    )
    assert answer.tool_calls, "the grammar requires at least one call"
    for call, value in zip(answer.tool_calls, answer.values, strict=True):
        assert call.name == "get_weather"
        assert call.arguments["unit"] in ("celsius", "fahrenheit")
        assert value.startswith("21 degrees")


def test_extract_returns_a_valid_instance(llm: ByzerLLM) -> None:
    city = llm.extract(City, "Paris is the capital of France.", model=NAME, max_retries=0,
                       llm_config={"temperature": 0, "max_tokens": 64})  # fmt: skip
    assert isinstance(city, City) and city.name and city.country


def test_meta_says_which_engine_serves_and_why(llm: ByzerLLM) -> None:
    meta = llm.get_meta(model=NAME)
    assert meta["device"] == "cpu" and meta["num_workers"] == 1
    assert meta["constrained_decoding"] is True
    if importlib.util.find_spec("llama_cpp") is None:
        assert (meta["backend"], meta["infer_backend"]) == ("transformers", "transformers")
        assert "llama-cpp-python is not installed" in meta["engine_reason"]
    else:  # a GGUF on a replica without a GPU: the fastest engine here
        assert (meta["backend"], meta["infer_backend"]) == ("llama.cpp", "llama_cpp")
        assert "GGUF" in meta["engine_reason"] and "without a GPU" in meta["engine_reason"]


def test_embeddings_from_the_shipped_minilm(llm: ByzerLLM) -> None:
    first, second, other = (
        vector.output
        for vector in llm.emb(
            EMBEDDER, ["A cat sits on the mat.", "A cat is on a mat.", "Stocks fell."]
        )
    )
    assert len(first) == 384

    def dot(a: list[float], b: list[float]) -> float:
        return sum(x * y for x, y in zip(a, b, strict=True))

    assert dot(first, second) > dot(first, other)


def worker_cpu_seconds_over(llm: ByzerLLM, window_s: float) -> float:
    """CPU time the deployment's worker process uses in the next ``window_s`` seconds."""
    import psutil
    import ray

    process = psutil.Process(ray.get(llm.backend(NAME).workers[0].ping.remote()))
    before = process.cpu_times()
    time.sleep(window_s)
    after = process.cpu_times()
    return (after.user - before.user) + (after.system - before.system)


def test_closing_a_stream_early_stops_the_worker(llm: ByzerLLM) -> None:
    pieces = llm.stream_chat_oai(LONG_ANSWER, model=NAME, llm_config={"max_tokens": 1000})
    for _ in range(5):
        next(pieces)
    started = time.perf_counter()
    pieces.close()
    closing = time.perf_counter() - started
    # Unstopped, the worker went on at about one CPU for the rest of its 1,000 tokens.
    busy = worker_cpu_seconds_over(llm, 1.5)
    assert busy < 0.5, f"the worker used {busy:.2f} CPU-s in 1.5 s after the stream was closed"
    assert closing < 10


def test_a_cancelled_stream_that_may_call_tools_stops_the_worker(llm: ByzerLLM) -> None:
    """An answer that may call tools is sent whole, so the worker yields nothing while it
    decodes: the cancellation must reach the decode without a chunk to carry it."""
    request = ChatRequest(
        model=NAME,
        messages=[{"role": "user", "content": LONG_ANSWER}],
        tools=[WEATHER_WITH_UNIT],
        temperature=0,
        max_tokens=1000,
    )

    async def read_then_cancel() -> None:
        async def read() -> None:
            async for _ in llm.backend(NAME).astream(request):
                pass

        reading = asyncio.ensure_future(read())
        await asyncio.sleep(2.0)
        assert not reading.done(), "the answer was complete before it could be cancelled"
        reading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reading

    asyncio.run(read_then_cancel())
    busy = worker_cpu_seconds_over(llm, 1.5)
    assert busy < 0.5, f"the worker used {busy:.2f} CPU-s in 1.5 s after the cancel"
