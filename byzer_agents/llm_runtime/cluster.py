"""The Ray cluster deployments live on: join a running one, or start the embedded local one.

The local cluster is a head process of its own (``ray start --head``), so deployments outlive the
Python process that made them, as Byzer-LLM's users had it. It is lean and private: no dashboard,
usage stats off, and every listener on 127.0.0.1. Ray resolves ``--node-ip-address 127.0.0.1`` to
the machine's outward address unless multi-node clustering is off, so
``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` is set for it and for every driver that joins: it is
Ray's own switch for a single-machine cluster, and with it the GCS, raylet, object manager and
workers bind loopback only (checked in tests/llm_runtime/test_deployment.py).

Ray reads that switch when it is imported. A program that imported ``ray`` before joining would
have Ray resolve 127.0.0.1 to the outward address and retry a GCS that is not there for minutes;
``connect`` sets the switch Ray read to what the environment says (Ray's own constant, read at
each call), so the import order does not matter, and fails at once, saying why, on a Ray that no
longer has it.

Before joining, ``connect`` knocks on the cluster's port (``_PROBE_TIMEOUT_S``) and asks the GCS
there for its cluster id (``_GCS_ANSWER_TIMEOUT_S``): Ray retries an address that does not answer
twenty times over, half a minute each (measured: 14 minutes), whether nothing listens there, as at
the address ``ray_current_cluster`` keeps after its cluster stopped, or something listens and never
answers (a GCS that hangs, or another program on a port the stopped cluster used). A stale local
address starts a fresh cluster (or, with ``start=False``, fails at once naming the file); an
explicit address that does not answer fails at once, naming it.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from byzer_agents.exceptions import ClusterConnectionError, UsageError

__all__ = [
    "NAMESPACE",
    "ClusterInfo",
    "connect",
    "connect_cluster",
    "local_cluster_env",
    "start_local_cluster",
    "status",
    "stop_local_cluster",
]

NAMESPACE = "byzer_agents"
DEFAULT_PORT = 6390
_OBJECT_STORE_BYTES = 512 * 1024 * 1024
_PROBE_TIMEOUT_S = 2.0
_GCS_ANSWER_TIMEOUT_S = 3.0
"""A live GCS answers ``GetClusterId`` in milliseconds, even with both cores loading a model."""
_SINGLE_MACHINE_SWITCH = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
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
    """The Ray cluster this process joined: its address, whether this call started it, its
    resources."""

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


def start_local_cluster(*, num_cpus: float | None = None, port: int | None = None) -> str:
    """Start the embedded head process (loopback only, no dashboard) and return its address: on
    ``port``, by default ``DEFAULT_PORT``, or a free port while something else holds that one."""
    port = _free_head_port(DEFAULT_PORT) if port is None else port
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
        raise UsageError(
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
    running and ``start``, start the embedded local cluster first. Idempotent.

    Raises:
        ClusterConnectionError: nothing answers at ``address``, or at the local address with
            ``start=False``; or this Ray cannot be made to reach the loopback cluster.
        ConnectionError: no cluster runs here, and ``start`` is False.
    """
    _prepare_environment()
    import ray

    if ray.is_initialized():
        return ClusterInfo(_current_address(ray), False, _resources(ray))
    _match_single_machine_switch()
    target = address or os.environ.get("RAY_ADDRESS") or "auto"
    started = False
    try:
        _check_answers(target)
        _init(ray, target)
    except ConnectionError:
        if target != "auto" or not start:
            raise
        target = start_local_cluster()
        started = True
        _init(ray, target)
    return ClusterInfo(_current_address(ray), started, _resources(ray))


def connect_cluster(address: str | None = None) -> ClusterInfo:
    """Byzer-LLM's ``byzerllm.connect_cluster()``: ``connect``, under the name its users call."""
    return connect(address)


def _init(ray: Any, target: str) -> None:
    ray.init(
        address=target, namespace=NAMESPACE, logging_level=logging.WARNING, log_to_driver=False
    )


