"""The server's edge, spoken to with the official openai SDK over 127.0.0.1: auth, errors in
OpenAI's shape, limits, streaming framing, the Azure route. The model behind it is scripted so
each case is exact; tests/serve/test_server_real_model.py runs the shipped model."""

from __future__ import annotations

import array
import base64
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from typing import Any

import openai
import pytest

from byzer_agents import LLM, ScriptedBackend
from byzer_agents.serve import BackgroundServer

pytest.importorskip("fastapi", reason="the server needs the serve extra")

KEY = "sk-test-0123456789abcdef"
MODEL = "echo"


def http(
    method: str, url: str, body: bytes | Iterable[bytes] | None = None, key: str | None = KEY
) -> tuple[int, Any]:
    """A raw request (for what the SDK would never send), with the status and the JSON answer."""
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(url, data=body, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def echo(request) -> str:  # type: ignore[no-untyped-def]
    return "echo: " + str(request.messages[-1]["content"])


@pytest.fixture(scope="module")
def server() -> Iterator[BackgroundServer]:
    backend = ScriptedBackend([echo] * 1000, model=MODEL)
    with BackgroundServer(LLM.from_backend(backend, model=MODEL), api_key=KEY) as running:
        yield running


@pytest.fixture
def client(server: BackgroundServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url, api_key=KEY, max_retries=0)


def test_chat_answers_with_the_model_name_and_usage(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hi"}]
    )
    assert completion.choices[0].message.content == "echo: hi"
    assert completion.model == MODEL
    assert completion.usage is not None and completion.usage.total_tokens > 0


def test_text_parts_are_joined_into_one_message(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model=MODEL,
        messages=[
            {
                "role": "user",
                "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
            }
        ],
    )
    assert completion.choices[0].message.content == "echo: ab"


def test_n_choices_are_indexed_and_usage_summed(client: openai.OpenAI) -> None:
    one = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}])
    three = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "x"}], n=3
    )
    assert [choice.index for choice in three.choices] == [0, 1, 2]
    assert one.usage is not None and three.usage is not None
    assert three.usage.total_tokens == 3 * one.usage.total_tokens


def test_models_and_health(client: openai.OpenAI, server: BackgroundServer) -> None:
    assert [model.id for model in client.models.list()] == [MODEL]
    status, health = http("GET", f"http://{server.host}:{server.port}/health", key=None)
    assert status == 200 and health["status"] == "ok"


def test_stream_is_server_sent_events_with_usage_when_asked(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "streamed"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: streamed"
    assert chunks[-1].usage is not None and not chunks[-1].choices
    without = list(
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "streamed"}], stream=True
        )
    )
    assert all(chunk.usage is None for chunk in without)
    assert [c.choices[0].finish_reason for c in without if c.choices][-1] == "stop"


def test_missing_or_wrong_key_is_401(server: BackgroundServer) -> None:
    for key in ("", "sk-wrong"):
        wrong = openai.OpenAI(base_url=server.url, api_key=key or "none", max_retries=0)
        with pytest.raises(openai.AuthenticationError) as refused:
            wrong.models.list()
        assert refused.value.status_code == 401
        assert refused.value.code == "invalid_api_key"
    assert http("GET", server.url + "/models", key=None)[0] == 401


def test_unknown_model_is_404_naming_the_models(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="ghost", messages=[{"role": "user", "content": "x"}])
    assert missing.value.code == "model_not_found"
    assert "'ghost'" in missing.value.message and MODEL in missing.value.message


def test_bad_field_is_400_naming_the_param(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "x"}], temperature=5
        )
    assert bad.value.param == "temperature"
    assert bad.value.type == "invalid_request_error"
    with pytest.raises(openai.BadRequestError) as no_messages:
        client.chat.completions.create(model=MODEL, messages=[])
    assert no_messages.value.param == "messages"


