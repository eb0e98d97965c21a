"""The Ray cluster deployments live on: join a running one, or start the embedded local one.

The local cluster is a head process of its own (``ray start --head``), so deployments outlive the
Python process that made them, as Byzer-LLM's users had it. It is lean and private: no dashboard,
usage stats off, and every listener on 127.0.0.1. Ray resolves ``--node-ip-address 127.0.0.1`` to
the machine's outward address unless multi-node clustering is off, so
``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` is set for it and for every driver that joins: it is
Ray's own switch for a single-machine cluster, and with it the GCS, raylet, object manager and
workers bind loopback only (checked with ``ss -ltn`` in tests/llm_runtime/test_cluster.py).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "NAMESPACE",
    "ClusterInfo",
    "connect",
    "local_cluster_env",
    "start_local_cluster",
    "status",
    "stop_local_cluster",
]

NAMESPACE = "byzer_agents"
DEFAULT_PORT = 6390
_OBJECT_STORE_BYTES = 512 * 1024 * 1024
_LOCAL_ENV = {
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_DEDUP_LOGS": "1",
    # Ray starts workers at nice 15; a model replica is the work here, not background work, and
    # at nice 15 it lost half its decode speed to any other process on a 2-core machine.
    "RAY_worker_niceness": "0",
}


@dataclass(frozen=True)
class ClusterInfo:
    address: str
    started_here: bool
    """True when this call started the local cluster (it keeps running after this process)."""
    resources: dict[str, float]


def local_cluster_env() -> dict[str, str]:
    """The environment for the embedded local cluster and the drivers that join it."""
    return dict(_LOCAL_ENV)


def _prepare_environment() -> None:
    # Must happen before ray is imported: ray reads these at import time.
    for key, value in _LOCAL_ENV.items():
        os.environ.setdefault(key, value)


def _ray_executable() -> str:
    beside_python = Path(sys.executable).with_name("ray")
    return str(beside_python) if beside_python.exists() else (shutil.which("ray") or "ray")


def start_local_cluster(*, num_cpus: float | None = None, port: int = DEFAULT_PORT) -> str:
    """Start the embedded head process (loopback only, no dashboard) and return its address."""
    env = {**os.environ, **_LOCAL_ENV}
    command = [
        _ray_executable(),
        "start",
        "--head",
        "--node-ip-address=127.0.0.1",
        f"--port={port}",
        "--include-dashboard=false",
        "--disable-usage-stats",
        # The object store is shared memory taken up front; models are not passed through it.
        f"--object-store-memory={_OBJECT_STORE_BYTES}",
    ]
    if num_cpus is not None:
        command.append(f"--num-cpus={num_cpus:g}")
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    if result.returncode != 0:
        raise RuntimeError(
            f"could not start the local Ray cluster ({' '.join(command)}): "
            f"{(result.stderr or result.stdout).strip()[-2000:]}"
        )
    return f"127.0.0.1:{port}"


def stop_local_cluster() -> bool:
    """Stop the Ray processes of this machine; True when something was running."""
    env = {**os.environ, **_LOCAL_ENV}
    result = subprocess.run(
        [_ray_executable(), "stop", "--force"], env=env, capture_output=True, text=True, timeout=120
    )
    return "Stopped" in result.stdout + result.stderr and "Did not find" not in result.stdout


def connect(address: str | None = None, *, start: bool = True) -> ClusterInfo:
    """Join the cluster at ``address`` (or ``RAY_ADDRESS``, or the one running here); with none
    running and ``start``, start the embedded local cluster first. Idempotent."""
    _prepare_environment()
    import ray

    if ray.is_initialized():
        return ClusterInfo(_current_address(ray), False, _resources(ray))
    target = address or os.environ.get("RAY_ADDRESS") or "auto"
    started = False
    try:
        ray.init(
            address=target, namespace=NAMESPACE, logging_level=logging.WARNING, log_to_driver=False
        )
    except ConnectionError:
        if target != "auto" or not start:
            raise
        target = start_local_cluster()
        started = True
        ray.init(
            address=target, namespace=NAMESPACE, logging_level=logging.WARNING, log_to_driver=False
        )
    return ClusterInfo(_current_address(ray), started, _resources(ray))


def status() -> dict[str, Any] | None:
    """The running cluster's address and resources, or None when none runs here."""
    try:
        info = connect(start=False)
    except ConnectionError:
        return None
    return {"address": info.address, "resources": info.resources}


def _current_address(ray: Any) -> str:
    context = ray.get_runtime_context()
    return str(getattr(context, "gcs_address", "") or "")


def _resources(ray: Any) -> dict[str, float]:
    return {key: float(value) for key, value in ray.cluster_resources().items()}
