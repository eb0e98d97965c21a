"""The main job ``make run`` shows: the embedded default end to end, printed for a person.

A local Ray cluster starts (or is joined), the shipped tool model is deployed on it (SmolLM2-135M-
Instruct with the project's tool-calling LoRA adapter, ``default_tool_model()``; once: later runs
find the deployment by name), then the same loop any model gets runs two tool-calling requests
(one a tool answers, one none does, ``tool_choice="auto"``) and one typed extraction. Each answer
is checked against what a right one would be and the verdict printed beside it: a 135M model
gets things wrong, and a wrong answer must never read as a right one.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["DEFAULT_NAME", "run"]

DEFAULT_NAME = "smollm2-tools"


class Meeting(BaseModel):
    """A meeting mentioned in a text."""

    topic: str = Field(description="What the meeting is about")
    day: str = Field(description="The day of the week it takes place")
    attendees: list[str] = Field(description="The people who attend")


MEETING_TEXT = (
    "Hi team, quick reminder: the budget review is on Thursday. "
    "Alice, Bob and Chen will attend; please bring last quarter's numbers."
)
EXPECTED_MEETING = Meeting(
    topic="budget review", day="Thursday", attendees=["Alice", "Bob", "Chen"]
)

TOOL_QUESTIONS: tuple[tuple[str, dict[str, Any] | None], ...] = (
    # (question, the call a right answer makes; None: no tool fits, a text answer is right)
    (
        "What is the date range of the last 2 weeks?",
        {"name": "compute_date_range", "arguments": {"count": 2, "unit": "week"}},
    ),
    ("Who wrote the novel Pride and Prejudice?", None),
)

_RIGHT = "[green]right[/green]"
_WRONG = "[red]wrong[/red]"


def run(console: Console) -> None:
    from byzer_agents import LLM
    from byzer_agents.llm_runtime import cluster
    from byzer_agents.llm_runtime.models import default_tool_model

    started = time.perf_counter()
    info = cluster.connect()
    where = "started" if info.started_here else "joined"
    console.rule("byzer-agents quickstart")
    console.print(f"Ray: {where} the local cluster at {info.address} (loopback only)")

    llm = LLM()
    if llm.is_model_exist(DEFAULT_NAME):
        console.print(f"model: {DEFAULT_NAME} is already deployed")
    else:
        path = default_tool_model()
        console.print(
            f"model: deploying {path.name} (SmolLM2-135M-Instruct + LoRA) as {DEFAULT_NAME}"
        )
        llm.deploy(path, "custom/auto", DEFAULT_NAME, {"max_model_len": 2048})
    meta = llm.get_meta(model=DEFAULT_NAME)
    console.print(
        f"       {meta.get('architectures')} on {meta.get('device')}, {meta.get('dtype')}, "
        f"adapter: {(meta.get('adapter') or {}).get('path', 'none')}, "
        f"constrained decoding: {meta.get('constrained_decoding')}"
    )
    right = 0
    for question, expected in TOOL_QUESTIONS:
        right += _tool_step(console, llm, question, expected)
    right += _extraction_step(console, llm)
    total = len(TOOL_QUESTIONS) + 1
    console.rule(f"{right} of {total} answers right; done in {time.perf_counter() - started:.1f} s")


def _tool_step(console: Console, llm: Any, question: str, expected: dict[str, Any] | None) -> bool:
    from byzer_agents.exceptions import ToolCallError
    from byzer_agents.tools import compute_date_range, compute_now

    console.rule('a tool-calling step (tool_choice="auto")')
    console.print(f"user: {question}")
    console.print("tools offered: compute_date_range, compute_now")
    try:
        (answer,) = llm.chat_oai(
            [{"role": "user", "content": question}],
            tools=[compute_date_range, compute_now],
            tool_choice="auto",
            execute_tool=True,
            model=DEFAULT_NAME,
            llm_config={"temperature": 0, "max_tokens": 128},
        )
    except ToolCallError as error:
        console.print(f"the model's calls never validated: {error}")
        console.print(f"verdict: {_WRONG}")
        return False
    calls = [{"name": call.name, "arguments": call.raw_arguments} for call in answer.tool_calls]
    for call, value in zip(answer.tool_calls, answer.values, strict=False):
        console.print(f"model called: {call.name}({json.dumps(call.raw_arguments)})")
        console.print(f"tool result:  {value}")
    if not calls:
        console.print(f"model answered: {answer.output!r} (no tool called)")
    correct = calls == ([expected] if expected is not None else [])
    wanted = (
        f"{expected['name']}({json.dumps(expected['arguments'])})"
        if expected
        else "a text answer, no tool call (no offered tool knows authors)"
    )
    console.print(f"verdict: {_RIGHT if correct else _WRONG} (a right answer: {wanted})")
    return correct


def _extraction_step(console: Console, llm: Any) -> bool:
    from byzer_agents.exceptions import ExtractionError

    console.rule("a typed extraction")
    console.print(f"text: {MEETING_TEXT}")
    try:
        meeting = llm.extract(
            Meeting,
            MEETING_TEXT,
            model=DEFAULT_NAME,
            llm_config={"temperature": 0, "max_tokens": 256},
        )
    except ExtractionError as error:
        console.print(f"no valid Meeting came back: {error}")
        console.print(f"verdict: {_WRONG}")
        return False
    console.print(f"Meeting: {meeting!r}")
    fields = {
        "topic": meeting.topic.strip().lower() == EXPECTED_MEETING.topic,
        "day": meeting.day.strip().lower() == EXPECTED_MEETING.day.lower(),
        "attendees": sorted(meeting.attendees) == EXPECTED_MEETING.attendees,
    }
    shown = ", ".join(f"{name} {'right' if ok else 'wrong'}" for name, ok in fields.items())
    correct = all(fields.values())
    console.print(
        f"verdict: {_RIGHT if correct else _WRONG} ({shown}; a right answer: {EXPECTED_MEETING!r})"
    )
    return correct
