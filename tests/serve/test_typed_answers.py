"""Typed answers over HTTP held to their schema as ``extract`` holds them: checked, fed back and
asked again, the retries' usage summed; a 422 when the tries are spent, never invalid content with
a 200; a cut-off answer comes back with ``finish_reason: "length"``. The model is scripted, so each
answer is exact; tests/serve/test_server_real_model.py runs the shipped model."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import jsonschema
import openai
import pytest

from byzer_agents import LLM, ScriptedBackend
from byzer_agents.serve import BackgroundServer
from byzer_agents.types import ChatCompletion, ChatRequest, make_completion, make_tool_call
from tests.tool_definitions import WEATHER

pytest.importorskip("fastapi", reason="the server needs the serve extra")

MODEL = "typed"
ASK = [{"role": "user", "content": "How many?"}]
# allOf: a keyword the grammar loosens, so only the check after generation holds it.
COUNT = {
    "type": "object",
    "properties": {"count": {"type": "integer"}},
    "required": ["count"],
    "allOf": [{"properties": {"count": {"minimum": 1}}}],
}
COUNT_FORMAT = {"type": "json_schema", "json_schema": {"name": "Count", "schema": COUNT}}


def answer(content: str | None, *, tokens: int, **fields: Any) -> ChatCompletion:
    return make_completion(
        model=MODEL,
        content=content,
        usage={"prompt_tokens": 10, "completion_tokens": tokens, "total_tokens": 10 + tokens},
        **fields,
    )


def weather_call(arguments: dict[str, Any], *, tokens: int) -> ChatCompletion:
    call = make_tool_call("get_weather", json.dumps(arguments))
    return answer(None, tokens=tokens, tool_calls=[call])


@pytest.fixture
def backend() -> ScriptedBackend:
    return ScriptedBackend(model=MODEL)


@pytest.fixture
def client(backend: ScriptedBackend) -> Iterator[openai.OpenAI]:
    with BackgroundServer(LLM.from_backend(backend, model=MODEL)) as server:
        yield openai.OpenAI(base_url=server.url, api_key="unused", max_retries=0)


def test_an_answer_that_does_not_fit_is_asked_again_with_the_reason_and_usage_summed(
    client: openai.OpenAI, backend: ScriptedBackend
) -> None:
    backend.add(answer('{"count": 0}', tokens=5), answer('{"count": 3}', tokens=7))
    completion = client.chat.completions.create(
        model=MODEL, messages=ASK, response_format=COUNT_FORMAT
    )
    content = completion.choices[0].message.content or ""
    jsonschema.validate(json.loads(content), COUNT)
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (20, 12)
    feedback = backend.requests[1].messages
    assert feedback[-2] == {"role": "assistant", "content": '{"count": 0}'}
    assert "minimum of 1" in feedback[-1]["content"]


def test_an_answer_that_never_fits_is_422_saying_so_not_invalid_content(
    client: openai.OpenAI, backend: ScriptedBackend
) -> None:
    backend.add(*[answer('{"count": 0}', tokens=5)] * 3)
    with pytest.raises(openai.UnprocessableEntityError) as caught:
        client.chat.completions.create(model=MODEL, messages=ASK, response_format=COUNT_FORMAT)
    error = caught.value.body
    assert isinstance(error, dict)
    assert error["code"] == "output_does_not_fit_schema"
    assert error["param"] == "response_format"
    assert "did not fit the response_format schema in 3 attempts" in error["message"]
    assert "minimum of 1" in error["message"]
    assert len(backend.requests) == 3


def test_a_cut_off_answer_comes_back_with_finish_reason_length_and_is_not_retried(
    client: openai.OpenAI, backend: ScriptedBackend
) -> None:
    backend.add(answer('{"cou', tokens=4, finish_reason="length"))
    completion = client.chat.completions.create(
        model=MODEL, messages=ASK, response_format=COUNT_FORMAT, max_tokens=4
    )
    assert completion.choices[0].finish_reason == "length"
    assert completion.choices[0].message.content == '{"cou'
    assert len(backend.requests) == 1


def test_json_closed_just_at_the_limit_is_checked_like_any_answer(
    client: openai.OpenAI, backend: ScriptedBackend
) -> None:
    # Budget steering closes the JSON in time; the limit then comes before the end token.
    backend.add(
        answer('{"count":0}', tokens=4, finish_reason="length"), answer('{"count":1}', tokens=4)
    )
    completion = client.chat.completions.create(
        model=MODEL, messages=ASK, response_format=COUNT_FORMAT, max_tokens=4
    )
    assert completion.choices[0].message.content == '{"count":1}'
    assert len(backend.requests) == 2


def test_plain_chat_and_completions_keep_finish_reason_length(
    client: openai.OpenAI, backend: ScriptedBackend
) -> None:
    backend.add(*[answer("Once upon a", tokens=3, finish_reason="length")] * 2)
    chat = client.chat.completions.create(model=MODEL, messages=ASK, max_tokens=3)
    text = client.completions.create(model=MODEL, prompt="Tell a story", max_tokens=3)
    assert chat.choices[0].finish_reason == "length"
    assert text.choices[0].finish_reason == "length"


def test_tool_call_arguments_that_do_not_fit_are_fed_back_then_the_valid_call_returned(
    client: openai.OpenAI, backend: ScriptedBackend
) -> None:
    backend.add(
        weather_call({"town": "Paris"}, tokens=6), weather_call({"city": "Paris"}, tokens=6)
    )
    completion = client.chat.completions.create(
        model=MODEL, messages=ASK, tools=[WEATHER], tool_choice="required"
    )
    (call,) = completion.choices[0].message.tool_calls or []
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    assert completion.usage is not None and completion.usage.completion_tokens == 12
    tool_message = backend.requests[1].messages[-2]
    assert tool_message["role"] == "tool" and "'city' is a required property" in str(tool_message)


def test_tool_calls_that_never_fit_are_422_naming_the_tools(
    client: openai.OpenAI, backend: ScriptedBackend
) -> None:
    backend.add(*[weather_call({"town": "Paris"}, tokens=6)] * 3)
    with pytest.raises(openai.UnprocessableEntityError) as caught:
        client.chat.completions.create(model=MODEL, messages=ASK, tools=[WEATHER])
    error = caught.value.body
    assert isinstance(error, dict) and error["param"] == "tools"
    assert "get_weather" in error["message"]


def test_a_text_answer_is_fine_where_tool_choice_is_auto(
    client: openai.OpenAI, backend: ScriptedBackend
) -> None:
    backend.add(answer("It is sunny.", tokens=4))
    completion = client.chat.completions.create(model=MODEL, messages=ASK, tools=[WEATHER])
    assert completion.choices[0].message.content == "It is sunny."
    assert len(backend.requests) == 1


def test_a_streamed_typed_answer_is_sent_once_checked(
    client: openai.OpenAI, backend: ScriptedBackend
) -> None:
    backend.add(answer('{"count": 0}', tokens=5), answer('{"count": 2}', tokens=5))
    chunks = list(
        client.chat.completions.create(
            model=MODEL,
            messages=ASK,
            response_format=COUNT_FORMAT,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert json.loads(text) == {"count": 2}
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 10
    backend.add(*[answer('{"count": 0}', tokens=5)] * 3)
    with pytest.raises(openai.UnprocessableEntityError):
        client.chat.completions.create(
            model=MODEL, messages=ASK, response_format=COUNT_FORMAT, stream=True
        )


def test_each_of_n_choices_is_checked_on_its_own(
    client: openai.OpenAI, backend: ScriptedBackend
) -> None:
    def by_attempt(request: ChatRequest) -> ChatCompletion:
        retried = request.messages[-1]["role"] == "user" and len(request.messages) > 1
        return answer('{"count": 4}' if retried else '{"count": -1}', tokens=3)

    backend.add(*[by_attempt] * 4)
    completion = client.chat.completions.create(
        model=MODEL, messages=ASK, response_format=COUNT_FORMAT, n=2
    )
    assert [json.loads(c.message.content or "") for c in completion.choices] == [{"count": 4}] * 2
    assert completion.usage is not None and completion.usage.completion_tokens == 12
