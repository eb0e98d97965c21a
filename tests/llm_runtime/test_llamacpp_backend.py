"""The llama.cpp engine on the shipped SmolLM2 GGUF: text, streams, stop strings, seeds, usage,
``n``, tool calls and typed answers held to their schemas by the grammar, embeddings, and one
deployment through Ray. Skipped where llama-cpp-python is not installed."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (make install)")

from byzer_agents.exceptions import ConfigurationError, UsageError
from byzer_agents.llm_runtime.backends.llamacpp_backend import LlamaCppBackend
from byzer_agents.llm_runtime.backends.llamacpp_support import (
    gguf_file_of,
    replica_threads,
)
from byzer_agents.llm_runtime.deploy_config import DeploymentSpec, parse_model_type
from byzer_agents.llm_runtime.infer_backend import InferBackend
from byzer_agents.llm_runtime.models import default_chat_model
from byzer_agents.llm_runtime.structured_output import schema_error
from byzer_agents.llm_runtime.worker import build_backend
from byzer_agents.types import ChatRequest

QUESTION = "Name one colour of the sky."
WEATHER_PARAMETERS = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
    },
    "required": ["city", "unit"],
}
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city.",
        "parameters": WEATHER_PARAMETERS,
    },
}
CITY_SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "country": {"type": "string"}},
    "required": ["name", "country"],
    "additionalProperties": False,
}


def ask(text: str = QUESTION, **fields: Any) -> ChatRequest:
    settings: dict[str, Any] = {"temperature": 0, "max_tokens": 24, **fields}
    return ChatRequest(messages=[{"role": "user", "content": text}], **settings)


@pytest.fixture(scope="module")
def backend() -> Iterator[LlamaCppBackend]:
    engine = LlamaCppBackend(default_chat_model(), model_name="smollm2-llamacpp", num_threads=2)
    yield engine
    engine.close()


def test_chat_answers_text(backend: LlamaCppBackend) -> None:
    completion = backend.chat(ask())
    assert completion.choices[0].message.content
    assert completion.choices[0].finish_reason in ("stop", "length")


def test_stream_joins_to_the_chat_answer(backend: LlamaCppBackend) -> None:
    answer = backend.chat(ask()).choices[0].message.content
    chunks = list(backend.stream(ask()))
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text == answer
    assert chunks[-2].choices[0].finish_reason in ("stop", "length")
    usage = chunks[-1].usage
    assert usage is not None and usage.completion_tokens > 0


def test_a_closed_stream_frees_the_model(backend: LlamaCppBackend) -> None:
    stream = backend.stream(ask(max_tokens=64))
    next(stream)
    stream.close()  # stops the decode and releases the model for the next request
    assert backend.chat(ask(max_tokens=4)).choices[0].message.content


def test_stop_string_ends_the_answer(backend: LlamaCppBackend) -> None:
    whole = backend.chat(ask()).choices[0].message.content or ""
    word = whole.split()[1]
    cut = backend.chat(ask(stop=[word])).choices[0].message.content or ""
    assert word not in cut
    assert whole.startswith(cut)


def test_seed_repeats_a_sampled_answer(backend: LlamaCppBackend) -> None:
    sampled = ask(temperature=0.8, seed=7)
    first = backend.chat(sampled).choices[0].message.content
    assert backend.chat(sampled).choices[0].message.content == first


def test_usage_counts_prompt_and_answer(backend: LlamaCppBackend) -> None:
    usage = backend.chat(ask(max_tokens=8)).usage
    assert usage is not None
    prompt = backend.count_tokens(backend.render_prompt(ask()))
    assert usage.prompt_tokens == prompt
    assert 0 < usage.completion_tokens <= 8
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_n_answers_several_choices(backend: LlamaCppBackend) -> None:
    completion = backend.chat(ask(n=2, temperature=0.8, seed=1))
    assert [choice.index for choice in completion.choices] == [0, 1]
    assert all(choice.message.content for choice in completion.choices)


def test_tool_call_fits_the_tool_schema(backend: LlamaCppBackend) -> None:
    request = ask(
        "What is the weather in Paris?",
        tools=[WEATHER_TOOL],
        tool_choice="required",
        max_tokens=48,
    )
    choice = backend.chat(request).choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls or []
    assert call.function.name == "get_weather"
    assert schema_error(WEATHER_PARAMETERS, json.loads(call.function.arguments)) is None


def test_typed_answer_fits_its_schema(backend: LlamaCppBackend) -> None:
    response_format = {
        "type": "json_schema",
        "json_schema": {"name": "city", "schema": CITY_SCHEMA},
    }
    request = ask("Paris is the capital of France.", response_format=response_format, max_tokens=40)
    content = backend.chat(request).choices[0].message.content or ""
    assert schema_error(CITY_SCHEMA, json.loads(content)) is None


def test_meta_says_which_engine_serves_and_why(backend: LlamaCppBackend) -> None:
    meta = backend.meta()
    assert meta["backend"] == "llama.cpp"
    assert meta["engine_reason"]
    assert meta["num_threads"] == 2
    assert meta["constrained_decoding"] in ("xgrammar", "llama.cpp json-schema")
    assert backend.capabilities.constrained_decoding


def test_embed_returns_vectors() -> None:
    # No GGUF embedding model ships here: the chat GGUF loaded for embeddings stands in.
    embedder = LlamaCppBackend(
        default_chat_model(), model_name="smollm2-embed", num_threads=1, embedding=True
    )
    try:
        vectors = embedder.embed(["the sky is blue", "paris is in france"])
    finally:
        embedder.close()
    assert len(vectors) == 2
    assert len(vectors[0]) == len(vectors[1]) > 0
    assert vectors[0] != vectors[1]


def test_a_chat_model_refuses_embed(backend: LlamaCppBackend) -> None:
    with pytest.raises(NotImplementedError):
        backend.embed(["text"])


def test_a_non_gguf_file_is_refused_by_name(tmp_path: Path) -> None:
    model = tmp_path / "model.safetensors"
    model.write_bytes(b"not a gguf")
    with pytest.raises(ConfigurationError, match=r"model\.safetensors"):
        gguf_file_of(model)
    with pytest.raises(ConfigurationError, match="gguf_file"):
        gguf_file_of(tmp_path)


def test_threads_come_from_the_replica_cpus() -> None:
    assert replica_threads(0.5) == 1
    assert replica_threads(1.9) == 1
    assert replica_threads(10_000) >= 1
    assert replica_threads(10_000) <= len(os.sched_getaffinity(0))
    assert replica_threads(0.5, requested=1) == 1


def test_missing_llama_cpp_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    from byzer_agents.llm_runtime.backends.llamacpp_support import import_llama_cpp

    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # what an absent package imports as
    with pytest.raises(UsageError, match="llamacpp"):
        import_llama_cpp()


def worker_spec(model_path: Path, *, cpus: float) -> DeploymentSpec:
    return DeploymentSpec(
        udf_name="llamacpp-spec",
        model_path=str(model_path),
        model_type=parse_model_type("custom/auto"),
        infer_backend=InferBackend.LlamaCpp,
        cpus_per_worker=cpus,
    )


def test_the_worker_builds_it_for_a_gguf_file_only(tmp_path: Path) -> None:
    not_gguf = tmp_path / "weights.bin"
    not_gguf.write_bytes(b"\0" * 16)
    with pytest.raises(ConfigurationError, match=r"weights\.bin"):
        build_backend(worker_spec(not_gguf, cpus=1))
    built = build_backend(worker_spec(default_chat_model(), cpus=1.5))
    assert isinstance(built, LlamaCppBackend)
    assert built.meta()["num_threads"] == 1
    built.close()


def test_deployed_through_ray(ray_cluster: object) -> None:
    from byzer_agents import ByzerLLM

    name = "test-smollm2-llamacpp"
    client = ByzerLLM()
    client.undeploy(name)
    client.setup_cpus_per_worker(1).deploy(
        default_chat_model(), "custom/auto", name, infer_backend=InferBackend.LlamaCpp
    )
    try:
        (answer,) = client.chat_oai(
            QUESTION, model=name, llm_config={"temperature": 0, "max_tokens": 16}
        )
        assert answer.output
        meta = client.get_meta(model=name)
        assert meta["backend"] == "llama.cpp"
        assert meta["num_threads"] == 1
    finally:
        client.undeploy(name)
