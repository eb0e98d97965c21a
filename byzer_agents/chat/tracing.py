"""``RunTracer``: numbers the steps of one chat call and writes each to the TraceStore (or
nowhere, when tracing is off), so the loop records without knowing whether anyone listens.

A model call that took more than one request (retries, fallbacks: ``core/call_attempts.py``) is
recorded as one event per request, all in the call's step: each failed request as an ``error``
event naming the deployment it went to, then the answer as the loop judged it, under the
deployment that gave it.

Tracing never costs the caller the answer: the store keeps what a locked or damaged database
will not take (``traces/store.py``), and whatever a record call still raises is logged here and
counted in the store's ``dropped_records``, never raised into the loop."""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from byzer_agents.core.call_attempts import take_call_attempts
from byzer_agents.exceptions import CallAttempt
from byzer_agents.types import ChatCompletion, ChatRequest

if TYPE_CHECKING:
    from byzer_agents.traces import EventStatus, RunStatus, TraceStore

__all__ = ["RunTracer"]

logger = logging.getLogger("byzer_agents.traces")
_T = TypeVar("_T")


class RunTracer:
    """Records one chat call's run in a trace store: its model calls, tool calls and end. A
    store that fails never fails the call: the record is dropped, logged and counted."""

    def __init__(
        self,
        store: TraceStore | None,
        *,
        kind: str,
        model: str,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        """``metadata``: stored with the run (an agent's run names the run it was delegated by)."""
        self._store = store
        self.model = model
        self.run_id: str | None = None
        if store is not None:
            self.run_id = self._guarded(
                "a new run", lambda: store.new_run(kind, model=model, metadata=metadata)
            )
        self._steps = itertools.count(1)
        self._lock = threading.Lock()

    def _next_step(self) -> int:
        with self._lock:
            return next(self._steps)

    def _target(self, what: str) -> tuple[TraceStore, str] | None:
        """The store and run that records go to; None without a store, or when the run could
        not be recorded (then its records are lost, and counted as dropped)."""
        if self._store is None:
            return None
        if self.run_id is None:
            self._store.count_dropped(f"{what}: its run could not be recorded")
            return None
        return self._store, self.run_id

    def _guarded(self, what: str, record: Callable[[], _T]) -> _T | None:
        """``record()``, or None when it raised: logged and counted as dropped, never raised."""
        try:
            return record()
        except Exception as exc:
            reason = f"recording {what} raised {type(exc).__name__}: {exc}"
            logger.warning("%s; the call goes on without it", reason, exc_info=True)
            if self._store is not None:
                self._store.count_dropped(reason)
            return None

    def model_call(
        self,
        request: ChatRequest,
        completion: ChatCompletion | None,
        *,
        latency_s: float,
        attempt: int,
        status: EventStatus,
        error: str | None = None,
        call_attempts: Sequence[CallAttempt] = (),
    ) -> str | None:
        """Record one model call; returns its event id, the parent of the tool calls it made.

        ``call_attempts``: the requests behind a failed call (``ModelCallError.call_attempts``);
        those behind an answer are taken off ``completion`` here."""
        requests = list(call_attempts) or take_call_attempts(completion)
        step = self._next_step()
        target = self._target("a model call")
        if target is None:
            return None
        store, run_id = target

        def record() -> str | None:
            dumped_request = request.model_dump(exclude_none=True)
            failed = requests if completion is None else requests[:-1]
            event_id = None
            for sent in failed:
                event_id = store.record_model_call(
                    run_id=run_id,
                    step=step,
                    request=dumped_request,
                    response=None,
                    model=sent.deployment,
                    usage=None,
                    latency_s=sent.latency_s,
                    attempt=attempt,
                    status="error",
                    error=sent.error or error,
                )
            if completion is None and failed:
                return event_id
            answered = requests[-1] if requests else None
            usage = completion.usage.model_dump() if completion and completion.usage else None
            return store.record_model_call(
                run_id=run_id,
                step=step,
                request=dumped_request,
                response=completion.model_dump(exclude_none=True) if completion else None,
                model=answered.deployment if answered is not None else self.model,
                usage=usage,
                latency_s=answered.latency_s if answered is not None else latency_s,
                attempt=attempt,
                status=status,
                error=error,
            )

        return self._guarded(f"a model call of run {run_id}", record)

    def tool_call(
        self,
        *,
        tool_name: str,
        arguments: Any,
        result: Any,
        error: str | None,
        latency_s: float,
        parent_id: str | None,
    ) -> None:
        """Record one tool call that ran."""
        step = self._next_step()
        target = self._target("a tool call")
        if target is None:
            return
        store, run_id = target
        self._guarded(
            f"a call of tool {tool_name!r} in run {run_id}",
            lambda: store.record_tool_call(
                run_id=run_id,
                step=step,
                tool_name=tool_name,
                arguments=arguments,
                result=result,
                status="ok" if error is None else "error",
                error=error,
                latency_s=latency_s,
                parent_id=parent_id,
            ),
        )

    def finish(self, status: RunStatus) -> None:
        """Record the end of the run, ok or error."""
        target = self._target("the end of a run")
        if target is None:
            return
        store, run_id = target
        self._guarded(f"the end of run {run_id}", lambda: store.finish_run(run_id, status))
