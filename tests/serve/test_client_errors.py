"""Client mistakes answered 4xx in OpenAI's shape, with the reason, before any model is asked;
spoken to with the official openai SDK over 127.0.0.1, which would retry a 5xx (so each test also
counts the HTTP requests the SDK sent: one). The model is scripted: nothing here needs it to run,
and the script's request log shows it was never asked."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from byzer_agents import LLM, ScriptedBackend
from byzer_agents.serve import BackgroundServer
from byzer_agents.serve.limits import MAX_COMPLETIONS_PER_REQUEST, MAX_EMBEDDING_INPUTS
from byzer_agents.tools.schema_bounds import MAX_SCHEMA_DEPTH, MAX_SCHEMA_ENUM_VALUES
from tests.serve.test_server_edges import http
from tests.tool_definitions import WEATHER

pytest.importorskip("fastapi", reason="the server needs the serve extra")

MODEL = "echo"
HI = [{"role": "user", "content": "hi"}]


class Counted:
    """An SDK client that may retry twice, and the HTTP requests it sent."""

    def __init__(self, url: str) -> None:
        self.sent: list[Any] = []
        self.client = openai.OpenAI(
            base_url=url,
            api_key="unused",
            max_retries=2,
            http_client=openai.DefaultHttpxClient(event_hooks={"request": [self.sent.append]}),
        )


@pytest.fixture(scope="module")
def backend() -> ScriptedBackend:
    return ScriptedBackend(["fine"] * 100, model=MODEL)


@pytest.fixture(scope="module")
def server(backend: ScriptedBackend) -> Iterator[BackgroundServer]:
    with BackgroundServer(LLM.from_backend(backend, model=MODEL)) as running:
        yield running


@pytest.fixture
def sdk(server: BackgroundServer, backend: ScriptedBackend) -> Iterator[Counted]:
    asked = len(backend.requests)
    counted = Counted(server.url)
    yield counted
    assert len(backend.requests) == asked, "a refused request reached the model"


def refused(sdk: Counted, **fields: Any) -> dict[str, Any]:
    """The error of the 400 the chat route answers ``fields`` with, sent once: the SDK did not
    retry it."""
    sent = len(sdk.sent)
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.client.chat.completions.create(**{"model": MODEL, "messages": HI, **fields})
    assert caught.value.status_code == 400
    error = caught.value.body
    assert isinstance(error, dict) and set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert len(sdk.sent) == sent + 1
    return error


def with_parameters(parameters: Any) -> dict[str, Any]:
    return {"type": "function", "function": {"name": "probe", "parameters": parameters}}


def answer_format(schema: Any, **options: Any) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema, **options}}


def nested(levels: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(levels):
        schema = {"type": "object", "properties": {"inner": schema}}
    return schema


def test_tool_parameters_that_are_no_schema_are_400_naming_the_value(sdk: Counted) -> None:
    error = refused(sdk, tools=[with_parameters({"type": "nonsense"})])
    assert error["param"] == "tools"
    assert "'probe'" in error["message"] and "'nonsense'" in error["message"]


def test_a_tool_without_its_function_is_400(sdk: Counted) -> None:
    error = refused(sdk, tools=[{"type": "function"}])
    assert error["param"] == "tools"
    assert "needs a 'name'" in error["message"]


def test_a_response_format_schema_that_is_no_schema_is_400(sdk: Counted) -> None:
    error = refused(sdk, response_format=answer_format({"type": "nonsense"}))
    assert error["param"] == "response_format"
    assert "not a valid JSON Schema" in error["message"]


def test_a_ref_loop_in_response_format_is_refused_before_generating(sdk: Counted) -> None:
    loop = {
        "$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}},
        "$ref": "#/$defs/a",
    }
    error = refused(sdk, response_format=answer_format(loop))
    assert error["param"] == "response_format"
    assert "loops" in error["message"] and "#/$defs/a -> #/$defs/b" in error["message"]


def test_a_ref_that_is_not_local_is_400(sdk: Counted) -> None:
    error = refused(sdk, response_format=answer_format({"$ref": "https://example.com/schema.json"}))
    assert "only local JSON pointers" in error["message"]


def test_tool_parameters_nested_120_deep_are_400_naming_the_depth_limit(sdk: Counted) -> None:
    error = refused(sdk, tools=[with_parameters(nested(120))])
    assert error["param"] == "tools"
    assert f"more than {MAX_SCHEMA_DEPTH} levels deep" in error["message"]


def test_a_lone_surrogate_in_a_message_is_400_naming_where(
    server: BackgroundServer, backend: ScriptedBackend
) -> None:
    # The SDK cannot send one (it encodes first); JSON's \\ud800 escape can.
    asked = len(backend.requests)
    body = b'{"model": "echo", "messages": [{"role": "user", "content": "bad \\ud800 text"}]}'
    status, answer = http("POST", server.url + "/chat/completions", body)
    assert status == 400
    assert answer["error"]["param"] == "messages.0.content"
    assert "lone surrogate" in answer["error"]["message"]
    assert "\\ud800" in answer["error"]["message"]
    assert len(backend.requests) == asked


def test_stream_yes_is_refused_not_read_as_true(sdk: Counted) -> None:
    error = refused(sdk, extra_body={"stream": "yes"})
    assert error["param"] == "stream"


def test_an_unknown_tool_choice_is_refused_at_the_edge(sdk: Counted) -> None:
    bogus = refused(sdk, tools=[WEATHER], tool_choice="bogus")
    assert bogus["param"] == "tool_choice" and "'bogus'" in bogus["message"]
    missing = refused(
        sdk, tools=[WEATHER], tool_choice={"type": "function", "function": {"name": "launch"}}
    )
    assert missing["param"] == "tool_choice" and "get_weather" in missing["message"]
    without_tools = refused(sdk, tool_choice="required")
    assert without_tools["param"] == "tool_choice" and "needs tools" in without_tools["message"]


def test_a_strict_schema_with_a_keyword_the_grammar_loosens_is_400_naming_it(
    sdk: Counted,
) -> None:
    schema = {
        "type": "object",
        "properties": {"code": {"allOf": [{"type": "string"}, {"minLength": 5}]}},
        "required": ["code"],
    }
    error = refused(sdk, response_format=answer_format(schema, strict=True))
    assert "'allOf'" in error["message"] and "#/properties/code" in error["message"]
    strict_tool = {"type": "function", "function": {"name": "tag", "strict": True}}
    strict_tool["function"]["parameters"] = {
        "type": "object",
        "properties": {"tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": True}},
    }
    assert "'uniqueItems'" in refused(sdk, tools=[strict_tool])["message"]


def test_an_enum_of_200_000_values_is_refused_quickly_naming_the_limit(sdk: Counted) -> None:
    values = [f"value-{index}" for index in range(200_000)]
    schema = {"type": "object", "properties": {"pick": {"enum": values}}, "required": ["pick"]}
    started = time.perf_counter()
    error = refused(sdk, response_format=answer_format(schema))
    assert time.perf_counter() - started < 10  # compiling it took 36 s and 1.1 GB
    assert f"{MAX_SCHEMA_ENUM_VALUES} enum/const values" in error["message"]


def test_unknown_routes_and_methods_answer_in_openais_shape(server: BackgroundServer) -> None:
    sdk = Counted(server.url)
    with pytest.raises(openai.NotFoundError) as missing:
        sdk.client.post("/nowhere", body={}, cast_to=object)
    assert missing.value.code == "unknown_url"
    assert "POST /v1/nowhere" in missing.value.message
    status, answer = http("GET", server.url + "/chat/completions")
    assert status == 405
    assert set(answer) == {"error"} and answer["error"]["code"] == "method_not_allowed"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b'["a list"]', None),
        (b'{"model": "echo", "messages": "hi"}', "messages"),
        (b'{"model": "echo", "messages": [{"role": "user", "content": 1}]}', "messages.0.content"),
    ],
)
def test_bodies_of_the_wrong_shape_are_400_in_openais_shape(
    server: BackgroundServer, body: bytes, param: str | None
) -> None:
    status, answer = http("POST", server.url + "/chat/completions", body)
    assert status == 400
    assert set(answer["error"]) == {"message", "type", "param", "code"}
    assert param is None or answer["error"]["param"].startswith(param)
    assert "detail" not in answer


def test_completions_past_the_per_request_limit_are_400_naming_it(sdk: Counted) -> None:
    for prompts, n in ((10_000, 1), (1_000, 8)):
        with pytest.raises(openai.BadRequestError) as caught:
            sdk.client.completions.create(model=MODEL, prompt=["x"] * prompts, n=n)
        assert caught.value.code == "too_many_completions"
        assert f"at most {MAX_COMPLETIONS_PER_REQUEST}" in caught.value.message
        assert f"{prompts} prompts x n={n}" in caught.value.message
    assert len(sdk.sent) == 2


def test_embeddings_past_the_per_request_limit_are_400_naming_it(sdk: Counted) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.client.embeddings.create(model=MODEL, input=["a"] * 500_000)
    assert caught.value.code == "too_many_inputs"
    assert f"at most {MAX_EMBEDDING_INPUTS}" in caught.value.message
    assert len(sdk.sent) == 1


def test_completions_and_embeddings_count_their_work_in_the_models_limit() -> None:
    release = threading.Event()

    def slow(request: Any) -> str:
        release.wait(10)
        return "slow"

    backend = ScriptedBackend([slow, *["quick"] * 20], model=MODEL)
    with BackgroundServer(LLM.from_backend(backend, model=MODEL), default_capacity=4) as server:
        client = openai.OpenAI(base_url=server.url, api_key="unused", max_retries=0)
        busy = threading.Thread(
            target=client.chat.completions.create, kwargs={"model": MODEL, "messages": HI}
        )
        busy.start()
        deadline = time.monotonic() + 5
        while not backend.requests and time.monotonic() < deadline:
            time.sleep(0.01)
        # One place taken of four: four prompts need four, 97 inputs need four batches of 32.
        with pytest.raises(openai.RateLimitError) as completions:
            client.completions.create(model=MODEL, prompt=["a", "b", "c", "d"])
        with pytest.raises(openai.RateLimitError) as embeddings:
            client.embeddings.create(model=MODEL, input=["a"] * 97)
        fits = client.completions.create(model=MODEL, prompt=["a", "b", "c"])
        release.set()
        busy.join()
        # More prompts than places: they take turns within the places the request holds.
        taking_turns = client.completions.create(model=MODEL, prompt=list("abcdef"))
    assert "needs 4" in completions.value.message and "needs 4" in embeddings.value.message
    assert len(fits.choices) == 3
    assert [choice.text for choice in taking_turns.choices] == ["quick"] * 6


def test_a_server_fault_is_500_in_openais_shape_and_says_no_more_than_its_kind() -> None:
    backend = ScriptedBackend([KeyError("secret detail")], model=MODEL)
    with BackgroundServer(LLM.from_backend(backend, model=MODEL)) as server:
        body = json.dumps({"model": MODEL, "messages": HI}).encode()
        status, answer = http("POST", server.url + "/chat/completions", body)
    assert status == 500
    assert answer["error"]["type"] == "server_error"
    assert "KeyError" in answer["error"]["message"] and "secret" not in answer["error"]["message"]
