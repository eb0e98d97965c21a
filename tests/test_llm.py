"""LLM: which model answers when the call names none."""

from __future__ import annotations

import pytest

from byzer_agents import LLM
from byzer_agents.exceptions import ModelNotFoundError, NoDefaultModelError
from byzer_agents.llm_runtime.backends.scripted import ScriptedBackend


def _backend(*replies: str, model: str = "scripted") -> ScriptedBackend:
    return ScriptedBackend(list(replies), model=model)


def test_with_several_models_and_no_default_the_error_says_how_to_choose() -> None:
    llm = LLM(backends={"small": _backend(), "large": _backend()})
    with pytest.raises(NoDefaultModelError) as raised:
        llm.chat_oai("hi")
    message = str(raised.value)
    assert "model=" in message and "setup_default_model_name" in message
    assert "['large', 'small']" in message
    assert "None" not in message
    assert isinstance(raised.value, ModelNotFoundError)  # caught where the old error was


def test_with_no_model_at_all_the_error_says_to_deploy_one() -> None:
    with pytest.raises(NoDefaultModelError, match="there are none: deploy one first"):
        LLM(backends={}).chat_oai("hi")


def test_the_only_model_answers_when_none_is_named() -> None:
    llm = LLM(backends={"only": _backend("hello", model="only")})
    (response,) = llm.chat_oai("hi")
    assert response.output == "hello"


def test_the_default_model_answers_when_none_is_named() -> None:
    llm = LLM(backends={"small": _backend("small"), "large": _backend("large")})
    llm.setup_default_model_name("large")
    (response,) = llm.chat_oai("hi")
    assert response.output == "large"


def test_an_unknown_model_name_lists_the_models_there_are() -> None:
    llm = LLM(backends={"small": _backend()})
    with pytest.raises(ModelNotFoundError, match=r"no model named 'nope'; available: \['small'\]"):
        llm.chat_oai("hi", model="nope")
