"""Trace runs recorded by the real chat loop become one training chat each: the accepted answer
without the rejected attempts before it, plus the results of the tools it ran."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from byzer_agents import LLM, ToolCallError, tool
from byzer_agents.core.protocol import Capabilities
from byzer_agents.exceptions import FinetuneDataError
from byzer_agents.finetune.sources import read_jsonl_examples
from byzer_agents.finetune.traces_data import dataset_from_traces, examples_from_traces
from byzer_agents.llm_runtime.backends.scripted import Reply, ScriptedBackend
from byzer_agents.traces import TraceStore

NATIVE = Capabilities(native_tools=True, json_schema_output=True)
QUESTION = [{"role": "user", "content": "What is 1 + 2?"}]


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def calling(name: str, call_id: str, **arguments: object) -> dict:
    return {"tool_calls": [{"name": name, "arguments": arguments, "id": call_id}]}


def traced_llm(path: Path, *replies: Reply, capabilities: Capabilities = NATIVE) -> LLM:
    backend = ScriptedBackend(replies, model="scripted", capabilities=capabilities)
    return LLM.from_backend(backend, model="scripted", trace_store=path)


def record_runs(path: Path) -> dict[str, str]:
    """Three runs through the real loop: a clean call, a call fixed on the second attempt, and a
    plain answer. Returns run ids by name."""
    llm = traced_llm(
        path,
        calling("add", "call_clean", a=1, b=2),
        calling("add", "call_bad", a="one", b=2),
        calling("add", "call_good", a=3, b=4),
        "Hello there.",
    )
    runs = {}
    for name, messages in (
        ("clean", QUESTION),
        ("retried", [{"role": "user", "content": "What is 3 + 4?"}]),
    ):
        (response,) = llm.chat_oai(messages, tools=[add], execute_tool=True)
        runs[name] = response.metadata["run_id"]
    (response,) = llm.chat_oai([{"role": "user", "content": "Hi"}])
    runs["plain"] = response.metadata["run_id"]
    llm.close()
    return runs


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "traces.db"


@pytest.fixture
def runs(store_path: Path) -> dict[str, str]:
    return record_runs(store_path)


def by_run(store_path: Path, **options) -> dict[str, object]:
    split = dataset_from_traces(store_path, eval_fraction=0, **options)
    return {example.metadata["run_id"]: example for example in split.train}


def test_a_clean_run_is_its_question_call_and_tool_result(store_path, runs) -> None:
    example = by_run(store_path)[runs["clean"]]
    assert [m["role"] for m in example.messages] == ["user", "assistant", "tool"]
    assert example.messages[0] == QUESTION[0]
    (call,) = example.messages[1]["tool_calls"]
    assert call["function"] == {"name": "add", "arguments": json.dumps({"a": 1, "b": 2})}
    assert example.messages[2] == {"role": "tool", "tool_call_id": "call_clean", "content": "3"}
    assert [t["function"]["name"] for t in example.tools] == ["add"]


def test_a_retried_run_keeps_the_good_call_only(store_path, runs) -> None:
    example = by_run(store_path)[runs["retried"]]
    assert [m["role"] for m in example.messages] == ["user", "assistant", "tool"]
    assert example.messages[0]["content"] == "What is 3 + 4?"
    (call,) = example.messages[1]["tool_calls"]
    assert call["id"] == "call_good"
    assert json.loads(call["function"]["arguments"]) == {"a": 3, "b": 4}
    assert example.messages[2] == {"role": "tool", "tool_call_id": "call_good", "content": "7"}
    assert "one" not in json.dumps(example.to_openai())  # the rejected arguments are gone
    assert "Correct the tool calls" not in json.dumps(example.to_openai())


def test_a_plain_run_is_a_text_answer(store_path, runs) -> None:
    example = by_run(store_path)[runs["plain"]]
    assert example.messages == (
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello there."},
    )
    assert example.tools == ()
    assert not example.has_tool_calls


def test_export_sft_read_back_equals_the_traced_examples_but_for_feedback(
    store_path, runs, tmp_path
) -> None:
    traced = by_run(store_path)
    with TraceStore(store_path) as store:
        for name, run_id in runs.items():
            exported_path = tmp_path / f"{name}.jsonl"
            assert store.export_sft(exported_path, run_ids=[run_id]) == 1
            (exported,) = read_jsonl_examples(exported_path)
            example = traced[run_id]
            answer_at = max(i for i, m in enumerate(example.messages) if m["role"] == "assistant")
            assert exported.tools == example.tools
            assert exported.messages[-1] == example.messages[answer_at]
            if name == "retried":
                # export keeps the rejected call, its error and the loop's request to correct it
                feedback = exported.messages[1:-1]
                assert [m["role"] for m in feedback] == ["assistant", "tool", "user"]
                assert feedback[0]["tool_calls"][0]["id"] == "call_bad"
                exported_messages = (exported.messages[0], exported.messages[-1])
            else:
                exported_messages = exported.messages
            assert exported_messages == example.messages[: answer_at + 1]
            assert all(m["role"] == "tool" for m in example.messages[answer_at + 1 :])


def test_a_path_and_an_open_store_give_the_same_split(store_path, runs) -> None:
    with TraceStore(store_path) as store:
        from_store = dataset_from_traces(store, seed=3)
    assert from_store == dataset_from_traces(store_path, seed=3)
    assert len(from_store) == 3 and len(from_store.eval) == 1


def test_run_ids_limit_the_runs(store_path, runs) -> None:
    split = dataset_from_traces(store_path, run_ids=[runs["clean"]], eval_fraction=0)
    assert [e.metadata["run_id"] for e in split.train] == [runs["clean"]]


def test_an_unknown_run_id_is_refused_naming_it(store_path, runs) -> None:
    with pytest.raises(FinetuneDataError, match="no run with id nope"):
        dataset_from_traces(store_path, run_ids=["nope"])


def test_require_tool_calls_refuses_a_run_without_calls_naming_it(store_path, runs) -> None:
    with pytest.raises(FinetuneDataError) as caught:
        dataset_from_traces(store_path, require_tool_calls=True)
    assert runs["plain"] in str(caught.value)
    assert str(store_path) in str(caught.value)
    assert "require_tool_calls" in str(caught.value)


def test_equal_runs_are_deduplicated(store_path) -> None:
    llm = traced_llm(store_path, "Same.", "Same.", "Other.")
    for _ in range(3):
        llm.chat_oai([{"role": "user", "content": "Hi"}])
    llm.close()
    assert len(examples_from_traces(store_path)) == 3
    assert len(dataset_from_traces(store_path)) == 2


def test_a_failed_run_is_left_out_unless_asked_for(store_path) -> None:
    llm = traced_llm(
        store_path,
        "Fine.",
        calling("add", "call_bad", a="one", b=2),
    )
    llm.chat_oai([{"role": "user", "content": "Hi"}])
    with pytest.raises(ToolCallError):
        llm.chat_oai(QUESTION, tools=[add], execute_tool=True, max_retries=0)
    llm.close()
    accepted = examples_from_traces(store_path)
    assert [e.messages[-1]["content"] for e in accepted] == ["Fine."]
    every = examples_from_traces(store_path, only_accepted=False)
    assert len(every) == 2
    failed = every[1]
    assert failed.metadata["status"] == "invalid"
    assert failed.messages[-1]["tool_calls"][0]["id"] == "call_bad"  # as recorded


def test_a_failed_answer_calling_an_unknown_tool_is_left_out_with_a_warning(
    store_path, caplog
) -> None:
    llm = traced_llm(store_path, "Fine.", calling("subtract", "call_x", a=1, b=2))
    llm.chat_oai([{"role": "user", "content": "Hi"}])
    with pytest.raises(ToolCallError):
        llm.chat_oai(QUESTION, tools=[add], execute_tool=True, max_retries=0)
    failed_run = llm.trace_store.runs(limit=1)[0].id
    llm.close()
    with caplog.at_level(logging.WARNING, logger="byzer_agents.finetune.traces_data"):
        every = examples_from_traces(store_path, only_accepted=False)
    assert len(every) == 1
    assert failed_run in caplog.text and "subtract" in caplog.text


def test_a_tool_that_raised_on_the_last_answer_leaves_the_run_out(store_path) -> None:
    @tool
    def divide(a: float, b: float) -> float:
        """Divide a by b."""
        return a / b

    llm = traced_llm(store_path, "Fine.", calling("divide", "call_zero", a=1, b=0))
    llm.chat_oai([{"role": "user", "content": "Hi"}])
    (answer,) = llm.chat_oai(QUESTION, tools=[divide], execute_tool=True, max_retries=0)
    assert "ZeroDivisionError" in str(answer.tool_errors[0])
    llm.close()
    assert len(examples_from_traces(store_path)) == 1
    failed = examples_from_traces(store_path, only_accepted=False)[1]
    assert failed.messages[-1]["role"] == "tool"
    assert failed.messages[-1]["content"].startswith(
        "Error: tool 'divide' (call call_zero) raised ZeroDivisionError"
    )


def test_a_run_with_tools_in_the_prompt_is_kept_in_the_native_shape(store_path) -> None:
    # A model without native tools is asked through the prompted-tools adapter: its run is
    # traced as every other is, so training renders it as the runtime would.
    answer = '```json\n{"tool_calls": [{"name": "add", "arguments": {"a": 1, "b": 2}}]}\n```'
    llm = traced_llm(store_path, answer, capabilities=Capabilities())
    llm.chat_oai(QUESTION, tools=[add], execute_tool=True)
    llm.close()
    (example,) = examples_from_traces(store_path)
    assert example.messages[0] == QUESTION[0]
    (call,) = example.messages[1]["tool_calls"]
    assert (call["function"]["name"], json.loads(call["function"]["arguments"])) == (
        "add",
        {"a": 1, "b": 2},
    )
    assert [tool["function"]["name"] for tool in example.tools] == ["add"]


def test_an_empty_store_is_refused_naming_it_and_the_filters(store_path) -> None:
    TraceStore(store_path).close()
    with pytest.raises(FinetuneDataError) as caught:
        dataset_from_traces(store_path)
    message = str(caught.value)
    assert str(store_path) in message and "only_accepted=True" in message


def test_a_missing_store_path_is_refused_not_created(tmp_path) -> None:
    missing = tmp_path / "nowhere.db"
    with pytest.raises(FinetuneDataError, match="no trace store"):
        dataset_from_traces(missing)
    assert not missing.exists()
