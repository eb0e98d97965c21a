"""TransformersBackend on the shipped SmolLM2-135M-Instruct, on CPU: answers, sampling, limits,
stop strings, usage, streaming, batching of concurrent requests, prompts and settings."""

from __future__ import annotations

import importlib.util
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from byzer_agents.core.protocol import ChatBackend
from byzer_agents.exceptions import ContextLengthError, ModelCallError
from byzer_agents.llm_runtime.backends.transformers_backend import TransformersBackend
from byzer_agents.llm_runtime.models import default_chat_model
from byzer_agents.prompts import Templates
from byzer_agents.types import ChatCompletion, ChatRequest
from tests.llm_runtime.conftest import Conversion
from tests.tool_definitions import WEATHER

LONG_ANSWER = "Count from 1 to 1000, one number per line."


def ask(text: str, **fields: Any) -> ChatRequest:
    return ChatRequest(messages=[{"role": "user", "content": text}], **fields)


def text_of(completion: ChatCompletion) -> str:
    return completion.choices[0].message.content or ""


@pytest.fixture(scope="module")
def paris(chat_backend: TransformersBackend) -> ChatCompletion:
    """The greedy answer to the capital of France, asked once for the tests that compare."""
    return chat_backend.chat(ask("What is the capital of France?", temperature=0, max_tokens=40))


# --- answers --------------------------------------------------------------------------------


def test_backend_answers_the_one_protocol(chat_backend: TransformersBackend) -> None:
    assert isinstance(chat_backend, ChatBackend)


def test_capital_of_france_is_paris_at_temperature_0(paris: ChatCompletion) -> None:
    assert "Paris" in text_of(paris)
    assert paris.choices[0].finish_reason == "stop"
    assert paris.model == "SmolLM2-135M-Instruct"


def test_same_seed_gives_the_same_text_at_temperature_0_8(
    chat_backend: TransformersBackend,
) -> None:
    def story(seed: int) -> str:
        request = ask("Tell me a short story.", temperature=0.8, seed=seed, max_tokens=16)
        return text_of(chat_backend.chat(request))

    first, again = story(7), story(7)
    others = {story(8), story(9)}

    assert first == again
    assert len({first, *others}) > 1  # the seed is what made them equal


def test_max_tokens_5_ends_with_length_after_5_tokens(chat_backend: TransformersBackend) -> None:
    completion = chat_backend.chat(ask("What is the capital of France?", max_tokens=5))

    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 5


def test_stop_string_cuts_the_answer_before_it(
    chat_backend: TransformersBackend, paris: ChatCompletion
) -> None:
    completion = chat_backend.chat(ask("What is the capital of France?", stop=["Paris"]))

    full = text_of(paris)
    assert text_of(completion) == full[: full.index("Paris")]
    assert completion.choices[0].finish_reason == "stop"


def test_usage_counts_match_the_tokenizer(
    chat_backend: TransformersBackend, paris: ChatCompletion
) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(chat_backend.checkpoint))
    request = ask("What is the capital of France?", temperature=0, max_tokens=40)
    prompt = chat_backend.render_prompt(request)
    usage = paris.usage
    assert usage is not None

    assert usage.prompt_tokens == len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    # The answer ended at <|im_end|>, which was generated and is counted.
    answer_tokens = tokenizer(text_of(paris), add_special_tokens=False)["input_ids"]
    assert usage.completion_tokens == len(answer_tokens) + 1
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


# --- streaming -------------------------------------------------------------------------------


def test_stream_deltas_join_to_the_chat_text_at_temperature_0(
    chat_backend: TransformersBackend, paris: ChatCompletion
) -> None:
    request = ask("What is the capital of France?", temperature=0, max_tokens=40)

    chunks = list(chat_backend.stream(request))

    deltas = [chunk.choices[0].delta.content for chunk in chunks[:-2]]
    assert len(deltas) > 3  # token by token, not one piece at the end
    assert "".join(d or "" for d in deltas) == text_of(paris)
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage == paris.usage
    assert len({chunk.id for chunk in chunks}) == 1


def test_stream_stops_at_a_stop_string_like_chat(chat_backend: TransformersBackend) -> None:
    request = ask("What is the capital of France?", stop=[" is"])

    streamed = "".join(
        chunk.choices[0].delta.content or ""
        for chunk in chat_backend.stream(request)
        if chunk.choices
    )

    assert streamed == text_of(chat_backend.chat(request))
    assert " is" not in streamed


def test_setting_cancelled_ends_a_decode_that_has_sent_nothing_yet(
    chat_backend: TransformersBackend,
) -> None:
    # With tools offered the answer is sent whole: nothing is yielded that a close could follow.
    request = ask(LONG_ANSWER, tools=[WEATHER], temperature=0, max_tokens=1000)
    cancelled = threading.Event()
    timer = threading.Timer(1.0, cancelled.set)
    timer.start()
    started = time.perf_counter()

    chunks = list(chat_backend.stream(request, cancelled=cancelled))

    elapsed = time.perf_counter() - started
    timer.cancel()
    usage = chunks[-1].usage
    assert elapsed >= 1.0, "the answer was complete before the cancel"
    assert usage is not None and usage.completion_tokens < 1000
    assert elapsed < 6


