"""MCP both ways: two ``@tool``s served over MCP (stdio), and a model using them through a client.

Run: python cookbook/09_mcp_tools.py [--model NAME] [--base-url URL --model NAME]

The script is its own MCP server: started with ``--serve-mcp`` it serves ``get_weather`` and
``convert_temperature`` on stdin/stdout (as ``byzer-agents mcp serve module:tools`` would, and as
Claude Desktop or any MCP host starts a server). Run plainly, it starts that server as a
subprocess, lists its tools through ``MCPClient`` (they come back as our ``Tool``s, schemas and
all), and lets the model (by default the shipped SmolLM2-135M-Instruct with its tool-calling
adapter, deployed on the local Ray for the run) call them with ``execute_tool=True``: each call is
validated here, run by the server, and its value lands in ``.values``.

The last step replays scripted replies, because a real model's failing call cannot be had on
cue: the server's tool raises, the error comes back over MCP, and the loop shows it to the model.
"""

from __future__ import annotations

import sys
from typing import Literal

from byzer_agents import LLM, ScriptedBackend, ToolCallError, tool

WEATHER = {"paris": 18.5, "tokyo": 24.0, "hangzhou": 21.0}


@tool
def get_weather(city: str) -> dict[str, object]:
    """Today's temperature in a city, in degrees Celsius."""
    if city.lower() not in WEATHER:
        raise LookupError(f"no weather for {city!r}; known: {sorted(WEATHER)}")
    return {"city": city, "celsius": WEATHER[city.lower()]}


@tool
def convert_temperature(celsius: float, to: Literal["fahrenheit", "kelvin"]) -> float:
    """Convert degrees Celsius to Fahrenheit or Kelvin."""
    return round(celsius * 9 / 5 + 32 if to == "fahrenheit" else celsius + 273.15, 2)


TOOLS = [get_weather, convert_temperature]
SERVE_FLAG = "--serve-mcp"
QUESTIONS = ["What is the weather in Paris today?", "Convert 20 degrees Celsius to Fahrenheit."]


def ask(llm: LLM, tools: object, question: str) -> None:
    print(f"Q: {question}")
    try:
        (answer,) = llm.chat_oai(
            [{"role": "user", "content": question}],
            tools=tools,
            execute_tool=True,
            llm_config={"temperature": 0, "max_tokens": 96},
        )
    except ToolCallError as error:
        print(f"   no call validated in {len(error.attempts)} attempts: {error.attempts[-1].error}")
        return
    if not answer.tool_calls:
        print(f"   answer: {answer.output!r} (no tool called)")
    print(f"   calls:  {[(call.name, call.arguments) for call in answer.tool_calls]}")
    print(f"   values: {answer.values}")
    for error in answer.tool_errors:
        print(f"   error:  {error}")


def replay_a_failing_call(tools: object) -> None:
    def calls(*made: tuple[str, dict[str, object]]) -> dict[str, object]:
        return {
            "tool_calls": [
                {"id": f"c{n}", "name": name, "arguments": arguments}
                for n, (name, arguments) in enumerate(made)
            ]
        }

    backend = ScriptedBackend(
        [
            # The first call runs on the server, which raises; the second is refused here.
            calls(("get_weather", {"city": "Atlantis"}), ("convert_temperature", {"celsius": 1})),
            calls(("convert_temperature", {"celsius": 1, "to": "kelvin"})),
        ]
    )
    llm = LLM.from_backend(backend, model="scripted")
    (answer,) = llm.chat_oai("How warm is Atlantis?", tools=tools, execute_tool=True)
    print("Scripted replay of a failing call:")
    print("   sent back to the model (the outcomes; the tools offered again are left out):")
    for message in backend.requests[1].messages[2:]:
        for line in str(message.get("content")).splitlines():
            if "Error" in line:
                print(f"     | {line}")
    print(f"   tool errors: {[str(error) for error in answer.tool_errors]}")
    print(f"   values: {answer.values}")


def main() -> None:
    from _model import cookbook_model

    from byzer_agents.mcp import MCPClient

    server = MCPClient.stdio(sys.executable, [__file__, SERVE_FLAG])
    with server as client:
        print(f"MCP server started: {client!r}")
        for served in client.tools:
            print(f"   tool {served.name}: {served.description} {served.parameters['properties']}")
        with cookbook_model("Tools served over MCP, called by a model.") as llm:
            for question in QUESTIONS:
                ask(llm, client.tools, question)
        replay_a_failing_call(client.tools)
    print(f"MCP server stopped: {server!r}")


if __name__ == "__main__":
    if sys.argv[1:] == [SERVE_FLAG]:
        from byzer_agents.mcp import serve

        serve(TOOLS)  # stdout is the protocol from here on: print nothing
    else:
        main()
