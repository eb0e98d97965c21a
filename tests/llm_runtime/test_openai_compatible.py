"""OpenAIBackend against a real HTTP server on 127.0.0.1, through the official ``openai`` SDK: what
it sends, what it returns, how failures arrive, and that the API key never shows."""

from __future__ import annotations

import asyncio
import gc
import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import openai
import pytest

from byzer_agents import LLM
from byzer_agents.core.protocol import AsyncChatBackend, ChatBackend
from byzer_agents.exceptions import ModelCallError
from byzer_agents.llm_runtime.backends.openai_compatible import OpenAIBackend
from byzer_agents.llm_runtime.backends.scripted import ScriptedBackend
from byzer_agents.types import ChatCompletion, ChatCompletionChunk, ChatRequest, make_chunk
from tests.openai_server import ServerURL, serve_backend
from tests.tool_definitions import WEATHER

T = TypeVar("T")

KEY = "sk-test-right-key-0123456789"
PLANTED = "sk-planted-SECRET-do-not-show-4242"

ANSWER_SCHEMA = {
    "type": "json_schema",
    "json_schema": {
        "name": "answer",
        "schema": {"type": "object", "properties": {"value": {"type": "integer"}}},
    },
}


def ask(text: str, **fields: object) -> ChatRequest:
    return ChatRequest(messages=[{"role": "user", "content": text}], **fields)  # type: ignore[arg-type]


@pytest.fixture
def scripted() -> ScriptedBackend:
    return ScriptedBackend()


@pytest.fixture
def base_url(scripted: ScriptedBackend) -> Iterator[ServerURL]:
    with serve_backend(scripted, api_key=KEY) as url:
        yield url


@pytest.fixture
def connect() -> Iterator[Callable[..., OpenAIBackend]]:
    """Makes OpenAIBackends (model "scripted", no retries unless given) closed after the test."""
    made: list[OpenAIBackend] = []

    def connect(base_url: str, *, api_key: str = KEY, **settings: Any) -> OpenAIBackend:
        settings = {"model": "scripted", "max_retries": 0, **settings}
        made.append(OpenAIBackend(base_url=base_url, api_key=api_key, **settings))
        return made[-1]

    yield connect
    for backend in made:
        backend.close()


@pytest.fixture
def backend(base_url: ServerURL, connect: Callable[..., OpenAIBackend]) -> OpenAIBackend:
    return connect(base_url)


@pytest.fixture
def sdk(base_url: ServerURL) -> Iterator[openai.OpenAI]:
    """The plain SDK client, to test the server alone."""
    with openai.OpenAI(base_url=base_url, api_key=KEY, max_retries=0) as client:
        yield client


def run_async(backend: OpenAIBackend, call: Awaitable[T]) -> T:
    """Await ``call`` in a fresh event loop, closing the backend's client of that loop after."""

    async def main() -> T:
        try:
            return await call
        finally:
            await backend.aclose()

    return asyncio.run(main())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_it_answers_the_one_protocol_sync_and_async() -> None:
    backend = OpenAIBackend(model="m", api_key=PLANTED)
    assert isinstance(backend, ChatBackend)
    assert isinstance(backend, AsyncChatBackend)
    assert backend.capabilities.native_tools and backend.capabilities.json_schema_output
    assert not backend.capabilities.constrained_decoding


def test_chat_returns_the_scripted_text_as_an_sdk_completion(
    scripted: ScriptedBackend, backend: OpenAIBackend, base_url: ServerURL
) -> None:
    scripted.add("Paris is the capital of France.")
    completion = backend.chat(ask("Capital of France?"))
    assert isinstance(completion, ChatCompletion)
    assert completion.choices[0].message.content == "Paris is the capital of France."
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (3, 6)
    [sent] = base_url.bodies()
    assert sent["model"] == "scripted"
    assert sent["messages"] == [{"role": "user", "content": "Capital of France?"}]
    assert base_url.received[0].authorization == f"Bearer {KEY}"


def test_the_request_model_overrides_the_backend_model(
    scripted: ScriptedBackend, backend: OpenAIBackend, base_url: ServerURL
) -> None:
    scripted.add("ok")
    backend.chat(ask("hi", model="other-model"))
    assert base_url.bodies()[0]["model"] == "other-model"
    assert scripted.requests[0].model == "other-model"


def test_a_request_for_the_backends_name_asks_the_endpoint_for_its_model(
    scripted: ScriptedBackend, base_url: ServerURL
) -> None:
    scripted.add("ok")
    llm = LLM.from_openai(model="scripted", name="my-alias", base_url=base_url, api_key=KEY)
    assert llm.chat_oai("hi")[0].output == "ok"  # the loop asks for "my-alias"...
    assert base_url.bodies()[0]["model"] == "scripted"  # ... the endpoint is asked for its model


