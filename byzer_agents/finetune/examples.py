"""The unit of training data: one chat in OpenAI form (messages with tool calls and tool results,
plus the tools that were offered), and the seeded train/eval split every reader ends in.

Every source (trace stores, OpenAI / sharegpt / alpaca JSONL, Hugging Face datasets, BFCL
directories) becomes ``ChatExample``s here, checked once at the edge: a malformed example is
refused with ``FinetuneDataError`` naming where it came from and which field is wrong, never
trained on half-read.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from byzer_agents.exceptions import FinetuneDataError
from byzer_agents.types import Message

__all__ = ["ChatExample", "DatasetSplit", "deduplicate", "split_examples"]

_ROLES = ("system", "developer", "user", "assistant", "tool")


@dataclass(frozen=True, kw_only=True)
class ChatExample:
    """One chat to learn from: every assistant message in it is a target, the messages before it
    its context. ``tools`` are OpenAI ``tools`` entries (``{"type": "function", "function":
    {...}}``) with the names the model saw; assistant ``tool_calls`` use those names."""

    messages: tuple[Message, ...]
    tools: tuple[dict[str, Any], ...] = ()
    source: str = ""
    """Where it came from, for errors and reports: ``"train.jsonl:12"``, ``"trace run 3f..."``."""
    metadata: Mapping[str, Any] = field(default_factory=dict, compare=False)
    """Free-form labels (BFCL category, synthetic app name ...); not trained on."""

    @classmethod
    def from_openai(
        cls,
        record: Mapping[str, Any],
        *,
        source: str = "",
        line: int | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> ChatExample:
        """An example from OpenAI's chat fine-tuning form, ``{"messages": [...], "tools"?:
        [...]}``, checked (see ``check``)."""
        if not isinstance(record, Mapping):
            raise FinetuneDataError(
                f"expected a JSON object with 'messages', got {type(record).__name__}",
                source=source,
                line=line,
            )
        messages = record.get("messages")
        if not isinstance(messages, list):
            raise FinetuneDataError(
                f"'messages' must be a list of chat messages, got {_kind(messages)}",
                source=source,
                line=line,
                field="messages",
            )
        tools = record.get("tools") or []
        if not isinstance(tools, list):
            raise FinetuneDataError(
                f"'tools' must be a list of OpenAI tool entries, got {_kind(tools)}",
                source=source,
                line=line,
                field="tools",
            )
        example = cls(
            messages=tuple(
                dict(message) if isinstance(message, Mapping) else message for message in messages
            ),
            tools=tuple(_tool_entry(tool) for tool in tools),
            source=source if line is None else f"{source}:{line}",
            metadata=dict(metadata or {}),
        )
        example.check(source=source, line=line)
        return example

    def to_openai(self) -> dict[str, Any]:
        """The example in OpenAI's chat fine-tuning form (what ``TraceStore.export_sft`` writes)."""
        record: dict[str, Any] = {"messages": [dict(message) for message in self.messages]}
        if self.tools:
            record["tools"] = [dict(tool) for tool in self.tools]
        return record

    @property
    def tool_names(self) -> frozenset[str]:
        """The names of the tools the example offers."""
        return frozenset(str((tool.get("function") or {}).get("name")) for tool in self.tools)

    @property
    def has_tool_calls(self) -> bool:
        """Whether an assistant message of the example calls a tool."""
        return any(m.get("role") == "assistant" and m.get("tool_calls") for m in self.messages)

    def key(self) -> str:
        """A digest of what is trained on (messages and tools, not source or metadata): equal
        examples from two sources deduplicate."""
        canonical = json.dumps(self.to_openai(), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()

    def check(self, *, source: str = "", line: int | None = None) -> None:
        """Refuse an example a trainer could not use, naming the field: no messages, a role
        outside OpenAI's, no assistant message to learn, a tool call without a name or with
        arguments that are not a JSON object, a call to a tool that was not offered."""
        where: dict[str, Any] = {"source": source or self.source, "line": line}
        if not self.messages:
            raise FinetuneDataError("the chat has no messages", field="messages", **where)
        offered = self.tool_names
        assistants = 0
        for index, message in enumerate(self.messages):
            path = f"messages.{index}"
            if not isinstance(message, Mapping):
                raise FinetuneDataError(
                    f"a message must be a JSON object, got {_kind(message)}", field=path, **where
                )
            role = message.get("role")
            if role not in _ROLES:
                raise FinetuneDataError(
                    f"role {role!r} is not one of {list(_ROLES)}", field=f"{path}.role", **where
                )
            calls = message.get("tool_calls") or []
            content = message.get("content")
            if role == "assistant":
                assistants += 1
                if not calls and not isinstance(content, str):
                    raise FinetuneDataError(
                        "an assistant message needs text content or tool_calls",
                        field=f"{path}.content",
                        **where,
                    )
            elif content is None or not isinstance(content, str | list):
                raise FinetuneDataError(
                    f"a {role} message needs content (text), got {_kind(content)}",
                    field=f"{path}.content",
                    **where,
                )
            for number, call in enumerate(calls):
                _check_call(call, offered, f"{path}.tool_calls.{number}", where)
        if assistants == 0:
            raise FinetuneDataError(
                "the chat has no assistant message to learn from", field="messages", **where
            )


def _check_call(call: Any, offered: frozenset[str], path: str, where: Mapping[str, Any]) -> None:
    function = call.get("function") if isinstance(call, Mapping) else None
    if not isinstance(function, Mapping) or not function.get("name"):
        raise FinetuneDataError(
            "a tool call needs {'function': {'name': ..., 'arguments': ...}}",
            field=f"{path}.function",
            **where,
        )
    name = function["name"]
    if offered and name not in offered:
        raise FinetuneDataError(
            f"calls tool {name!r}, which the example does not offer (tools: {sorted(offered)})",
            field=f"{path}.function.name",
            **where,
        )
    arguments = function.get("arguments", "{}")
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments or "{}")
        except json.JSONDecodeError as exc:
            raise FinetuneDataError(
                f"arguments are not JSON: {exc}", field=f"{path}.function.arguments", **where
            ) from None
    if not isinstance(arguments, Mapping):
        raise FinetuneDataError(
            f"arguments must be a JSON object, got {_kind(arguments)}",
            field=f"{path}.function.arguments",
            **where,
        )


