"""Joining the local cluster: the import order does not matter, and an address no GCS answers at
(nothing listens, or something listens and never answers) fails, or starts a fresh cluster,
within seconds instead of Ray retrying it for minutes.

Each case runs in a child process: one imports ``ray`` first, which must not happen in the test
session, and every one needs a Ray driver of its own.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from byzer_agents.llm_runtime import cluster
from byzer_agents.llm_runtime.cluster import local_cluster_env

REPO_ROOT = Path(__file__).resolve().parents[2]

# Stands in for Ray's scan of this machine's processes for a running GCS: other clusters on a
# shared machine would otherwise be joined instead of the stale address under test.
_NO_OTHER_CLUSTERS = textwrap.dedent(
    """
    import ray._private.services as services

    def find_gcs_addresses():
        return frozenset()

    find_gcs_addresses.cache_clear = lambda: None
    services.find_gcs_addresses = find_gcs_addresses
    """
)


def _child_env(**extra: str) -> dict[str, str]:
    """This environment without the settings cluster.py gives a driver, as a new program has."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in local_cluster_env() and key != "RAY_ADDRESS"
    }
    return {**env, **extra}


def _run(script: str, env: dict[str, str], timeout_s: float = 120) -> tuple[str, float]:
    started = time.monotonic()
    try:
        result = subprocess.run(
            [sys.executable, "-c", script],
            env=env,
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the child still waited after {timeout_s} s: {exc.stdout!r}")
    return result.stdout + result.stderr, time.monotonic() - started


def _dead_address() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"127.0.0.1:{port}"  # closed again: nothing listens there


@contextlib.contextmanager
def _silent_address() -> Iterator[str]:
    """A loopback port that accepts connections and never answers, as a hung GCS, or another
    program on a port a stopped cluster used: the kernel accepts for a socket nobody reads."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield f"127.0.0.1:{listener.getsockname()[1]}"


def _stale_cluster_file(tmp_path: Path, address: str | None = None) -> tuple[dict[str, str], str]:
    """A Ray temp dir (Ray's own ``RAY_TMPDIR``, so /tmp/ray is left alone) as a cluster that
    has stopped leaves it: ``ray_current_cluster`` naming its address, its session directory."""
    address = address or _dead_address()
    session = tmp_path / "ray" / "session_2026-01-01_00-00-00_000000_1"
    (session / "logs").mkdir(parents=True)
    (tmp_path / "ray" / "session_latest").symlink_to(session)
    (tmp_path / "ray" / "ray_current_cluster").write_text(address)
    return _child_env(RAY_TMPDIR=str(tmp_path)), address


def _connect_seconds(output: str) -> float:
    """The seconds the child's ``connect`` took, as it printed them (Python and Ray's imports
    left out)."""
    assert "connect took " in output, output
    return float(output.split("connect took ", 1)[1].split()[0])


_TIMED_CONNECT = textwrap.dedent(
    """
    import time
    from byzer_agents.llm_runtime import cluster

    def timed_connect(*args, **options):
        started = time.monotonic()
        try:
            return cluster.connect(*args, **options)
        finally:
            print("connect took", time.monotonic() - started, flush=True)
    """
)


def test_a_stale_cluster_file_fails_within_seconds_naming_the_file(tmp_path: Path) -> None:
    env, address = _stale_cluster_file(tmp_path)
    script = _NO_OTHER_CLUSTERS + textwrap.dedent(
        """
        from byzer_agents.llm_runtime import cluster
        try:
            cluster.connect(start=False)
        except ConnectionError as error:
            print(type(error).__name__, error)
        """
    )
    output, seconds = _run(script, env)
    assert f"ClusterConnectionError cannot join the Ray cluster at {address}" in output
    assert str(tmp_path / "ray" / "ray_current_cluster") in output
    assert seconds < 30  # Ray alone retried such an address for minutes


def test_a_stale_cluster_file_starts_a_fresh_cluster(tmp_path: Path) -> None:
    env, _ = _stale_cluster_file(tmp_path)
    script = _NO_OTHER_CLUSTERS + textwrap.dedent(
        """
        from byzer_agents.llm_runtime import cluster

        def start_local_cluster(**options):  # the real one would start a second head here
            raise SystemExit("starts a fresh cluster")

        cluster.start_local_cluster = start_local_cluster
        cluster.connect()
        """
    )
    output, seconds = _run(script, env)
    assert "starts a fresh cluster" in output
    assert seconds < 30


def test_a_stale_cluster_file_naming_a_port_that_never_answers_fails_within_seconds(
    tmp_path: Path,
) -> None:
    with _silent_address() as silent:
        env, address = _stale_cluster_file(tmp_path, silent)
        script = (
            _NO_OTHER_CLUSTERS
            + _TIMED_CONNECT
            + textwrap.dedent(
                """
            try:
                timed_connect(start=False)
            except ConnectionError as error:
                print(type(error).__name__, error)
            """
            )
        )
        output, _ = _run(script, env)
    assert f"ClusterConnectionError cannot join the Ray cluster at {address}" in output
    assert "no Ray GCS answered" in output
    assert str(tmp_path / "ray" / "ray_current_cluster") in output
    assert _connect_seconds(output) < 10  # Ray alone retried it for 14 minutes


def test_a_stale_cluster_file_naming_a_port_that_never_answers_starts_a_fresh_cluster(
    tmp_path: Path,
) -> None:
    with _silent_address() as silent:
        env, _ = _stale_cluster_file(tmp_path, silent)
        script = (
            _NO_OTHER_CLUSTERS
            + _TIMED_CONNECT
            + textwrap.dedent(
                """
            def start_local_cluster(**options):  # the real one would start a second head here
                raise SystemExit(f"starts a fresh cluster with {options}")

            cluster.start_local_cluster = start_local_cluster
            timed_connect()
            """
            )
        )
        output, _ = _run(script, env)
    assert "starts a fresh cluster with {}" in output
    assert _connect_seconds(output) < 10


def test_an_address_that_never_answers_fails_within_seconds_naming_it() -> None:
    with _silent_address() as address:
        script = _TIMED_CONNECT + textwrap.dedent(
            f"""
            def start_local_cluster(**options):  # an address the user named is not replaced
                raise SystemExit("started a cluster instead")

            cluster.start_local_cluster = start_local_cluster
            try:
                timed_connect({address!r})
            except ConnectionError as error:
                print(type(error).__name__, error)
            """
        )
        output, _ = _run(script, _child_env())
    assert f"ClusterConnectionError cannot join the Ray cluster at {address}" in output
    assert "started a cluster instead" not in output
    assert _connect_seconds(output) < 10


def test_ray_address_that_never_answers_fails_naming_it() -> None:
    with _silent_address() as address:
        script = _TIMED_CONNECT + textwrap.dedent(
            """
            try:
                timed_connect()
            except ConnectionError as error:
                print(type(error).__name__, error)
            """
        )
        output, _ = _run(script, _child_env(RAY_ADDRESS=address))
    assert f"ClusterConnectionError cannot join the Ray cluster at {address}" in output
    assert _connect_seconds(output) < 10


def test_a_new_head_takes_another_port_while_something_holds_the_default() -> None:
    with _silent_address() as held:
        held_port = int(held.rsplit(":", 1)[1])
        assert cluster._free_head_port(held_port) != held_port
    free_port = int(_dead_address().rsplit(":", 1)[1])
    assert cluster._free_head_port(free_port) == free_port


def test_an_address_nothing_answers_fails_within_seconds() -> None:
    address = _dead_address()
    script = textwrap.dedent(
        f"""
        from byzer_agents.llm_runtime import cluster
        try:
            cluster.connect({address!r})
        except ConnectionError as error:
            print(type(error).__name__, error)
        """
    )
    output, seconds = _run(script, _child_env())
    assert f"ClusterConnectionError cannot join the Ray cluster at {address}" in output
    assert "nothing answers there" in output
    assert seconds < 30


def test_importing_ray_first_still_joins_the_local_cluster(ray_cluster: object) -> None:
    script = textwrap.dedent(
        """
        import time
        import ray  # first: Ray reads its single-machine switch now, before byzer_agents sets it
        from byzer_agents import LLM

        started = time.monotonic()
        LLM().list_models()
        print("joined", ray.get_runtime_context().gcs_address, time.monotonic() - started)
        """
    )
    output, _ = _run(script, _child_env())
    assert "joined 127.0.0.1:" in output, output
    seconds = float(output.split("joined", 1)[1].split()[1])
    assert seconds < 30  # it retried the outward address for 45 s and more


def test_a_ray_without_the_switch_fails_at_once_saying_why() -> None:
    script = textwrap.dedent(
        """
        import ray
        from ray._private import ray_constants
        del ray_constants.ENABLE_RAY_CLUSTER  # as a Ray that keeps it elsewhere

        from byzer_agents.llm_runtime import cluster
        try:
            cluster.connect(start=False)
        except ConnectionError as error:
            print(type(error).__name__, error)
        """
    )
    output, seconds = _run(script, _child_env())
    assert "ClusterConnectionError" in output
    assert "import byzer_agents before ray" in output
    assert seconds < 30
