"""Time the chat loop's own work for one call (render, parse, validate, execute, trace) against two
peers, with the model's time taken out: every reply is canned and served in-process.

Two ways of serving the canned replies:

- a ``ScriptedBackend`` handing our loop a ready ``ChatCompletion`` (ours only: the loop alone);
- the ``openai`` SDK over an ``httpx2.MockTransport`` answering chat-completions JSON, so each
  library pays the same SDK cost (request building, JSON encoding and decoding, response models).
  This is the path for comparisons with openai-agents (one agent turn that calls a tool) and with
  instructor (a typed answer).

Run: ``.venv/bin/python benchmarks/bench_loop.py``. It checks, outside the timed code, that every
path produced the right tool result or Story (a broken path cannot give a fast number), prints
markdown tables and writes its section of ``benchmarks/RESULTS.md``.

Our ``OpenAIBackend`` and the peers' SDK clients all talk to the same in-process mock transport
(``http_client=`` / ``async_http_client=``), so no timing includes a network.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import functools
import json
import math
import sys
import tempfile
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2
import instructor
import openai
from agents import Agent, RunConfig, Runner, ToolCallOutputItem, function_tool
from agents.models.openai_chatcompletions import OpenAIChatCompletionsModel
from pydantic import BaseModel

_REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(_REPO_ROOT))  # run as a script from a checkout, without installing

from results_file import RESULTS_PATH, library_versions, write_section  # noqa: E402

from byzer_agents.core.protocol import Capabilities  # noqa: E402
from byzer_agents.llm import LLM  # noqa: E402
from byzer_agents.llm_runtime.backends.openai_compatible import OpenAIBackend  # noqa: E402
from byzer_agents.llm_runtime.backends.scripted import ScriptedBackend  # noqa: E402
from byzer_agents.prompts import json_schema  # noqa: E402
from byzer_agents.tools import tool  # noqa: E402
from byzer_agents.traces import TraceStore  # noqa: E402
from byzer_agents.types import make_completion, make_tool_call  # noqa: E402

VERSIONED = ("openai", "httpx2", "openai-agents", "instructor", "pydantic", "pydantic-core")
SECTION_HEADING = "## Chat loop: one call with one tool (bench_loop.py)"
REPEAT = 11
SECONDS_PER_REPEAT = 0.1
"""Each repeat runs the statement enough times to last about this long; the best repeat counts."""

MODEL = "bench-model"
BASE_URL = "http://canned.invalid/v1"  # never reached: the mock transport answers in-process
API_KEY = "sk-bench"
PROMPT = "What is the weather in Paris, in celsius?"
ARGUMENTS = {"city": "Paris", "unit": "celsius"}
EXPECTED_WEATHER = "Sunny, 21 degrees celsius in Paris"
FINAL_TEXT = "It is sunny in Paris, 21 degrees."


# --- the tool, the typed answer, and the canned replies ---------------------------------------


def get_weather(city: str, unit: str = "celsius") -> str:
    """Get the current weather in a city.

    Args:
        city: Name of the city, e.g. "Paris".
        unit: Temperature unit of the answer, "celsius" or "fahrenheit".
    """
    return f"Sunny, 21 degrees {unit} in {city}"


class Character(BaseModel):
    name: str
    role: str


class Story(BaseModel):
    """A story, as described in a text."""

    title: str
    author: str
    year: int
    genres: list[str]
    characters: list[Character]


STORY_TEXT = (
    "Mara Quinn's 1998 novel The Lighthouse Keeper, a family saga and sea story, follows Elin, "
    "who keeps the light, and her brother Tomas, a fisherman."
)
STORY = Story(
    title="The Lighthouse Keeper",
    author="Mara Quinn",
    year=1998,
    genres=["family saga", "sea story"],
    characters=[Character(name="Elin", role="keeper"), Character(name="Tomas", role="fisherman")],
)
STORY_JSON = STORY.model_dump_json()


def completion_json(message: dict[str, Any], finish_reason: str) -> bytes:
    """The body of a chat-completions answer holding ``message``."""
    return json.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": MODEL,
            "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
            "usage": {"prompt_tokens": 40, "completion_tokens": 12, "total_tokens": 52},
        }
    ).encode()


def tool_call_json(name: str, arguments: str) -> bytes:
    call = {"id": "call_bench1", "type": "function"}
    call["function"] = {"name": name, "arguments": arguments}  # type: ignore[assignment]
    message = {"role": "assistant", "content": None, "tool_calls": [call]}
    return completion_json(message, "tool_calls")


WEATHER_CALL_BODY = tool_call_json("get_weather", json.dumps(ARGUMENTS))
FINAL_TEXT_BODY = completion_json({"role": "assistant", "content": FINAL_TEXT}, "stop")
STORY_TEXT_BODY = completion_json({"role": "assistant", "content": STORY_JSON}, "stop")
STORY_CALL_BODY = tool_call_json("Story", STORY_JSON)


def weather_reply(request_body: bytes) -> bytes:
    # An agent turn continues after the tool result: answer it with the final text.
    return FINAL_TEXT_BODY if b'"tool_call_id"' in request_body else WEATHER_CALL_BODY


def story_reply(request_body: bytes) -> bytes:
    # instructor's TOOLS mode offers the answer as a tool; the other modes ask for JSON content.
    return STORY_CALL_BODY if b'"tools"' in request_body else STORY_TEXT_BODY


class CannedServer:
    """Chat-completions answers served by an in-process transport; counts the requests."""

    def __init__(self, reply: Callable[[bytes], bytes]) -> None:
        self._reply = reply
        self.requests = 0

    def _handle(self, request: httpx2.Request) -> httpx2.Response:
        self.requests += 1
        return httpx2.Response(
            200, content=self._reply(request.content), headers={"content-type": "application/json"}
        )

    def http_client(self) -> httpx2.Client:
        return httpx2.Client(transport=httpx2.MockTransport(self._handle))

    def async_http_client(self) -> httpx2.AsyncClient:
        return httpx2.AsyncClient(transport=httpx2.MockTransport(self._handle))

    def client(self) -> openai.OpenAI:
        return openai.OpenAI(api_key=API_KEY, base_url=BASE_URL, http_client=self.http_client())

    def async_client(self) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            api_key=API_KEY, base_url=BASE_URL, http_client=self.async_http_client()
        )


# --- the paths timed --------------------------------------------------------------------------


@dataclasses.dataclass
class TimedPath:
    """One way of making the call: ``call`` makes it once, ``check`` asserts on its result."""

    call: Callable[[], Any]
    check: Callable[[Any], None]
    server: CannedServer | None = None
    """The canned server it talks to, if any, to check how many model requests one call makes."""
    requests_per_call: int = 0


def check_weather_response(responses: Any) -> None:
    (response,) = responses
    assert response.values == [EXPECTED_WEATHER], response.values
    assert [call.arguments for call in response.tool_calls] == [ARGUMENTS], response.tool_calls


def check_story(value: Any) -> None:
    # instructor answers with a subclass of the response model, which pydantic's == tells apart.
    assert isinstance(value, Story) and value.model_dump() == STORY.model_dump(), value


def check_story_schema(schema: dict[str, Any]) -> None:
    assert sorted(schema["properties"]) == sorted(Story.model_fields), schema


def scripted_llm(
    *, trace_store: TraceStore | None = None, tool_timeout_s: float | None = 60.0
) -> tuple[LLM, ScriptedBackend]:
    backend = ScriptedBackend(
        capabilities=Capabilities(native_tools=True, json_schema_output=True), model=MODEL
    )
    llm = LLM.from_backend(
        backend, model=MODEL, trace_store=trace_store, tool_timeout_s=tool_timeout_s
    )
    return llm, backend


SCRIPTED_DEFAULT = "`chat_oai(tools=[get_weather])`"
SCRIPTED_DEFAULT_TRACED = "`chat_oai(tools=[get_weather])`, traced"
SCRIPTED_PREBUILT = "prebuilt `tool(get_weather)`"
SCRIPTED_LEAN = "prebuilt `tool(get_weather)`, `tool_timeout_s=None`"
SCRIPTED_LEAN_TRACED = "prebuilt `tool(get_weather)`, `tool_timeout_s=None`, traced"
SCRIPTED_EXTRACT = "`extract(Story, text)`"
SCRIPTED_SCHEMA = "of which `json_schema(Story)` (cached, then copied)"


def scripted_paths(store: TraceStore) -> dict[str, TimedPath]:
    """Ours on a ScriptedBackend handing back a prebuilt ChatCompletion: the loop alone."""
    weather = make_completion(
        model=MODEL,
        tool_calls=[make_tool_call("get_weather", json.dumps(ARGUMENTS), "call_bench1")],
        usage={"prompt_tokens": 40, "completion_tokens": 12, "total_tokens": 52},
    )
    story = make_completion(model=MODEL, content=STORY_JSON)
    prebuilt = tool(get_weather)
    messages = [{"role": "user", "content": PROMPT}]

    def chat(llm: LLM, backend: ScriptedBackend, tools: list[Any]) -> Any:
        backend.add(weather)  # one reply per call; the requests it records are dropped
        backend.requests.clear()
        return llm.chat_oai(messages, tools=tools, execute_tool=True)

    def extract(llm: LLM, backend: ScriptedBackend) -> Any:
        backend.add(story)
        backend.requests.clear()
        return llm.extract(Story, STORY_TEXT)

    traced = functools.partial(check_traced, store)
    return {
        SCRIPTED_DEFAULT: TimedPath(
            call=functools.partial(chat, *scripted_llm(), [get_weather]),
            check=check_weather_response,
        ),
        SCRIPTED_DEFAULT_TRACED: TimedPath(
            call=functools.partial(chat, *scripted_llm(trace_store=store), [get_weather]),
            check=traced,
        ),
        SCRIPTED_PREBUILT: TimedPath(
            call=functools.partial(chat, *scripted_llm(), [prebuilt]),
            check=check_weather_response,
        ),
        SCRIPTED_LEAN: TimedPath(
            call=functools.partial(chat, *scripted_llm(tool_timeout_s=None), [prebuilt]),
            check=check_weather_response,
        ),
        SCRIPTED_LEAN_TRACED: TimedPath(
            call=functools.partial(
                chat, *scripted_llm(trace_store=store, tool_timeout_s=None), [prebuilt]
            ),
            check=traced,
        ),
        SCRIPTED_EXTRACT: TimedPath(
            call=functools.partial(extract, *scripted_llm()), check=check_story
        ),
        SCRIPTED_SCHEMA: TimedPath(
            call=functools.partial(json_schema, Story), check=check_story_schema
        ),
    }


def check_traced(store: TraceStore, responses: Any) -> None:
    check_weather_response(responses)
    run_id = responses[0].metadata["run_id"]
    run = store.run(run_id)
    assert run is not None and run.status == "ok", run
    kinds = [(event.kind, event.status) for event in store.events(run_id)]
    assert kinds == [("model_call", "ok"), ("tool_call", "ok")], kinds


def sdk_backend(server: CannedServer) -> OpenAIBackend:
    """Our OpenAIBackend (what ``LLM.from_openai`` builds) with SDK clients over ``server``."""
    return OpenAIBackend(
        model=MODEL,
        base_url=BASE_URL,
        api_key=API_KEY,
        http_client=server.http_client(),
        async_http_client=server.async_http_client(),
    )


def tool_call_paths(
    loop: asyncio.AbstractEventLoop,
) -> tuple[dict[str, TimedPath], dict[str, TimedPath]]:
    """Ours and openai-agents, each over the SDK and the mock transport."""
    server = CannedServer(weather_reply)
    backend = sdk_backend(server)
    llm = LLM.from_backend(backend, model=MODEL)
    bare = LLM.from_backend(backend, model=MODEL, tool_timeout_s=None)
    prebuilt = tool(get_weather)
    messages = [{"role": "user", "content": PROMPT}]

    def chat(llm: LLM, tools: list[Any]) -> Any:
        return llm.chat_oai(messages, tools=tools, execute_tool=True)

    def achat() -> Any:
        return loop.run_until_complete(
            llm.achat_oai(messages, tools=[get_weather], execute_tool=True)
        )

    ours = {
        "`chat_oai(tools=[get_weather])`": TimedPath(
            call=functools.partial(chat, llm, [get_weather]), check=check_weather_response
        ),
        "prebuilt `tool(get_weather)`": TimedPath(
            call=functools.partial(chat, llm, [prebuilt]), check=check_weather_response
        ),
        "prebuilt, `tool_timeout_s=None`": TimedPath(
            call=functools.partial(chat, bare, [prebuilt]), check=check_weather_response
        ),
        "`achat_oai(tools=[get_weather])`": TimedPath(call=achat, check=check_weather_response),
    }
    for path in ours.values():
        path.server, path.requests_per_call = server, 1

    agent_server = CannedServer(weather_reply)
    model = OpenAIChatCompletionsModel(model=MODEL, openai_client=agent_server.async_client())
    weather_tool = function_tool(get_weather)
    run_config = RunConfig(tracing_disabled=True)  # its traces go to OpenAI's API by default
    continues = Agent(name="weather", tools=[weather_tool], model=model)
    stops = Agent(
        name="weather", tools=[weather_tool], model=model, tool_use_behavior="stop_on_first_tool"
    )

    def turn(agent: Agent[Any]) -> Any:
        return loop.run_until_complete(Runner.run(agent, PROMPT, run_config=run_config))

    def check_turn(final_output: str, result: Any) -> None:
        outputs = [item.output for item in result.new_items if isinstance(item, ToolCallOutputItem)]
        assert outputs == [EXPECTED_WEATHER], outputs
        assert result.final_output == final_output, result.final_output

    peers = {
        "turn": TimedPath(
            call=functools.partial(turn, continues),
            check=functools.partial(check_turn, FINAL_TEXT),
            server=agent_server,
            requests_per_call=2,
        ),
        "stop_on_first_tool": TimedPath(
            call=functools.partial(turn, stops),
            check=functools.partial(check_turn, EXPECTED_WEATHER),
            server=agent_server,
            requests_per_call=1,
        ),
    }
    return ours, peers


def extraction_paths(loop: asyncio.AbstractEventLoop) -> dict[str, TimedPath]:
    server = CannedServer(story_reply)
    llm = LLM.from_backend(sdk_backend(server), model=MODEL)
    messages = [{"role": "user", "content": STORY_TEXT}]

    def instructor_call(mode: instructor.Mode) -> Callable[[], Any]:
        client = instructor.from_openai(server.client(), mode=mode)
        return functools.partial(
            client.chat.completions.create, model=MODEL, response_model=Story, messages=messages
        )

    paths = {
        "ours": TimedPath(
            call=functools.partial(llm.extract, Story, STORY_TEXT), check=check_story
        ),
        "instructor JSON_SCHEMA": TimedPath(
            call=instructor_call(instructor.Mode.JSON_SCHEMA), check=check_story
        ),
        "instructor TOOLS": TimedPath(
            call=instructor_call(instructor.Mode.TOOLS), check=check_story
        ),
    }
    for path in paths.values():
        path.server, path.requests_per_call = server, 1
    return paths


# --- measuring --------------------------------------------------------------------------------


def sanity_check(paths: dict[str, TimedPath]) -> None:
    """One call per path, untimed: the right result, and the expected number of model requests."""
    for name, path in paths.items():
        before = path.server.requests if path.server is not None else 0
        try:
            path.check(path.call())
        except AssertionError as exc:
            raise AssertionError(f"{name}: wrong result, not timing it: {exc}") from exc
        if path.server is not None:
            made = path.server.requests - before
            assert made == path.requests_per_call, f"{name}: {made} model requests per call"


def best_microseconds(paths: dict[str, TimedPath]) -> dict[str, float]:
    """Per path, the best-of-REPEAT time of one call in microseconds.

    The paths take turns within each repeat, so a slow spell of the machine hits all of them
    rather than whichever happened to be running; each repeat lasts about SECONDS_PER_REPEAT.
    """
    sanity_check(paths)
    timers = {name: timeit.Timer(path.call) for name, path in paths.items()}
    numbers = {  # the three calibration calls are the warm-up
        name: max(1, int(SECONDS_PER_REPEAT / max(min(timer.repeat(number=1, repeat=3)), 1e-7)))
        for name, timer in timers.items()
    }
    best = dict.fromkeys(timers, math.inf)
    for _ in range(REPEAT):
        for name, timer in timers.items():
            best[name] = min(best[name], timer.timeit(numbers[name]) / numbers[name])
    sanity_check(paths)  # still right after thousands of calls
    for name, seconds in best.items():
        print(f"  {name:<55} {seconds * 1e6:9.1f} us", flush=True)
    return {name: seconds * 1e6 for name, seconds in best.items()}


# --- reporting --------------------------------------------------------------------------------


def scripted_table(us: dict[str, float]) -> str:
    lines = ["| ours, scripted backend | µs per call |", "|---|---:|"]
    lines += [f"| {name} | {value:.0f} |" for name, value in us.items()]
    return "\n".join(lines)


def tool_call_table(ours: dict[str, float], peers: dict[str, float]) -> str:
    turn, stop = peers["turn"], peers["stop_on_first_tool"]
    lines = [
        f"| ours, over the SDK mock (1 model call) | ours µs | ours / agents per turn "
        f"({turn:.0f} µs, 2 model calls) | ours / agents per model call ({turn / 2:.0f} µs) "
        f"| ours / agents `stop_on_first_tool` ({stop:.0f} µs, 1 model call) |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, value in ours.items():
        lines.append(
            f"| {name} | {value:.0f} | {value / turn:.2f} | {value / (turn / 2):.2f} "
            f"| {value / stop:.2f} |"
        )
    return "\n".join(lines)


def extraction_table(us: dict[str, float]) -> str:
    lines = [
        "| `Story` from a text, over the SDK mock | µs per call | ours / this |",
        "|---|---:|---:|",
    ]
    for name, value in us.items():
        label = "ours `extract(Story, text)`" if name == "ours" else name
        lines.append(f"| {label} | {value:.0f} | {us['ours'] / value:.2f} |")
    return "\n".join(lines)


def section_text(scripted: dict[str, float], tables: list[str]) -> str:
    trace_default = scripted[SCRIPTED_DEFAULT_TRACED] - scripted[SCRIPTED_DEFAULT]
    trace_lean = scripted[SCRIPTED_LEAN_TRACED] - scripted[SCRIPTED_LEAN]
    tool_build = scripted[SCRIPTED_DEFAULT] - scripted[SCRIPTED_PREBUILT]
    thread_pool = scripted[SCRIPTED_PREBUILT] - scripted[SCRIPTED_LEAN]
    scripted_md, tool_md, extraction_md = tables
    return f"""{SECTION_HEADING}

