"""Training chats from BFCL-format data: each case's question, its tools as the loop offers them
(API-safe names, standard JSON Schema), and its ground truth as the assistant's tool calls.

BFCL lists every acceptable value of an argument; the example takes the first, leaves out an
optional argument whose first acceptable value is ``""`` (BFCL's "may be omitted"), and resolves
nested objects, whose fields BFCL again writes as lists of acceptable values. Each call is then
validated against its tool, and a case whose ground truth contradicts its own schema (a handful
in BFCL V4, tests/tools/test_bfcl.py lists them) is skipped and reported, not trained on.
Irrelevance cases (no tool fits) teach a plain answer that calls nothing.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from byzer_agents.evals.dataset import SHIPPED_CATEGORIES, BfclCase, load_cases
from byzer_agents.exceptions import FinetuneDataError, ToolArgumentsError, ToolDefinitionError
from byzer_agents.finetune.examples import ChatExample
from byzer_agents.tools import Tool, ToolSet

__all__ = ["NO_CALL_ANSWER", "BfclExamples", "bfcl_examples", "dataset_from_bfcl"]

logger = logging.getLogger(__name__)

NO_CALL_ANSWER = "None of the tools I have can answer this, so I will not call one."
"""The assistant's answer to an irrelevance case: say so, call nothing."""

_LEFT_OUT = object()


@dataclass(frozen=True)
class BfclExamples:
    """What ``bfcl_examples`` read: the examples, and the cases it could not use."""

    examples: list[ChatExample]
    skipped: dict[str, str] = field(default_factory=dict)
    """Case id -> why it was skipped (its ground truth fails its tool's schema)."""


def dataset_from_bfcl(
    data_dir: str | os.PathLike[str] | None = None,
    categories: Sequence[str] = SHIPPED_CATEGORIES,
    *,
    exclude_ids: Collection[str] = (),
    no_call_answer: str = NO_CALL_ANSWER,
) -> list[ChatExample]:
    """The BFCL cases of ``categories`` as training chats; skipped cases are logged as a warning
    naming their ids (``bfcl_examples`` returns them).

    Args:
        data_dir: a BFCL-format directory (``bfcl_eval/data``); ``None``: the shipped sample.
        categories: the categories to read (``byzer_agents.evals.CATEGORIES``).
        exclude_ids: case ids to leave out; pass ``evals.dataset.heldout_ids()`` to keep the
            project's eval slice out of training.
        no_call_answer: the assistant's text for an irrelevance case.

    Returns:
        One example per case, in category then file order, ``source`` ``"bfcl:<id>"`` and
        ``metadata`` ``{"category": ..., "id": ...}``.

    Raises:
        FinetuneDataError: a category is unknown or missing from ``data_dir``, or no case is left.
    """
    read = bfcl_examples(
        data_dir, categories, exclude_ids=exclude_ids, no_call_answer=no_call_answer
    )
    if read.skipped:
        logger.warning(
            "skipped %d BFCL cases whose ground truth fails its own schema: %s",
            len(read.skipped),
            ", ".join(sorted(read.skipped)),
        )
    return read.examples


def bfcl_examples(
    data_dir: str | os.PathLike[str] | None = None,
    categories: Sequence[str] = SHIPPED_CATEGORIES,
    *,
    exclude_ids: Collection[str] = (),
    no_call_answer: str = NO_CALL_ANSWER,
) -> BfclExamples:
    """As ``dataset_from_bfcl``, with the skipped cases and why returned beside the examples."""
    where = str(data_dir) if data_dir is not None else "the shipped BFCL data"
    excluded = frozenset(exclude_ids)
    examples: list[ChatExample] = []
    skipped: dict[str, str] = {}
    for category in categories:
        try:
            cases = load_cases(category, data_dir=data_dir)
        except (ValueError, FileNotFoundError) as exc:
            raise FinetuneDataError(str(exc), source=where) from None
        for case in cases:
            if case.id in excluded:
                continue
            try:
                examples.append(case_example(case, no_call_answer=no_call_answer))
            except (ToolArgumentsError, ToolDefinitionError) as exc:
                skipped[case.id] = str(exc)
    if not examples:
        raise FinetuneDataError(
            f"no BFCL case left in categories {list(categories)} after excluding "
            f"{len(excluded)} ids and skipping {len(skipped)}",
            source=where,
        )
    return BfclExamples(examples, skipped)


def case_example(case: BfclCase, *, no_call_answer: str = NO_CALL_ANSWER) -> ChatExample:
    """One BFCL case as a chat. Raises ToolArgumentsError when its ground truth does not fit
    its tools' schemas, ToolDefinitionError when a tool definition is unusable."""
    toolset = ToolSet(case.functions)
    answer: dict[str, Any]
    if case.kind == "irrelevance":
        answer = {"role": "assistant", "content": no_call_answer}
    else:
        answer = {
            "role": "assistant",
            "tool_calls": [
                _tool_call(toolset, call, number) for number, call in enumerate(case.ground_truth)
            ],
        }
    return ChatExample.from_openai(
        {"messages": [*case.messages, answer], "tools": toolset.to_openai()},
        source=f"bfcl:{case.id}",
        metadata={"category": case.category, "id": case.id},
    )


def _tool_call(toolset: ToolSet, call: Mapping[str, Any], number: int) -> dict[str, Any]:
    ((name, acceptable),) = call.items()
    tool = toolset.get(name)
    if tool is None:
        raise ToolDefinitionError(f"the ground truth calls {name!r}, which the case does not offer")
    arguments = _first_choices(tool, acceptable)
    tool.validate(arguments)
    return {
        "id": f"call_{number}",
        "type": "function",
        "function": {"name": tool.name, "arguments": json.dumps(arguments, ensure_ascii=False)},
    }


def _first_choices(tool: Tool[..., Any], acceptable: Mapping[str, Any]) -> dict[str, Any]:
    """The call's arguments, each its first acceptable value. Arguments the tool does not
    declare are left out: BFCL lists a few (parallel_multiple_26) and its checker refuses them."""
    properties = tool.parameters.get("properties") or {}
    required = set(tool.parameters.get("required") or ())
    chosen = {}
    for name, values in acceptable.items():
        if name not in properties:
            continue
        value = _first_acceptable(values, required=name in required)
        if value is not _LEFT_OUT:
            chosen[name] = _resolved(value, properties[name])
    return chosen


def _first_acceptable(values: Any, *, required: bool) -> Any:
    """The first acceptable value; ``""`` first means "may be left out", unless the schema
    requires the argument (BFCL then accepts the next value too, simple_python_200)."""
    if not isinstance(values, list):
        return values
    if values and values[0] != "":
        return values[0]
    if required:
        return next((value for value in values if value != ""), _LEFT_OUT)
    return _LEFT_OUT


def _resolved(value: Any, schema: Mapping[str, Any]) -> Any:
    """A chosen value with its nested objects resolved: BFCL writes each field of an object
    (and of each object in a list) as a list of acceptable values, as its checker reads them."""
    if isinstance(value, dict) and _is_object(schema):
        properties = schema.get("properties") or {}
        required = set(schema.get("required") or ())
        resolved = {}
        for key, values in value.items():
            inner = _first_acceptable(values, required=key in required)
            if inner is not _LEFT_OUT:
                resolved[key] = _resolved(inner, properties.get(key) or {})
        return resolved
    items = schema.get("items")
    if isinstance(value, list) and isinstance(items, Mapping) and _is_object(items):
        return [_resolved(item, items) for item in value]
    return value


def _is_object(schema: Mapping[str, Any]) -> bool:
    return schema.get("type") == "object" or "properties" in schema
