"""The main job ``make run`` shows: the embedded default end to end, printed for a person.

A local Ray cluster starts (or is joined), the shipped tool model is deployed on it (SmolLM2-135M-
Instruct with the project's tool-calling LoRA adapter, ``default_tool_model()``; once: later runs
find the deployment by name), then the same loop any model gets runs two tool-calling requests
(one a tool answers, one none does, ``tool_choice="auto"``) and one typed extraction.

Each answer is checked for what a right one must be, from what was printed, whatever the model:
the date range must span the asked length and end now; the no-tool answer must call no tool and
name the author; each extracted field must be a value found in the text (not the field's
description) and the one the text gives. The verdict and its reasons are printed beside the
answer: a 135M model gets things wrong, and a wrong answer must never read as a right one. The run
ends with what to try next.
"""

from __future__ import annotations

import datetime
import json
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dateutil.relativedelta import relativedelta
from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from rich.console import Console

__all__ = [
    "DEFAULT_NAME",
    "Meeting",
    "Verdict",
    "check_date_range",
    "check_meeting",
    "check_text_answer",
    "run",
]

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

DATE_QUESTION = "What is the date range of the last 2 weeks?"
DATE_RANGE_ASKED = (2, "week")
"""The length the date question asks for: (count, unit)."""
AUTHOR_QUESTION = "Who wrote the novel Pride and Prejudice?"
AUTHOR = "Jane Austen"

_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_DATE = re.compile(r"(\d{4}-\d{2}-\d{2})(?:[ T](\d{2}:\d{2}(?::\d{2})?))?")


@dataclass(frozen=True)
class Verdict:
    """Whether an answer is right, and what the check found, in words a person reads."""

    right: bool
    reasons: tuple[str, ...]
    """Why it is wrong; for a right answer, what was checked."""

    def markup(self) -> str:
        """The verdict line for a rich console."""
        word = "[green]right[/green]" if self.right else "[red]wrong[/red]"
        return f"verdict: {word}: " + "; ".join(self.reasons)


def check_date_range(
    printed: str, count: int, unit: str, *, now: datetime.datetime | None = None
) -> Verdict:
    """Is ``printed`` (the tool's result or the model's text) a date range that ends now and starts
    ``count`` ``unit``s earlier? Only its first two dates are read; times are optional."""
    now = now or datetime.datetime.now()
    asked = f"the last {count} {unit}{'s' if count != 1 else ''}"
    dates = [_parse_date(match) for match in _DATE.finditer(printed)]
    if len(dates) < 2:
        return Verdict(False, (f"no date range in the answer; {asked} was asked for",))
    start, end = dates[0], dates[1]
    reasons = []
    if abs(end - now) > datetime.timedelta(days=1):
        reasons.append(f"the range ends on {end:%Y-%m-%d}, not today ({now:%Y-%m-%d})")
    wanted_start = (end - relativedelta(**{f"{unit}s": count})).date()  # type: ignore[arg-type]
    if start.date() != wanted_start:
        reasons.append(
            f"the range spans {(end.date() - start.date()).days} days, but {asked} span "
            f"{(end.date() - wanted_start).days}"
        )
    if reasons:
        return Verdict(False, tuple(reasons))
    return Verdict(True, (f"{start:%Y-%m-%d} to {end:%Y-%m-%d} is {asked}, ending today",))


def check_text_answer(called: Iterable[str], text: str, *, must_name: str) -> Verdict:
    """Is this the right answer to a question no offered tool fits: no call, and a text that
    names ``must_name``?"""
    called = list(called)
    if called:
        return Verdict(False, (f"called {', '.join(called)}, but no offered tool fits",))
    if must_name.split()[-1].lower() not in text.lower():
        return Verdict(
            False,
            (f"rightly called no tool, but the text does not say the answer ({must_name})",),
        )
    return Verdict(True, (f"no tool called, and the text names {must_name}",))


def check_meeting(meeting: Meeting, text: str, expected: Meeting = EXPECTED_MEETING) -> Verdict:
    """Is ``meeting`` what ``text`` says? Each value must be found in the text (a field's
    description copied as its value is not), the day must be a weekday, and each field must be
    the one ``expected`` holds (attendees in any order)."""
    descriptions = {
        name: (field.description or "").lower() for name, field in Meeting.model_fields.items()
    }
    problems: list[str] = []
    for name, value in (("topic", meeting.topic), ("day", meeting.day)):
        problem = _ungrounded(name, value, text, descriptions[name])
        if problem is None and value.strip().lower() != getattr(expected, name).lower():
            problem = (
                f"{name} {value!r} is in the text, but the text says {getattr(expected, name)!r}"
            )
        if problem:
            problems.append(problem)
    if meeting.day.strip().lower() not in _WEEKDAYS and meeting.day.strip():
        problems.append(f"day {meeting.day!r} is not a day of the week")
    wanted = {person.lower() for person in expected.attendees}
    if not meeting.attendees:
        problems.append("attendees is empty, but the text names who attends")
    for person in meeting.attendees:
        problem = _ungrounded("an attendee", person, text, descriptions["attendees"])
        if problem is None and person.strip().lower() not in wanted:
            problem = f"{person!r} is in the text, but does not attend"
        if problem:
            problems.append(problem)
    got = {person.strip().lower() for person in meeting.attendees}
    missing = [person for person in expected.attendees if person.lower() not in got]
    if meeting.attendees and missing:
        problems.append(f"attendees miss {', '.join(missing)}")
    if problems:
        return Verdict(False, tuple(problems))
    return Verdict(True, ("every field is a value from the text, and the one it gives",))


