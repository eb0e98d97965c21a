"""Training chats from a ``TraceStore``: each traced run becomes one example, the conversation
that led to its last accepted answer, with the model's rejected attempts taken out.

A run of the chat loop records one model call per attempt (``chat/tracing.py``); a retry's
request is the first attempt's messages plus, per failed attempt, the invalid answer and the
loop's feedback about it (``chat/flows.py``). The example keeps the first attempt's messages and
the accepted answer, so a model learns the right call and never the mistake, then appends the
results of the tools the run executed for that answer (the ``tool`` messages the loop would send
next). ``TraceStore.export_sft`` writes every accepted call as recorded, feedback included.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

from byzer_agents.exceptions import FinetuneDataError
from byzer_agents.finetune.examples import (
    ChatExample,
    DatasetSplit,
    deduplicate,
    split_examples,
)
from byzer_agents.tools.dialect import api_safe_name
from byzer_agents.traces import TraceEvent, TraceRun, TraceStore
from byzer_agents.traces.export import sft_example
from byzer_agents.types import Message

__all__ = ["dataset_from_traces", "examples_from_traces"]

logger = logging.getLogger(__name__)


def dataset_from_traces(
    store: TraceStore | str | os.PathLike[str],
    *,
    only_accepted: bool = True,
    run_ids: Collection[str] | None = None,
    require_tool_calls: bool = False,
    eval_fraction: float = 0.1,
    seed: int = 0,
) -> DatasetSplit:
    """The store's runs as training chats, deduplicated and split into train and eval.

    Args:
        store: a ``TraceStore``, or the path of its SQLite file.
        only_accepted: keep only runs whose last model call was accepted (status ``ok``) and
            whose tools for it all returned; ``False`` keeps the others too, ending in their
            last answer as recorded (an ``invalid`` one; a call with no answer gives nothing).
            A rejected answer that makes no valid example (a call to a tool that was not
            offered) is left out with a logged warning naming the run.
        run_ids: only these runs (all by default).
        require_tool_calls: refuse a run whose example makes no tool call.
        eval_fraction, seed: how ``split_examples`` holds out the eval part.

    Raises:
        FinetuneDataError: no run gives an example (naming the store and the filters), a run id
            is not in the store, or a run makes no tool call under ``require_tool_calls``.
    """
    examples = examples_from_traces(
        store,
        only_accepted=only_accepted,
        run_ids=run_ids,
        require_tool_calls=require_tool_calls,
    )
    return split_examples(deduplicate(examples), eval_fraction=eval_fraction, seed=seed)


def examples_from_traces(
    store: TraceStore | str | os.PathLike[str],
    *,
    only_accepted: bool = True,
    run_ids: Collection[str] | None = None,
    require_tool_calls: bool = False,
) -> list[ChatExample]:
    """One example per usable run, in the order the runs started (see ``dataset_from_traces``);
    not deduplicated."""
    opened = _open(store)
    try:
        location = str(opened.path)
        examples = []
        unusable: dict[str, str] = {}
        for run in _runs(opened, run_ids, location):
            try:
                example = _run_example(opened, run, only_accepted=only_accepted, location=location)
            except _UnusableAnswer as exc:
                unusable[run.id] = str(exc.__cause__)
                continue
            if example is None:
                continue
            if require_tool_calls and not example.has_tool_calls:
                raise FinetuneDataError(
                    f"run {run.id} made no tool call, and require_tool_calls=True; leave it out "
                    "with run_ids=... or train without require_tool_calls",
                    source=location,
                )
            examples.append(example)
    finally:
        if opened is not store:
            opened.close()
    if unusable:
        logger.warning(
            "left out %d failed runs whose recorded answer is no usable example: %s",
            len(unusable),
            "; ".join(f"{run_id}: {why}" for run_id, why in unusable.items()),
        )
    if not examples:
        raise FinetuneDataError(
            "no run gives a training example with the filters "
            f"only_accepted={only_accepted}, run_ids={_shown(run_ids)}: record runs with "
            "LLM(trace_store=...) first, or pass only_accepted=False to keep failed ones",
            source=location,
        )
    return examples


def _open(store: TraceStore | str | os.PathLike[str]) -> TraceStore:
    if isinstance(store, TraceStore):
        return store
    if not Path(store).is_file():  # TraceStore(path) would create an empty one
        raise FinetuneDataError("no trace store at this path", source=str(store))
    return TraceStore(store)


def _runs(store: TraceStore, run_ids: Collection[str] | None, location: str) -> list[TraceRun]:
    runs = store.runs(limit=None)[::-1]  # oldest first, so the order is stable
    if run_ids is None:
        return runs
    wanted = set(run_ids)
    missing = wanted - {run.id for run in runs}
    if missing:
        raise FinetuneDataError(
            f"no run with id {', '.join(sorted(missing))} in the store", source=location
        )
    return [run for run in runs if run.id in wanted]


def _shown(run_ids: Collection[str] | None) -> str:
    return "None" if run_ids is None else f"[{len(run_ids)} ids]"


def _run_example(
    store: TraceStore, run: TraceRun, *, only_accepted: bool, location: str
) -> ChatExample | None:
    events = store.events(run.id)
    calls = [event for event in events if event.kind == "model_call"]
    if not calls:
        return None
    if only_accepted:
        chosen = calls[-1] if calls[-1].status == "ok" else None
    else:
        chosen = next((call for call in reversed(calls) if call.response), None)
    if chosen is None or chosen.request is None:
        return None
    tool_events = [e for e in events if e.kind == "tool_call" and e.parent_id == chosen.id]
    if only_accepted and any(event.status != "ok" for event in tool_events):
        return None  # the loop rejected the answer after running it
    request = {**chosen.request, "messages": _first_attempt_messages(calls, chosen)}
    record = sft_example(dataclasses.replace(chosen, request=request))
    if record is None:
        return None
    record["messages"] += _tool_results(record["messages"], tool_events)
    try:
        return ChatExample.from_openai(
            record,
            source=f"{location} run {run.id}",
            metadata={
                "run_id": run.id,
                "event_id": chosen.id,
                "status": chosen.status,
                "kind": run.kind,
                "model": chosen.model,
            },
        )
    except FinetuneDataError as exc:
        if chosen.status == "ok":
            raise
        # A rejected answer may call a tool that does not exist: as recorded, but not trainable.
        raise _UnusableAnswer() from exc


class _UnusableAnswer(Exception):
    """A failed run's last answer does not make a valid example (the cause says why)."""


