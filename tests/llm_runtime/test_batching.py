"""The engine-free dynamic batcher: jobs gathered within the wait run together, grouped by their
batch key; jobs that may not share a batch run alone; a closed batcher refuses jobs."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Hashable
from concurrent.futures import Future
from dataclasses import dataclass, field

import pytest

from byzer_agents.exceptions import UsageError
from byzer_agents.llm_runtime.backends.batching import DynamicBatcher, batch_groups


@dataclass
class FakeJob:
    name: str
    key: str = "greedy"
    alone: bool = False
    future: Future[str] = field(default_factory=Future)
    released: bool = False

    @property
    def batchable(self) -> bool:
        return not self.alone

    @property
    def batch_key(self) -> Hashable:
        return self.key

    def release(self) -> None:
        self.released = True


class Runner:
    """Records each group it is handed, and answers every job with its name."""

    def __init__(self) -> None:
        self.groups: list[list[str]] = []
        self.gate = threading.Event()
        self.gate.set()

    def run(self, jobs: list[FakeJob]) -> None:
        self.gate.wait(timeout=10)
        self.groups.append([job.name for job in jobs])
        for job in jobs:
            if job.future.set_running_or_notify_cancel():
                job.future.set_result(job.name)
            job.release()


def test_groups_keep_first_come_order_and_put_unbatchable_jobs_alone() -> None:
    jobs = [
        FakeJob("a"),
        FakeJob("b", key="sampled"),
        FakeJob("c", alone=True),
        FakeJob("d"),
    ]
    assert [[job.name for job in group] for group in batch_groups(jobs)] == [
        ["c"],
        ["a", "d"],
        ["b"],
    ]


def test_jobs_queued_together_run_as_one_batch() -> None:
    runner = Runner()
    batcher = DynamicBatcher[FakeJob](
        weakref.WeakMethod(runner.run), max_batch_size=8, wait_s=0.5, name="t", owner="Engine"
    )
    try:
        jobs = [FakeJob(name) for name in "abc"]
        for job in jobs:
            batcher.submit(job)
        assert [job.future.result(timeout=10) for job in jobs] == ["a", "b", "c"]
        assert runner.groups == [["a", "b", "c"]]
    finally:
        batcher.close()


def test_a_closed_batcher_refuses_jobs_naming_its_engine() -> None:
    runner = Runner()
    batcher = DynamicBatcher[FakeJob](
        weakref.WeakMethod(runner.run), max_batch_size=1, wait_s=0, name="t", owner="Engine"
    )
    batcher.close()
    with pytest.raises(UsageError, match="this Engine is closed"):
        batcher.submit(FakeJob("late"))


def test_jobs_queued_before_close_still_run() -> None:
    runner = Runner()
    runner.gate.clear()  # the first job holds the worker while the other queues
    batcher = DynamicBatcher[FakeJob](
        weakref.WeakMethod(runner.run), max_batch_size=1, wait_s=0, name="t", owner="Engine"
    )
    first, queued = FakeJob("first"), FakeJob("queued")
    batcher.submit(first)
    batcher.submit(queued)
    closer = threading.Thread(target=batcher.close)
    closer.start()
    runner.gate.set()
    closer.join(timeout=10)
    assert [first.future.result(timeout=10), queued.future.result(timeout=10)] == [
        "first",
        "queued",
    ]
    assert runner.groups == [["first"], ["queued"]]
