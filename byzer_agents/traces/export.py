"""Export recorded model calls as training data: OpenAI chat fine-tuning JSONL.

Each accepted model call becomes one line, ``{"messages": [...request messages, the assistant's
answer], "tools": [...]}``, the format OpenAI's fine-tuning API and TRL's SFT trainer read. The
file is written beside its target and renamed into place, so a crash never leaves half of it.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from byzer_agents.traces.records import EVENT_STATUSES, EventStatus, TraceEvent

if TYPE_CHECKING:
    from byzer_agents.traces.store import TraceStore

__all__ = ["export_sft", "sft_example"]

_ASSISTANT_KEYS = ("role", "content", "name", "tool_calls", "weight")


def export_sft(
    store: TraceStore,
    path: str | os.PathLike[str],
    *,
    run_ids: Collection[str] | None = None,
    include_failed: bool = False,
) -> int:
    """Write the store's model calls to ``path`` as chat fine-tuning JSONL; return the line count.

    Only accepted calls (status ``ok``) are written unless ``include_failed``, which adds the
    ``invalid`` ones (answers that failed validation); calls without an answer (``error``) never
    make a line. ``run_ids`` limits the export to those runs. Lines follow recording order.
    """
    statuses: tuple[EventStatus, ...] = EVENT_STATUSES if include_failed else ("ok",)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=".tmp", dir=target.parent
    )
    count = 0
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            for event in store.iter_events(kind="model_call", statuses=statuses, run_ids=run_ids):
                example = sft_example(event)
                if example is not None:
                    file.write(json.dumps(example, ensure_ascii=False) + "\n")
                    count += 1
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    return count


def sft_example(event: TraceEvent) -> dict[str, Any] | None:
    """One model call as a chat fine-tuning example, or ``None`` when it has no request messages
    or no answer (an empty or failed response)."""
    if event.kind != "model_call" or not event.request or not event.response:
        return None
    messages = event.request.get("messages")
    choices = event.response.get("choices")
    if not messages or not choices:
        return None
    answer = _message(choices[0].get("message") or {})
    if answer is None:
        return None
    example: dict[str, Any] = {
        "messages": [cleaned for m in messages if (cleaned := _message(m)) is not None] + [answer]
    }
    if event.request.get("tools"):
        example["tools"] = event.request["tools"]
    return example


def _message(message: Mapping[str, Any]) -> dict[str, Any] | None:
    """A message in fine-tuning form: no ``None`` fields (the SDK's ``refusal``, ``audio``, ...),
    and an assistant message reduced to role, content and ``tool_calls`` as function calls."""
    cleaned = {key: value for key, value in message.items() if value is not None}
    if cleaned.get("role", "assistant") != "assistant":
        return cleaned
    assistant = {key: cleaned[key] for key in _ASSISTANT_KEYS if key in cleaned}
    assistant["role"] = "assistant"
    tool_calls = [_tool_call(call) for call in assistant.pop("tool_calls", None) or []]
    if tool_calls:
        assistant["tool_calls"] = tool_calls
    if "content" not in assistant and not tool_calls:
        return None
    return assistant


def _tool_call(call: Mapping[str, Any]) -> dict[str, Any]:
    function = call.get("function") or {}
    arguments = function.get("arguments", "{}")
    if not isinstance(arguments, str):  # some backends hand back parsed arguments
        arguments = json.dumps(arguments, ensure_ascii=False)
    return {
        "id": call.get("id"),
        "type": "function",
        "function": {"name": function.get("name"), "arguments": arguments},
    }
