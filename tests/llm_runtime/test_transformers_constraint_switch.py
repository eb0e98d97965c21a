"""TransformersBackend's per-request switch: ``llm_config={"constrained_decoding": False}``, read
once at the edge into ``ChatRequest.constrained_decoding``, lets the model write freely where a
grammar would hold it to the tools' schemas."""

from __future__ import annotations

from typing import Any

import pytest

from byzer_agents.chat.config import GenerationConfig
from byzer_agents.llm_runtime.backends.transformers_backend import TransformersBackend
from byzer_agents.types import ChatRequest
from tests.tool_definitions import WEATHER


def weather_request(llm_config: dict[str, Any] | None = None) -> ChatRequest:
    return ChatRequest(
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
        tools=[WEATHER],
        tool_choice="required",
        **{"max_tokens": 32, **GenerationConfig.parse(llm_config).request_fields()},
    )


@pytest.mark.parametrize("switch", [False, "false", "False", "0"])
def test_constrained_decoding_false_turns_the_grammar_off(
    chat_backend: TransformersBackend, switch: Any
) -> None:
    if not chat_backend.capabilities.constrained_decoding:
        pytest.skip("no constrained decoding here (xgrammar or llm_runtime.constrained missing)")
    assert chat_backend._constraint(weather_request(), 32) is not None
    on = weather_request({"constrained_decoding": True})
    assert chat_backend._constraint(on, 32) is not None
    off = weather_request({"constrained_decoding": switch})
    assert off.constrained_decoding is False and off.extra == {}
    assert chat_backend._constraint(off, 32) is None


def test_a_constrained_decoding_value_that_is_not_a_bool_is_refused_with_it_named() -> None:
    with pytest.raises(ValueError, match=r"constrained_decoding='maybe'.*valid boolean"):
        GenerationConfig.parse({"constrained_decoding": "maybe"})
