"""TraceStore: what is recorded is committed at once, comes back typed, and holds no secrets."""

from __future__ import annotations

import contextlib
import datetime as dt
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from dataclasses import FrozenInstanceError, dataclass
from pathlib import Path

import pytest
from pydantic import BaseModel

from byzer_agents.traces import TraceEvent, TraceStore
from tests.traces.calls import WEATHER_TOOL, completion, record_chat, record_tool, weather_call

REPO_ROOT = Path(__file__).resolve().parents[2]
PLANTED_KEY = "sk-plantedKEY0123456789abcdefXYZ"


def _raw_bytes(db_path: Path) -> bytes:
    """The database file and its WAL and shared-memory files, as stored on disk."""
    return b"".join(path.read_bytes() for path in db_path.parent.glob(db_path.name + "*"))


def test_the_database_is_in_wal_mode_with_normal_sync(store: TraceStore, db_path: Path) -> None:
    with contextlib.closing(sqlite3.connect(db_path)) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store._open().execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL


def test_parent_folders_are_created(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "traces.db"
    TraceStore(path).close()
    assert path.is_file()


def test_repr_shows_the_path(db_path: Path, store: TraceStore) -> None:
    assert repr(store) == f"TraceStore({str(db_path)!r})"


def test_a_new_run_is_running_until_finished(store: TraceStore) -> None:
    run_id = store.new_run("chat_oai", model="qwen", metadata={"user": "ann"})
    run = store.run(run_id)
    assert run is not None
    assert (run.kind, run.model, run.status, run.metadata) == (
        "chat_oai",
        "qwen",
        "running",
        {"user": "ann"},
    )
    assert run.finished_at is None
    store.finish_run(run_id, "ok")
    finished = store.run(run_id)
    assert finished is not None and finished.status == "ok"
    assert finished.finished_at is not None and finished.finished_at >= finished.started_at


def test_runs_lists_the_newest_first_up_to_the_limit(store: TraceStore) -> None:
    ids = [store.new_run("chat_oai") for _ in range(3)]
    assert [run.id for run in store.runs()] == ids[::-1]
    assert [run.id for run in store.runs(limit=2)] == ids[:0:-1]


def test_run_ids_are_uuid4_hex(store: TraceStore) -> None:
    run_id = store.new_run("chat_oai")
    assert len(run_id) == 32 and int(run_id, 16) >= 0


def test_a_model_call_round_trips_with_its_json_fields(store: TraceStore) -> None:
    run_id = store.new_run("chat_oai", model="test-model")
    response = completion(content=None, tool_calls=[weather_call()])
    request = {
        "messages": [{"role": "user", "content": "Weather in Paris?"}],
        "tools": [WEATHER_TOOL],
        "tool_choice": "auto",
        "temperature": 0.2,
        "max_tokens": 64,
    }
    event_id = store.record_model_call(
        run_id=run_id,
        step=1,
        request=request,
        response=response,
        model="test-model",
        usage=response.usage,
        latency_s=0.5,
        attempt=2,
        status="ok",
    )
    event = store.get(event_id)
    assert event is not None
    assert (event.id, event.run_id, event.kind, event.status) == (
        event_id,
        run_id,
        "model_call",
        "ok",
    )
    assert (event.step, event.attempt, event.latency_s, event.model) == (1, 2, 0.5, "test-model")
    assert event.request == request
    assert event.response == response.model_dump(mode="json")
    assert event.usage == {
        "prompt_tokens": 12,
        "completion_tokens": 3,
        "total_tokens": 15,
        "completion_tokens_details": None,
        "prompt_tokens_details": None,
    }
    assert event.tool_name is None and event.error is None
    assert event.created_at.tzinfo is dt.timezone.utc


def test_a_failed_model_call_keeps_its_error_and_no_response(store: TraceStore) -> None:
    run_id = store.new_run("chat_oai")
    event = store.get(record_chat(store, run_id, status="error"))
    assert event is not None
    assert (event.status, event.response, event.usage, event.error) == (
        "error",
        None,
        None,
        "endpoint failed",
    )


def test_a_tool_call_round_trips_with_arguments_and_result(store: TraceStore) -> None:
    run_id = store.new_run("chat_oai")
    parent = record_chat(store, run_id)
    event_id = record_tool(
        store,
        run_id,
        arguments={"city": "Paris", "days": [1, 2]},
        result={"t": 21.5},
        parent_id=parent,
    )
    event = store.get(event_id)
    assert event is not None
    assert (event.kind, event.tool_name, event.parent_id) == ("tool_call", "get_weather", parent)
    assert event.arguments == {"city": "Paris", "days": [1, 2]}
    assert event.result == {"t": 21.5}


class Forecast(BaseModel):
    day: dt.date
    temperature: float


@dataclass
class Station:
    name: str


class Opaque:
    def __repr__(self) -> str:
        return "<Opaque thing>"


def test_results_that_are_not_json_are_stored_through_pydantic_or_repr(store: TraceStore) -> None:
    run_id = store.new_run("chat_oai")
    result = {
        "forecast": Forecast(day=dt.date(2024, 5, 1), temperature=21.5),
        "station": Station(name="Orly"),
        "when": dt.datetime(2024, 5, 1, 12, 0),
        "tags": {"a"},
        "handle": Opaque(),
        "nan": float("nan"),
    }
    event = store.get(record_tool(store, run_id, result=result))
    assert event is not None
    assert event.result == {
        "forecast": {"day": "2024-05-01", "temperature": 21.5},
        "station": {"name": "Orly"},
        "when": "2024-05-01T12:00:00",
        "tags": ["a"],
        "handle": "<Opaque thing>",
        "nan": "NaN",
    }


def test_a_result_pydantic_cannot_walk_is_stored_as_its_repr(store: TraceStore) -> None:
    run_id = store.new_run("chat_oai")
    looped: list[object] = []
    looped.append(looped)
    event = store.get(record_tool(store, run_id, result=looped))
    assert event is not None and event.result == "[[...]]"


def test_events_come_back_in_step_order_then_recording_order(store: TraceStore) -> None:
    run_id = store.new_run("chat_oai")
    other_run = store.new_run("chat_oai")
    late = record_chat(store, run_id, step=2)
    first = record_chat(store, run_id, step=1)
    tool_a = record_tool(store, run_id, step=1, tool_name="a")
    tool_b = record_tool(store, run_id, step=1, tool_name="b")
    record_chat(store, other_run, step=1)
    assert [event.id for event in store.events(run_id)] == [first, tool_a, tool_b, late]


def test_by_tool_finds_only_that_tools_executions(store: TraceStore) -> None:
    run_id = store.new_run("chat_oai")
    weather = [record_tool(store, run_id, tool_name="get_weather") for _ in range(2)]
    record_tool(store, run_id, tool_name="get_time")
    record_chat(store, run_id)
    assert [event.id for event in store.by_tool("get_weather")] == weather
    assert store.by_tool("unknown") == []


def test_failed_finds_invalid_and_error_events_only(store: TraceStore) -> None:
    run_id = store.new_run("chat_oai")
    record_chat(store, run_id)
    record_tool(store, run_id)
    invalid = record_chat(store, run_id, status="invalid")
    error = record_tool(store, run_id, status="error")
    assert [(event.id, event.status) for event in store.failed()] == [
        (invalid, "invalid"),
        (error, "error"),
    ]


def test_get_of_an_unknown_id_is_none(store: TraceStore) -> None:
    assert store.get("nope") is None


def test_trace_events_are_frozen(store: TraceStore) -> None:
    run_id = store.new_run("chat_oai")
    event = store.get(record_tool(store, run_id))
    assert isinstance(event, TraceEvent)
    with pytest.raises(FrozenInstanceError):
        event.status = "error"  # type: ignore[misc]


def test_an_unknown_status_is_refused_with_the_allowed_ones_named(store: TraceStore) -> None:
    run_id = store.new_run("chat_oai")
    with pytest.raises(ValueError, match=r"'done'.*'ok', 'invalid', 'error'"):
        record_tool(store, run_id, status="done")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'finished'"):
        store.finish_run(run_id, "finished")  # type: ignore[arg-type]
    assert store.events(run_id) == []


def test_an_unknown_run_or_parent_is_refused_by_id(store: TraceStore) -> None:
    with pytest.raises(LookupError, match="no run with id 'ghost'"):
        record_tool(store, "ghost")
    with pytest.raises(LookupError, match="no run with id 'ghost'"):
        store.finish_run("ghost", "ok")
    run_id = store.new_run("chat_oai")
    with pytest.raises(LookupError, match="no event with id 'orphan'"):
        record_tool(store, run_id, parent_id="orphan")


def test_a_closed_store_says_so(db_path: Path) -> None:
    store = TraceStore(db_path)
    store.close()
    store.close()
    with pytest.raises(ValueError, match="closed"):
        store.new_run("chat_oai")


def test_an_in_memory_store_works_for_throwaway_traces() -> None:
    with TraceStore(":memory:") as store:
        run_id = store.new_run("chat_oai")
        record_tool(store, run_id)
        assert len(store.events(run_id)) == 1


def test_parallel_writes_from_eight_threads_all_land(store: TraceStore) -> None:
    run_id = store.new_run("chat_oai")
    start = threading.Barrier(8)
    ids: list[list[str]] = [[] for _ in range(8)]
    errors: list[BaseException] = []

    def work(index: int) -> None:
        try:
            start.wait()
            for step in range(25):
                ids[index].append(record_tool(store, run_id, step=step, tool_name=f"t{index}"))
        except BaseException as exc:  # surfaced below; a thread's exception is otherwise lost
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    stored = store.events(run_id)
    assert len(stored) == 200
    assert {event.id for event in stored} == {event_id for chunk in ids for event_id in chunk}
    assert all(len(store.by_tool(f"t{index}")) == 25 for index in range(8))


def test_secrets_are_never_written_to_disk(db_path: Path) -> None:
    with TraceStore(db_path) as store:
        run_id = store.new_run("chat_oai", metadata={"saas.api_key": PLANTED_KEY})
        store.record_model_call(
            run_id=run_id,
            step=1,
            request={
                "messages": [{"role": "user", "content": f"my key is {PLANTED_KEY}"}],
                "extra": {"api_key": PLANTED_KEY, "headers": {"Authorization": PLANTED_KEY}},
                "max_tokens": 64,
            },
            response=None,
            model="gpt-4o",
            usage=None,
            latency_s=0.1,
            attempt=1,
            status="error",
            error=f"401: Incorrect API key provided: {PLANTED_KEY}",
        )
        record_tool(store, run_id, arguments={"token": PLANTED_KEY}, result=PLANTED_KEY)
        # Read while the store is open too: the rows may still sit in the WAL file.
        assert PLANTED_KEY.encode() not in _raw_bytes(db_path)
        (event,) = store.failed()
        assert event.request is not None and event.request["max_tokens"] == 64
    raw = _raw_bytes(db_path)
    assert PLANTED_KEY.encode() not in raw
    assert PLANTED_KEY[:12].encode() not in raw
    assert b"my key is sk-***" in raw


_CHILD = textwrap.dedent(
    """
    import sys, time
    from byzer_agents.traces import TraceStore

    store = TraceStore(sys.argv[1])
    run_id = store.new_run("chat_oai")
    for n in range(1, 1000):
        store.record_tool_call(
            run_id=run_id, step=n, tool_name="t", arguments={"n": n}, result=n,
            status="ok", latency_s=0.0,
        )
        print(f"written {n}", flush=True)
        time.sleep(0.05)
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_events_recorded_before_the_process_is_killed_survive(db_path: Path) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(db_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
    )
    try:
        assert child.stdout is not None
        for line in child.stdout:
            if line.strip() == "written 3":
                break
        else:
            pytest.fail(f"the child exited before writing 3 events: {child.communicate()[1]}")
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL
    with TraceStore(db_path) as store:
        (run,) = store.runs()
        assert run.status == "interrupted"  # its process was killed before it finished
        results = [event.result for event in store.events(run.id)]
    assert results[:3] == [1, 2, 3]
