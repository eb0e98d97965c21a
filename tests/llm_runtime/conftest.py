"""Fixtures for the local-model tests: one checkpoint cache, one conversion of the shipped
SmolLM2 GGUF file and one loaded chat model per session."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from byzer_agents.llm_runtime.models import DEFAULT_CHAT_MODEL, default_chat_model

if TYPE_CHECKING:  # the backend imports torch: only the tests that use it pay for it
    from byzer_agents.llm_runtime.backends.transformers_backend import TransformersBackend


@dataclass(frozen=True)
class Conversion:
    """The first ``resolve_checkpoint`` of the shipped GGUF file in this session."""

    cache_root: Path
    checkpoint: Path
    seconds: float


@pytest.fixture(scope="session")
def checkpoint_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty cache root for the session, so its first conversion is seen. It is
    ``$BYZER_AGENTS_CACHE`` only while a test resolves checkpoints: other tests, and Ray workers
    started later, keep the default cache."""
    return tmp_path_factory.mktemp("byzer_agents_cache")


@pytest.fixture
def use_checkpoint_cache(checkpoint_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BYZER_AGENTS_CACHE", str(checkpoint_cache))
    return checkpoint_cache


@pytest.fixture(scope="session")
def converted_chat_model(checkpoint_cache: Path) -> Conversion:
    from byzer_agents.llm_runtime.checkpoints import resolve_checkpoint

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BYZER_AGENTS_CACHE", str(checkpoint_cache))
        started = time.perf_counter()
        checkpoint = resolve_checkpoint(default_chat_model())
        seconds = time.perf_counter() - started
    return Conversion(checkpoint_cache, checkpoint, seconds)


@pytest.fixture(scope="session")
def chat_backend(converted_chat_model: Conversion) -> Iterator[TransformersBackend]:
    """SmolLM2-135M-Instruct, loaded once, from the session's converted checkpoint. A 50 ms
    batching window, so requests sent together in a test are batched together even on a busy
    machine."""
    from byzer_agents.llm_runtime.backends.transformers_backend import TransformersBackend

    backend = TransformersBackend(
        converted_chat_model.checkpoint, model_name=DEFAULT_CHAT_MODEL, batch_wait_ms=50
    )
    yield backend
    backend.close()
