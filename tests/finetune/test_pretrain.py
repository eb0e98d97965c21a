"""``train_pretrain``: raw text from strings, .txt and .jsonl files, packed and trained on, with
the checkpoints, resume and run record of ``train_sft``; empty sources refused by name."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from byzer_agents.exceptions import FinetuneDataError
from byzer_agents.finetune.config import TrainingConfig
from byzer_agents.finetune.pretraining import read_texts, train_pretrain
from byzer_agents.finetune.trainer import RUN_RECORD

TEXT = (
    "The river town of Brell sells salt and copper. Its market opens at dawn, and the ferry "
    "crosses twice a day when the water is low. "
)


def config(max_steps: int) -> TrainingConfig:
    return TrainingConfig.build(
        max_steps=max_steps,
        batch_size=2,
        max_length=64,
        eval_fraction=0,
        save_steps=2,
        logging_steps=1,
        lora_r=4,
    )


# --- reading text ------------------------------------------------------------------------------


def test_strings_txt_and_jsonl_files_are_documents(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("first file")
    (tmp_path / "b.jsonl").write_text('{"text": "line one"}\n\n{"text": "line two"}\n')

    documents = read_texts(["plain text", tmp_path / "a.txt", str(tmp_path / "b.jsonl")])

    assert [d.text for d in documents] == ["plain text", "first file", "line one", "line two"]
    assert documents[3].source == f"{tmp_path / 'b.jsonl'}:3"


def test_a_long_line_of_text_is_text_not_a_file_name() -> None:
    line = TEXT * 20  # longer than any file name may be

    assert [d.text for d in read_texts([line])] == [line]


def test_a_directory_is_read_file_by_file(tmp_path: Path) -> None:
    (tmp_path / "b.txt").write_text("second")
    (tmp_path / "a.txt").write_text("first")
    (tmp_path / "notes.md").write_text("not read")

    assert [d.text for d in read_texts(tmp_path)] == ["first", "second"]


def test_an_empty_file_is_refused_naming_it(tmp_path: Path) -> None:
    (tmp_path / "empty.txt").write_text("  \n")

    with pytest.raises(FinetuneDataError, match=r"empty\.txt.*holds no text"):
        read_texts([tmp_path / "empty.txt"])


def test_a_jsonl_line_without_text_is_refused_naming_line_and_field(tmp_path: Path) -> None:
    (tmp_path / "c.jsonl").write_text('{"text": "ok"}\n{"body": "no"}\n')

    with pytest.raises(FinetuneDataError) as caught:
        read_texts(tmp_path / "c.jsonl")

    assert caught.value.line == 2 and caught.value.field == "text"
    assert "c.jsonl" in str(caught.value)


def test_an_empty_string_and_no_sources_are_refused() -> None:
    with pytest.raises(FinetuneDataError, match=r"texts\[2\].*empty"):
        read_texts(["fine", "   "])
    with pytest.raises(FinetuneDataError, match="empty"):
        read_texts([])


def test_a_missing_file_is_refused_naming_it(tmp_path: Path) -> None:
    with pytest.raises(FinetuneDataError, match=r"gone\.txt"):
        read_texts(str(tmp_path / "gone.txt"))


# --- training ----------------------------------------------------------------------------------


def test_pretraining_trains_a_lora_adapter_and_resumes(tmp_path: Path, tiny_base: Path) -> None:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"text": TEXT * 3}) + "\n" for _ in range(4)))
    output = tmp_path / "out"

    first = train_pretrain(corpus, tiny_base, output, config(2))

    assert first.steps == 2 and first.resumed_from is None
    assert first.train_loss is not None and math.isfinite(first.train_loss)
    assert first.train_tokens > 4 * 64  # the documents fill more than one block each
    assert (output / "adapter_model.safetensors").is_file()
    record = json.loads((output / RUN_RECORD).read_text())
    assert record["task"] == "pretrain" and record["kind"] == "adapter"
    assert record["base_model"] == str(tiny_base.resolve())
    # packed: the documents' tokens fill max_length blocks, none padded or thrown away
    assert record["blocks"] == math.ceil(first.train_tokens / 64)
    assert (output / "checkpoint-2" / "trainer_state.json").is_file()

    second = train_pretrain(corpus, tiny_base, output, config(3))

    assert second.resumed_from == str(output / "checkpoint-2")
    assert second.steps == 3
