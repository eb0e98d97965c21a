"""Function calling: Byzer-LLM's date tools, called by a model and run with ``execute_tool=True``.

Run: python cookbook/02_function_calling.py [--base-url URL --model NAME --api-key KEY]

The model sees the tools (natively, or in the prompt for models without tool calling), answers
with a call, the call is validated against the tool's schema, run, and its result lands in
``.values``. A bad call goes back to the model with every problem named, and is retried.
"""

from __future__ import annotations

import datetime
import json
from typing import Annotated

from _model import model_from_args
from dateutil.relativedelta import relativedelta

from byzer_agents import tool


@tool
def compute_date_range(
    count: Annotated[int, "How many units of time the range spans"],
    unit: Annotated[str, "The unit of time", {"enum": ["day", "week", "month", "year"]}],
) -> list[str]:
    """Compute the date range that ends now and spans `count` units of time."""
    now = datetime.datetime.now()
    start = now - relativedelta(**{f"{unit}s": count})
    return [start.strftime("%Y-%m-%d %H:%M:%S"), now.strftime("%Y-%m-%d %H:%M:%S")]


@tool
def compute_now() -> str:
    """Compute the current date and time."""
    return datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S")


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
