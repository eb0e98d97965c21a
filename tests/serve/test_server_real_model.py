"""``byzer-agents serve`` in front of the shipped models on the real local Ray, spoken to by the
official openai SDK and by instructor: chat, streaming, tools and json_schema answers held to
their schemas by constrained decoding, embeddings."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator

import jsonschema
import openai
import pytest
from pydantic import BaseModel

from byzer_agents import LLM
from byzer_agents.llm_runtime.models import default_chat_model, default_embedding_model

pytest.importorskip("fastapi", reason="the server needs the serve extra")
from byzer_agents.serve import BackgroundServer
from tests.evals.jsonschemabench import schemas
from tests.tool_definitions import WEATHER_WITH_UNIT as WEATHER_TOOL

CHAT = "serve-smollm2"
EMBEDDER = "serve-minilm"


class City(BaseModel):
    name: str
    country: str


@pytest.fixture(scope="module")
def server(ray_cluster: object) -> Iterator[BackgroundServer]:
    llm = LLM()
    for name in (CHAT, EMBEDDER):
        llm.undeploy(name)
    llm.deploy(default_chat_model(), "custom/auto", CHAT, cpus_per_worker=0.5)
    llm.deploy(default_embedding_model(), "custom/bge", EMBEDDER, cpus_per_worker=0.25)
    try:
        with BackgroundServer(LLM(), api_key="sk-local") as running:
            yield running
    finally:
        for name in (CHAT, EMBEDDER):
            llm.undeploy(name)


@pytest.fixture
def client(server: BackgroundServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url, api_key="sk-local", max_retries=0)


def test_the_server_binds_loopback_only(server: BackgroundServer) -> None:
    assert server.host == "127.0.0.1"


def test_models_lists_the_deployments(client: openai.OpenAI) -> None:
    assert {CHAT, EMBEDDER} <= {model.id for model in client.models.list()}


def test_chat_and_stream_give_the_same_greedy_answer(client: openai.OpenAI) -> None:
    question = [{"role": "user", "content": "Which city is the capital of France?"}]
    completion = client.chat.completions.create(
        model=CHAT, messages=question, temperature=0, max_tokens=32
    )
    chunks = list(
        client.chat.completions.create(
            model=CHAT,
            messages=question,
            temperature=0,
            max_tokens=32,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "Paris" in (completion.choices[0].message.content or "")
    assert streamed == completion.choices[0].message.content
    assert chunks[-1].usage == completion.usage


def test_a_required_tool_call_fits_its_schema(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model=CHAT,
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
        tool_choice="required",
        temperature=0,
    )
    (call, *_) = completion.choices[0].message.tool_calls or []
    assert completion.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather"
    assert isinstance(json.loads(call.function.arguments)["city"], str)


def test_a_json_schema_answer_validates(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model=CHAT,
        messages=[{"role": "user", "content": "Paris is the capital of France. Give the city."}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "City", "schema": City.model_json_schema()},
        },
        temperature=0,
        max_tokens=64,
    )
    assert City.model_validate_json(completion.choices[0].message.content or "").name


def test_instructor_extracts_a_pydantic_class(client: openai.OpenAI) -> None:
    instructor = pytest.importorskip("instructor")
    patched = instructor.from_openai(client, mode=instructor.Mode.JSON_SCHEMA)
    city = patched.chat.completions.create(
        model=CHAT,
        response_model=City,
        messages=[{"role": "user", "content": "Paris is the capital of France."}],
        temperature=0,
        max_tokens=64,
        max_retries=2,
    )
    assert isinstance(city, City) and city.name


def test_embeddings_from_the_shipped_minilm(client: openai.OpenAI) -> None:
    embedded = client.embeddings.create(model=EMBEDDER, input=["a cat", "a kitten", "a tax form"])
    vectors = [item.embedding for item in embedded.data]
    similarity = [sum(a * b for a, b in zip(vectors[0], v, strict=True)) for v in vectors[1:]]
    assert len(vectors[0]) == 384
    assert similarity[0] > similarity[1]


def test_a_request_the_model_refuses_is_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(
            model=CHAT,
            messages=[{"role": "user", "content": "hi " * 10000}],
            max_tokens=8,
        )
    assert "max_model_len" in refused.value.message


def test_a_loosened_schema_answers_valid_or_422_never_invalid_content(
    client: openai.OpenAI,
) -> None:
    # allOf + dependencies: the grammar holds neither, so only the server's check does.
    (schema,) = [entry["schema"] for entry in schemas() if entry["id"] == "Handwritten---dep1"]
    try:
        completion = client.chat.completions.create(
            model=CHAT,
            messages=[{"role": "user", "content": "Give a JSON object with keys a, b, c and d."}],
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "dep", "schema": schema},
            },
            temperature=0,
            max_tokens=64,
        )
    except openai.UnprocessableEntityError as refused:
        assert refused.code == "output_does_not_fit_schema"
        return
    # The shipped model closes its JSON at the limit (budget steering): it must still validate.
    jsonschema.validate(json.loads(completion.choices[0].message.content or ""), schema)


def test_a_cut_off_answer_says_length_on_chat_completions_and_typed_answers(
    client: openai.OpenAI,
) -> None:
    question = [{"role": "user", "content": "Tell me a long story about a city."}]
    chat = client.chat.completions.create(model=CHAT, messages=question, max_tokens=2)
    text = client.completions.create(model=CHAT, prompt="Tell me a long story", max_tokens=2)
    typed = client.chat.completions.create(
        model=CHAT,
        messages=question,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "City", "schema": City.model_json_schema()},
        },
        max_tokens=3,
    )
    assert chat.choices[0].finish_reason == "length"
    assert text.choices[0].finish_reason == "length"
    assert typed.choices[0].finish_reason == "length"


def test_client_mistakes_are_400_before_the_deployment_is_asked(
    client: openai.OpenAI, server: BackgroundServer
) -> None:
    with pytest.raises(openai.BadRequestError) as bad_tool:
        client.chat.completions.create(
            model=CHAT,
            messages=[{"role": "user", "content": "hi"}],
            tools=[
                {"type": "function", "function": {"name": "x", "parameters": {"type": "nonsense"}}}
            ],  # type: ignore[list-item]
        )
    with pytest.raises(openai.BadRequestError) as loop:
        client.chat.completions.create(
            model=CHAT,
            messages=[{"role": "user", "content": "hi"}],
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "loop", "schema": {"$ref": "#"}},
            },
        )
    body = b'{"model": "%s", "messages": [{"role": "user", "content": "\\ud800"}]}' % CHAT.encode()
    request = urllib.request.Request(
        server.url + "/chat/completions",
        data=body,
        headers={"Content-Type": "application/json", "Authorization": "Bearer sk-local"},
    )
    with pytest.raises(urllib.error.HTTPError) as surrogate:
        urllib.request.urlopen(request, timeout=30)
    assert bad_tool.value.body["param"] == "tools"  # type: ignore[index]
    assert loop.value.body["param"] == "response_format"  # type: ignore[index]
    assert surrogate.value.code == 400
    assert json.loads(surrogate.value.read())["error"]["param"] == "messages.0.content"
