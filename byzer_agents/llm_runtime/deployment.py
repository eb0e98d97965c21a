"""Deployments on Ray: named, detached, restartable worker actors, found again by name from any
process, and ``RayDeployment``, the client side that answers the one protocol over them.

Why actors and not Ray Serve: on the 2-core machines this project targets, Serve's controller and
HTTP proxy cost a core's worth of processes and memory before any model loads, and Serve waits
silently when replicas ask for more CPU than is free. A detached actor per worker gives what a
deployment needs — replicas (``num_workers``), CPUs/GPUs each, a per-replica limit of requests in
flight (``max_concurrency``), restart on death (``max_restarts``), retry of the request that was in
flight (``max_task_retries``), lookup by name — and nothing else. The HTTP side is our own server.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from byzer_agents.core.protocol import Capabilities
from byzer_agents.exceptions import ByzerAgentsError, ConfigurationError, UsageError
from byzer_agents.llm_runtime.cluster import NAMESPACE, connect
from byzer_agents.llm_runtime.deploy_config import DeploymentSpec
from byzer_agents.types import ChatCompletion, ChatCompletionChunk, ChatRequest

__all__ = ["RayDeployment", "deploy", "deployment_names", "find", "undeploy"]

_SEPARATOR = "#"
STOP_TIMEOUT_S = 60.0
"""How long a stream closed before its end waits for its worker to stop generating."""

logger = logging.getLogger(__name__)


def _worker_names() -> list[str]:
    import ray

    return sorted(ray.util.list_named_actors(all_namespaces=False))


def deployment_names() -> list[str]:
    """Every deployment on the cluster, by name."""
    connect()
    return sorted({name.split(_SEPARATOR)[0] for name in _worker_names() if _SEPARATOR in name})


def find(udf_name: str) -> RayDeployment | None:
    """The deployment called ``udf_name``, made by this or any other process; None if none."""
    connect()
    import ray

    names = [name for name in _worker_names() if name.split(_SEPARATOR)[0] == udf_name]
    if not names:
        return None
    workers = [ray.get_actor(name, namespace=NAMESPACE) for name in names]
    return RayDeployment(udf_name, workers)


def deploy(
    spec: DeploymentSpec, *, timeout_s: float = 900.0, show_progress: bool = True
) -> RayDeployment:
    """Start ``spec.num_workers`` workers and wait until each has loaded its model. On failure
    every worker started is removed again and the worker's own error is raised."""
    spec.check_paths()
    connect()
    import ray

    from byzer_agents.llm_runtime.worker import ModelWorker

    if find(spec.udf_name) is not None:
        raise ConfigurationError(
            f"a deployment named {spec.udf_name!r} already exists; undeploy it first "
            "or choose another udf_name"
        )
    _check_resources(spec)
    actor_class = ray.remote(ModelWorker)
    workers: list[Any] = [
        actor_class.options(
            name=f"{spec.udf_name}{_SEPARATOR}{index}",
            namespace=NAMESPACE,
            lifetime="detached",
            max_restarts=-1,
            max_task_retries=2,
            max_concurrency=spec.infer_params.max_concurrency,
            num_cpus=spec.cpus_per_worker,
            num_gpus=spec.gpus_per_worker,
        ).remote(spec.worker_json())
        for index in range(spec.num_workers)
    ]
    try:
        _wait_ready(spec.udf_name, workers, timeout_s, show_progress)
    except BaseException:
        for worker in workers:
            ray.kill(worker, no_restart=True)
        raise
    return RayDeployment(spec.udf_name, workers)


def _wait_ready(name: str, workers: list[Any], timeout_s: float, show_progress: bool) -> None:
    import ray

    pending = {worker.ping.remote(): index for index, worker in enumerate(workers)}
    deadline = time.monotonic() + timeout_s
    progress = _Progress(f"loading {name}", len(workers), enabled=show_progress)
    with progress:
        while pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(
                    f"{len(pending)} worker(s) of {name!r} did not load within {timeout_s:.0f} s; "
                    "is there a free CPU/GPU for each (see `byzer-agents status`)?"
                )
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=min(remaining, 1.0))
            for ref in ready:
                pending.pop(ref)
                try:
                    ray.get(ref)
                except Exception as exc:
                    raise UsageError(f"deploying {name!r} failed: {_cause(exc)}") from None
                progress.advance()


def _check_resources(spec: DeploymentSpec) -> None:
    """Refuse at once what Ray would otherwise queue forever: more CPUs/GPUs than are free."""
    import ray

    free = ray.available_resources()
    for resource, each in (("CPU", spec.cpus_per_worker), ("GPU", spec.gpus_per_worker)):
        needed = each * spec.num_workers
        if needed > free.get(resource, 0.0) + 1e-9:
            raise UsageError(
                f"deploying {spec.udf_name!r} needs {needed:g} {resource} "
                f"({spec.num_workers} worker(s) x {each:g}), but only "
                f"{free.get(resource, 0.0):g} are free; deployments now: {deployment_names()}. "
                "Undeploy one, or ask for less with setup_cpus_per_worker / setup_gpus_per_worker."
            )


def undeploy(udf_name: str) -> bool:
    """Stop every worker of ``udf_name``; True when there was one."""
    deployment = find(udf_name)
    if deployment is None:
        return False
    import ray

    for worker in deployment.workers:
        ray.kill(worker, no_restart=True)
    return True


@contextlib.contextmanager
def _as_the_worker_raised() -> Iterator[None]:
    """A worker's own typed errors (ModelCallError and its kin) reach the caller as the worker
    raised them, not inside Ray's RayTaskError with the worker's traceback in their text."""
    try:
        yield
    except Exception as error:
        cause = getattr(error, "cause", None)
        if isinstance(cause, ByzerAgentsError):
            raise cause from None
        raise


