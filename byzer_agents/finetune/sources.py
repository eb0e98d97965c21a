"""Read training chats from files and Hugging Face datasets in the three common forms: OpenAI's
chat fine-tuning form (what ``TraceStore.export_sft`` writes), sharegpt and alpaca.

Each record becomes a checked ``ChatExample``; a record that cannot be read is refused with
``FinetuneDataError`` naming the file (or dataset), the line (or row, from 1) and the field, never
skipped. What is fragile: sharegpt has no single spec; this reads LLaMA-Factory's (``from`` of
human / gpt / system / function_call / observation, ``tools`` as a list or a JSON string), which
most tool-calling sharegpt data follows. Hugging Face's Arrow columns fill every field a row lacks
with null, so rows from a ``datasets.Dataset`` have their null fields dropped before reading.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, cast, get_args

from byzer_agents.exceptions import FinetuneDataError
from byzer_agents.finetune.examples import ChatExample
from byzer_agents.types import Message

__all__ = [
    "RECORD_FORMATS",
    "RecordFormat",
    "dataset_from_hf",
    "detect_format",
    "example_from_record",
    "read_jsonl_examples",
]

RecordFormat = Literal["auto", "openai", "sharegpt", "alpaca"]
RECORD_FORMATS: tuple[RecordFormat, ...] = get_args(RecordFormat)

# The key that tells each form apart, in the order they are tried.
_FORM_KEYS = {"openai": "messages", "sharegpt": "conversations", "alpaca": "instruction"}

_SHAREGPT_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "system": "system",
    "function_call": "assistant",
    "observation": "tool",
    "tool": "tool",
}


# --- files ------------------------------------------------------------------------------------


def read_jsonl_examples(
    path: str | os.PathLike[str], format: RecordFormat = "auto"
) -> list[ChatExample]:
    """Every chat in a JSON Lines file, checked.

    Args:
        path: a ``.jsonl`` file, one record a line (blank lines skipped); a ``.json`` file may
            instead hold one JSON array of records, whose items are then numbered as lines.
        format: ``"openai"`` (``{"messages": [...], "tools"?: [...]}``), ``"sharegpt"``
            (``{"conversations": [{"from", "value"}...], "system"?, "tools"?}``), ``"alpaca"``
            (``{"instruction", "input"?, "output", "system"?, "history"?}``), or ``"auto"``: the
            form of the first record, for the whole file.

    Returns:
        The examples in file order, each with ``source`` ``"<path>:<line>"``.

    Raises:
        FinetuneDataError: the file is missing, empty, or a line is not JSON or not a valid
            record (naming the file, the line and the field).
    """
    source = str(path)
    _check_format(format, source)
    file = Path(path)
    if not file.is_file():
        raise FinetuneDataError("no such file", source=source)
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise FinetuneDataError(f"the file is not UTF-8 text: {exc}", source=source) from None
    rows = _json_rows(text, source, array=file.suffix == ".json")
    if not rows:
        raise FinetuneDataError(
            "the file holds no examples (it is empty); write one JSON record a line",
            source=source,
        )
    first_line, first = rows[0]
    form = detect_format(first, source=source, line=first_line) if format == "auto" else format
    return [example_from_record(record, form, source=source, line=line) for line, record in rows]


def _json_rows(text: str, source: str, *, array: bool) -> list[tuple[int, Any]]:
    if array and text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            raise FinetuneDataError(
                f"not valid JSON: {exc.msg} (column {exc.colno})", source=source, line=exc.lineno
            ) from None
        return list(enumerate(items, start=1))
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append((number, json.loads(line)))
        except json.JSONDecodeError as exc:
            raise FinetuneDataError(
                f"not valid JSON: {exc.msg} (column {exc.colno}); each line must be one JSON "
                "object",
                source=source,
                line=number,
            ) from None
    return rows


# --- Hugging Face datasets --------------------------------------------------------------------


def dataset_from_hf(
    dataset: Any, *, split: str = "train", format: RecordFormat = "auto"
) -> list[ChatExample]:
    """Every row of a Hugging Face dataset as a checked chat.

    Args:
        dataset: a ``datasets.Dataset`` or ``IterableDataset``; a ``DatasetDict`` (``split`` is
            taken from it); or what ``datasets.load_dataset`` loads: a local ``.json`` /
            ``.jsonl`` / ``.csv`` / ``.parquet`` file, a dataset directory, or a name already in
            the local cache (nothing is downloaded when the machine is offline).
        split: the split to read from a ``DatasetDict`` or a loaded name.
        format: as for ``read_jsonl_examples``; ``"auto"`` reads the first row's columns.

    Returns:
        The examples in row order, each with ``source`` ``"<dataset>:<row>"`` (rows from 1).

    Raises:
        FinetuneDataError: the dataset cannot be loaded, has no such split, is empty, or a row
            is not a valid record (naming the dataset, the row and the field).
    """
    import datasets  # heavy (pyarrow, pandas): only when a dataset is read

    source = _dataset_name(dataset, split)
    _check_format(format, source)
    if isinstance(dataset, str | os.PathLike):
        dataset = _load_dataset(datasets, dataset, split, source)
    if isinstance(dataset, datasets.DatasetDict | datasets.IterableDatasetDict):
        if split not in dataset:
            raise FinetuneDataError(
                f"no split {split!r}; the dataset has {sorted(dataset)}: pass split=...",
                source=source,
            )
        dataset = dataset[split]
    if not isinstance(dataset, datasets.Dataset | datasets.IterableDataset):
        raise FinetuneDataError(
            f"expected a datasets.Dataset or DatasetDict, got {type(dataset).__name__}",
            source=source,
        )
    examples: list[ChatExample] = []
    form: RecordFormat = format
    for row_number, row in enumerate(dataset, start=1):
        record = _without_nulls(row)
        if form == "auto":
            form = detect_format(record, source=source, line=row_number)
        examples.append(example_from_record(record, form, source=source, line=row_number))
    if not examples:
        raise FinetuneDataError("the dataset has no rows", source=source)
    return examples


def _load_dataset(datasets: Any, path: str | os.PathLike[str], split: str, source: str) -> Any:
    file = Path(path)
    builders = {".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet"}
    try:
        if file.is_file():
            builder = builders.get(file.suffix)
            if builder is None:
                raise FinetuneDataError(
                    f"cannot load a {file.suffix or 'suffix-less'} file as a dataset; give one "
                    f"of {sorted(builders)}",
                    source=source,
                )
            return datasets.load_dataset(builder, data_files={split: str(file)}, split=split)
        return datasets.load_dataset(str(path), split=split)
    except FinetuneDataError:
        raise
    except Exception as exc:  # load_dataset raises a dozen types: missing, offline, bad file
        raise FinetuneDataError(
            f"datasets.load_dataset could not load it: {type(exc).__name__}: {exc}",
            source=source,
        ) from exc


def _dataset_name(dataset: Any, split: str) -> str:
    if isinstance(dataset, str | os.PathLike):
        return str(dataset)
    info = getattr(dataset, "info", None)
    name = getattr(info, "dataset_name", None) or type(dataset).__name__
    own_split = getattr(dataset, "split", None)
    return f"dataset {name}[{own_split or split}]"


def _without_nulls(value: Any) -> Any:
    """A row as written before Arrow filled the fields it lacked with null."""
    if isinstance(value, Mapping):
        return {key: _without_nulls(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_without_nulls(item) for item in value]
    return value


# --- records ----------------------------------------------------------------------------------


def detect_format(
    record: Any, *, source: str = "", line: int | None = None
) -> Literal["openai", "sharegpt", "alpaca"]:
    """The form of one record, from its keys: ``messages`` (openai), ``conversations``
    (sharegpt) or ``instruction`` (alpaca)."""
    if isinstance(record, Mapping):
        for form, key in _FORM_KEYS.items():
            if key in record:
                return cast(Literal["openai", "sharegpt", "alpaca"], form)
    keys = sorted(record) if isinstance(record, Mapping) else type(record).__name__
    raise FinetuneDataError(
        f"cannot tell the record's form from {keys}: an OpenAI chat has 'messages', sharegpt "
        "'conversations', alpaca 'instruction' (or pass format=...)",
        source=source,
        line=line,
    )


def example_from_record(
    record: Any,
    format: Literal["openai", "sharegpt", "alpaca"],
    *,
    source: str = "",
    line: int | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> ChatExample:
    """One record of the given form as a checked ``ChatExample`` (OpenAI roles and tool calls)."""
    where: dict[str, Any] = {"source": source, "line": line}
    if not isinstance(record, Mapping):
        raise FinetuneDataError(f"expected a JSON object, got {type(record).__name__}", **where)
    tools = _tools(record.get("tools"), where)
    if format == "openai":
        return ChatExample.from_openai(
            {**record, "tools": tools}, source=source, line=line, metadata=metadata
        )
    if format == "sharegpt":
        messages, origins = _sharegpt_messages(record, where)
    elif format == "alpaca":
        messages, origins = _alpaca_messages(record, where)
    else:
        raise FinetuneDataError(
            f"format {format!r} is not one of {list(RECORD_FORMATS[1:])}", **where
        )
    try:
        return ChatExample.from_openai(
            {"messages": messages, "tools": tools}, source=source, line=line, metadata=metadata
        )
    except FinetuneDataError as exc:
        raise _in_record_terms(exc, origins) from None


def _tools(tools: Any, where: Mapping[str, Any]) -> list[Any]:
    """The record's tools as a list; sharegpt data often stores them as a JSON string."""
    if tools is None or tools == "":
        return []
    if isinstance(tools, str):
        try:
            tools = json.loads(tools)
        except json.JSONDecodeError as exc:
            raise FinetuneDataError(
                f"'tools' is a string but not JSON: {exc.msg}", field="tools", **where
            ) from None
    if not isinstance(tools, list):
        raise FinetuneDataError(
            f"'tools' must be a list of tool definitions, got {type(tools).__name__}",
            field="tools",
            **where,
        )
    return tools


