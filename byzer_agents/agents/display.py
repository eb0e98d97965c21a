"""An agent run, shown to a person: a finished ``AgentResult`` as HTML (a notebook's
``_repr_html_``) or as a rich renderable (a terminal), and a run in progress shown live from the
events ``Agent.stream`` yields (``run_with_progress``).

Every value shown comes from the run (model text, tool arguments and results), so each is escaped
for HTML and cut to ``MAX_VALUE_CHARS`` with its full length said: a tool that returns a page of
HTML must neither run in the notebook nor flood it.
"""

from __future__ import annotations

import html
import importlib
import json
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO, TypeVar, cast

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.markup import escape as rich_escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from byzer_agents.agents.results import (
    AgentEvent,
    AgentResult,
    FinalOutput,
    PartialOutput,
    Step,
    TextDelta,
    ToolCallFinished,
    ToolCallStarted,
    ToolRun,
    Usage,
)
from byzer_agents.exceptions import UsageError

if TYPE_CHECKING:
    from byzer_agents.agents.agent import Agent
    from byzer_agents.llm_calls import Conversation

__all__ = [
    "MAX_VALUE_CHARS",
    "print_result",
    "render_result",
    "result_html",
    "run_with_progress",
]

OutputT = TypeVar("OutputT")

MAX_VALUE_CHARS = 400
"""The most characters of one value (text, arguments, a tool's result) shown; the rest is cut."""


# --- values as short text ---------------------------------------------------------------------


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if hasattr(value, "model_dump") or not isinstance(value, dict | list | tuple):
        return repr(value)  # pydantic models and dataclasses read best as their repr
    try:
        return json.dumps(value, ensure_ascii=False, default=repr)
    except (TypeError, ValueError):  # circular or unsortable: the repr still says what it is
        return repr(value)


def _shorten(text: str, limit: int = MAX_VALUE_CHARS) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text)} characters in all)"


def _call_text(name: str, arguments: Mapping[str, Any] | str) -> str:
    """``get_weather(city="Paris")``; the model's own text when its arguments did not validate."""
    if not isinstance(arguments, Mapping):
        return f"{name}({_as_text(arguments)})"
    shown = ", ".join(f"{key}={_argument_text(value)}" for key, value in arguments.items())
    return f"{name}({shown})"


def _argument_text(value: Any) -> str:
    if isinstance(value, str | int | float | bool | dict | list) or value is None:
        return json.dumps(value, ensure_ascii=False, default=repr)
    return _as_text(value)


def _usage_text(usage: Usage) -> str:
    parts = [f"{usage.input_tokens} in / {usage.output_tokens} out tokens"]
    if usage.requests:
        parts.append(f"{usage.requests} model call{'s' if usage.requests != 1 else ''}")
    if usage.tool_calls:
        parts.append(f"{usage.tool_calls} tool call{'s' if usage.tool_calls != 1 else ''}")
    return ", ".join(parts)


def _seconds_text(run: ToolRun) -> str:
    return "" if run.denied else f"{run.seconds:.3f} s"  # a denied call never ran


def _outcome(run: ToolRun) -> tuple[str, str]:
    """A mark for how the call went, and what it gave."""
    if run.denied:
        return "denied", run.error or "denied"
    if run.error is not None:
        return "error", run.error
    return "ok", _as_text(run.value)


# --- a step as shown, finished or in progress -------------------------------------------------


@dataclass
class _StepView:
    """A step to show: a finished ``Step``, or one whose events are still arriving."""

    number: int
    text: str = ""
    runs: list[ToolRun] = field(default_factory=list)
    running: list[ToolCallStarted] = field(default_factory=list)
    problems: Sequence[str] = ()
    usage: Usage | None = None
    seconds: float | None = None

    @classmethod
    def of(cls, step: Step) -> _StepView:
        return cls(
            number=step.number,
            text=step.text,
            runs=list(step.tool_runs),
            problems=step.problems,
            usage=step.usage,
            seconds=step.seconds,
        )

    def heading(self) -> str:
        parts = [f"Step {self.number}"]
        if self.seconds is not None:
            parts.append(f"{self.seconds:.2f} s")
        if self.usage is not None:
            parts.append(_usage_text(self.usage))
        return " · ".join(parts)


# --- HTML -------------------------------------------------------------------------------------

_MARKS = {"ok": "✓", "error": "✗", "denied": "⛔ denied", "running": "… running"}
_CELL = 'style="text-align:left;vertical-align:top;padding:2px 8px"'
_PRE = 'style="white-space:pre-wrap;margin:0"'


def _html_text(text: str) -> str:
    return f"<pre {_PRE}>{html.escape(_shorten(text))}</pre>"


