"""ByzerLLM, the Byzer-LLM compatibility surface, does what the seed says: ``setup_template`` and
``setup_max_model_length`` reach the calls that follow, and ``t[0].response.output`` reads."""

from __future__ import annotations

import datetime

import pytest

from byzer_agents import ByzerLLM
from byzer_agents.chat.results import LLMCompletion
from byzer_agents.llm_runtime.backends.openai_compatible import OpenAIBackend
from byzer_agents.llm_runtime.backends.scripted import ScriptedBackend
from byzer_agents.llm_runtime.routing import _addressed
from byzer_agents.prompts import Templates
from byzer_agents.types import ChatCompletion, ChatRequest


def _llm(*replies: str) -> tuple[ByzerLLM, ScriptedBackend]:
    backend = ScriptedBackend(list(replies), model="chat")
    return ByzerLLM.from_backend(backend, model="chat"), backend


def test_setup_template_and_max_model_length_travel_with_each_call() -> None:
    llm, backend = _llm("a", "b", "c")
    llm.setup_template("chat", "llama3").setup_max_model_length("chat", 1024)
    llm.chat_oai("hi")
    list(llm.stream_chat_oai("hi"))
    llm.chat("chat", "hi")
    for request in backend.requests:
        assert request.chat_template == Templates.llama3()
        assert request.max_model_len == 1024


def test_settings_of_one_model_stay_off_the_calls_of_another() -> None:
    llm, backend = _llm("a")
    llm.setup_template("other", "qwen").setup_max_model_length("other", 64)
    llm.chat_oai("hi")
    assert (backend.requests[0].chat_template, backend.requests[0].max_model_len) == (None, None)


def test_setup_template_auto_goes_back_to_the_models_own() -> None:
    llm, backend = _llm("a")
    llm.setup_template("chat", "qwen").setup_template("chat", "auto")
    llm.chat_oai("hi")
    assert backend.requests[0].chat_template is None
    assert "template" not in llm.get_meta("chat")


def test_a_custom_chat_template_survives_the_trip_to_a_worker() -> None:
    template = Templates.get("zephyr")
    request = ChatRequest(messages=[{"role": "user", "content": "hi"}], chat_template=template)
    arrived = ChatRequest.model_validate(request.model_dump(mode="json"))  # as Ray carries it
    assert arrived.chat_template == template


def test_the_template_and_length_are_not_sent_to_an_openai_endpoint_as_fields() -> None:
    request = ChatRequest(
        messages=[{"role": "user", "content": "hi"}],
        chat_template=Templates.qwen(),
        max_model_len=10,
    )
    assert not {"chat_template", "max_model_len"} & set(request.openai_kwargs())


@pytest.mark.parametrize(
    ("setting", "named"),
    [
        ({"chat_template": Templates.qwen()}, "setup_template('remote', 'qwen')"),
        ({"max_model_len": 512}, "setup_max_model_length('remote', 512)"),
    ],
)
def test_an_openai_compatible_model_refuses_what_only_local_models_can_do(
    setting: dict[str, object], named: str
) -> None:
    backend = OpenAIBackend(
        model="gpt", name="remote", base_url="http://127.0.0.1:9/v1", api_key="k", max_retries=0
    )
    request = ChatRequest(messages=[{"role": "user", "content": "hi"}], **setting)
    with pytest.raises(ValueError, match="local deployments only") as refused:
        backend.chat(request)
    assert named in str(refused.value)


def test_a_fallback_model_renders_and_counts_with_its_own_settings() -> None:
    request = ChatRequest(
        messages=[{"role": "user", "content": "hi"}],
        model="primary",
        chat_template=Templates.qwen(),
        max_model_len=100,
    )
    assert _addressed(request, "primary") is request
    moved = _addressed(request, "backup")
    assert (moved.model, moved.chat_template, moved.max_model_len) == ("backup", None, None)


def test_max_model_length_must_be_a_positive_count() -> None:
    llm, _ = _llm()
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="max_length must be a positive number of tokens"):
            llm.setup_max_model_length("chat", bad)  # type: ignore[arg-type]


# --- the seed's function-calling example, no-tool branch --------------------------------------


def compute_date_range(count: int, unit: str) -> list[str]:
    """计算日期范围"""
    now = datetime.datetime.now()
    return [str(now - datetime.timedelta(days=count)), str(now)]


def compute_now() -> str:
    """计算当前时间"""
    return datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S")


def test_seed_function_calling_no_tool_branch_reads_response_output(
    capsys: pytest.CaptureFixture[str],
) -> None:
    llm, _ = _llm("您好，我是一个人工智能语言模型，暂时无法吃饭。")
    # From Byzer-LLM's README, as written:
    t = llm.chat_oai(
        [{"content": """你吃饭了么？""", "role": "user"}],
        tools=[compute_date_range, compute_now],
        execute_tool=True,
    )

    if t[0].values:
        print(t[0].values[0])
    else:
        print(t[0].response.output)
    # ----
    assert capsys.readouterr().out == "您好，我是一个人工智能语言模型，暂时无法吃饭。\n"


def test_response_stays_a_chat_completion_with_every_field() -> None:
    llm, _ = _llm("hello")
    (answer,) = llm.chat_oai("hi")
    response = answer.response
    assert isinstance(response, ChatCompletion) and isinstance(response, LLMCompletion)
    assert response.output == "hello" == response.choices[0].message.content
    dumped = response.model_dump()
    assert "output" not in dumped and dumped["choices"][0]["message"]["content"] == "hello"
    assert ChatCompletion.model_validate(dumped).choices[0].message.content == "hello"
    assert LLMCompletion.model_validate_json(response.model_dump_json()).output == "hello"


def test_prompt_on_the_client_asks_its_default_model(capsys: pytest.CaptureFixture[str]) -> None:
    llm, backend = _llm("Byzer SQL is a language.")
    # From Byzer-LLM's README (render="simple": the docstring is a str.format template):

    @llm.prompt(render="simple")
    def generate_answer(context: str, question: str) -> str:
        """
        Answer the question based on only the following context:
        {context}
        Question: {question}
        Answer:
        """

    print(generate_answer(context="Byzer SQL: a SQL dialect.", question="What is Byzer SQL?"))
    # ----
    assert capsys.readouterr().out == "Byzer SQL is a language.\n"
    assert "Question: What is Byzer SQL?" in backend.requests[0].messages[-1]["content"]
