"""Each tool call the model makes runs at most once per chat call, on the sync and async paths.

Side-effect counters stand for a tool that sends an email or writes a row: the loop may retry a
call that did not validate, and must never repeat one that ran (it returned, raised or timed
out), unless the tool declares itself safe to retry (``@tool(retries=n)``).
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from byzer_agents import Tool, ToolCallError, tool
from byzer_agents.chat.results import LLMResponse
from byzer_agents.exceptions import ToolExecutionError, ToolTimeoutError
from tests.chat.conftest import NATIVE

PATHS = ["sync", "async"]


def chat(llm: Any, path: str, **options: Any) -> LLMResponse:
    options.setdefault("execute_tool", True)
    if path == "sync":
        (response,) = llm.chat_oai("q", **options)
    else:
        (response,) = asyncio.run(llm.achat_oai("q", **options))
    return response


def calls(*made: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    """A native reply making ``made`` calls, numbered c0, c1, ..."""
    return {
        "tool_calls": [
            {"id": f"c{index}", "name": name, "arguments": arguments}
            for index, (name, arguments) in enumerate(made)
        ]
    }


@pytest.mark.parametrize("path", PATHS)
def test_a_raising_tool_runs_once_though_retries_are_left(scripted, path: str) -> None:
    sent: list[str] = []

    @tool
    def send_email(to: str) -> str:
        sent.append(to)
        raise ConnectionError("SMTP server went away")

    llm, backend = scripted(
        calls(("send_email", {"to": "a@b.c"})),
        calls(("send_email", {"to": "a@b.c"})),
        calls(("send_email", {"to": "a@b.c"})),
        capabilities=NATIVE,
    )
    response = chat(llm, path, tools=[send_email], max_retries=2)
    assert sent == ["a@b.c"]
    assert len(backend.requests) == 1  # a call that ran is final: nothing to feed back
    (error,) = response.tool_errors
    assert isinstance(error, ToolExecutionError)
    assert (error.tool_name, error.call_id) == ("send_email", "c0")
    assert error.reason == "ConnectionError: SMTP server went away"
    assert response.values == [] and [c.name for c in response.tool_calls] == ["send_email"]


@pytest.mark.parametrize("path", PATHS)
def test_a_succeeding_sibling_of_an_invalid_call_runs_once(scripted, path: str) -> None:
    written: list[int] = []

    @tool
    def write_row(n: int) -> str:
        written.append(n)
        return f"row {n}"

    llm, backend = scripted(
        calls(("write_row", {"n": 1}), ("write_row", {"n": "two"})),
        calls(("write_row", {"n": 1}), ("write_row", {"n": 2})),  # repeats the one that ran
        capabilities=NATIVE,
    )
    response = chat(llm, path, tools=[write_row])
    assert written == [1, 2]
    assert response.values == ["row 1", "row 2"]
    assert [result.call.arguments for result in response.tool_results] == [{"n": 1}, {"n": 2}]
    feedback = backend.requests[1].messages
    assert feedback[-3] == {"role": "tool", "tool_call_id": "c0", "content": '"row 1"'}
    assert feedback[-2]["content"].startswith("Error:") and "two" in feedback[-2]["content"]
    assert "will not run again" in feedback[-1]["content"]


def test_each_call_is_traced_once_under_the_answer_that_made_it(scripted, trace_store) -> None:
    @tool
    def write_row(n: int) -> str:
        return f"row {n}"

    llm, _ = scripted(
        calls(("write_row", {"n": 1}), ("write_row", {"n": "two"})),
        calls(("write_row", {"n": 1}), ("write_row", {"n": 2})),
        capabilities=NATIVE,
    )
    response = chat(llm, "sync", tools=[write_row])
    events = trace_store.events(response.metadata["run_id"])
    assert [(event.kind, event.status) for event in events] == [
        ("model_call", "invalid"),
        ("tool_call", "ok"),
        ("model_call", "ok"),
        ("tool_call", "ok"),
    ]
    assert (events[1].parent_id, events[3].parent_id) == (events[0].id, events[2].id)


@pytest.mark.parametrize("path", PATHS)
def test_calls_that_ran_stay_on_the_response_when_the_retry_makes_only_the_fix(
    scripted, path: str
) -> None:
    written: list[int] = []

    @tool
    def write_row(n: int) -> str:
        written.append(n)
        return f"row {n}"

    llm, _ = scripted(
        calls(("write_row", {"n": 1}), ("nope", {})),
        calls(("write_row", {"n": 2})),
        capabilities=NATIVE,
    )
    response = chat(llm, path, tools=[write_row])
    assert written == [1, 2] and response.values == ["row 1", "row 2"]


def test_prompted_feedback_gives_each_outcome_and_says_the_calls_that_ran_are_final(
    scripted,
) -> None:
    written: list[int] = []

    @tool
    def write_row(n: int) -> str:
        written.append(n)
        return f"row {n}"

    first = '{"tool_calls": [{"name": "write_row", "arguments": {"n": 1}}, {"name": "nope"}]}'
    second = '{"tool_calls": [{"name": "write_row", "arguments": {"n": 1}}]}'
    llm, backend = scripted(first, second)
    response = chat(llm, "sync", tools=[write_row])
    assert written == [1] and response.values == ["row 1"]
    retry = [message["content"] for message in backend.requests[1].messages]
    assert 'Result of write_row: "row 1"' in retry
    assert any(
        text.startswith("Result of nope: Error:") and "no tool named 'nope'" in text
        for text in retry
    )
    assert "final and will not run again" in retry[-1] and "### write_row" in retry[-1]


@pytest.mark.parametrize("path", PATHS)
def test_an_identical_call_in_the_same_answer_reuses_the_result(scripted, path: str) -> None:
    charged: list[int] = []

    @tool
    def charge(cents: int) -> str:
        charged.append(cents)
        return "charged"

    llm, _ = scripted(
        calls(("charge", {"cents": 500}), ("charge", {"cents": "500"})), capabilities=NATIVE
    )
    response = chat(llm, path, tools=[charge])
    assert charged == [500]  # "500" and 500 validate to the same call
    assert response.values == ["charged"]


@pytest.mark.parametrize("path", PATHS)
def test_a_timed_out_call_is_not_started_again(scripted, path: str) -> None:
    starts: list[float] = []
    release = threading.Event()

    @tool
    def export(table: str) -> str:
        starts.append(time.perf_counter())
        release.wait(5)
        return "exported"

    def second_answer(request: object) -> dict[str, Any]:
        release.set()  # the first export may finish now: it must still not run again
        return calls(("export", {"table": "users"}), ("export", {"table": "orders"}))

    llm, backend = scripted(
        calls(("export", {"table": "users"}), ("export", {})),
        second_answer,
        capabilities=NATIVE,
        tool_timeout_s=0.2,
    )
    try:
        response = chat(llm, path, tools=[export])
    finally:
        release.set()
    assert len(starts) == 2  # users once (timed out, not restarted), then orders
    assert len(backend.requests) == 2
    (error,) = response.tool_errors
    assert isinstance(error, ToolTimeoutError) and error.still_running
    assert (error.call_id, response.values) == ("c0", ["exported"])
    assert "may still be running" in str(error)
    assert "may still be running" in backend.requests[1].messages[2]["content"]


def test_a_timed_out_async_tool_is_cancelled_and_says_so(scripted) -> None:
    starts: list[int] = []

    @tool
    async def export() -> str:
        starts.append(1)
        await asyncio.sleep(5)
        return "exported"

    llm, _ = scripted(calls(("export", {})), capabilities=NATIVE, tool_timeout_s=0.1)
    response = chat(llm, "async", tools=[export])
    (error,) = response.tool_errors
    assert isinstance(error, ToolTimeoutError) and not error.still_running
    assert "was cancelled" in str(error) and starts == [1]


@pytest.mark.parametrize("path", PATHS)
def test_a_tool_declaring_retries_runs_again_by_itself(scripted, path: str) -> None:
    runs: list[int] = []

    @tool(retries=2)
    def fetch_quote() -> str:
        runs.append(1)
        if len(runs) < 3:
            raise TimeoutError("upstream busy")
        return "42.0"

    llm, backend = scripted(calls(("fetch_quote", {})), capabilities=NATIVE)
    response = chat(llm, path, tools=[fetch_quote])
    assert len(runs) == 3 and response.values == ["42.0"]
    assert len(backend.requests) == 1


@pytest.mark.parametrize("path", PATHS)
def test_retries_are_bounded_and_the_last_failure_is_reported(scripted, path: str) -> None:
    runs: list[int] = []

    @tool(retries=2)
    async def fetch_quote() -> str:
        runs.append(1)
        raise TimeoutError(f"upstream busy ({len(runs)})")

    llm, _ = scripted(calls(("fetch_quote", {})), capabilities=NATIVE)
    response = chat(llm, path, tools=[fetch_quote])
    assert len(runs) == 3
    assert response.tool_errors[0].reason == "TimeoutError: upstream busy (3)"


@pytest.mark.parametrize("path", PATHS)
def test_spent_retries_raise_tool_call_error_carrying_the_calls_that_ran(
    scripted, path: str
) -> None:
    written: list[int] = []

    @tool
    def write_row(n: int) -> str:
        written.append(n)
        return f"row {n}"

    bad = calls(("write_row", {"n": 1}), ("write_row", {"n": "x"}))
    llm, _ = scripted(bad, bad, capabilities=NATIVE)
    with pytest.raises(ToolCallError) as caught:
        chat(llm, path, tools=[write_row], max_retries=1)
    assert written == [1]
    assert [result.value for result in caught.value.tool_results] == ["row 1"]
    assert len(caught.value.attempts) == 2


# --- answers nested too deeply to read --------------------------------------------------------

DEEP_OBJECT = '{"a": ' * 10_000 + "1" + "}" * 10_000
DEEP_ARRAY = "[" * 10_000 + "]" * 10_000


@pytest.mark.parametrize("path", PATHS)
def test_deeply_nested_native_arguments_are_fed_back_not_raised(scripted, path: str) -> None:
    @tool
    def store(data: dict[str, Any]) -> str:
        return "stored"

    schema_tool = Tool.from_schema(
        {"name": "store_raw", "parameters": {"type": "object"}}, fn=lambda **_: "stored raw"
    )
    llm, backend = scripted(
        {
            "tool_calls": [
                {"id": "c0", "name": "store", "arguments": '{"data": ' + DEEP_OBJECT + "}"},
                {"id": "c1", "name": "store_raw", "arguments": DEEP_OBJECT},
            ]
        },
        calls(("store", {"data": {"a": 1}})),
        capabilities=NATIVE,
    )
    started = time.perf_counter()
    response = chat(llm, path, tools=[store, schema_tool])
    assert time.perf_counter() - started < 5
    assert response.values == ["stored"]
    feedback = backend.requests[1].messages
    assert feedback[2]["content"].startswith("Error:")
    assert "nested too deeply" in feedback[3]["content"]


def test_deeply_nested_prompted_tool_calls_end_in_tool_call_error(scripted) -> None:
    @tool
    def store(data: list[Any]) -> str:
        return "stored"

    deep = '{"tool_calls": [{"name": "store", "arguments": {"data": ' + DEEP_ARRAY + "}}]}"
    llm, _ = scripted(deep, deep)
    with pytest.raises(ToolCallError) as caught:
        chat(llm, "sync", tools=[store], tool_choice="required", max_retries=1)
    assert len(caught.value.attempts) == 2