def _match_single_machine_switch() -> None:
    """Make Ray's single-machine switch what the environment says, when Ray was imported before
    the environment was set (it reads the variable at import only). Fails at once, saying why,
    where this Ray keeps the switch elsewhere."""
    wanted = os.environ.get(_SINGLE_MACHINE_SWITCH, "").lower() in ("1", "true")
    try:
        from ray._private import ray_constants
    except ImportError:
        ray_constants = None  # type: ignore[assignment]
    current = getattr(ray_constants, "ENABLE_RAY_CLUSTER", None)
    if not isinstance(current, bool):
        if wanted:
            return  # multi-node clustering asked for, and Ray's default: nothing to align
        raise ClusterConnectionError(
            "127.0.0.1",
            f"ray was imported before byzer_agents set {_SINGLE_MACHINE_SWITCH}=0, and this Ray "
            "has no switch to set afterwards, so it would look for the loopback cluster at the "
            "machine's outward address; import byzer_agents before ray, or set "
            f"{_SINGLE_MACHINE_SWITCH}=0 in the environment",
        )
    if current != wanted:
        ray_constants.ENABLE_RAY_CLUSTER = wanted


def _check_answers(target: str) -> None:
    """Raise ConnectionError within seconds when no GCS answers where Ray would join, instead of
    Ray retrying for minutes: no cluster found, or a stale or wrong address."""
    if target == "local" or target.startswith("ray://"):
        return  # not a GCS address: Ray starts its own, or speaks the client protocol
    try:
        from ray._private.services import canonicalize_bootstrap_address
    except ImportError:  # another Ray: join as it does, unchecked
        return
    found = canonicalize_bootstrap_address(target)  # ConnectionError when none is found
    if found is None:
        return
    reason = _unanswered(found)
    if reason is None:
        return
    address_file = _address_file()
    if target == "auto" and address_file is not None and _read(address_file) == found:
        reason += (
            f"; {address_file} keeps it from a cluster that has stopped "
            "(`byzer-agents start` starts a new one)"
        )
    raise ClusterConnectionError(found, reason)


def _unanswered(address: str) -> str | None:
    """Why the GCS at ``address`` does not answer, or None when it does."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=_PROBE_TIMEOUT_S):
            pass
    except (OSError, ValueError) as exc:
        return f"nothing answers there ({exc})"
    return _gcs_silent(address)


def _gcs_silent(address: str) -> str | None:
    """Why what listens at ``address`` is not a GCS that answers, or None when it answers.

    A listening port alone is not enough: the kernel accepts connections for a process that
    never reads them, and Ray then waits minutes for it. Any reply counts as an answer (a GCS
    that wants a token still answers), except "unimplemented": a gRPC server, but no GCS."""
    try:
        import grpc
        from ray._private.grpc_utils import init_grpc_channel
        from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc
    except ImportError:  # another Ray: the port answered, join as it does
        return None
    channel = init_grpc_channel(address, options=[("grpc.enable_http_proxy", 0)])
    try:
        gcs_service_pb2_grpc.NodeInfoGcsServiceStub(channel).GetClusterId(
            gcs_service_pb2.GetClusterIdRequest(),  # type: ignore[attr-defined]  # protobuf
            timeout=_GCS_ANSWER_TIMEOUT_S,
        )
    except grpc.RpcError as error:
        code = error.code()
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return (
                f"something listens there but no Ray GCS answered within "
                f"{_GCS_ANSWER_TIMEOUT_S:g} s"
            )
        if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNIMPLEMENTED):
            return f"what listens there is not a Ray GCS that answers ({code.name})"
    finally:
        channel.close()
    return None


def _free_head_port(preferred: int) -> int:
    """``preferred`` for a new local head, or a free port when something holds that one (a
    stopped cluster's hung GCS, another program): ``ray start`` would fail on it."""
    try:
        with socket.create_connection(("127.0.0.1", preferred), timeout=_PROBE_TIMEOUT_S):
            pass
    except OSError:
        return preferred
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _address_file() -> str | None:
    """The file where ``ray start`` leaves the address of the cluster it started."""
    try:
        from ray._common.utils import get_ray_address_file
    except ImportError:
        return None
    return str(get_ray_address_file(None))


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


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