def _first_attempt_messages(calls: Sequence[TraceEvent], chosen: TraceEvent) -> list[Message]:
    """The messages of the first attempt of the chosen call's step chain: a retry's messages are
    these plus the rejected answers and the feedback on them."""
    assert chosen.request is not None
    messages: list[Message] = chosen.request.get("messages") or []
    if (chosen.attempt or 1) <= 1:
        return messages
    for earlier in reversed(calls[: calls.index(chosen)]):
        if earlier.attempt == 1:
            first: list[Message] = (earlier.request or {}).get("messages") or []
            if messages[: len(first)] == first:
                return first
            break
    return messages  # not a retry chain this module knows: keep what was sent


def _tool_results(messages: Sequence[Message], tool_events: Sequence[TraceEvent]) -> list[Message]:
    """``tool`` messages for the answer's calls that ran, in call order, where none is there."""
    answered = {message.get("tool_call_id") for message in messages if message["role"] == "tool"}
    unused = list(tool_events)
    results: list[Message] = []
    for call in messages[-1].get("tool_calls") or []:
        if call.get("id") in answered:
            continue
        event = _event_for(call, unused)
        if event is None:
            continue
        unused.remove(event)
        results.append({"role": "tool", "tool_call_id": call.get("id"), "content": _content(event)})
    return results


def _event_for(call: Message, events: Sequence[TraceEvent]) -> TraceEvent | None:
    """The execution of ``call``: same tool and arguments, else the first of the same tool."""
    function = call.get("function") or {}
    name = _safe(function.get("name"))
    same_tool = [event for event in events if _safe(event.tool_name) == name]
    arguments = _parsed(function.get("arguments"))
    exact = [event for event in same_tool if _parsed(event.arguments) == arguments]
    candidates = exact or same_tool
    return candidates[0] if candidates else None


def _safe(name: Any) -> str | None:
    try:
        return api_safe_name(name)
    except ValueError:
        return None


def _parsed(arguments: Any) -> Any:
    if isinstance(arguments, str):
        try:
            return json.loads(arguments or "{}")
        except json.JSONDecodeError:
            return arguments
    return arguments


def _content(event: TraceEvent) -> str:
    """What the loop hands the model for a tool's result (``flows._tool_feedback``)."""
    if event.status == "ok":
        return json.dumps(event.result, default=str)
    return f"Error: {event.error}"
