"""LLM: which model answers when the call names none, how a call's arguments are checked, and
what a deployment gets; ByzerLLM adds Byzer-LLM's methods on top."""

from __future__ import annotations

import pytest

from byzer_agents import LLM, ByzerLLM, ToolChoice
from byzer_agents.exceptions import (
    ConfigurationError,
    ConfigurationTypeError,
    ModelNotFoundError,
    NoDefaultModelError,
)
from byzer_agents.llm_runtime.backends.scripted import ScriptedBackend
from byzer_agents.llm_runtime.infer_backend import InferBackend
from byzer_agents.ray_lifecycle import DeployResources, RayLifecycle


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
    backends = {"small": _backend("small"), "large": _backend("large")}
    (response,) = LLM(backends=backends, default_model="large").chat_oai("hi")
    assert response.output == "large"


def test_byzer_llm_sets_the_default_model_as_byzer_llm_did() -> None:
    llm = ByzerLLM(backends={"small": _backend("small"), "large": _backend("large")})
    (response,) = llm.setup_default_model_name("large").chat_oai("hi")
    assert response.output == "large"


def test_an_unknown_model_name_lists_the_models_there_are() -> None:
    llm = LLM(backends={"small": _backend()})
    with pytest.raises(ModelNotFoundError, match=r"no model named 'nope'; available: \['small'\]"):
        llm.chat_oai("hi", model="nope")


def test_byzer_llm_methods_are_not_on_the_plain_llm() -> None:
    for name in ("chat", "emb", "is_model_exist", "setup_template", "setup_num_workers"):
        assert hasattr(ByzerLLM, name) and not hasattr(LLM, name), name


def test_constructors_build_the_class_they_are_called_on() -> None:
    assert type(ByzerLLM.from_backend(_backend())) is ByzerLLM
    assert type(LLM.from_backend(_backend())) is LLM


def test_a_tool_choice_object_is_read_against_the_offered_tools() -> None:
    def now() -> str:
        """The time."""
        return "noon"

    backend = _backend('{"tool_calls": [{"name": "now", "arguments": {}}]}')
    llm = LLM.from_backend(backend)
    (answer,) = llm.chat_oai("time?", tools=[now], tool_choice=ToolChoice(mode="required"))
    assert [call.name for call in answer.tool_calls] == ["now"]
    with pytest.raises(ValueError, match="tool_choice 'later' is not allowed"):
        llm.chat_oai("time?", tools=[now], tool_choice=ToolChoice("required", "later"))


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"tools": [len], "response_class": int}, "give tools or response_class, not both"),
        ({"execute_tool": True}, "need tools, and none were given"),
        ({"response_after_chat": True}, "needs a response_class"),
    ],
)
def test_contradicting_arguments_are_refused_as_configuration_errors(
    arguments: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        LLM.from_backend(_backend()).chat_oai("hi", **arguments)  # type: ignore[call-overload]


def test_a_message_without_a_role_is_a_configuration_type_error() -> None:
    with pytest.raises(ConfigurationTypeError, match=r"conversations\[0\] must be a message dict"):
        LLM.from_backend(_backend()).chat_oai([{"content": "hi"}])


def test_extra_generation_params_reach_every_call_under_the_calls_own() -> None:
    backend = _backend("a", "b")
    llm = ByzerLLM.from_backend(backend, model="chat")
    llm.setup_extra_generation_params("chat", {"temperature": 0.5, "max_length": 9})
    llm.chat_oai("hi")
    llm.chat_oai("hi", llm_config={"temperature": 0.1})
    first, second = backend.requests
    assert (first.temperature, first.max_tokens) == (0.5, 9)
    assert (second.temperature, second.max_tokens) == (0.1, 9)


def test_emb_without_a_model_uses_the_default_embedding_model() -> None:
    llm = ByzerLLM(backends={"chat": _backend(), "emb": _backend()}, default_model="chat")
    llm.setup_default_emb_model_name("emb")
    (vector,) = llm.emb(None, "hello")
    assert vector.input == "hello" and vector.output == llm.emb("chat", "hello")[0].output


def test_deploy_resources_come_from_the_defaults_unless_the_call_names_them() -> None:
    llm = ByzerLLM(backends={})
    llm.setup_num_workers(2).setup_gpus_per_worker(0).setup_infer_backend("ray/vllm")
    defaults = llm._models.ray.defaults
    assert defaults == DeployResources(num_workers=2, infer_backend=InferBackend.VLLM)
    assert defaults.replace(cpus_per_worker=0.25).cpus_per_worker == 0.25
    assert defaults.replace().num_workers == 2


def test_a_deployment_of_a_local_type_needs_a_model_path_before_any_worker_starts() -> None:
    with pytest.raises(ConfigurationError, match="'custom/auto' needs a model_path"):
        RayLifecycle().spec(None, "custom/auto", "x", None, DeployResources())