def _html_row(mark: str, call: str, shown: str = "", seconds: str = "") -> str:
    """A table row; ``call`` and ``shown`` are HTML already, the rest plain text."""
    cells = [html.escape(mark), call, shown, html.escape(seconds)]
    return "<tr>" + "".join(f"<td {_CELL}>{cell}</td>" for cell in cells) + "</tr>"


def _html_call(name: str, arguments: Mapping[str, Any] | str) -> str:
    return f"<code>{html.escape(_shorten(_call_text(name, arguments)))}</code>"


def _html_step(step: _StepView) -> str:
    rows = []
    if step.text:
        rows.append(_html_row("model", _html_text(step.text)))
    for run in step.runs:
        mark, shown = _outcome(run)
        outcome = _html_text(shown)
        if mark != "ok":
            outcome = f'<span style="color:#b00020">{outcome}</span>'
        rows.append(
            _html_row(
                _MARKS[mark], _html_call(run.name, run.arguments), outcome, _seconds_text(run)
            )
        )
    for call in step.running:
        rows.append(_html_row(_MARKS["running"], _html_call(call.name, call.arguments)))
    for problem in step.problems:
        rows.append(
            _html_row("sent back", f'<span style="color:#b00020">{_html_text(problem)}</span>')
        )
    return (
        f"<details open><summary><b>{html.escape(step.heading())}</b></summary>"
        f'<table style="border-collapse:collapse;margin-left:1em">{"".join(rows)}</table></details>'
    )


def _html_view(steps: Iterable[_StepView], footer: str) -> str:
    body = "".join(_html_step(step) for step in steps)
    return f'<div class="byzer-agent-run">{body}{footer}</div>'


def result_html(result: AgentResult[Any]) -> str:
    """The run as HTML: each step's text, tool calls (arguments, result or error, denied, time)
    and usage, then the output; every value escaped and cut to ``MAX_VALUE_CHARS``."""
    output_type = type(result.output).__name__
    footer = (
        f"<p><b>Output</b> ({html.escape(output_type)}; {len(result.steps)} steps, "
        f"{html.escape(_usage_text(result.usage))})</p>{_html_text(_as_text(result.output))}"
    )
    return _html_view((_StepView.of(step) for step in result.steps), footer)


# --- rich -------------------------------------------------------------------------------------

_STYLES = {"ok": "green", "error": "red", "denied": "red", "running": "yellow"}


def _rich_step(step: _StepView) -> RenderableType:
    parts: list[RenderableType] = []
    if step.text:
        parts.append(Text(_shorten(step.text)))
    if step.runs or step.running:
        calls = Table(show_header=False, box=None, padding=(0, 1))
        for run in step.runs:
            mark, shown = _outcome(run)
            calls.add_row(
                Text(_MARKS[mark], style=_STYLES[mark]),
                Text(_shorten(_call_text(run.name, run.arguments)), style="bold"),
                Text(_shorten(shown), style="" if mark == "ok" else "red"),
                Text(_seconds_text(run), style="dim"),
            )
        for call in step.running:
            calls.add_row(
                Text(_MARKS["running"], style=_STYLES["running"]),
                Text(_shorten(_call_text(call.name, call.arguments)), style="bold"),
                Text(""),
                Text(""),
            )
        parts.append(calls)
    parts += [Text(f"sent back: {_shorten(problem)}", style="red") for problem in step.problems]
    return Panel(Group(*parts), title=rich_escape(step.heading()), title_align="left")


def render_result(result: AgentResult[Any]) -> RenderableType:
    """The run as a rich renderable: a panel per step (text, tool calls with their outcome and
    time), then the output and the usage."""
    output = Panel(
        Text(_shorten(_as_text(result.output))),
        title=f"Output: {rich_escape(type(result.output).__name__)}",
        subtitle=rich_escape(f"{len(result.steps)} steps, {_usage_text(result.usage)}"),
        title_align="left",
        border_style="green",
    )
    return Group(*(_rich_step(_StepView.of(step)) for step in result.steps), output)


def print_result(result: AgentResult[Any], console: Console | None = None) -> None:
    """Print the run step by step to ``console`` (a new one on stdout by default)."""
    (console or Console()).print(render_result(result))


# --- a run in progress ------------------------------------------------------------------------