def test_native_tool_calls_arrive_as_sdk_tool_calls(
    scripted: ScriptedBackend, backend: OpenAIBackend
) -> None:
    scripted.add(
        {
            "tool_calls": [
                {"name": "get_weather", "arguments": {"city": "Paris"}, "id": "call_1"},
                {"name": "get_weather", "arguments": {"city": "Oslo"}, "id": "call_2"},
            ]
        }
    )
    completion = backend.chat(ask("Weather in Paris and Oslo?", tools=[WEATHER]))
    message = completion.choices[0].message
    assert completion.choices[0].finish_reason == "tool_calls"
    assert message.tool_calls is not None
    assert [call.id for call in message.tool_calls] == ["call_1", "call_2"]
    functions = [call.function for call in message.tool_calls]  # type: ignore[union-attr]
    assert [f.name for f in functions] == ["get_weather", "get_weather"]
    assert [json.loads(f.arguments) for f in functions] == [{"city": "Paris"}, {"city": "Oslo"}]


def test_tools_choice_format_and_sampling_reach_the_server_as_sent(
    scripted: ScriptedBackend, backend: OpenAIBackend, base_url: ServerURL
) -> None:
    scripted.add('{"value": 3}')
    choice = {"type": "function", "function": {"name": "get_weather"}}
    request = ask(
        "Go",
        tools=[WEATHER],
        tool_choice=choice,
        response_format=ANSWER_SCHEMA,
        temperature=0.25,
        seed=7,
        max_tokens=64,
        stop=["END"],
    )
    backend.chat(request)
    [sent] = base_url.bodies()
    assert sent["tools"] == [WEATHER]
    assert sent["tool_choice"] == choice
    assert sent["response_format"] == ANSWER_SCHEMA
    assert (sent["temperature"], sent["seed"], sent["max_tokens"], sent["stop"]) == (
        0.25,
        7,
        64,
        ["END"],
    )
    assert "stream" not in sent
    # ... and the backend behind the server saw the same request.
    assert scripted.requests[0].model_dump(exclude={"model"}) == request.model_dump(
        exclude={"model"}
    )


def test_stream_deltas_concatenate_to_the_text_and_usage_comes_last(
    scripted: ScriptedBackend, backend: OpenAIBackend, base_url: ServerURL
) -> None:
    text = "Streaming works over real HTTP."
    scripted.add(text)
    chunks = list(backend.stream(ask("Stream please")))
    assert all(isinstance(chunk, ChatCompletionChunk) for chunk in chunks)
    assert len(chunks) > 3
    deltas = [chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices]
    assert "".join(deltas) == text
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 5
    assert all(chunk.usage is None for chunk in chunks[:-1])
    [sent] = base_url.bodies()
    assert sent["stream"] is True
    assert sent["stream_options"] == {"include_usage": True}


def test_a_stream_left_early_does_not_break_the_next_call(
    scripted: ScriptedBackend, backend: OpenAIBackend
) -> None:
    scripted.add("one two three four five six seven", "again")
    chunks = backend.stream(ask("long"))
    first = next(iter(chunks))
    assert first.choices[0].delta.content == "one "
    chunks.close()  # type: ignore[attr-defined]
    assert backend.chat(ask("next")).choices[0].message.content == "again"


def test_achat_and_astream_answer_like_their_sync_twins(
    scripted: ScriptedBackend, backend: OpenAIBackend
) -> None:
    scripted.add("async answer", "async stream answer")

    async def both() -> tuple[ChatCompletion, list[ChatCompletionChunk]]:
        completion = await backend.achat(ask("a"))
        return completion, [chunk async for chunk in backend.astream(ask("b"))]

    completion, chunks = run_async(backend, both())
    assert completion.choices[0].message.content == "async answer"
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text == "async stream answer"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3


@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_one_backend_serves_event_loops_in_turn_keeping_one_client(
    scripted: ScriptedBackend, backend: OpenAIBackend
) -> None:
    scripted.add("loop 1", "loop 2", "loop 3")
    # Each loop is closed without aclose, as by a caller who never calls it; the server keeps
    # connections alive, so a client shared between loops would reuse a dead one.
    answers = [asyncio.run(backend.achat(ask(str(n)))) for n in (1, 2, 3)]
    assert [a.choices[0].message.content for a in answers] == ["loop 1", "loop 2", "loop 3"]
    gc.collect()  # the dropped clients' unclosed transports are reported (and ignored) here
    alive = sum(isinstance(obj, openai.AsyncOpenAI) for obj in gc.get_objects())
    assert alive == 1, "the clients of closed loops were not released"
    scripted.add("loop 4")
    run_async(backend, backend.achat(ask("4")))  # drops loop 3's client, closes its own
    gc.collect()


