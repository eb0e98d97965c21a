"""TransformersBackend's per-request switch: ``llm_config={"constrained_decoding": False}`` (which
reaches the backend in ``ChatRequest.extra``) lets the model write freely where a grammar would
hold it to the tools' schemas."""

from __future__ import annotations

from typing import Any

import pytest

from byzer_agents.llm_runtime.backends.transformers_backend import TransformersBackend
from byzer_agents.types import ChatRequest
from tests.tool_definitions import WEATHER


def weather_request(**extra: Any) -> ChatRequest:
    return ChatRequest(
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
        tools=[WEATHER],
        tool_choice="required",
        max_tokens=32,
        extra=extra,
    )


@pytest.mark.parametrize("switch", [False, "false", " False "])
def test_constrained_decoding_false_turns_the_grammar_off(
    chat_backend: TransformersBackend, switch: Any
) -> None:
    if not chat_backend.capabilities.constrained_decoding:
        pytest.skip("no constrained decoding here (xgrammar or llm_runtime.constrained missing)")
    assert chat_backend._constraint(weather_request(), 32) is not None
    assert chat_backend._constraint(weather_request(constrained_decoding=True), 32) is not None
    assert chat_backend._constraint(weather_request(constrained_decoding=switch), 32) is None


def test_a_constrained_decoding_value_that_is_not_a_bool_is_refused_with_it_named(
    chat_backend: TransformersBackend,
) -> None:
    if not chat_backend.capabilities.constrained_decoding:
        pytest.skip("no constrained decoding here (xgrammar or llm_runtime.constrained missing)")
    with pytest.raises(ValueError, match="constrained_decoding must be true or false; got 'no'"):
        chat_backend.chat(weather_request(constrained_decoding="no"))
