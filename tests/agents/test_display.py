"""An agent run shown to a person (byzer_agents/agents/display.py), on hand-built results and
events: no model, no agent."""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import Any

import pytest
from pydantic import BaseModel
from rich.console import Console

from byzer_agents.agents.display import (
    MAX_VALUE_CHARS,
    print_result,
    render_result,
    result_html,
    run_with_progress,
)
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


class Trip(BaseModel):
    city: str
    days: int


WEATHER = ToolRun(
    call_id="c1",
    name="get_weather",
    arguments={"city": "Paris", "unit": "celsius"},
    value="Sunny, 21 degrees",
    seconds=0.012,
)
BOOKING = ToolRun(
    call_id="c2",
    name="book_hotel",
    arguments={"city": "Paris", "nights": 3},
    error="denied by the approver: too expensive",
    denied=True,
)
LOOKUP = ToolRun(
    call_id="c3",
    name="search_web",
    arguments={"query": "<script>alert(1)</script>"},
    error="ToolExecutionError: <b>timeout</b> after 5 s",
    seconds=5.0,
)


def a_result(*, output: Any = None, tool_value: Any = "Sunny, 21 degrees") -> AgentResult[Any]:
    weather = ToolRun(**{**WEATHER.__dict__, "value": tool_value})
    steps = [
        Step(
            number=1,
            text="Let me check the weather first.",
            tool_runs=[weather, BOOKING],
            usage=Usage(input_tokens=120, output_tokens=30, requests=1, tool_calls=1),
            seconds=0.42,
        ),
        Step(
            number=2,
            text="",
            tool_runs=[LOOKUP],
            problems=["unknown tool 'fly_to'; the tools are: get_weather, book_hotel"],
            usage=Usage(input_tokens=200, output_tokens=20, requests=1, tool_calls=1),
            seconds=0.31,
        ),
        Step(
            number=3,
            text='{"city": "Paris", "days": 3}',
            usage=Usage(input_tokens=260, output_tokens=15, requests=1),
            seconds=0.2,
        ),
    ]
    usage = Usage(input_tokens=580, output_tokens=65, requests=3, tool_calls=2)
    return AgentResult(
        output=output if output is not None else Trip(city="Paris", days=3),
        steps=steps,
        messages=[{"role": "system", "content": "Plan trips."}],
        usage=usage,
    )


