"""Time the agent loop's own work per step against openai-agents and pydantic-ai, with the model's
time taken out: each framework gets a model stand-in that answers at once with the same script.

The task takes three steps (model turns): the model calls ``find_city``, then ``get_weather`` on
what it found, then writes the final answer. Each framework's stand-in replies with those two tool
calls and that answer, in its own native shape, chosen from what the conversation already holds:

- ours: ``Agent(llm, tools=[...])`` on ``LLM.from_backend(ScriptedBackend)`` handing back prebuilt
  ``ChatCompletion``s (``Capabilities(native_tools=True)``), re-armed before each run;
- pydantic-ai: ``pydantic_ai.Agent(FunctionModel(reply), tools=[...])``;
- openai-agents: ``agents.Agent(model=ScriptedModel())``, a ``Model`` subclass whose
  ``get_response`` returns a ``ModelResponse``, run with ``RunConfig(tracing_disabled=True)``.

Async runs share one long-lived event loop (``loop.run_until_complete``), as in bench_loop.py.

Run: ``.venv/bin/python benchmarks/bench_agent.py``. Every path is checked, untimed, before and
after timing (the final answer, both tool results, three model turns); the script prints a table
and writes its section of ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import functools
import json
import math
import sys
import timeit
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import agents as openai_agents
from agents.items import ModelResponse as AgentsModelResponse
from agents.usage import Usage as AgentsUsage
from openai.types.responses import (
    ResponseFunctionToolCall,
    ResponseOutputMessage,
    ResponseOutputText,
)
from pydantic_ai import Agent as PydanticAgent
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

_REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(_REPO_ROOT))  # run as a script from a checkout, without installing

from results_file import RESULTS_PATH, library_versions, write_section  # noqa: E402

from byzer_agents.agents import Agent  # noqa: E402
from byzer_agents.core.protocol import Capabilities  # noqa: E402
from byzer_agents.llm import LLM  # noqa: E402
from byzer_agents.llm_runtime.backends.scripted import ScriptedBackend  # noqa: E402
from byzer_agents.types import make_completion, make_tool_call  # noqa: E402

VERSIONED = ("openai-agents", "pydantic-ai-slim", "openai", "pydantic", "pydantic-core")
SECTION_HEADING = "## Agent loop: a three-step run (bench_agent.py)"
REPEAT = 11
SECONDS_PER_REPEAT = 0.2
"""Each repeat runs the path enough times to last about this long; the best repeat counts."""
STEPS = 3

MODEL = "bench-model"
TASK = "What is the weather like in Paris?"
CITY = {"name": "Paris"}
WEATHER = {"city": "Paris, France"}
FOUND = "Paris, France"
FORECAST = "Sunny, 21 degrees in Paris, France"
FINAL = "It is sunny in Paris: 21 degrees."
USAGE = {"prompt_tokens": 40, "completion_tokens": 12, "total_tokens": 52}


def find_city(name: str) -> str:
    """Find a city by name.

    Args:
        name: The city's name, e.g. "Paris".
    """
    return FOUND if name == "Paris" else f"no city named {name}"


def get_weather(city: str) -> str:
    """Get the current weather in a city.

    Args:
        city: The city, as find_city names it.
    """
    return f"Sunny, 21 degrees in {city}"


# --- the paths timed --------------------------------------------------------------------------


@dataclasses.dataclass
class TimedPath:
    """One framework running the task: ``run`` does it once, ``check`` asserts on its result."""

    run: Callable[[], Any]
    check: Callable[[Any], None]


def ours(loop: asyncio.AbstractEventLoop) -> dict[str, TimedPath]:
    replies = [
        make_completion(
            model=MODEL,
            tool_calls=[make_tool_call(name, json.dumps(arguments), f"call_{name}")],
            usage=USAGE,
        )
        for name, arguments in (("find_city", CITY), ("get_weather", WEATHER))
    ] + [make_completion(model=MODEL, content=FINAL, usage=USAGE)]

    def agent(**agent_settings: Any) -> tuple[Agent[Any], ScriptedBackend]:
        backend = ScriptedBackend(capabilities=Capabilities(native_tools=True), model=MODEL)
        llm = LLM.from_backend(backend, model=MODEL)
        return Agent(llm, tools=[find_city, get_weather], **agent_settings), backend

    def run(agent: Agent[Any], backend: ScriptedBackend) -> Any:
        backend.add(*replies)  # one script per run; the requests it records are dropped
        backend.requests.clear()
        return agent.run(TASK)

    def run_async(agent: Agent[Any], backend: ScriptedBackend) -> Any:
        backend.add(*replies)
        backend.requests.clear()
        return loop.run_until_complete(agent.run_async(TASK))

    def check(result: Any) -> None:
        assert result.output == FINAL, result.output
        assert len(result.steps) == STEPS, result.steps
        values = [run.value for step in result.steps for run in step.tool_runs]
        assert values == [FOUND, FORECAST], values

    return {
        "ours `agent.run(task)`": TimedPath(functools.partial(run, *agent()), check),
        "ours `agent.run(task)`, `tool_timeout_s=None`": TimedPath(
            functools.partial(run, *agent(tool_timeout_s=None)), check
        ),
        "ours `await agent.run_async(task)`": TimedPath(
            functools.partial(run_async, *agent()), check
        ),
    }


def pydantic_ai_reply(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """The script, picked by how many tool results the conversation holds."""
    returned = sum(
        isinstance(part, ToolReturnPart) for message in messages for part in message.parts
    )
    if returned == 0:
        return ModelResponse(parts=[ToolCallPart("find_city", CITY, tool_call_id="call_1")])
    if returned == 1:
        return ModelResponse(parts=[ToolCallPart("get_weather", WEATHER, tool_call_id="call_2")])
    return ModelResponse(parts=[TextPart(FINAL)])


def pydantic_ai(loop: asyncio.AbstractEventLoop) -> dict[str, TimedPath]:
    agent = PydanticAgent(FunctionModel(pydantic_ai_reply), tools=[find_city, get_weather])

    def check(result: Any) -> None:
        assert result.output == FINAL, result.output
        assert sum(m.kind == "response" for m in result.all_messages()) == STEPS
        values = [
            part.content
            for message in result.all_messages()
            for part in message.parts
            if isinstance(part, ToolReturnPart)
        ]
        assert values == [FOUND, FORECAST], values

    return {
        "pydantic-ai `await agent.run(task)`": TimedPath(
            lambda: loop.run_until_complete(agent.run(TASK)), check
        )
    }


class ScriptedModel(openai_agents.Model):
    """openai-agents' model stand-in: the script, picked by the tool results the input holds."""

    async def get_response(  # type: ignore[override]
        self, system_instructions: Any, input: Any, *args: Any, **kwargs: Any
    ) -> AgentsModelResponse:
        returned = sum(
            isinstance(item, dict) and item.get("type") == "function_call_output" for item in input
        )
        usage = AgentsUsage(requests=1, input_tokens=40, output_tokens=12, total_tokens=52)
        if returned < 2:
            name, arguments = (("find_city", CITY), ("get_weather", WEATHER))[returned]
            call = ResponseFunctionToolCall(
                id=f"fc_{returned}",
                call_id=f"call_{returned}",
                name=name,
                arguments=json.dumps(arguments),
                type="function_call",
                status="completed",
            )
            return AgentsModelResponse(output=[call], usage=usage, response_id=None)
        text = ResponseOutputText(text=FINAL, type="output_text", annotations=[])
        message = ResponseOutputMessage(
            id="msg_1", content=[text], role="assistant", status="completed", type="message"
        )
        return AgentsModelResponse(output=[message], usage=usage, response_id=None)

    def stream_response(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        raise NotImplementedError("the benchmark does not stream")


def openai_agents_paths(loop: asyncio.AbstractEventLoop) -> dict[str, TimedPath]:
    agent = openai_agents.Agent(
        name="weather",
        model=ScriptedModel(),
        tools=[openai_agents.function_tool(find_city), openai_agents.function_tool(get_weather)],
    )
    run_config = openai_agents.RunConfig(tracing_disabled=True)  # its traces go to OpenAI's API

    def check(result: Any) -> None:
        assert result.final_output == FINAL, result.final_output
        assert len(result.raw_responses) == STEPS, result.raw_responses
        values = [
            item.output
            for item in result.new_items
            if isinstance(item, openai_agents.ToolCallOutputItem)
        ]
        assert values == [FOUND, FORECAST], values

    return {
        "openai-agents `await Runner.run(agent, task)`": TimedPath(
            lambda: loop.run_until_complete(
                openai_agents.Runner.run(agent, TASK, run_config=run_config)
            ),
            check,
        )
    }


# --- measuring --------------------------------------------------------------------------------


def sanity_check(paths: dict[str, TimedPath]) -> None:
    """One run per path, untimed: the right answer, tool results and number of steps."""
    for name, path in paths.items():
        try:
            path.check(path.run())
        except AssertionError as exc:
            raise AssertionError(f"{name}: wrong result, not timing it: {exc}") from exc


def best_microseconds(paths: dict[str, TimedPath]) -> dict[str, float]:
    """Per path, the best-of-REPEAT time of one run in microseconds; the paths take turns within
    each repeat, so a slow spell of the machine hits all of them."""
    sanity_check(paths)
    timers = {name: timeit.Timer(path.run) for name, path in paths.items()}
    numbers = {  # the three calibration runs are the warm-up
        name: max(1, int(SECONDS_PER_REPEAT / max(min(timer.repeat(number=1, repeat=3)), 1e-7)))
        for name, timer in timers.items()
    }
    best = dict.fromkeys(timers, math.inf)
    for repeat in range(REPEAT):
        for name, timer in timers.items():
            best[name] = min(best[name], timer.timeit(numbers[name]) / numbers[name])
        print(f"  repeat {repeat + 1}/{REPEAT} done", flush=True)
    sanity_check(paths)  # still right after thousands of runs
    for name, seconds in best.items():
        per_step = seconds * 1e6 / STEPS
        print(f"  {name:<55} {seconds * 1e6:9.0f} us per run, {per_step:7.0f} us per step")
    return {name: seconds * 1e6 for name, seconds in best.items()}


# --- reporting --------------------------------------------------------------------------------


def table(us: dict[str, float]) -> str:
    agents_us = us["openai-agents `await Runner.run(agent, task)`"]
    pydantic_us = us["pydantic-ai `await agent.run(task)`"]
    lines = [
        "| path | µs per run | µs per step | / openai-agents | / pydantic-ai |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, value in us.items():
        lines.append(
            f"| {name} | {value:.0f} | {value / STEPS:.0f} | {value / agents_us:.2f} "
            f"| {value / pydantic_us:.2f} |"
        )
    return "\n".join(lines)


def section_text(markdown_table: str, note: str) -> str:
    return f"""{SECTION_HEADING}

Command: `.venv/bin/python benchmarks/bench_agent.py`; run on {dt.date.today().isoformat()};
{library_versions(*VERSIONED)}.{note}

The same three-step task in each framework: the model calls `find_city`, then `get_weather`
on what it found, then answers in text (three model turns, two sync tool runs). Each framework
gets a model stand-in that answers at once, in its native shape, with the same script: ours a
`ScriptedBackend` handing back prebuilt `ChatCompletion`s (`Capabilities(native_tools=True)`),
pydantic-ai a `FunctionModel`, openai-agents a `Model` subclass returning a `ModelResponse`. So
no model, network or SDK time is included; what remains is each agent loop's own work per step:
building the request (tool schemas), reading and validating the calls, running the tools,
recording the steps. No tracing on any side (openai-agents: `RunConfig(tracing_disabled=True)`).
The two tools are plain sync functions: openai-agents runs them with `asyncio.to_thread`,
pydantic-ai with anyio's `to_thread.run_sync`, ours on the shared worker pool with the default
`tool_timeout_s=60` (so the limit can be kept) and inline with `tool_timeout_s=None`.

Microseconds per run and per step (a run / {STEPS}), best of {REPEAT} repeats (warmed up first);
the paths take turns within a repeat; async runs share one long-lived event loop. Before and after
timing, each path is checked, untimed, to give the final answer, both tool results and three
model turns. Ratio < 1 means ours is faster.

{markdown_table}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--note", default="", help="a sentence for RESULTS.md, e.g. the load")
    note = parser.parse_args().note
    note = f" {note}" if note else ""
    loop = asyncio.new_event_loop()
    paths = {**ours(loop), **pydantic_ai(loop), **openai_agents_paths(loop)}
    print(f"a three-step agent run in each framework, best of {REPEAT}", flush=True)
    us = best_microseconds(paths)
    loop.close()
    markdown = table(us)
    print("\n" + markdown + "\n")
    write_section(SECTION_HEADING, section_text(markdown, note))
    print(f"wrote {RESULTS_PATH.relative_to(_REPO_ROOT)}")


if __name__ == "__main__":
    main()