def test_embed_returns_the_backends_vectors_in_order(
    scripted: ScriptedBackend, base_url: ServerURL, connect: Callable[..., OpenAIBackend]
) -> None:
    backend = connect(base_url, embedding_model="embedder")
    texts = ["alpha", "beta", "alpha"]
    vectors = backend.embed(texts)
    assert vectors == scripted.embed(texts)
    assert vectors[0] == vectors[2] != vectors[1]
    [sent] = base_url.bodies("/v1/embeddings")
    assert sent == {"model": "embedder", "input": texts, "encoding_format": "float"}
    assert backend.embed([]) == []
    with pytest.raises(TypeError, match="one string"):
        backend.embed("alpha")


def test_a_wrong_key_becomes_a_401_model_call_error_without_the_key(
    base_url: ServerURL, connect: Callable[..., OpenAIBackend]
) -> None:
    backend = connect(base_url, api_key=PLANTED)
    with pytest.raises(ModelCallError) as caught:
        backend.chat(ask("hi"))
    error = caught.value
    assert error.status_code == 401
    assert "Incorrect API key provided: ***" in str(error)
    assert "invalid_api_key" in str(error)
    assert base_url.received[0].authorization == f"Bearer {PLANTED}"  # sent, echoed, scrubbed
    assert PLANTED not in str(error) and PLANTED not in repr(error)
    assert error.__cause__ is None and error.__suppress_context__


def test_a_wrong_key_fails_streams_and_embeddings_alike(
    base_url: ServerURL, connect: Callable[..., OpenAIBackend]
) -> None:
    backend = connect(base_url, api_key=PLANTED)
    with pytest.raises(ModelCallError) as streamed:
        list(backend.stream(ask("hi")))
    with pytest.raises(ModelCallError) as embedded:
        backend.embed(["hi"])
    with pytest.raises(ModelCallError) as awaited:
        run_async(backend, backend.achat(ask("hi")))
    for error in (streamed.value, embedded.value, awaited.value):
        assert error.status_code == 401
        assert PLANTED not in str(error)


def test_a_raising_backend_becomes_a_500_model_call_error(
    scripted: ScriptedBackend, backend: OpenAIBackend
) -> None:
    scripted.add(RuntimeError("GPU on fire"))
    with pytest.raises(ModelCallError, match="GPU on fire") as caught:
        backend.chat(ask("hi"))
    assert caught.value.status_code == 500
    assert caught.value.model == "scripted"


def test_a_backend_failing_mid_stream_becomes_a_model_call_error(
    connect: Callable[..., OpenAIBackend],
) -> None:
    class FailsAfterOneChunk(ScriptedBackend):
        def stream(self, request: ChatRequest) -> Iterator[ChatCompletionChunk]:
            yield make_chunk(model=self.model, completion_id="c1", content="partial")
            raise RuntimeError("lost the GPU mid-answer")

    with serve_backend(FailsAfterOneChunk()) as url:
        backend = connect(url)
        received: list[str] = []
        with pytest.raises(ModelCallError, match="lost the GPU mid-answer") as caught:
            for chunk in backend.stream(ask("hi")):
                received.append(chunk.choices[0].delta.content or "")
    assert received == ["partial"]
    assert caught.value.status_code is None


def test_a_stream_cut_off_unfinished_becomes_a_model_call_error(
    connect: Callable[..., OpenAIBackend],
) -> None:
    class CutOffAfterOneChunk(ScriptedBackend):
        def stream(self, request: ChatRequest) -> Iterator[ChatCompletionChunk]:
            yield make_chunk(model=self.model, completion_id="c1", content="partial")
            raise ConnectionResetError  # the server drops the connection, no end sent

    async def read_async(backend: OpenAIBackend) -> None:
        async for _ in backend.astream(ask("hi")):
            pass

    with serve_backend(CutOffAfterOneChunk()) as url:
        backend = connect(url)
        with pytest.raises(ModelCallError, match="broke off") as caught:
            list(backend.stream(ask("hi")))
        with pytest.raises(ModelCallError, match="broke off"):
            run_async(backend, read_async(backend))
    assert url in str(caught.value)
    assert caught.value.status_code is None


def test_a_closed_port_becomes_a_model_call_error_naming_the_url(
    connect: Callable[..., OpenAIBackend],
) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    backend = connect(url, api_key=PLANTED, timeout=2.0)
    with pytest.raises(ModelCallError, match="cannot reach") as caught:
        backend.chat(ask("hi"))
    assert url in str(caught.value)
    assert caught.value.status_code is None
    assert PLANTED not in str(caught.value)
    with pytest.raises(ModelCallError, match="cannot reach"):
        run_async(backend, backend.achat(ask("hi")))