# --- concurrency -----------------------------------------------------------------------------


def test_four_concurrent_requests_each_get_their_own_answer_in_a_batch(
    chat_backend: TransformersBackend,
) -> None:
    questions = {
        "What is the capital of France?": "Paris",
        "What is the capital of Japan?": "Tokyo",
        "What is the capital of Germany?": "Berlin",
        "What is the chemical symbol for water?": "H2O",
    }
    before = chat_backend.meta()
    together = threading.Barrier(len(questions))

    def answer(question: str) -> str:
        together.wait()
        return text_of(chat_backend.chat(ask(question, temperature=0, max_tokens=24)))

    with ThreadPoolExecutor(len(questions)) as pool:
        answers = dict(zip(questions, pool.map(answer, questions), strict=True))

    for question, expected in questions.items():
        assert expected in answers[question], (question, answers[question])
    after = chat_backend.meta()
    assert after["requests_served"] - before["requests_served"] == 4
    assert after["batches_run"] - before["batches_run"] < 4
    assert after["largest_batch"] >= 2


# --- prompts and tools -----------------------------------------------------------------------


def test_tools_are_offered_in_the_prompt_of_a_template_without_tools(
    chat_backend: TransformersBackend,
) -> None:
    assert "tools" not in chat_backend.chat_template.source  # SmolLM2's own template

    prompt = chat_backend.render_prompt(
        ask("What is the weather in Paris?", tools=[WEATHER], tool_choice="auto")
    )

    assert "get_weather" in prompt
    assert '{"tool_calls": [' in prompt
    assert prompt.rstrip().endswith("<|im_start|>assistant")


def test_tool_call_history_renders_as_text_for_a_template_without_tools(
    chat_backend: TransformersBackend,
) -> None:
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
    }
    request = ChatRequest(
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_1", "content": '{"sky": "sunny"}'},
        ],
        tools=[WEATHER],
    )

    prompt = chat_backend.render_prompt(request)

    assert '{"name": "get_weather", "arguments": {"city": "Paris"}}' in prompt
    assert 'Result of get_weather: {"sky": "sunny"}' in prompt


def test_tool_choice_none_keeps_tools_out_of_the_prompt(
    chat_backend: TransformersBackend,
) -> None:
    prompt = chat_backend.render_prompt(ask("Hi", tools=[WEATHER], tool_choice="none"))

    assert "get_weather" not in prompt


def test_json_schema_answer_is_held_to_the_schema(chat_backend: TransformersBackend) -> None:
    if not chat_backend.capabilities.constrained_decoding:
        pytest.skip("no constrained decoding here (xgrammar or llm_runtime.constrained missing)")
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
        "required": ["city", "population"],
    }
    request = ask(
        "Give the capital of France and its population.",
        response_format={"type": "json_schema", "json_schema": {"name": "city", "schema": schema}},
        max_tokens=60,
    )

    answer = json.loads(text_of(chat_backend.chat(request)))

    assert set(answer) == {"city", "population"}
    assert isinstance(answer["population"], int)


# --- protocol edges and settings -------------------------------------------------------------


def test_embed_is_refused_as_a_chat_model(chat_backend: TransformersBackend) -> None:
    with pytest.raises(NotImplementedError, match="chat model"):
        chat_backend.embed(["hello"])


def test_capabilities_say_chat_with_tools_and_no_embeddings(
    chat_backend: TransformersBackend,
) -> None:
    capabilities = chat_backend.capabilities

    assert capabilities.native_tools and capabilities.json_schema_output
    assert capabilities.streaming
    assert not capabilities.embeddings
    grammar_parts = ("xgrammar", "byzer_agents.llm_runtime.constrained")
    has_grammars = all(importlib.util.find_spec(name) is not None for name in grammar_parts)
    assert capabilities.constrained_decoding == has_grammars


def test_meta_says_where_and_how_the_model_runs(chat_backend: TransformersBackend) -> None:
    meta = chat_backend.meta()

    assert meta["model_deploy_type"] == "local"
    assert meta["backend"] == "transformers"
    assert meta["model"] == "SmolLM2-135M-Instruct"
    assert meta["max_model_len"] == 8192
    assert meta["architectures"] == ["LlamaForCausalLM"]
    assert meta["dtype"] == "float32"
    assert meta["device"] == "cpu"
    assert meta["quantization"] is None
    assert isinstance(meta["num_threads"], int) and meta["num_threads"] >= 1


