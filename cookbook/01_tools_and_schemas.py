"""Tools and typed answers: what a model sees, and what happens to a bad call.

Run: python cookbook/01_tools_and_schemas.py

Byzer-LLM's two date functions become tools with one decorator; their schemas are printed as the
OpenAI ``tools`` entries a model receives. A pydantic class becomes the schema of a typed answer.
Then a model's bad call is refused before the function runs, with every bad field named, which is
the message the chat loop sends back to the model so it can correct itself.
"""

from __future__ import annotations

import datetime
import json
from typing import Annotated

from dateutil.relativedelta import relativedelta
from pydantic import BaseModel, Field

from byzer_agents import ToolArgumentsError, function_calling_format, json_schema, tool


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


class Story(BaseModel):
    """A story the model writes."""

    title: str = Field(description="The story's title")
    body: str = Field(description="The story itself")


def section(title: str) -> None:
    print(f"\n=== {title} ===")


def main() -> None:
    section("The tools a model is offered (OpenAI `tools` entries)")
    for made in (compute_date_range, compute_now):
        print(json.dumps(made.to_openai(), indent=2, ensure_ascii=False))

    section("The schema of a typed answer: Story")
    print(json.dumps(json_schema(Story), indent=2))

    section("A good call, validated then run")
    arguments = '{"count": "2", "unit": "week"}'
    print(f"compute_date_range({arguments}) -> {compute_date_range.invoke(arguments)}")

    section("A bad call, refused before the function runs")
    try:
        compute_date_range.invoke('{"count": "two", "unit": "fortnight", "tz": "UTC"}')
    except ToolArgumentsError as error:
        print(f"refused: {error}")
        for problem in error.errors:
            print(f"  - {problem.field}: {problem.message}")

    section("The prompt a model without native tool calling receives")
    print(
        function_calling_format(
            "What was the date two weeks ago?", [compute_now, compute_date_range]
        )
    )


if __name__ == "__main__":
    main()