def rich_text(renderable: Any) -> str:
    console = Console(record=True, width=120, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


# --- HTML -------------------------------------------------------------------------------------


def test_html_shows_each_step_with_its_tool_calls_and_outcomes() -> None:
    page = result_html(a_result())
    for shown in ("Step 1", "Step 2", "Step 3", "get_weather", "book_hotel", "search_web"):
        assert shown in page
    assert "city=&quot;Paris&quot;" in page and "nights=3" in page
    assert "Sunny, 21 degrees" in page
    assert "denied by the approver: too expensive" in page and "denied" in page
    assert "Let me check the weather first." in page
    assert "unknown tool &#x27;fly_to&#x27;" in page  # a problem sent back
    assert "0.42 s" in page and "120 in / 30 out tokens" in page
    assert "Trip" in page and "580 in / 65 out tokens" in page


def test_html_escapes_what_the_model_and_tools_wrote() -> None:
    page = result_html(a_result())
    assert "<script>" not in page and "<b>timeout" not in page
    assert "&lt;script&gt;" in page and "&lt;b&gt;timeout&lt;/b&gt;" in page


def test_html_cuts_long_values_and_says_how_long_they_were() -> None:
    page = result_html(a_result(tool_value="x" * 5000))
    assert "x" * MAX_VALUE_CHARS in page and "x" * (MAX_VALUE_CHARS + 1) not in page
    assert "(5000 characters in all)" in page


def test_html_shows_a_structured_tool_value_as_json() -> None:
    page = result_html(a_result(tool_value={"temp": 21, "sky": "clear"}))
    assert "{&quot;temp&quot;: 21, &quot;sky&quot;: &quot;clear&quot;}" in page


# --- rich -------------------------------------------------------------------------------------


def test_rich_rendering_shows_the_steps_calls_and_output() -> None:
    text = rich_text(render_result(a_result()))
    assert text.index("Step 1") < text.index("Step 2") < text.index("Step 3")
    assert 'get_weather(city="Paris", unit="celsius")' in text
    assert "⛔ denied" in text and "too expensive" in text
    assert "✗" in text and "<b>timeout</b>" in text  # a terminal shows the text as written
    assert "sent back: unknown tool 'fly_to'" in text
    assert "Output: Trip" in text and "Trip(city='Paris', days=3)" in text


def test_print_result_writes_to_the_console_given() -> None:
    console = Console(record=True, width=120, file=io.StringIO())
    print_result(a_result(), console=console)
    assert "get_weather" in console.export_text()


def test_rich_rendering_leaves_markup_in_values_alone() -> None:
    result = a_result(output="[bold]not markup[/bold]")
    assert "[bold]not markup[/bold]" in rich_text(render_result(result))


# --- a run in progress ------------------------------------------------------------------------


class FakeAgent:
    """Stands for an Agent: ``stream`` hands back the events given, and records its call."""

    def __init__(self, events: Iterable[AgentEvent]) -> None:
        self.events = list(events)
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def stream(self, task: str, /, **kwargs: Any) -> Iterable[AgentEvent]:
        self.calls.append((task, kwargs))
        return iter(self.events)


def run_events(result: AgentResult[Any]) -> list[AgentEvent]:
    return [
        TextDelta(step=1, text="Let me check "),
        TextDelta(step=1, text="the weather first."),
        ToolCallStarted(step=1, call_id="c1", name="get_weather", arguments=WEATHER.arguments),
        ToolCallFinished(step=1, run=WEATHER),
        ToolCallFinished(step=1, run=BOOKING),
        ToolCallStarted(step=2, call_id="c3", name="search_web", arguments=LOOKUP.arguments),
        ToolCallFinished(step=2, run=LOOKUP),
        PartialOutput(step=3, output={"city": "Par"}),
        TextDelta(step=3, text='{"city": "Paris", "days": 3}'),
        FinalOutput(result=result),
    ]


def test_progress_in_plain_output_returns_the_final_result() -> None:
    result = a_result()
    agent = FakeAgent(run_events(result))
    out = io.StringIO()
    console = Console(file=io.StringIO(), force_terminal=False)
    returned = run_with_progress(agent, "Plan Paris", console=console, plain_output=out, deps=7)
    assert returned is result
    assert agent.calls == [("Plan Paris", {"deps": 7})]
    lines = out.getvalue().splitlines()
    assert lines[0] == "[step 1] Let me check the weather first."
    assert lines[1] == '[step 1] calling get_weather(city="Paris", unit="celsius")'
    assert lines[2] == "[step 1] get_weather ✓: Sunny, 21 degrees"
    assert lines[3] == "[step 1] book_hotel ⛔ denied: denied by the approver: too expensive"
    assert lines[-1] == "output (Trip): Trip(city='Paris', days=3)"


def test_progress_in_a_terminal_ends_on_the_whole_result() -> None:
    result = a_result()
    console = Console(record=True, width=120, file=io.StringIO(), force_terminal=True)
    assert run_with_progress(FakeAgent(run_events(result)), "Plan Paris", console=console) is result
    shown = console.export_text()
    assert "Output: Trip" in shown and "search_web" in shown


def test_progress_without_a_final_output_is_an_error() -> None:
    events = run_events(a_result())[:-1]
    with pytest.raises(UsageError, match="without a FinalOutput"):
        run_with_progress(
            FakeAgent(events),
            "Plan",
            console=Console(file=io.StringIO()),
            plain_output=io.StringIO(),
        )


def test_progress_in_a_notebook_updates_one_display(monkeypatch: pytest.MonkeyPatch) -> None:
    from byzer_agents.agents import display

    shown: list[str] = []

    def show(first: str) -> Any:
        shown.append(first)
        return shown.append

    monkeypatch.setattr(display, "_notebook_display", lambda: show)
    result = a_result()
    assert display.run_with_progress(FakeAgent(run_events(result)), "Plan Paris") is result
    assert "running…" in shown[0] and "get_weather" in shown[4]
    assert shown[-1] == result_html(result)


def test_progress_of_a_real_agent_on_a_scripted_model() -> None:
    import json

    from byzer_agents import LLM
    from byzer_agents.agents.agent import Agent
    from byzer_agents.core.protocol import Capabilities
    from byzer_agents.llm_runtime.backends.scripted import ScriptedBackend
    from byzer_agents.types import make_completion, make_tool_call

    def get_weather(city: str) -> str:
        """Get the weather in a city."""
        return f"Sunny in {city}"

    call = make_tool_call("get_weather", json.dumps({"city": "Paris"}), "call_1")
    backend = ScriptedBackend(
        [
            make_completion(model="scripted", tool_calls=[call]),
            make_completion(model="scripted", content='{"city": "Paris", "days": 2}'),
        ],
        capabilities=Capabilities(native_tools=True, json_schema_output=True),
    )
    agent = Agent(
        LLM.from_backend(backend, model="scripted"), tools=[get_weather], output_type=Trip
    )
    out = io.StringIO()
    console = Console(file=io.StringIO(), force_terminal=False)
    result = run_with_progress(agent, "Plan Paris", console=console, plain_output=out)
    assert result.output == Trip(city="Paris", days=2)
    assert '[step 1] calling get_weather(city="Paris")' in out.getvalue()
    assert "[step 1] get_weather ✓: Sunny in Paris" in out.getvalue()
    assert "get_weather" in result_html(result) and "Sunny in Paris" in result_html(result)