def test_a_slow_answer_becomes_a_timeout_model_call_error(
    scripted: ScriptedBackend, connect: Callable[..., OpenAIBackend]
) -> None:
    def slow(request: ChatRequest) -> str:
        time.sleep(0.6)
        return "too late"

    scripted.add(slow)
    with serve_backend(scripted) as url:
        backend = connect(url, timeout=0.2)
        with pytest.raises(ModelCallError, match=r"no answer from .* within 0\.2 s"):
            backend.chat(ask("hi"))


def test_no_key_at_all_is_a_model_call_error_saying_how_to_give_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    backend = OpenAIBackend(model="m", base_url="http://127.0.0.1:9/v1")
    with pytest.raises(ModelCallError, match=r"OPENAI_API_KEY.*api_key='EMPTY'"):
        backend.chat(ask("hi"))


def test_repr_str_meta_and_attributes_never_show_the_key() -> None:
    backend = OpenAIBackend(
        model="gpt-4o-mini", base_url="https://example.test/v1", api_key=PLANTED
    )
    meta = backend.meta()
    assert repr(backend) == "OpenAIBackend(model='gpt-4o-mini', base_url='https://example.test/v1')"
    assert meta["model_deploy_type"] == "saas"
    assert meta["backend"] == "openai_compatible"
    assert (meta["model"], meta["base_url"], meta["max_model_len"]) == (
        "gpt-4o-mini",
        "https://example.test/v1",
        None,
    )
    for shown in (repr(backend), str(backend), json.dumps(meta), repr(vars(backend))):
        assert PLANTED not in shown


def test_meta_reports_the_sdks_default_url_when_none_is_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    assert OpenAIBackend(model="m").meta()["base_url"] == "https://api.openai.com/v1"
    monkeypatch.setenv("OPENAI_BASE_URL", "http://proxy.test/v1")
    assert OpenAIBackend(model="m").meta()["base_url"] == "http://proxy.test/v1"


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [({"model": ""}, "model"), ({"max_retries": -1}, "max_retries"), ({"timeout": 0}, "timeout")],
)
def test_bad_settings_are_refused_naming_the_setting(kwargs: dict[str, object], named: str) -> None:
    settings: dict[str, object] = {"model": "m", **kwargs}
    with pytest.raises(ValueError, match=named):
        OpenAIBackend(**settings)  # type: ignore[arg-type]


# -- the test server itself -----------------------------------------------------------------


def test_server_lists_its_model_to_the_sdk(sdk: openai.OpenAI) -> None:
    assert [model.id for model in sdk.models.list()] == ["scripted"]


def test_server_streams_no_usage_chunk_unless_asked(
    scripted: ScriptedBackend, sdk: openai.OpenAI
) -> None:
    scripted.add("no usage here")
    chunks = list(
        sdk.chat.completions.create(
            model="scripted", messages=[{"role": "user", "content": "hi"}], stream=True
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "no usage here"
    assert all(chunk.usage is None and chunk.choices for chunk in chunks)


def test_server_answers_malformed_json_with_openais_400_body(base_url: ServerURL) -> None:
    request = urllib.request.Request(
        f"{base_url}/chat/completions",
        data=b"{not json",
        headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=5)
    assert caught.value.code == 400
    error = json.loads(caught.value.read())["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert "not valid JSON" in error["message"]
    assert base_url.received[0].body == "{not json"


def test_server_ignores_openai_fields_a_chat_request_does_not_model(
    scripted: ScriptedBackend, base_url: ServerURL, sdk: openai.OpenAI
) -> None:
    scripted.add("fine")
    completion = sdk.chat.completions.create(
        model="scripted",
        messages=[{"role": "user", "content": "hi"}],
        user="user-1",
        parallel_tool_calls=False,
        max_completion_tokens=32,
        stop="END",
    )
    assert completion.choices[0].message.content == "fine"
    assert base_url.bodies()[0]["user"] == "user-1"
    assert (scripted.requests[0].max_tokens, scripted.requests[0].stop) == (32, ["END"])


def test_server_encodes_base64_embeddings_the_sdk_decodes(
    scripted: ScriptedBackend, base_url: ServerURL, sdk: openai.OpenAI
) -> None:
    response = sdk.embeddings.create(model="scripted", input=["alpha", "beta"])
    assert base_url.bodies("/v1/embeddings")[0]["encoding_format"] == "base64"
    expected = scripted.embed(["alpha", "beta"])
    for item, vector in zip(response.data, expected, strict=True):
        assert item.embedding == pytest.approx(vector, rel=1e-6)
