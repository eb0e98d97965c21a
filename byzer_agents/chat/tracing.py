"""``RunTracer``: numbers the steps of one chat call and writes each to the TraceStore (or
nowhere, when tracing is off), so the loop records without knowing whether anyone listens.

A model call that took more than one request (retries, fallbacks: ``chat/call_attempts.py``) is
recorded as one event per request, all in the call's step: each failed request as an ``error``
event naming the deployment it went to, then the answer as the loop judged it, under the
deployment that gave it."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from byzer_agents.chat.call_attempts import take_call_attempts
from byzer_agents.exceptions import CallAttempt
from byzer_agents.types import ChatCompletion, ChatRequest

if TYPE_CHECKING:
    from byzer_agents.traces import EventStatus, RunStatus, TraceStore

__all__ = ["RunTracer"]


class RunTracer:
    def __init__(self, store: TraceStore | None, *, kind: str, model: str) -> None:
        self._store = store
        self.model = model
        self.run_id = store.new_run(kind, model=model) if store is not None else None
        self._steps = itertools.count(1)
        self._lock = threading.Lock()

    def _next_step(self) -> int:
        with self._lock:
            return next(self._steps)

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
        if self._store is None or self.run_id is None:
            return None
        dumped_request = request.model_dump(exclude_none=True)
        failed = requests if completion is None else requests[:-1]
        event_id = None
        for sent in failed:
            event_id = self._store.record_model_call(
                run_id=self.run_id,
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
        return self._store.record_model_call(
            run_id=self.run_id,
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
        step = self._next_step()
        if self._store is None or self.run_id is None:
            return
        self._store.record_tool_call(
            run_id=self.run_id,
            step=step,
            tool_name=tool_name,
            arguments=arguments,
            result=result,
            status="ok" if error is None else "error",
            error=error,
            latency_s=latency_s,
            parent_id=parent_id,
        )

    def finish(self, status: RunStatus) -> None:
        if self._store is not None and self.run_id is not None:
            self._store.finish_run(self.run_id, status)
