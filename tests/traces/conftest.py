"""Shared fixtures for the trace tests: a store on a fresh temporary file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from byzer_agents.traces import TraceStore


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "traces" / "traces.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[TraceStore]:
    with TraceStore(db_path) as opened:
        yield opened
