"""Function calling: Byzer-LLM's date tools, called by a model and run with ``execute_tool=True``.

Run: python cookbook/02_function_calling.py [--base-url URL --model NAME --api-key KEY]

The model sees the tools (natively, or in the prompt for models without tool calling), answers
with a call, the call is validated against the tool's schema, run, and its result lands in
``.values``. A bad call goes back to the model with every problem named, and is retried.
"""

from __future__ import annotations

import json

from _model import model_from_args

# Byzer-LLM's two date functions ship as built-in tools; cookbook/01 shows how such tools are made.
from byzer_agents.tools import compute_date_range, compute_now


def call(name: str, **arguments: object) -> str:
    return (
        "```json\n" + json.dumps({"tool_calls": [{"name": name, "arguments": arguments}]}) + "\n```"
    )


CANNED = [
    call("compute_now"),
    call("compute_date_range", count=3, unit="months"),  # a wrong enum the loop sends back...
    call("compute_date_range", count=3, unit="month"),  # ...and its fix
]


def main() -> None:
    llm = model_from_args(CANNED, "Byzer-LLM's date tools, called by a model.")
    tools = [compute_date_range, compute_now]

    (answer,) = llm.chat_oai(
        [{"role": "user", "content": "What time is it now?"}], tools=tools, execute_tool=True
    )
    print("Q: What time is it now?")
    print(f"   calls:  {[(c.name, c.arguments) for c in answer.tool_calls]}")
    print(f"   values: {answer.values}")

    (answer,) = llm.chat_oai(
        [{"role": "user", "content": "Which dates span the last three months?"}],
        tools=tools,
        execute_tool=True,
    )
    print("Q: Which dates span the last three months?")
    print(f"   calls:  {[(c.name, c.arguments) for c in answer.tool_calls]}")
    print(f"   values: {answer.values}")
    print(f"   attempts: {answer.metadata['attempts']} (a rejected call was fed back and fixed)")


if __name__ == "__main__":
    main()