Command: `.venv/bin/python benchmarks/bench_loop.py`; run on {dt.date.today().isoformat()};
{library_versions(*VERSIONED)}.

Microseconds per call, best of {REPEAT} repeats (warmed up first); the paths take turns within a
repeat. Every reply is canned and served in-process, so no model and no network time is included;
what remains is each library's own work. Before and after timing, each path is checked, untimed,
to return the right tool result or `Story` with the expected number of model requests.

**Ours alone**, on a `ScriptedBackend` (`Capabilities(native_tools=True)`) that hands back a
prebuilt `ChatCompletion` with one `get_weather` call: building the request (tool schema,
`tool_choice`), parsing and validating the call, running the tool, building the `LLMResponse`, and,
when traced, writing the run, the model call and the tool call to a SQLite `TraceStore` in a temp
dir. Not included: building a completion from JSON (the reply is ready-made). Each call also
re-arms the script (`backend.add`, `requests.clear()`: well under a microsecond).

{scripted_md}

Where the time goes: passing the function rather than a prebuilt `Tool` costs {tool_build:.0f} µs
(a tool made from a plain function is built once and cached, so this is a lookup); the default
`tool_timeout_s=60` runs the tool on the shared worker pool so the limit can be kept, which costs
{thread_pool:.0f} µs against calling it inline with `tool_timeout_s=None`; the lean path takes
{scripted[SCRIPTED_LEAN]:.0f} µs. Tracing adds {trace_default:.0f} µs per call with the defaults
and {trace_lean:.0f} µs on the lean path (redaction of request and response, then four SQLite
writes committed before the call returns). `extract` spends {scripted[SCRIPTED_SCHEMA]:.0f} of its
{scripted[SCRIPTED_EXTRACT]:.0f} µs in `json_schema(Story)` (cached; a deep copy per call).