def _cancel(chunks: Any) -> None:
    """Cancel a worker's stream that its reader left: the worker stops generating (see
    ``ModelWorker.stream``)."""
    import ray

    try:
        ray.cancel(chunks)
    except Exception as error:  # the worker is gone: nothing is left to stop
        logger.debug("cancelling a stream failed: %s", error)


async def _completed(chunks: Any, timeout_s: float) -> None:
    """Wait, ``timeout_s`` at most, until the task behind ``chunks`` has ended, however."""
    ended = asyncio.wrap_future(chunks.completed().future())
    ended.add_done_callback(lambda done: done.cancelled() or done.exception())
    await asyncio.wait([ended], timeout=timeout_s)


def _cause(exc: BaseException) -> str:
    cause = getattr(exc, "cause", None) or exc
    return f"{type(cause).__name__}: {cause}".strip()[:2000]


class RayDeployment:
    """A deployment seen from a driver: requests go round-robin to its workers."""

    def __init__(self, name: str, workers: Sequence[Any]) -> None:
        self.name = name
        self.workers = list(workers)
        self._turn = itertools.count()
        self._lock = threading.Lock()
        self._description: dict[str, Any] | None = None

    def _pick(self) -> Any:
        with self._lock:
            return self.workers[next(self._turn) % len(self.workers)]

    def _describe(self) -> dict[str, Any]:
        if self._description is None:
            import ray

            self._description = ray.get(self.workers[0].describe.remote())
        return self._description

    @property
    def capabilities(self) -> Capabilities:
        """The capabilities of the deployment's backend, as its worker reports them."""
        return Capabilities(**self._describe()["capabilities"])

    @property
    def spec(self) -> DeploymentSpec:
        """The spec the deployment was made from, as its worker holds it."""
        return DeploymentSpec.model_validate(self._describe()["spec"])

    def chat(self, request: ChatRequest) -> ChatCompletion:
        """One answer from the deployment's next worker (in turn); a worker's own errors are
        raised as it raised them."""
        import ray

        with _as_the_worker_raised():
            answer = ray.get(self._pick().chat.remote(_on_the_wire(request)))
        return ChatCompletion.model_validate(answer)

    async def achat(self, request: ChatRequest) -> ChatCompletion:
        """``chat`` without blocking the event loop."""
        with _as_the_worker_raised():
            answer = await self._pick().chat.remote(_on_the_wire(request))
        return ChatCompletion.model_validate(answer)

    def stream(self, request: ChatRequest) -> Iterator[ChatCompletionChunk]:
        """The worker's chunks. Closed before its end, the worker's generation is cancelled and
        ``close()`` returns once the worker has stopped."""
        import ray

        chunks = self._pick().stream.remote(_on_the_wire(request))
        ended = False
        try:
            with _as_the_worker_raised():
                for ref in chunks:
                    yield ChatCompletionChunk.model_validate(ray.get(ref))
            ended = True
        finally:
            if not ended:
                _cancel(chunks)
                ray.wait([chunks.completed()], timeout=STOP_TIMEOUT_S)

    async def astream(self, request: ChatRequest) -> AsyncIterator[ChatCompletionChunk]:
        """As ``stream``; closed or cancelled before its end, it cancels the worker's generation
        and waits until the worker has stopped."""
        chunks = self._pick().stream.remote(_on_the_wire(request))
        ended = False
        try:
            with _as_the_worker_raised():
                async for ref in chunks:
                    yield ChatCompletionChunk.model_validate(await ref)
            ended = True
        finally:
            if not ended:
                _cancel(chunks)
                await _completed(chunks, STOP_TIMEOUT_S)

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """A worker's embeddings of ``texts``, in order."""
        import ray

        with _as_the_worker_raised():
            vectors: list[list[float]] = ray.get(self._pick().embed.remote(list(texts)))
        return vectors

    def meta(self) -> dict[str, Any]:
        """The backend's meta, with the deployment's workers and resources."""
        import ray

        meta = dict(ray.get(self.workers[0].meta.remote()))
        spec = self.spec
        meta.update(
            udf_name=self.name,
            num_workers=len(self.workers),
            pretrained_model_type=spec.model_type.name,
            infer_backend=spec.infer_backend.value,
            cpus_per_worker=spec.cpus_per_worker,
            gpus_per_worker=spec.gpus_per_worker,
            max_concurrency=spec.infer_params.max_concurrency,
            constrained_decoding=self.capabilities.constrained_decoding,
        )
        return meta

    def __repr__(self) -> str:
        return f"RayDeployment(name={self.name!r}, workers={len(self.workers)})"


class _Progress:
    """A rich progress line while workers load (models take seconds to tens of seconds)."""

    def __init__(self, description: str, total: int, *, enabled: bool) -> None:
        self._enabled = enabled
        self._description = description
        self._total = total
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> _Progress:
        if self._enabled:
            from rich.progress import Progress, SpinnerColumn, TimeElapsedColumn

            self._progress = Progress(
                SpinnerColumn(), *Progress.get_default_columns()[:-1], TimeElapsedColumn(),
                transient=True,
            )  # fmt: skip
            self._progress.start()
            self._task = self._progress.add_task(self._description, total=self._total)
        return self

    def advance(self) -> None:
        if self._progress is not None:
            self._progress.advance(self._task)

    def __exit__(self, *_: object) -> None:
        if self._progress is not None:
            self._progress.stop()


def _on_the_wire(request: ChatRequest) -> dict[str, Any]:
    """``request`` as the worker receives it. Every optional field defaults to None, so leaving
    the None ones out loses nothing, and a worker deployed by an earlier version (detached, it
    outlives upgrades) still reads any request that uses none of the fields added since."""
    return request.model_dump(mode="json", exclude_none=True)
