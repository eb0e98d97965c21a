"""Dynamic batching, engine-free: one worker thread that owns the model runs the jobs queued for
it, gathering those that arrive within a short wait into one batch.

A batchable job waits up to ``wait_s`` for company (up to ``max_batch_size`` jobs); the jobs
gathered then run in groups that share a ``batch_key`` (first-come order kept), the others alone.
Jobs that arrive while a batch runs wait for the next one: batching per request, not per step.
What a job is and how a group runs belong to the engine (``transformers_generation``); this module
only queues, groups and hands over.
"""

from __future__ import annotations

import queue
import threading
import time
import weakref
from collections.abc import Callable, Hashable, Iterator
from concurrent.futures import Future
from typing import Any, Generic, Protocol, TypeVar

from byzer_agents.exceptions import UsageError

__all__ = ["BatchJob", "DynamicBatcher", "batch_groups"]


class BatchJob(Protocol):
    """What the batcher needs of a job."""

    future: Future[Any]
    """Resolved by the runner with the job's result; refused jobs get an exception."""

    @property
    def batchable(self) -> bool:
        """Whether the job may share a batch (else it runs alone)."""
        ...

    @property
    def batch_key(self) -> Hashable:
        """Jobs may share a batch only with jobs of the same key."""
        ...

    def release(self) -> None:
        """Wake whoever follows the job as it runs (a stream's reader): it is over."""
        ...


_Job = TypeVar("_Job", bound=BatchJob)


class DynamicBatcher(Generic[_Job]):
    """One worker thread that runs queued jobs in batches (see the module doc).

    It holds its runner weakly, so an engine that is dropped without ``close()`` is still freed
    (its finalizer then closes the batcher). ``owner`` names the engine in errors."""

    def __init__(
        self,
        run: weakref.WeakMethod[Callable[[list[_Job]], None]],
        *,
        max_batch_size: int,
        wait_s: float,
        name: str,
        owner: str,
    ) -> None:
        self._run = run
        self._max_batch_size = max_batch_size
        self._wait_s = wait_s
        self._owner = owner
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._closed = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, job: _Job) -> None:
        """Queue ``job``; refused once the batcher is closed."""
        with self._lock:
            if self._closed:
                raise UsageError(f"this {self._owner} is closed; create a new one")
            self._queue.put(job)

    def close(self) -> None:
        """Stop the worker thread once the jobs already queued have run; later ones are
        refused."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(None)
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=60)

    def _loop(self) -> None:
        try:
            while True:
                first = self._queue.get()
                if first is None:
                    return
                jobs, closing = self._gather(first)
                for group in batch_groups(jobs):
                    run = self._run()
                    if run is None:
                        return
                    run(group)
                    del run
                if closing:
                    return
        finally:
            self._refuse_queued()

    def _refuse_queued(self) -> None:
        """The worker is ending: no job may be left waiting for it."""
        with self._lock:
            self._closed = True
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                return
            if job is not None and job.future.set_running_or_notify_cancel():
                job.future.set_exception(UsageError(f"the {self._owner} was closed"))
                job.release()

    def _gather(self, first: _Job) -> tuple[list[_Job], bool]:
        jobs = [first]
        if not first.batchable or self._max_batch_size == 1:
            return jobs, False
        deadline = time.monotonic() + self._wait_s
        while len(jobs) < self._max_batch_size:
            try:
                job = self._queue.get(timeout=max(deadline - time.monotonic(), 0.0))
            except queue.Empty:
                break
            if job is None:
                return jobs, True
            jobs.append(job)
        return jobs, False


def batch_groups(jobs: list[_Job]) -> Iterator[list[_Job]]:
    """Batchable jobs grouped by ``batch_key`` (first-come order kept); the rest alone."""
    groups: dict[Hashable, list[_Job]] = {}
    for job in jobs:
        if job.batchable:
            groups.setdefault(job.batch_key, []).append(job)
        else:
            yield [job]
    yield from groups.values()