**Tool call, against openai-agents**, both through the `openai` SDK over an
`httpx2.MockTransport` answering chat-completions JSON (so both pay the SDK's request building,
JSON encoding and response parsing). Ours: `chat_oai(..., tools=[...], execute_tool=True)` on our
`OpenAIBackend` (what `LLM.from_openai` builds, given `http_client=` over the mock): one model
call. openai-agents: `Runner.run(agent, prompt)` with
`RunConfig(tracing_disabled=True)` on an `OpenAIChatCompletionsModel` over an `AsyncOpenAI` client,
driven with `loop.run_until_complete` on one long-lived event loop; the turn makes two model calls
(the tool call, then the final text after the tool result), so the table also divides it by two.
With `tool_use_behavior="stop_on_first_tool"` the agent stops after the tool, in one model call,
like ours. openai-agents runs the sync tool with `asyncio.to_thread` (the loop's reused thread
pool). Our `achat_oai` runs on the same event loop. Neither side traces here.

{tool_md}

**Typed answer, against instructor**, both over the same SDK mock with the same canned JSON reply.
Ours: `extract(Story, text)` (renders the extraction prompt, sends `response_format` json_schema,
validates the content). instructor: `instructor.from_openai(client, mode=...)`, then
`client.chat.completions.create(model=..., response_model=Story, messages=[text])`; in
`JSON_SCHEMA` mode the request and reply are shaped as ours; in `TOOLS` mode (its default) the
reply is a `Story` tool call with the same JSON as arguments. Ratio < 1 means ours is faster.

{extraction_md}
"""


def main() -> None:
    loop = asyncio.new_event_loop()
    with tempfile.TemporaryDirectory() as tmp, TraceStore(Path(tmp) / "traces.db") as store:
        print(f"ours on a scripted backend, best of {REPEAT}", flush=True)
        scripted = best_microseconds(scripted_paths(store))
        ours_paths, peer_paths = tool_call_paths(loop)
        print("tool call over the SDK mock: ours and openai-agents", flush=True)
        timed = best_microseconds({**{f"ours {k}": v for k, v in ours_paths.items()}, **peer_paths})
        print("typed answer over the SDK mock: ours and instructor", flush=True)
        extraction = best_microseconds(extraction_paths(loop))
    loop.close()
    ours = {name: timed[f"ours {name}"] for name in ours_paths}
    peers = {name: timed[name] for name in peer_paths}
    tables = [scripted_table(scripted), tool_call_table(ours, peers), extraction_table(extraction)]
    print("\n" + "\n\n".join(tables) + "\n")
    write_section(SECTION_HEADING, section_text(scripted, tables))
    print(f"wrote {RESULTS_PATH.relative_to(_REPO_ROOT)}")


if __name__ == "__main__":
    main()
