"""``load_training_data`` reads every kind of training data the module knows, through the same
readers, and refuses anything else naming what it got and what it takes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import byzer_agents.finetune as finetune
from byzer_agents.evals.dataset import BFCL_DATA_DIR, HELDOUT_PER_CATEGORY, heldout_ids
from byzer_agents.exceptions import FinetuneDataError, FinetuneError
from byzer_agents.finetune import ChatExample, DatasetSplit, load_training_data
from byzer_agents.finetune.traces_data import dataset_from_traces
from byzer_agents.traces import TraceStore
from tests.finetune.test_traces_data import record_runs

PLAIN = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}
CALLING = {
    "messages": [
        {"role": "user", "content": "1 + 2?"},
        {
            "role": "assistant",
            "tool_calls": [{"id": "c", "function": {"name": "add", "arguments": '{"a": 1}'}}],
        },
    ],
    "tools": [{"type": "function", "function": {"name": "add", "parameters": {}}}],
}


def chats(count: int) -> list[dict]:
    return [
        {"messages": [{"role": "user", "content": f"q{n}"}, {"role": "assistant", "content": "a"}]}
        for n in range(count)
    ]


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_a_split_is_used_as_it_is() -> None:
    split = DatasetSplit(train=(ChatExample.from_openai(PLAIN),))
    assert load_training_data(split) is split


def test_dicts_and_examples_are_deduplicated_and_split() -> None:
    records = chats(10)
    data = [*records, ChatExample.from_openai(records[0])]
    split = load_training_data(data, eval_fraction=0.2, seed=1)
    assert (len(split.train), len(split.eval)) == (8, 2)
    assert split == load_training_data(data, eval_fraction=0.2, seed=1)
    assert {e.source for e in split.train} <= {f"examples:{n}" for n in range(1, 12)}


def test_a_trace_store_and_its_path_read_as_dataset_from_traces(tmp_path) -> None:
    path = tmp_path / "traces.db"
    record_runs(path)
    expected = dataset_from_traces(path)
    assert load_training_data(path) == expected
    assert load_training_data(str(path)) == expected
    with TraceStore(path) as store:
        assert load_training_data(store) == expected


def test_a_jsonl_file_is_read_in_any_form(tmp_path) -> None:
    alpaca = [{"instruction": f"say {n}", "output": str(n)} for n in range(5)]
    split = load_training_data(write_jsonl(tmp_path / "a.jsonl", alpaca), eval_fraction=0)
    assert sorted(e.messages[-1]["content"] for e in split.train) == ["0", "1", "2", "3", "4"]


def test_a_json_array_file_is_read(tmp_path) -> None:
    path = tmp_path / "chats.json"
    path.write_text(json.dumps(chats(3)), encoding="utf-8")
    assert len(load_training_data(path)) == 3


def test_a_bfcl_directory_leaves_out_the_eval_slice(tmp_path) -> None:
    shutil.copy(BFCL_DATA_DIR / "BFCL_v4_irrelevance.json", tmp_path)
    split = load_training_data(tmp_path, eval_fraction=0)
    assert len(split) == 240 - HELDOUT_PER_CATEGORY
    assert not {e.metadata["id"] for e in split.train} & heldout_ids(["irrelevance"])


def test_a_directory_without_bfcl_files_is_refused(tmp_path) -> None:
    with pytest.raises(FinetuneDataError, match=r"no BFCL_v4_<category>\.json") as caught:
        load_training_data(tmp_path)
    assert str(tmp_path) in str(caught.value)


def test_a_hugging_face_dataset_is_read() -> None:
    datasets = pytest.importorskip("datasets")
    split = load_training_data(datasets.Dataset.from_list(chats(4)), eval_fraction=0.25)
    assert (len(split.train), len(split.eval)) == (3, 1)


def test_anything_else_is_refused_naming_its_type_and_the_accepted_kinds() -> None:
    with pytest.raises(FinetuneError) as caught:
        load_training_data(42)
    message = str(caught.value)
    assert "int" in message and "TraceStore" in message and ".jsonl" in message
    assert "Hugging Face" in message and "BFCL" in message


def test_a_list_of_something_else_is_refused_naming_the_item() -> None:
    with pytest.raises(FinetuneError, match="item 2 of the list is a str"):
        load_training_data([PLAIN, "hi"])


def test_an_empty_list_is_refused() -> None:
    with pytest.raises(FinetuneDataError, match="empty"):
        load_training_data([])


def test_a_file_of_an_unknown_kind_is_refused(tmp_path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello", encoding="utf-8")
    with pytest.raises(FinetuneError, match=r"\.txt file"):
        load_training_data(path)


def test_a_missing_path_is_refused_naming_it(tmp_path) -> None:
    with pytest.raises(FinetuneDataError, match="gone") as caught:
        load_training_data(tmp_path / "gone")
    assert "no such file" in str(caught.value)


def test_require_tool_calls_refuses_an_example_without_one_naming_its_source(tmp_path) -> None:
    path = write_jsonl(tmp_path / "mixed.jsonl", [CALLING, PLAIN])
    assert len(load_training_data(path)) == 2
    with pytest.raises(FinetuneDataError) as caught:
        load_training_data(path, require_tool_calls=True)
    assert f"{path}:2" in str(caught.value) and "require_tool_calls" in str(caught.value)


def test_require_tool_calls_checks_a_given_split_too() -> None:
    split = DatasetSplit(train=(ChatExample.from_openai(CALLING),))
    assert load_training_data(split, require_tool_calls=True) is split
    with pytest.raises(FinetuneDataError, match="examples:1"):
        load_training_data(
            DatasetSplit(train=(ChatExample.from_openai(PLAIN, source="examples", line=1),)),
            require_tool_calls=True,
        )


def test_the_package_exports_its_readers_lazily() -> None:
    assert finetune.load_training_data is load_training_data
    assert callable(finetune.dataset_from_bfcl) and callable(finetune.dataset_from_hf)
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        _ = finetune.nothing


def test_importing_the_package_loads_no_training_library() -> None:
    code = (
        "import sys, byzer_agents.finetune as f; f.load_training_data; "
        "print([m for m in ('torch', 'transformers', 'datasets', 'trl') if m in sys.modules])"
    )
    shown = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert shown.strip() == "[]"