def _text(record: Mapping[str, Any], key: str, where: Mapping[str, Any], *, path: str = "") -> str:
    value = record.get(key)
    if not isinstance(value, str):
        got = "nothing" if value is None else type(value).__name__
        raise FinetuneDataError(f"{key!r} must be text, got {got}", field=path or key, **where)
    return value


def _sharegpt_messages(
    record: Mapping[str, Any], where: Mapping[str, Any]
) -> tuple[list[Message], list[str]]:
    """OpenAI messages from sharegpt turns, and for each message the field it came from."""
    turns = record.get("conversations")
    if not isinstance(turns, list):
        got = "nothing" if turns is None else type(turns).__name__
        raise FinetuneDataError(
            f"'conversations' must be a list of {{'from', 'value'}} turns, got {got}",
            field="conversations",
            **where,
        )
    messages: list[Message] = []
    origins: list[str] = []
    if record.get("system"):
        messages.append({"role": "system", "content": _text(record, "system", where)})
        origins.append("system")
    pending: list[str] = []  # ids of calls whose observation has not come yet
    call_count = 0
    for index, turn in enumerate(turns):
        path = f"conversations.{index}"
        if not isinstance(turn, Mapping):
            raise FinetuneDataError(
                f"a turn must be an object with 'from' and 'value', got {type(turn).__name__}",
                field=path,
                **where,
            )
        speaker = turn.get("from")
        role = _SHAREGPT_ROLES.get(speaker) if isinstance(speaker, str) else None
        if role is None:
            raise FinetuneDataError(
                f"'from' {speaker!r} is not one of {list(_SHAREGPT_ROLES)}",
                field=f"{path}.from",
                **where,
            )
        value = _text(turn, "value", where, path=f"{path}.value")
        if speaker == "function_call":
            calls = _sharegpt_calls(value, call_count, where, f"{path}.value")
            call_count += len(calls)
            pending = [call["id"] for call in calls]
            messages.append({"role": "assistant", "tool_calls": calls})
        elif role == "tool":
            if not pending:
                raise FinetuneDataError(
                    f"an {speaker!r} turn with no function_call turn before it to answer",
                    field=f"{path}.from",
                    **where,
                )
            messages.append({"role": "tool", "tool_call_id": pending.pop(0), "content": value})
        else:
            pending = []
            messages.append({"role": role, "content": value})
        origins.append(path)
    return messages, origins


