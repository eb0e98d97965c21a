"""Fixtures for the agent tests: a scripted backend behind an LLM, a trace store."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from byzer_agents import LLM
from byzer_agents.core.protocol import Capabilities
from byzer_agents.llm_runtime.backends.scripted import Reply, ScriptedBackend
from byzer_agents.traces import TraceStore

NATIVE = Capabilities(native_tools=True, json_schema_output=True, streaming=True)
"""An endpoint with native tools and response_format (OpenAI-like)."""
PROMPT_ONLY = Capabilities(native_tools=False, json_schema_output=False, streaming=True)
"""A text-only endpoint: tools and the answer's schema go into the prompt."""


@pytest.fixture
def trace_store(tmp_path: Path) -> Iterator[TraceStore]:
    store = TraceStore(tmp_path / "traces.db")
    yield store
    store.close()


@pytest.fixture
def scripted(trace_store: TraceStore) -> Callable[..., tuple[LLM, ScriptedBackend]]:
    """``scripted(*replies, capabilities=NATIVE)`` -> (llm, backend)."""

    def make(*replies: Reply, capabilities: Capabilities = NATIVE, **options: Any):
        backend = ScriptedBackend(replies, model="scripted", capabilities=capabilities)
        llm = LLM.from_backend(backend, model="scripted", trace_store=trace_store, **options)
        return llm, backend

    return make


def call(name: str, arguments: dict[str, Any] | str, call_id: str | None = None) -> dict[str, Any]:
    """One scripted tool call."""
    return {"name": name, "arguments": arguments, "id": call_id}


def calls(*made: dict[str, Any], content: str | None = None) -> dict[str, Any]:
    """A scripted reply making ``made`` tool calls."""
    return {"content": content, "tool_calls": list(made)}
