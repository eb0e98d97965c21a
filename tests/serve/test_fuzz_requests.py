"""Malformed request bodies and malformed model replies thrown at the real server (over
127.0.0.1, in-process scripted model): every outcome is a 4xx in OpenAI's error shape naming the
reason, or a 200 whose content fits what was asked, never a 500 and never invalid content, each
within a time bound."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from byzer_agents import LLM, ScriptedBackend
from byzer_agents.core.protocol import Capabilities
from byzer_agents.serve import BackgroundServer
from tests.serve.test_server_edges import http

pytest.importorskip("fastapi", reason="the server needs the serve extra")

MODEL = "fuzzed"
ANSWER_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}},
    "required": ["city", "days"],
}
TOOL_PARAMETERS = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
    "required": ["city"],
}


class NextReply:
    """The model's reply for the example being run (hypothesis draws it with the body)."""

    reply: Any = "fine"

    def __call__(self, _request: Any) -> Any:
        return self.reply


@pytest.fixture(scope="module")
def next_reply() -> NextReply:
    return NextReply()


@pytest.fixture(scope="module")
def server(next_reply: NextReply) -> Iterator[BackgroundServer]:
    backend = ScriptedBackend(
        [next_reply] * 100_000,
        model=MODEL,
        capabilities=Capabilities(native_tools=True, json_schema_output=True, embeddings=True),
    )
    with BackgroundServer(LLM.from_backend(backend, model=MODEL)) as running:
        yield running


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
messages = st.one_of(
    st.just([{"role": "user", "content": "weather in Paris for 3 days?"}]),
    st.lists(
        st.fixed_dictionaries(
            {"role": st.sampled_from(["user", "assistant", "system", "tool", "robot", 3])},
            optional={"content": json_values, "tool_call_id": json_values},
        ),
        max_size=3,
    ),
    json_values,
)
tools = st.one_of(
    st.just([{"type": "function", "function": {"name": "weather", "parameters": TOOL_PARAMETERS}}]),
    st.lists(
        st.fixed_dictionaries(
            {"type": st.sampled_from(["function", "nonsense"])},
            optional={
                "function": st.fixed_dictionaries(
                    {"name": st.text(max_size=70)}, optional={"parameters": json_values}
                )
            },
        ),
        max_size=2,
    ),
    json_values,
)
response_formats = st.one_of(
    st.just({"type": "json_schema", "json_schema": {"name": "trip", "schema": ANSWER_SCHEMA}}),
    st.just({"type": "json_object"}),
    st.fixed_dictionaries(
        {"type": st.sampled_from(["json_schema", "text", "bogus"])},
        optional={"json_schema": st.fixed_dictionaries({}, optional={"schema": json_values})},
    ),
    json_values,
)
bodies = st.fixed_dictionaries(
    {"model": st.sampled_from([MODEL, MODEL, "missing"]), "messages": messages},
    optional={
        "tools": tools,
        "tool_choice": st.sampled_from(["auto", "none", "required", "bogus", 1])
        | st.just({"type": "function", "function": {"name": "weather"}}),
        "response_format": response_formats,
        "stream": st.sampled_from([False, "yes", 1, None]),
        "n": st.sampled_from([1, 2, 0, -1, "2", 10_000]),
        "max_tokens": st.sampled_from([16, 0, -5, "many", 10**12]),
        "temperature": st.sampled_from([0, 0.7, -1, 99, "hot"]),
    },
)
WELL_FORMED_TOOLS = [
    {"type": "function", "function": {"name": "weather", "parameters": TOOL_PARAMETERS}}
]
WELL_FORMED_ANSWER = {
    "type": "json_schema",
    "json_schema": {"name": "trip", "schema": ANSWER_SCHEMA},
}
# Half well-formed, so the model's replies (drawn below) are exercised as often as the edge.
well_formed_bodies = st.fixed_dictionaries(
    {"model": st.just(MODEL), "messages": st.just([{"role": "user", "content": "Paris, 3 days"}])},
    optional={
        "tools": st.just(WELL_FORMED_TOOLS),
        "tool_choice": st.sampled_from(["auto", "required"]),
        "response_format": st.just(WELL_FORMED_ANSWER),
        "n": st.sampled_from([1, 2]),
        "max_tokens": st.sampled_from([16, 256]),
    },
).filter(lambda body: "tool_choice" not in body or "tools" in body)
requests = st.one_of(well_formed_bodies, bodies)

# What the scripted model answers: text, broken or deep JSON, tool calls with bad arguments.
model_replies = st.one_of(
    st.text(max_size=200),
    st.just('{"city": "Paris", "days": 3}'),
    st.just('{"city": "Paris", "days": 0}'),
    st.just('{"city": "Par'),
    st.just("[" * 5_000 + "]" * 5_000),
    st.builds(
        lambda name, arguments: {
            "content": None,
            "tool_calls": [{"name": name, "arguments": arguments}],
        },
        st.sampled_from(["weather", "nope"]),
        st.sampled_from(['{"city": "Paris"}', '{"unit": "k"}', "{", '"x"', "[]"]),
    ),
)


def _assert_openai_error(body: Any) -> None:
    assert isinstance(body, dict) and set(body) == {"error"}, body
    assert {"message", "type", "param", "code"} <= set(body["error"]), body
    assert body["error"]["message"], body


def _assert_fits_what_was_asked(request: dict[str, Any], answer: dict[str, Any]) -> None:
    for choice in answer["choices"]:
        message = choice["message"]
        if choice["finish_reason"] == "length":
            continue
        response_format = request.get("response_format")
        if response_format == {
            "type": "json_schema",
            "json_schema": {"name": "trip", "schema": ANSWER_SCHEMA},
        } and not message.get("tool_calls"):
            jsonschema.validate(json.loads(message["content"]), ANSWER_SCHEMA)
        if request.get("tools") != WELL_FORMED_TOOLS:
            continue  # tool calls the scripted model makes unasked are not held to any schema
        for call in message.get("tool_calls") or []:
            assert call["function"]["name"] == "weather", call
            jsonschema.validate(json.loads(call["function"]["arguments"]), TOOL_PARAMETERS)


@settings(
    max_examples=150,
    deadline=10_000,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=requests, reply=model_replies)
def test_every_body_and_reply_ends_typed_or_valid(
    server: BackgroundServer, next_reply: NextReply, body: dict[str, Any], reply: Any
) -> None:
    next_reply.reply = reply
    status, answer = http(
        "POST", f"{server.url}/chat/completions", json.dumps(body).encode(), key=None
    )
    event(f"HTTP {status}")
    assert status < 500, (status, answer)
    if status == 200:
        _assert_fits_what_was_asked(body, answer)
    else:
        assert status in {400, 404, 413, 422, 429}, (status, answer)
        _assert_openai_error(answer)


@settings(max_examples=60, deadline=10_000, suppress_health_check=[HealthCheck.too_slow])
@given(raw=st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_bytes_that_are_not_a_body_answer_400_in_openai_shape(
    server: BackgroundServer, raw: bytes
) -> None:
    status, answer = http("POST", f"{server.url}/chat/completions", raw, key=None)
    assert status in {400, 422}, (status, answer)
    _assert_openai_error(answer)
