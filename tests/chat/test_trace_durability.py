"""What chat_oai returned is on disk, even when the process is killed in the middle of a run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from byzer_agents.traces import TraceStore

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
        cwd=Path(__file__).resolve().parents[2],
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
    assert sorted(answers) == ["first answer", "second answer"]
