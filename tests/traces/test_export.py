"""export_sft: accepted model calls become OpenAI chat fine-tuning lines, written all or nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from byzer_agents.traces import TraceStore, export_sft
from tests.traces.calls import WEATHER_TOOL, completion, record_chat, weather_call

ALLOWED_MESSAGE_KEYS = {"role", "content", "name", "tool_calls", "tool_call_id", "weight"}


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _assert_openai_chat_format(example: dict[str, Any]) -> None:
    """The checks OpenAI's fine-tuning data validator makes on a chat example."""
    assert set(example) <= {"messages", "tools"}
    messages = example["messages"]
    assert messages and messages[-1]["role"] == "assistant"
    for message in messages:
        assert set(message) <= ALLOWED_MESSAGE_KEYS, message
        assert message["role"] in {"system", "user", "assistant", "tool"}
        if message["role"] == "assistant":
            assert "content" in message or "tool_calls" in message
        for call in message.get("tool_calls", []):
            assert set(call) == {"id", "type", "function"} and call["type"] == "function"
            assert isinstance(call["function"]["name"], str)
            json.loads(call["function"]["arguments"])
    for tool in example.get("tools", []):
        assert tool["type"] == "function" and "name" in tool["function"]


def test_each_accepted_call_becomes_one_valid_chat_line(store: TraceStore, tmp_path: Path) -> None:
    run_id = store.new_run("chat_oai")
    record_chat(
        store,
        run_id,
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
    )
    record_chat(store, run_id, step=2)
    path = tmp_path / "out" / "sft.jsonl"
    assert export_sft(store, path) == 2
    lines = _lines(path)
    assert len(lines) == 2
    for example in lines:
        _assert_openai_chat_format(example)
    assert lines[0] == {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
        ]
    }


def test_invalid_and_failed_calls_are_skipped_unless_asked(
    store: TraceStore, tmp_path: Path
) -> None:
    run_id = store.new_run("chat_oai")
    record_chat(store, run_id, response=completion("good"))
    record_chat(store, run_id, response=completion("not json"), status="invalid")
    record_chat(store, run_id, status="error")
    path = tmp_path / "sft.jsonl"
    assert export_sft(store, path) == 1
    assert [line["messages"][-1]["content"] for line in _lines(path)] == ["good"]
    # An error has no answer to learn from, so even include_failed leaves it out.
    assert export_sft(store, path, include_failed=True) == 2
    assert [line["messages"][-1]["content"] for line in _lines(path)] == ["good", "not json"]


def test_tool_calling_turns_keep_their_tool_calls_and_tools(
    store: TraceStore, tmp_path: Path
) -> None:
    run_id = store.new_run("chat_oai")
    question = {"role": "user", "content": "Weather in Paris and Rome?"}
    calls = [weather_call("call_1", "Paris"), weather_call("call_2", "Rome")]
    asked = completion(content=None, tool_calls=calls)
    record_chat(store, run_id, messages=[question], response=asked, tools=[WEATHER_TOOL])
    # The loop appends the SDK message as model_dump() gives it: refusal, audio, ... all None.
    history = [
        question,
        asked.choices[0].message.model_dump(),
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "call_2", "content": "rain"},
    ]
    record_chat(
        store,
        run_id,
        step=2,
        messages=history,
        response=completion("Paris is sunny; Rome has rain."),
        tools=[WEATHER_TOOL],
    )
    path = tmp_path / "sft.jsonl"
    assert store.export_sft(path) == 2
    first, second = _lines(path)
    for example in (first, second):
        _assert_openai_chat_format(example)
        assert example["tools"] == [WEATHER_TOOL]
    expected_calls = [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
        },
        {
            "id": "call_2",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'},
        },
    ]
    assert first["messages"][-1] == {"role": "assistant", "tool_calls": expected_calls}
    assert second["messages"][1] == {"role": "assistant", "tool_calls": expected_calls}
    assert second["messages"][-1] == {
        "role": "assistant",
        "content": "Paris is sunny; Rome has rain.",
    }


def test_arguments_a_backend_gave_parsed_are_written_as_json_text(
    store: TraceStore, tmp_path: Path
) -> None:
    run_id = store.new_run("chat_oai")
    response = completion(content=None, tool_calls=[weather_call()]).model_dump()
    response["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] = {"city": "Oslo"}
    store.record_model_call(
        run_id=run_id,
        step=1,
        request={"messages": [{"role": "user", "content": "Oslo?"}]},
        response=response,
        model="m",
        usage=None,
        latency_s=0.1,
        attempt=1,
        status="ok",
    )
    path = tmp_path / "sft.jsonl"
    assert export_sft(store, path) == 1
    (call,) = _lines(path)[0]["messages"][-1]["tool_calls"]
    assert json.loads(call["function"]["arguments"]) == {"city": "Oslo"}


def test_run_ids_limit_the_export_to_those_runs(store: TraceStore, tmp_path: Path) -> None:
    wanted, other = store.new_run("chat_oai"), store.new_run("chat_oai")
    record_chat(store, wanted, response=completion("from wanted"))
    record_chat(store, other, response=completion("from other"))
    path = tmp_path / "sft.jsonl"
    assert export_sft(store, path, run_ids=[wanted]) == 1
    assert _lines(path)[0]["messages"][-1]["content"] == "from wanted"
    assert export_sft(store, path, run_ids=[]) == 0
    assert path.read_text() == ""


def test_an_empty_answer_makes_no_line(store: TraceStore, tmp_path: Path) -> None:
    run_id = store.new_run("chat_oai")
    record_chat(store, run_id, response=completion(content=None))
    assert export_sft(store, tmp_path / "sft.jsonl") == 0


def test_exports_larger_than_one_batch_keep_recording_order(
    store: TraceStore, tmp_path: Path
) -> None:
    run_id = store.new_run("chat_oai")
    for n in range(1203):
        record_chat(store, run_id, step=n, response=completion(f"answer {n}"))
    path = tmp_path / "sft.jsonl"
    assert export_sft(store, path) == 1203
    contents = [line["messages"][-1]["content"] for line in _lines(path)]
    assert contents == [f"answer {n}" for n in range(1203)]


def test_a_failed_export_leaves_the_old_file_and_no_temporary(
    store: TraceStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = store.new_run("chat_oai")
    record_chat(store, run_id)
    path = tmp_path / "sft.jsonl"
    path.write_text("previous export\n")

    def broken(event: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr("byzer_agents.traces.export.sft_example", broken)
    with pytest.raises(RuntimeError, match="disk on fire"):
        export_sft(store, path)
    assert path.read_text() == "previous export\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sft.jsonl", "traces"]
