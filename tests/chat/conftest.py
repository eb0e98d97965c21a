"""Fixtures for the loop's logic tests: a scripted backend behind an LLM, a trace store."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from byzer_agents import ByzerLLM
from byzer_agents.core.protocol import Capabilities
from byzer_agents.llm_runtime.backends.scripted import Reply, ScriptedBackend
from byzer_agents.traces import TraceStore

NATIVE = Capabilities(native_tools=True, json_schema_output=True, embeddings=True)


@pytest.fixture
def trace_store(tmp_path: Path) -> TraceStore:
    store = TraceStore(tmp_path / "traces.db")
    yield store
    store.close()


@pytest.fixture
def scripted(trace_store: TraceStore) -> Callable[..., tuple[ByzerLLM, ScriptedBackend]]:
    """``scripted(*replies, capabilities=None)`` -> (llm, backend); a ByzerLLM, so the seed's
    methods (``chat``, ``emb``, ``setup_*``) are there too."""

    def make(*replies: Reply, capabilities: Capabilities | None = None, **options: Any):
        backend = ScriptedBackend(replies, model="scripted", capabilities=capabilities)
        llm = ByzerLLM.from_backend(backend, model="scripted", trace_store=trace_store, **options)
        return llm, backend

    return make