@dataclass
class _Progress:
    """The run so far, rebuilt from its events."""

    steps: list[_StepView] = field(default_factory=list)
    partial: Any = None
    result: AgentResult[Any] | None = None

    def step(self, number: int) -> _StepView:
        if not self.steps or self.steps[-1].number != number:
            self.steps.append(_StepView(number))
        return self.steps[-1]

    def apply(self, event: AgentEvent) -> None:
        if isinstance(event, TextDelta):
            self.step(event.step).text += event.text
        elif isinstance(event, ToolCallStarted):
            self.step(event.step).running.append(event)
        elif isinstance(event, ToolCallFinished):
            step = self.step(event.step)
            step.running = [c for c in step.running if c.call_id != event.run.call_id]
            step.runs.append(event.run)
        elif isinstance(event, PartialOutput):
            self.partial = event.output
        elif isinstance(event, FinalOutput):
            self.result = event.result

    def rich(self) -> RenderableType:
        if self.result is not None:
            return render_result(self.result)
        parts: list[RenderableType] = [_rich_step(step) for step in self.steps]
        if self.partial is not None:
            parts.append(Text(f"output so far: {_shorten(_as_text(self.partial))}", style="dim"))
        return Group(*parts, Text("running…", style="yellow"))

    def html(self) -> str:
        if self.result is not None:
            return result_html(self.result)
        footer = "<p><i>running…</i></p>"
        if self.partial is not None:
            footer = f"<p><i>output so far:</i></p>{_html_text(_as_text(self.partial))}{footer}"
        return _html_view(self.steps, footer)


def _plain_line(event: AgentEvent) -> str | None:
    """The line a log or a pipe gets for an event (text deltas aside: they are written as is)."""
    if isinstance(event, ToolCallStarted):
        return f"[step {event.step}] calling {_shorten(_call_text(event.name, event.arguments))}"
    if isinstance(event, ToolCallFinished):
        mark, shown = _outcome(event.run)
        return f"[step {event.step}] {event.run.name} {_MARKS[mark]}: {_shorten(shown)}"
    if isinstance(event, FinalOutput):
        output = event.result.output
        return f"output ({type(output).__name__}): {_shorten(_as_text(output))}"
    return None


def _show_as_lines(events: Iterable[AgentEvent], progress: _Progress, out: TextIO) -> None:
    in_text = False  # the model's text is written as it streams, and ended before the next line
    for event in events:
        progress.apply(event)
        if isinstance(event, TextDelta):
            if not in_text:
                out.write(f"[step {event.step}] ")
            out.write(event.text)
            out.flush()
            in_text = True
            continue
        line = _plain_line(event)
        if line is not None:
            print(("\n" if in_text else "") + line, file=out, flush=True)
            in_text = False


def _show_in_notebook(
    events: Iterable[AgentEvent], progress: _Progress, update: Callable[[str], None]
) -> None:
    shown_at = time.monotonic()
    for event in events:
        progress.apply(event)
        # Text arrives a few characters at a time: redraw for it at most ten times a second.
        if not isinstance(event, TextDelta | PartialOutput) or time.monotonic() - shown_at > 0.1:
            update(progress.html())
            shown_at = time.monotonic()
    update(progress.html())


def _notebook_display() -> Callable[[str], Callable[[str], None]] | None:
    """In a Jupyter kernel, a function that shows HTML and returns its updater; else ``None``."""
    ipython: Any = sys.modules.get("IPython")  # never imported here: no IPython, no notebook
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is None or not hasattr(shell, "kernel"):
        return None
    shown: Any = importlib.import_module("IPython.display")

    def show(first: str) -> Callable[[str], None]:
        handle = shown.display(shown.HTML(first), display_id=True)
        return lambda text: handle.update(shown.HTML(text))

    return show


def run_with_progress(
    agent: Agent[OutputT],
    task: Conversation,
    *,
    console: Console | None = None,
    plain_output: TextIO | None = None,
    **kwargs: Any,
) -> AgentResult[OutputT]:
    """Run ``agent.stream(task, **kwargs)``, show each event as it comes, and return the result
    its ``FinalOutput`` carries.

    In a notebook the view is an HTML display updated in place; in a terminal (``console``, or
    one on stdout) a rich live view; otherwise one plain line per tool call and the output,
    written to ``plain_output`` (stdout by default).
    """
    progress = _Progress()
    events = agent.stream(task, **kwargs)
    show_html = _notebook_display() if console is None else None
    console = console or Console()
    if show_html is not None:
        _show_in_notebook(events, progress, show_html(progress.html()))
    elif console.is_terminal:
        with Live(progress.rich(), console=console, refresh_per_second=8) as live:
            for event in events:
                progress.apply(event)
                live.update(progress.rich())
    else:
        _show_as_lines(events, progress, plain_output or sys.stdout)
    if progress.result is None:
        raise UsageError(
            "the agent's stream ended without a FinalOutput event; a stream's last event is "
            "always one (see byzer_agents.agents.results.AgentEvent)"
        )
    return cast(AgentResult[OutputT], progress.result)
