"""``load_training_data``: the one front door from whatever the user has (a trace store, a JSONL
file, a BFCL directory, a Hugging Face dataset, examples in memory) to the split a trainer uses."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from byzer_agents.evals.dataset import CATEGORIES, heldout_ids
from byzer_agents.exceptions import FinetuneDataError, FinetuneError
from byzer_agents.finetune.bfcl_data import dataset_from_bfcl
from byzer_agents.finetune.examples import (
    ChatExample,
    DatasetSplit,
    deduplicate,
    split_examples,
)
from byzer_agents.finetune.sources import dataset_from_hf, read_jsonl_examples
from byzer_agents.finetune.traces_data import examples_from_traces
from byzer_agents.traces import TraceStore

__all__ = ["ACCEPTED_DATA", "load_training_data"]

ACCEPTED_DATA = (
    "a DatasetSplit",
    "a list of ChatExample or of OpenAI chat dicts ({'messages': [...], 'tools'?: [...]})",
    "a TraceStore or the path of its .db / .sqlite file",
    "a .jsonl / .json file (OpenAI, sharegpt or alpaca records)",
    "a directory of BFCL files (BFCL_v4_<category>.json)",
    "a Hugging Face datasets.Dataset or DatasetDict",
)
"""What ``load_training_data`` reads, as its error lists it."""

_STORE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
_JSON_SUFFIXES = (".jsonl", ".json")


def load_training_data(
    data: Any,
    *,
    eval_fraction: float = 0.1,
    seed: int = 0,
    require_tool_calls: bool = False,
) -> DatasetSplit:
    """Training data from any source the fine-tune module reads, deduplicated and split.

    Args:
        data: one of ``ACCEPTED_DATA``. A ``DatasetSplit`` is used as it is (only checked); a
            BFCL directory leaves out the project's eval slice (``evals.dataset.heldout_ids``),
            so a model trained on it is still scored on cases it has not seen.
        eval_fraction, seed: how ``split_examples`` holds out the eval part.
        require_tool_calls: refuse an example in which the assistant calls no tool.

    Raises:
        FinetuneError: ``data`` is none of the accepted kinds (naming its type).
        FinetuneDataError: the data is empty or malformed, or an example makes no tool call
            under ``require_tool_calls`` (naming where it came from).
    """
    if isinstance(data, DatasetSplit):
        _check_tool_calls([*data.train, *data.eval], require_tool_calls)
        return data
    if isinstance(data, TraceStore) or _is_path(data, _STORE_SUFFIXES):
        examples = examples_from_traces(data, require_tool_calls=require_tool_calls)
    else:
        examples = _examples(data)
        _check_tool_calls(examples, require_tool_calls)
    return split_examples(deduplicate(examples), eval_fraction=eval_fraction, seed=seed)


def _examples(data: Any) -> list[ChatExample]:
    if isinstance(data, str | os.PathLike):
        return _examples_at(Path(data))
    if _is_hf_dataset(data):
        return dataset_from_hf(data)
    if isinstance(data, Sequence) and not isinstance(data, str | bytes) and data:
        return [_in_memory(item, number) for number, item in enumerate(data, start=1)]
    if isinstance(data, Sequence) and not isinstance(data, str | bytes):
        raise FinetuneDataError("no training examples: the list is empty")
    raise FinetuneError(
        f"cannot read training data from a {type(data).__name__}; give "
        + "; or ".join(ACCEPTED_DATA)
    )


def _examples_at(path: Path) -> list[ChatExample]:
    if path.is_dir():
        categories = [name for name in CATEGORIES if (path / f"BFCL_v4_{name}.json").is_file()]
        if not categories:
            raise FinetuneDataError(
                "the directory holds no BFCL_v4_<category>.json file; give a BFCL-format "
                "directory, or a .jsonl file",
                source=str(path),
            )
        excluded = heldout_ids(categories, data_dir=path)
        return dataset_from_bfcl(path, categories, exclude_ids=excluded)
    if path.suffix in _JSON_SUFFIXES:
        return read_jsonl_examples(path)
    if not path.exists():
        raise FinetuneDataError("no such file or directory", source=str(path))
    raise FinetuneError(
        f"cannot read training data from a {path.suffix or 'suffix-less'} file ({path}); give "
        + "; or ".join(ACCEPTED_DATA)
    )


def _in_memory(item: Any, number: int) -> ChatExample:
    if isinstance(item, ChatExample):
        return item
    if isinstance(item, Mapping):
        return ChatExample.from_openai(item, source="examples", line=number)
    raise FinetuneError(
        f"item {number} of the list is a {type(item).__name__}; a list of training data holds "
        "ChatExample or OpenAI chat dicts ({'messages': [...], 'tools'?: [...]})"
    )


def _check_tool_calls(examples: Sequence[ChatExample], required: bool) -> None:
    if not required:
        return
    for example in examples:
        if not example.has_tool_calls:
            raise FinetuneDataError(
                "the assistant calls no tool in this example, and require_tool_calls=True",
                source=example.source or "an example without a source",
            )


def _is_path(data: Any, suffixes: Sequence[str]) -> bool:
    return isinstance(data, str | os.PathLike) and Path(data).suffix in suffixes


def _is_hf_dataset(data: Any) -> bool:
    """A ``datasets`` object, told without importing ``datasets`` (slow) when it is not one."""
    return any(klass.__module__.split(".")[0] == "datasets" for klass in type(data).__mro__)