def _ungrounded(name: str, value: str, text: str, description: str) -> str | None:
    """Why ``value`` is not a value read from ``text``, or None when it is."""
    stripped = value.strip().lower()
    if not stripped:
        return f"{name} is empty"
    if stripped == description:
        return f"{name} {value!r} is the field's description copied, not a value from the text"
    if stripped not in text.lower():
        return f"{name} {value!r} is not in the text"
    return None


def _parse_date(match: re.Match[str]) -> datetime.datetime:
    day, clock = match.group(1), match.group(2) or "00:00"
    return datetime.datetime.fromisoformat(f"{day} {clock}")


def run(console: Console) -> None:
    """Join (or start) the local Ray, deploy the shipped tool model (once), and show on
    ``console`` two tool-calling steps and a typed extraction, then how many were right."""
    from byzer_agents import LLM
    from byzer_agents.llm_runtime import cluster
    from byzer_agents.llm_runtime.models import default_tool_model

    started = time.perf_counter()
    info = cluster.connect()
    where = "started" if info.started_here else "joined"
    console.rule("byzer-agents quickstart")
    console.print(f"Ray: {where} the local cluster at {info.address} (loopback only)")

    llm = LLM()
    if DEFAULT_NAME in llm.list_models():
        console.print(f"model: {DEFAULT_NAME} is already deployed")
    else:
        path = default_tool_model()
        console.print(
            f"model: deploying {path.name} (SmolLM2-135M-Instruct + LoRA) as {DEFAULT_NAME}"
        )
        llm.deploy(path, "custom/auto", DEFAULT_NAME, {"max_model_len": 2048})
    meta = llm.get_meta(model=DEFAULT_NAME)
    console.print(
        f"engine: {meta.get('backend')} on {meta.get('device')} ({meta.get('dtype')}), "
        f"because {meta.get('engine_reason')}; adapter: "
        f"{(meta.get('adapter') or {}).get('path', 'none')}"
    )
    verdicts = [
        _date_step(console, llm),
        _author_step(console, llm),
        _extraction_step(console, llm),
    ]
    right = sum(verdict.right for verdict in verdicts)
    console.rule(
        f"{right} of {len(verdicts)} answers right; done in {time.perf_counter() - started:.1f} s"
    )
    _print_next_steps(console, wrong=len(verdicts) - right)


def _ask_with_tools(console: Console, llm: Any, question: str) -> tuple[list[str], str] | None:
    """Ask ``question`` with the date tools offered; print and return the names called and what
    the answer printed (the tools' results, else the model's text); None when no call validated."""
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
        return None
    for result in answer.tool_results:
        call = result.call
        console.print(f"model called: {call.name}({json.dumps(call.raw_arguments)})")
        if result.error is None:
            console.print(f"tool result:  {result.value}")
        else:
            console.print(f"tool failed:  {result.error}")
    if not answer.tool_calls:
        console.print(f"model answered: {answer.output!r} (no tool called)")
    printed = " ".join(str(value) for value in answer.values) or answer.output
    return [call.name for call in answer.tool_calls], printed


def _date_step(console: Console, llm: Any) -> Verdict:
    asked = _ask_with_tools(console, llm, DATE_QUESTION)
    count, unit = DATE_RANGE_ASKED
    verdict = (
        check_date_range(asked[1], count, unit)
        if asked is not None
        else Verdict(False, ("no call validated against the tools' schemas",))
    )
    console.print(verdict.markup())
    return verdict


def _author_step(console: Console, llm: Any) -> Verdict:
    asked = _ask_with_tools(console, llm, AUTHOR_QUESTION)
    verdict = (
        check_text_answer(asked[0], asked[1], must_name=AUTHOR)
        if asked is not None
        else Verdict(False, ("it tried to call a tool, but no offered tool fits",))
    )
    console.print(verdict.markup())
    return verdict


def _extraction_step(console: Console, llm: Any) -> Verdict:
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
        verdict = Verdict(False, ("no answer validated against Meeting's schema",))
    else:
        console.print(f"Meeting: {meeting!r}")
        verdict = check_meeting(meeting, MEETING_TEXT)
    console.print(verdict.markup())
    return verdict


def _print_next_steps(console: Console, *, wrong: int) -> None:
    if wrong:
        console.print(
            f"The shipped model got {wrong} wrong, as the verdicts above say: it has 135M "
            "parameters and a small adapter, enough to show the loop, not to rely on."
        )
    console.print("What to try next:")
    console.print(f"  byzer-agents chat {DEFAULT_NAME}     talk to the model (answers stream)")
    console.print(
        "  byzer-agents serve                  the OpenAI API over every deployment, for the "
        "openai SDK"
    )
    console.print("  cookbook/                           one runnable script per feature")
    console.print(
        "  a bigger model                      byzer-agents deploy PATH --name NAME (a Hugging "
        "Face directory or GGUF file, e.g. Qwen2.5-1.5B-Instruct), then ask it with model=NAME"
    )
