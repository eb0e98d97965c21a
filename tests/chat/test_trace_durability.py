"""What chat_oai returned is on disk, even when the process is killed in the middle of a run; and
tracing never costs the caller the answer: a locked, damaged or closed trace database is logged
and counted, and the answer returned."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from byzer_agents import LLM
from byzer_agents.llm_runtime.backends.scripted import ScriptedBackend
from byzer_agents.traces import TraceStore

REPO_ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import sys, time
    from byzer_agents import LLM, ScriptedBackend

    def hang(request):
        print("hanging", flush=True)
        time.sleep(600)

    backend = ScriptedBackend(["first answer", "second answer", hang])
    llm = LLM.from_backend(backend, model="scripted", trace_store=sys.argv[1])
    for number in (1, 2, 3):
        llm.chat_oai(f"question {number}")
        print(f"returned {number}", flush=True)
    """
)


def test_calls_that_returned_survive_a_kill_mid_run(tmp_path: Path) -> None:
    database = tmp_path / "traces.db"
    process = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(database)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
    )
    try:
        assert process.stdout is not None
        lines = []
        for line in process.stdout:
            lines.append(line.strip())
            if line.startswith("hanging"):
                break
        assert lines == ["returned 1", "returned 2", "hanging"]
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.kill()
        process.wait(timeout=10)

    with TraceStore(database) as store:
        answers = [
            event.response["choices"][0]["message"]["content"]
            for run in store.runs()
            for event in store.events(run.id)
            if event.kind == "model_call"
        ]
        statuses = sorted(run.status for run in store.runs())
    assert sorted(answers) == ["first answer", "second answer"]
    # The run it was killed in is not left running for ever.
    assert statuses == ["interrupted", "ok", "ok"]


def _llm(database: Path, *replies: str) -> LLM:
    return LLM.from_backend(
        ScriptedBackend(list(replies), model="scripted"), model="scripted", trace_store=database
    )


def _answer(llm: LLM, question: str) -> str:
    (response,) = llm.chat_oai(question)
    return response.output


_HOLD_LOCK = textwrap.dedent(
    """
    import sqlite3, sys
    connection = sqlite3.connect(sys.argv[1], isolation_level=None)
    connection.execute("BEGIN EXCLUSIVE")
    print("locked", flush=True)
    sys.stdin.readline()
    """
)


@contextlib.contextmanager
def _locked_by_another_process(database: Path) -> Iterator[None]:
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, str(database)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        yield
    finally:
        holder.communicate("\n", timeout=30)


def test_a_trace_database_locked_by_another_process_still_returns_the_answer(
    tmp_path: Path,
) -> None:
    database = tmp_path / "traces.db"
    with _llm(database, "first answer", "second answer") as llm:
        store = llm.trace_store
        assert store is not None
        with _locked_by_another_process(database):
            started = time.monotonic()
            assert _answer(llm, "question 1") == "first answer"
            # One short wait for the lock, then the records wait in memory (was: 10 s, then
            # the lock error, and the answer lost).
            assert time.monotonic() - started < 8
            assert store.pending_records == 3  # the run, its model call, its end
        assert _answer(llm, "question 2") == "second answer"
        assert store.pending_records == 0
        assert store.dropped_records == 0
        runs = store.runs()
        assert [run.status for run in runs] == ["ok", "ok"]
        answers = [
            store.events(run.id)[0].response["choices"][0]["message"]["content"] for run in runs
        ]
    assert sorted(answers) == ["first answer", "second answer"]


def test_a_damaged_trace_database_still_returns_the_answer_and_counts_the_loss(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    database = tmp_path / "traces.db"
    TraceStore(database).close()
    with contextlib.closing(sqlite3.connect(database)) as connection:
        (root,) = connection.execute(
            "SELECT rootpage FROM sqlite_master WHERE name = 'runs'"
        ).fetchone()
        (page_size,) = connection.execute("PRAGMA page_size").fetchone()
    with open(database, "r+b") as file:  # the runs table's root page becomes noise
        file.seek((root - 1) * page_size)
        file.write(b"\xa5" * page_size)
    with caplog.at_level(logging.WARNING, "byzer_agents.traces"):
        llm = _llm(database, "the answer")
        assert _answer(llm, "question") == "the answer"
        llm.close()
    assert llm.trace_store is not None and llm.trace_store.dropped_records == 3
    assert "malformed" in caplog.text and "dropped 3 trace record(s)" in caplog.text


def test_a_closed_trace_store_still_returns_the_answer_and_counts_the_loss(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    llm = _llm(tmp_path / "traces.db", "the answer")
    store = llm.trace_store
    assert store is not None
    store.close()
    with caplog.at_level(logging.WARNING, "byzer_agents.traces"):
        assert _answer(llm, "question") == "the answer"
    assert store.dropped_records == 3
    assert "is closed" in caplog.text