def _tool_entry(tool: Any) -> dict[str, Any]:
    """An OpenAI tools entry; a bare function definition (``{"name", "parameters"}``) is wrapped."""
    if isinstance(tool, Mapping) and "function" not in tool and "name" in tool:
        return {"type": "function", "function": dict(tool)}
    return dict(tool) if isinstance(tool, Mapping) else tool


def _kind(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__


@dataclass(frozen=True)
class DatasetSplit:
    """Training data split in two: ``train`` to learn from, ``eval`` to watch the loss on."""

    train: tuple[ChatExample, ...]
    eval: tuple[ChatExample, ...] = ()

    def __len__(self) -> int:
        return len(self.train) + len(self.eval)


def deduplicate(examples: Iterable[ChatExample]) -> list[ChatExample]:
    """The examples with repeats dropped (same messages and tools), first occurrence kept."""
    seen: set[str] = set()
    unique = []
    for example in examples:
        key = example.key()
        if key not in seen:
            seen.add(key)
            unique.append(example)
    return unique


def split_examples(
    examples: Sequence[ChatExample], *, eval_fraction: float = 0.1, seed: int = 0
) -> DatasetSplit:
    """Shuffle with ``seed`` and hold out ``eval_fraction`` of the examples (at least one when
    there are two or more and the fraction is above 0). The same inputs and seed give the same
    split."""
    if not 0 <= eval_fraction < 1:
        raise FinetuneDataError(f"eval_fraction must be in [0, 1), got {eval_fraction}")
    if not examples:
        raise FinetuneDataError("no training examples: the data is empty")
    order = list(examples)
    random.Random(seed).shuffle(order)
    held = round(len(order) * eval_fraction)
    if eval_fraction > 0 and held == 0 and len(order) >= 2:
        held = 1
    return DatasetSplit(train=tuple(order[held:]), eval=tuple(order[:held]))