@pytest.mark.parametrize(
    ("request_fields", "message"),
    [
        ({"n": 2}, "n=2"),
        ({"temperature": -1.0}, "temperature"),
        ({"top_p": 0.0}, "top_p"),
        ({"stop": [""]}, "stop strings must not be empty"),
    ],
)
def test_bad_request_settings_are_refused_with_the_value_named(
    chat_backend: TransformersBackend, request_fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        chat_backend.chat(ask("Hi", **request_fields))


def test_a_prompt_longer_than_max_model_len_is_refused(chat_backend: TransformersBackend) -> None:
    with pytest.raises(ValueError, match="max_model_len=8192"):
        chat_backend.chat(ask("word " * 9000))


def test_a_callers_max_model_len_refuses_prompt_and_max_tokens_beyond_it(
    chat_backend: TransformersBackend,
) -> None:
    with pytest.raises(ContextLengthError, match=r"max_tokens=64.*holds .* to 32 tokens"):
        chat_backend.chat(ask("Hi", max_tokens=64, max_model_len=32))
    answer = chat_backend.chat(ask("Hi", temperature=0, max_tokens=4, max_model_len=64))
    assert answer.usage is not None and answer.usage.total_tokens <= 64


def test_a_request_template_replaces_the_models_own(chat_backend: TransformersBackend) -> None:
    request = ask("What is the capital of France?", temperature=0, max_tokens=24)
    transcript = request.model_copy(update={"chat_template": Templates.default()})
    prompt = chat_backend.render_prompt(transcript)
    assert "User: What is the capital of France?" in prompt and "<|im_start|>" not in prompt
    assert "<|im_start|>" in chat_backend.render_prompt(request)  # the model's own, untouched
    answer = text_of(chat_backend.chat(transcript))
    assert "\nUser:" not in answer  # the template's stop ended the turn


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"dtype": "float8"}, "dtype 'float8'"),
        ({"max_batch_size": 0}, "max_batch_size"),
        ({"quantization": "3"}, "quantization"),
        ({"device": "tpu-ish"}, "device 'tpu-ish'"),
    ],
)
def test_bad_backend_settings_are_refused_before_loading(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        TransformersBackend(default_chat_model(), model_name="m", **options)


def test_quantization_without_bitsandbytes_names_the_pip_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *args: None if name == "bitsandbytes" else find_spec(name, *args),
    )
    with pytest.raises(ModuleNotFoundError, match="pip install bitsandbytes"):
        TransformersBackend(default_chat_model(), model_name="m", quantization="4")


def test_a_closed_backend_refuses_requests(converted_chat_model: Conversion) -> None:
    backend = TransformersBackend(converted_chat_model.checkpoint, model_name="closing")
    backend.close()

    with pytest.raises(RuntimeError, match="closed"):
        backend.chat(ask("Hi", max_tokens=1))


def test_auto_tool_choice_reads_a_call_written_as_the_prompt_shows(
    chat_backend: TransformersBackend,
) -> None:
    # The prompt format shows calls in a fenced JSON block; a model that copies it takes the
    # grammar's free-text branch, and the call must still come back as a tool call.
    from byzer_agents.llm_runtime.backends.local_chat import message_of

    prepared = chat_backend._prepare(
        ask("What is the weather in Paris?", tools=[WEATHER], tool_choice="auto")
    )
    fenced = (
        '```json\n{"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]}\n```'
    )
    content, calls = message_of(
        fenced, spec=prepared.constraint, offers_tools=True, model_name="chat"
    )
    assert prepared.constraint is not None and prepared.constraint.allows_text
    assert content is None
    assert [(call.function.name, call.function.arguments) for call in calls] == [
        ("get_weather", '{"city": "Paris"}')
    ]


# --- Byzer-LLM's compatibility surface, over the shipped model ------------------------------


def test_seed_function_calling_no_tool_branch_runs_on_the_shipped_model(
    chat_backend: TransformersBackend, capsys: pytest.CaptureFixture[str]
) -> None:
    from byzer_agents import LLM
    from tests.test_llm_compat import compute_date_range, compute_now

    llm = LLM.from_backend(chat_backend, model="chat")
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
    printed = capsys.readouterr().out
    assert printed.strip()
    if not t[0].values:
        assert t[0].response is not None and printed == t[0].response.output + "\n"


def test_setup_template_and_max_model_length_hold_for_llm_calls(
    chat_backend: TransformersBackend,
) -> None:
    from byzer_agents import ByzerLLM

    llm = ByzerLLM.from_backend(chat_backend, model="chat")
    llm.setup_template("chat", "default").setup_max_model_length("chat", 40)
    (answer,) = llm.chat_oai("Name a colour.", llm_config={"max_length": 8, "temperature": 0})
    assert answer.output.strip() and "\nUser:" not in answer.output
    with pytest.raises(ModelCallError, match="holds 'chat' to 40 tokens") as refused:
        llm.chat_oai("word " * 50)
    assert "no room for an answer" in str(refused.value)
