"""Fixtures shared across the suite: one local Ray cluster per session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[object]:
    """Join the local Ray cluster, starting it when none runs; stop it again only if this session
    started it (a developer's own cluster is left alone)."""
    from byzer_agents.llm_runtime import cluster

    info = cluster.connect()
    yield info
    if info.started_here:
        import ray

        ray.shutdown()
        cluster.stop_local_cluster()
