"""Chat files and Hugging Face datasets in OpenAI, sharegpt and alpaca form read as the same
checked examples; every bad record is refused naming the file, the line and the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from byzer_agents.exceptions import FinetuneDataError
from byzer_agents.finetune.sources import dataset_from_hf, read_jsonl_examples

ADD = {
    "type": "function",
    "function": {
        "name": "add",
        "description": "Add two integers.",
        "parameters": {
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
            "required": ["a", "b"],
        },
    },
}
CALL = {"id": "call_0", "type": "function", "function": {"name": "add", "arguments": '{"a": 1}'}}
OPENAI_TOOL_CHAT = {
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "1 + 2?"},
        {"role": "assistant", "tool_calls": [CALL]},
        {"role": "tool", "tool_call_id": "call_0", "content": "3"},
        {"role": "assistant", "content": "3"},
    ],
    "tools": [ADD],
}
SHAREGPT_TOOL_CHAT = {
    "conversations": [
        {"from": "human", "value": "1 + 2?"},
        {"from": "function_call", "value": json.dumps({"name": "add", "arguments": {"a": 1}})},
        {"from": "observation", "value": "3"},
        {"from": "gpt", "value": "3"},
    ],
    "system": "Be brief.",
    "tools": json.dumps([ADD["function"]]),  # LLaMA-Factory writes them as a JSON string
}
ALPACA = {"instruction": "Translate to French.", "input": "cat", "output": "chat"}


def write_lines(path: Path, *records: object) -> Path:
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def refusal(path: Path, *records: object, format: str = "auto") -> str:
    write_lines(path, *records)
    with pytest.raises(FinetuneDataError) as caught:
        read_jsonl_examples(path, format=format)
    return str(caught.value)


# --- reading the three forms ------------------------------------------------------------------


def test_openai_lines_read_as_they_are(tmp_path) -> None:
    path = write_lines(tmp_path / "chats.jsonl", OPENAI_TOOL_CHAT, "", OPENAI_TOOL_CHAT)
    first, second = read_jsonl_examples(path)
    assert first.to_openai() == OPENAI_TOOL_CHAT
    assert first.source == f"{path}:1" and second.source == f"{path}:3"  # blank line skipped


def test_sharegpt_turns_become_openai_roles_and_tool_calls(tmp_path) -> None:
    path = write_lines(tmp_path / "sharegpt.jsonl", SHAREGPT_TOOL_CHAT)
    (example,) = read_jsonl_examples(path)
    assert example.to_openai() == OPENAI_TOOL_CHAT


def test_sharegpt_parallel_calls_are_answered_in_order(tmp_path) -> None:
    calls = [{"name": "add", "arguments": {"a": 1}}, {"name": "add", "arguments": {"a": 2}}]
    record = {
        "conversations": [
            {"from": "human", "value": "Two sums"},
            {"from": "function_call", "value": json.dumps(calls)},
            {"from": "observation", "value": "1"},
            {"from": "tool", "value": "2"},
        ],
        "tools": [ADD],
    }
    (example,) = read_jsonl_examples(write_lines(tmp_path / "p.jsonl", record))
    ids = [call["id"] for call in example.messages[1]["tool_calls"]]
    assert ids == ["call_0", "call_1"]
    assert [m["tool_call_id"] for m in example.messages[2:]] == ids


def test_alpaca_instruction_and_input_make_the_user_message(tmp_path) -> None:
    record = {**ALPACA, "system": "You translate.", "history": [["Hello?", "Hi."]]}
    (example,) = read_jsonl_examples(write_lines(tmp_path / "alpaca.jsonl", record))
    assert example.messages == (
        {"role": "system", "content": "You translate."},
        {"role": "user", "content": "Hello?"},
        {"role": "assistant", "content": "Hi."},
        {"role": "user", "content": "Translate to French.\n\ncat"},
        {"role": "assistant", "content": "chat"},
    )


def test_a_json_array_file_reads_like_lines(tmp_path) -> None:
    path = tmp_path / "alpaca.json"
    path.write_text(json.dumps([ALPACA, {**ALPACA, "input": ""}], indent=2), encoding="utf-8")
    _, second = read_jsonl_examples(path)
    assert second.messages[0] == {"role": "user", "content": "Translate to French."}
    assert second.source == f"{path}:2"


def test_the_first_record_decides_the_form_of_the_file(tmp_path) -> None:
    message = refusal(tmp_path / "mixed.jsonl", ALPACA, OPENAI_TOOL_CHAT)
    assert "mixed.jsonl:2, field 'instruction'" in message


# --- refusals ---------------------------------------------------------------------------------


def test_an_empty_file_is_refused_naming_it(tmp_path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text("\n\n", encoding="utf-8")
    with pytest.raises(FinetuneDataError, match="empty") as caught:
        read_jsonl_examples(path)
    assert str(path) in str(caught.value)


def test_a_missing_file_is_refused_naming_it(tmp_path) -> None:
    with pytest.raises(FinetuneDataError, match="no such file") as caught:
        read_jsonl_examples(tmp_path / "gone.jsonl")
    assert "gone.jsonl" in str(caught.value)


def test_a_bad_json_line_is_refused_naming_its_line(tmp_path) -> None:
    message = refusal(tmp_path / "bad.jsonl", OPENAI_TOOL_CHAT, '{"messages": [')
    assert "bad.jsonl:2" in message and "not valid JSON" in message


def test_missing_messages_are_refused_naming_the_field(tmp_path) -> None:
    message = refusal(tmp_path / "m.jsonl", {"prompt": "hi"}, format="openai")
    assert "m.jsonl:1, field 'messages'" in message


def test_a_record_of_no_known_form_is_refused_listing_the_forms(tmp_path) -> None:
    message = refusal(tmp_path / "m.jsonl", {"prompt": "hi"})
    assert "m.jsonl:1" in message and "'conversations'" in message and "'prompt'" in message


def test_an_assistant_without_content_or_calls_is_refused(tmp_path) -> None:
    record = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant"}]}
    message = refusal(tmp_path / "a.jsonl", OPENAI_TOOL_CHAT, record)
    assert "a.jsonl:2, field 'messages.1.content'" in message


def test_a_call_to_a_tool_not_offered_is_refused(tmp_path) -> None:
    record = {**OPENAI_TOOL_CHAT, "tools": [{**ADD, "function": {**ADD["function"], "name": "x"}}]}
    message = refusal(tmp_path / "t.jsonl", record)
    assert "t.jsonl:1, field 'messages.2.tool_calls.0.function.name'" in message
    assert "'add'" in message


def test_an_unknown_role_is_refused(tmp_path) -> None:
    record = {"messages": [{"role": "robot", "content": "beep"}]}
    message = refusal(tmp_path / "r.jsonl", record)
    assert "r.jsonl:1, field 'messages.0.role'" in message and "'robot'" in message


def test_an_unknown_sharegpt_speaker_is_refused(tmp_path) -> None:
    record = {"conversations": [{"from": "human", "value": "hi"}, {"from": "bot", "value": "x"}]}
    message = refusal(tmp_path / "s.jsonl", record)
    assert "s.jsonl:1, field 'conversations.1.from'" in message and "'bot'" in message


def test_a_sharegpt_call_that_is_not_json_is_refused(tmp_path) -> None:
    record = {
        "conversations": [
            {"from": "human", "value": "hi"},
            {"from": "function_call", "value": "add(1, 2)"},
        ]
    }
    message = refusal(tmp_path / "s.jsonl", record)
    assert "s.jsonl:1, field 'conversations.1.value'" in message


def test_a_sharegpt_error_names_the_turn_not_the_converted_message(tmp_path) -> None:
    record = {**SHAREGPT_TOOL_CHAT, "tools": [{**ADD["function"], "name": "other"}]}
    message = refusal(tmp_path / "s.jsonl", record)
    assert "field 'conversations.1.tool_calls.0.function.name'" in message


def test_an_alpaca_record_without_output_is_refused(tmp_path) -> None:
    message = refusal(tmp_path / "al.jsonl", {"instruction": "hi"})
    assert "al.jsonl:1, field 'output'" in message


def test_an_unknown_format_is_refused(tmp_path) -> None:
    message = refusal(tmp_path / "f.jsonl", ALPACA, format="chatml")
    assert "'chatml'" in message and "'sharegpt'" in message


# --- Hugging Face datasets --------------------------------------------------------------------


def test_a_dataset_reads_like_the_jsonl_it_came_from(tmp_path) -> None:
    datasets = pytest.importorskip("datasets")
    plain = {
        "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]
    }
    path = write_lines(tmp_path / "chats.jsonl", OPENAI_TOOL_CHAT, plain)
    # Arrow gives every row every field (null where it had none): they must not leak through.
    dataset = datasets.Dataset.from_list([OPENAI_TOOL_CHAT, plain])
    from_dataset = dataset_from_hf(dataset)
    assert [e.to_openai() for e in from_dataset] == [
        e.to_openai() for e in read_jsonl_examples(path)
    ]
    assert from_dataset[1].source.endswith(":2")


def test_a_dataset_dict_gives_the_asked_split(tmp_path) -> None:
    datasets = pytest.importorskip("datasets")
    splits = datasets.DatasetDict(
        train=datasets.Dataset.from_list([ALPACA]),
        test=datasets.Dataset.from_list([{**ALPACA, "output": "le chat"}]),
    )
    (example,) = dataset_from_hf(splits, split="test")
    assert example.messages[-1]["content"] == "le chat"
    with pytest.raises(FinetuneDataError, match=r"no split 'validation'.*'test', 'train'"):
        dataset_from_hf(splits, split="validation")


def test_a_local_json_file_loads_through_datasets(tmp_path, monkeypatch) -> None:
    datasets = pytest.importorskip("datasets")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "cache")
    path = write_lines(tmp_path / "sharegpt.jsonl", SHAREGPT_TOOL_CHAT)
    (example,) = dataset_from_hf(path)
    assert example.to_openai() == OPENAI_TOOL_CHAT


def test_a_bad_dataset_row_is_refused_naming_the_dataset_and_row() -> None:
    datasets = pytest.importorskip("datasets")
    dataset = datasets.Dataset.from_list([ALPACA, {**ALPACA, "output": None}])
    with pytest.raises(FinetuneDataError) as caught:
        dataset_from_hf(dataset)
    assert "dataset" in str(caught.value) and ":2, field 'output'" in str(caught.value)


def test_an_empty_dataset_is_refused() -> None:
    datasets = pytest.importorskip("datasets")
    with pytest.raises(FinetuneDataError, match="no rows"):
        dataset_from_hf(datasets.Dataset.from_dict({"messages": []}))


def test_a_dataset_that_cannot_be_loaded_is_refused_naming_it(tmp_path) -> None:
    pytest.importorskip("datasets")
    missing = tmp_path / "no-such-dataset"
    with pytest.raises(FinetuneDataError) as caught:
        dataset_from_hf(missing)
    assert str(missing) in str(caught.value)
