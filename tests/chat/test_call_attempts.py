"""The requests behind one model call travel with its answer (or its error) to the tracer, which
records one event per request: a retried or fallen-back call leaves every attempt in the trace."""

from __future__ import annotations

from byzer_agents.chat.tracing import RunTracer
from byzer_agents.core.call_attempts import (
    CALL_ATTEMPTS_FIELD,
    attach_call_attempts,
    take_call_attempts,
)
from byzer_agents.exceptions import CallAttempt
from byzer_agents.traces import TraceStore
from byzer_agents.types import ChatCompletion, ChatRequest, make_completion

REQUEST = ChatRequest(messages=[{"role": "user", "content": "hi"}], model="primary")
FAILED = CallAttempt(
    deployment="primary", attempt=1, latency_s=0.5, error="HTTP 500", status_code=500
)
RETRIED = CallAttempt(deployment="primary", attempt=2, latency_s=0.25, error="HTTP 503")
ANSWERED = CallAttempt(deployment="backup", attempt=1, latency_s=0.125)


def test_attempts_survive_the_trip_a_completion_makes_from_a_worker() -> None:
    completion = attach_call_attempts(make_completion(model="m", content="ok"), [FAILED, ANSWERED])
    arrived = ChatCompletion.model_validate(completion.model_dump(mode="json"))
    assert take_call_attempts(arrived) == [FAILED, ANSWERED]
    assert take_call_attempts(arrived) == []  # taken: the answer is clean again
    assert CALL_ATTEMPTS_FIELD not in arrived.model_dump()


def test_a_retried_and_fallen_back_answer_is_traced_one_event_per_request(
    trace_store: TraceStore,
) -> None:
    tracer = RunTracer(trace_store, kind="chat_oai", model="primary")
    completion = attach_call_attempts(
        make_completion(model="m", content="ok"), [FAILED, RETRIED, ANSWERED]
    )
    event_id = tracer.model_call(REQUEST, completion, latency_s=9.0, attempt=1, status="ok")
    events = trace_store.events(tracer.run_id or "")
    assert [(e.model, e.status, e.error, e.latency_s) for e in events] == [
        ("primary", "error", "HTTP 500", 0.5),
        ("primary", "error", "HTTP 503", 0.25),
        ("backup", "ok", None, 0.125),
    ]
    assert {e.step for e in events} == {1} and events[-1].id == event_id
    assert events[0].response is None and events[-1].response is not None
    assert CALL_ATTEMPTS_FIELD not in (events[-1].response or {})


def test_a_failed_call_is_traced_one_event_per_request(trace_store: TraceStore) -> None:
    tracer = RunTracer(trace_store, kind="chat_oai", model="primary")
    tracer.model_call(
        REQUEST, None, latency_s=0.0, attempt=1, status="error", error="all failed",
        call_attempts=[FAILED, RETRIED],
    )  # fmt: skip
    events = trace_store.events(tracer.run_id or "")
    assert [(e.status, e.error) for e in events] == [("error", "HTTP 500"), ("error", "HTTP 503")]


def test_a_call_without_attempts_is_one_event_as_before(trace_store: TraceStore) -> None:
    tracer = RunTracer(trace_store, kind="chat_oai", model="primary")
    tracer.model_call(
        REQUEST, make_completion(model="m", content="ok"), latency_s=0.3, attempt=2, status="ok"
    )
    [event] = trace_store.events(tracer.run_id or "")
    assert (event.model, event.attempt, event.latency_s) == ("primary", 2, 0.3)


def test_attempts_are_taken_off_even_when_nothing_is_traced() -> None:
    completion = attach_call_attempts(make_completion(model="m", content="ok"), [FAILED, ANSWERED])
    RunTracer(None, kind="chat_oai", model="m").model_call(
        REQUEST, completion, latency_s=0.1, attempt=1, status="ok"
    )
    assert CALL_ATTEMPTS_FIELD not in completion.model_dump()
