"""What the local engines share: request checks, end markers, and the answer read into a message,
a finish reason and stream chunks (no model: a stand-in tokenizer and hand-written outputs)."""

from __future__ import annotations

from typing import Any

import pytest

from byzer_agents.exceptions import ConfigurationError
from byzer_agents.llm_runtime.backends.local_chat import (
    Sampling,
    answer_chunks,
    answer_finish_reason,
    end_markers,
    message_of,
    sampling_of,
    single_choice,
    stop_strings,
)
from byzer_agents.llm_runtime.structured_output import output_spec
from byzer_agents.prompts.chat_templates import Templates
from byzer_agents.types import ChatRequest

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def ask(**fields: Any) -> ChatRequest:
    return ChatRequest(messages=[{"role": "user", "content": "Hi"}], **fields)


class StandInTokenizer:
    def __init__(self, eos_token_id: int | None, vocabulary: dict[str, int]) -> None:
        self.eos_token_id = eos_token_id
        self._vocabulary = vocabulary

    def get_vocab(self) -> dict[str, int]:
        return self._vocabulary


def test_zero_temperature_is_greedy_and_a_positive_one_samples() -> None:
    assert sampling_of(ask(temperature=0)) == Sampling(temperature=None, top_p=1.0)
    assert sampling_of(ask(temperature=0.7, top_p=0.9)) == Sampling(temperature=0.7, top_p=0.9)


@pytest.mark.parametrize(
    ("fields", "message"),
    [({"temperature": -1.0}, "temperature"), ({"top_p": 0.0}, "top_p")],
)
def test_bad_sampling_is_refused_with_the_value_named(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        sampling_of(ask(**fields))


def test_empty_stop_strings_and_several_choices_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="stop strings must not be empty"):
        stop_strings(ask(stop=["", "x"]))
    with pytest.raises(ConfigurationError, match="n=2: Engine answers with one choice"):
        single_choice(ask(n=2), "Engine")


def test_template_stops_that_are_one_token_end_by_id_the_others_by_text() -> None:
    template = Templates.chatml()
    tokenizer = StandInTokenizer(2, {"<|im_end|>": 7})
    ends = end_markers(tokenizer, template, model_name="m", eos_ids=frozenset({3}))
    assert ends.token_ids == {2, 3, 7}
    assert "<|im_end|>" not in ends.texts


def test_a_model_with_no_end_at_all_is_refused() -> None:
    template = Templates.chatml()
    with pytest.raises(ConfigurationError, match="generation could not end"):
        end_markers(StandInTokenizer(None, {}), template, model_name="m")


def test_a_constrained_call_becomes_a_tool_call_and_a_bad_one_stays_text() -> None:
    spec = output_spec(ask(tools=[WEATHER], tool_choice="required"), max_new_tokens=64)
    good = '{"tool_calls":[{"name":"get_weather","arguments":{"city":"Paris"}}]}'
    content, calls = message_of(good, spec=spec, offers_tools=True, model_name="m")
    assert content is None
    assert [(call.function.name, call.function.arguments) for call in calls] == [
        ("get_weather", '{"city":"Paris"}')
    ]
    cut_off = '{"tool_calls":[{"name":"get_weather","argu'
    assert message_of(cut_off, spec=spec, offers_tools=True, model_name="m") == (cut_off, [])


def test_unconstrained_text_is_content_unless_it_writes_a_call() -> None:
    assert message_of("Hello", spec=None, offers_tools=True, model_name="m") == ("Hello", [])
    fenced = (
        '```json\n{"tool_calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}]}\n```'
    )
    content, calls = message_of(fenced, spec=None, offers_tools=True, model_name="m")
    assert content is None and calls[0].function.name == "get_weather"


def test_a_cut_off_answer_reports_length_even_with_calls() -> None:
    assert answer_finish_reason("stop", called=True) == "tool_calls"
    assert answer_finish_reason("length", called=True) == "length"
    assert answer_finish_reason("stop", called=False) == "stop"


def test_a_whole_answer_streams_as_one_tool_call_chunk() -> None:
    spec = output_spec(ask(tools=[WEATHER], tool_choice="required"), max_new_tokens=64)
    text = '{"tool_calls":[{"name":"get_weather","arguments":{"city":"Rome"}}]}'
    chunks, called = answer_chunks(
        text, model_name="m", completion_id="c1", spec=spec, offers_tools=True
    )
    assert called and len(chunks) == 1
    assert chunks[0].choices[0].delta.tool_calls[0].function.name == "get_weather"