def test_malformed_json_is_400_in_openais_shape(server: BackgroundServer) -> None:
    status, answer = http(
        "POST", server.url + "/chat/completions", b'{"model": "echo", "messages": ['
    )
    assert status == 400
    error = answer["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == "invalid_json"


def test_oversized_body_is_413(server: BackgroundServer) -> None:
    body = json.dumps(
        {"model": MODEL, "messages": [{"role": "user", "content": "x" * 9_000_000}]}
    ).encode()
    url = server.url + "/chat/completions"
    declared = http("POST", url, body)
    chunked = http("POST", url, (body[i : i + 65536] for i in range(0, len(body), 65536)))
    assert declared[0] == 413
    assert declared[1]["error"]["code"] == "request_too_large"
    assert chunked[0] == 413


def test_a_model_at_its_limit_answers_429_with_retry_after() -> None:
    release = threading.Event()

    def slow(request) -> str:  # type: ignore[no-untyped-def]
        release.wait(10)
        return "done"

    backend = ScriptedBackend([slow, "quick"], model=MODEL)
    with BackgroundServer(LLM.from_backend(backend, model=MODEL), default_capacity=1) as server:
        client = openai.OpenAI(base_url=server.url, api_key="unused", max_retries=0)
        first = threading.Thread(
            target=client.chat.completions.create,
            kwargs={"model": MODEL, "messages": [{"role": "user", "content": "slow"}]},
        )
        first.start()
        deadline = time.monotonic() + 5
        while not backend.requests and time.monotonic() < deadline:
            time.sleep(0.01)
        with pytest.raises(openai.RateLimitError) as limited:
            client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "2"}])
        release.set()
        first.join()
        after = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "3"}]
        )
    assert limited.value.response.headers["retry-after"] == "1"
    assert after.choices[0].message.content == "quick"


def test_azure_route_with_the_api_key_header(server: BackgroundServer) -> None:
    azure = openai.AzureOpenAI(
        azure_endpoint=f"http://{server.host}:{server.port}",
        azure_deployment=MODEL,
        api_key=KEY,
        api_version="2024-10-21",
        max_retries=0,
    )
    completion = azure.chat.completions.create(
        model="ignored", messages=[{"role": "user", "content": "azure"}]
    )
    assert completion.choices[0].message.content == "echo: azure"


def test_completions_and_embeddings(client: openai.OpenAI) -> None:
    completion = client.completions.create(model=MODEL, prompt=["one", "two"])
    assert [choice.text for choice in completion.choices] == ["echo: one", "echo: two"]
    embedded = client.embeddings.create(model=MODEL, input=["a", "b"])
    assert [item.index for item in embedded.data] == [0, 1]
    assert len(embedded.data[0].embedding) == 8
    as_base64 = client.embeddings.create(model=MODEL, input="a", encoding_format="base64")
    decoded = array.array("f", base64.b64decode(str(as_base64.data[0].embedding)))
    assert list(decoded) == pytest.approx(embedded.data[0].embedding, abs=1e-6)


def test_the_key_never_reaches_the_log(
    server: BackgroundServer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("DEBUG"):
        openai.OpenAI(base_url=server.url, api_key=KEY, max_retries=0).models.list()
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=server.url, api_key=KEY + "x", max_retries=0).models.list()
    assert KEY not in caplog.text


def test_how_an_answer_was_retried_stays_off_the_wire() -> None:
    from byzer_agents.core.call_attempts import CALL_ATTEMPTS_FIELD, attach_call_attempts
    from byzer_agents.exceptions import CallAttempt
    from byzer_agents.types import make_completion

    def retried(request) -> object:  # type: ignore[no-untyped-def]
        return attach_call_attempts(
            make_completion(model=MODEL, content="after a retry"),
            [
                CallAttempt(
                    deployment=MODEL, attempt=1, latency_s=0.1, error="HTTP 500", status_code=500
                ),
                CallAttempt(deployment=MODEL, attempt=2, latency_s=0.1),
            ],
        )

    backend = ScriptedBackend([retried, retried], model=MODEL)
    with BackgroundServer(LLM.from_backend(backend, model=MODEL)) as server:
        body = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "x"}]})
        status, answer = http("POST", server.url + "/chat/completions", body.encode())
    assert status == 200, answer
    assert answer["choices"][0]["message"]["content"] == "after a retry"
    assert CALL_ATTEMPTS_FIELD not in json.dumps(answer)