def _sharegpt_calls(
    value: str, first_number: int, where: Mapping[str, Any], path: str
) -> list[dict[str, Any]]:
    """A function_call turn's value: ``{"name", "arguments"}`` or a list of them, as JSON."""
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        raise FinetuneDataError(
            f'a function_call value must be JSON {{"name": ..., "arguments": {{...}}}}: {exc.msg}',
            field=path,
            **where,
        ) from None
    calls = parsed if isinstance(parsed, list) else [parsed]
    converted = []
    for number, call in enumerate(calls, start=first_number):
        if not isinstance(call, Mapping) or not isinstance(call.get("name"), str):
            raise FinetuneDataError(
                'a function call must be {"name": ..., "arguments": {...}}', field=path, **where
            )
        arguments = call.get("arguments", {})
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments, ensure_ascii=False)
        converted.append(
            {
                "id": f"call_{number}",
                "type": "function",
                "function": {"name": call["name"], "arguments": arguments},
            }
        )
    return converted


def _alpaca_messages(
    record: Mapping[str, Any], where: Mapping[str, Any]
) -> tuple[list[Message], list[str]]:
    instruction = _text(record, "instruction", where)
    extra = record.get("input") or ""
    if not isinstance(extra, str):
        raise FinetuneDataError(
            f"'input' must be text, got {type(extra).__name__}", field="input", **where
        )
    output = _text(record, "output", where)
    messages: list[Message] = []
    origins: list[str] = []
    if record.get("system"):
        messages.append({"role": "system", "content": _text(record, "system", where)})
        origins.append("system")
    history = record.get("history") or []
    if not isinstance(history, list):
        raise FinetuneDataError(
            "'history' must be a list of [instruction, output] pairs", field="history", **where
        )
    for index, pair in enumerate(history):
        if not (
            isinstance(pair, list | tuple)
            and len(pair) == 2
            and all(isinstance(text, str) for text in pair)
        ):
            raise FinetuneDataError(
                "each history entry must be an [instruction, output] pair of texts",
                field=f"history.{index}",
                **where,
            )
        messages += [
            {"role": "user", "content": pair[0]},
            {"role": "assistant", "content": pair[1]},
        ]
        origins += [f"history.{index}.0", f"history.{index}.1"]
    prompt = f"{instruction}\n\n{extra}" if extra else instruction
    messages += [{"role": "user", "content": prompt}, {"role": "assistant", "content": output}]
    origins += ["instruction", "output"]
    return messages, origins


_MESSAGE_FIELD = re.compile(r"messages\.(\d+)(.*)")


def _in_record_terms(error: FinetuneDataError, origins: Iterable[str]) -> FinetuneDataError:
    """The error with its ``messages.N`` field renamed to the record field message N came from."""
    found = _MESSAGE_FIELD.fullmatch(error.field)
    fields = list(origins)
    if found is None or int(found.group(1)) >= len(fields):
        return error
    prefix = str(FinetuneDataError("", source=error.source, line=error.line, field=error.field))
    return FinetuneDataError(
        str(error)[len(prefix) :],
        source=error.source,
        line=error.line,
        field=fields[int(found.group(1))] + found.group(2),
    )


def _check_format(format: str, source: str) -> None:
    if format not in RECORD_FORMATS:
        raise FinetuneDataError(
            f"format {format!r} is not one of {list(RECORD_FORMATS)}", source=source
        )
