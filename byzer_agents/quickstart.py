"""The main job ``make run`` shows: the embedded default end to end, printed for a person.

A local Ray cluster starts (or is joined), the shipped SmolLM2-135M-Instruct is deployed on it
(once: later runs find the deployment by name), then one tool-calling step and one typed
extraction run against it through the same loop any model gets.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["DEFAULT_NAME", "run"]

DEFAULT_NAME = "smollm2"


class Meeting(BaseModel):
    """A meeting mentioned in a text."""

    topic: str = Field(description="What the meeting is about")
    day: str = Field(description="The day of the week it takes place")
    attendees: list[str] = Field(description="The people who attend")


MEETING_TEXT = (
    "Hi team, quick reminder: the budget review is on Thursday. "
    "Alice, Bob and Chen will attend; please bring last quarter's numbers."
)


def run(console: Console) -> None:
    from byzer_agents import LLM
    from byzer_agents.llm_runtime import cluster
    from byzer_agents.llm_runtime.models import default_chat_model
    from byzer_agents.tools import compute_date_range, compute_now

    started = time.perf_counter()
    info = cluster.connect()
    where = "started" if info.started_here else "joined"
    console.rule("byzer-agents quickstart")
    console.print(f"Ray: {where} the local cluster at {info.address} (loopback only)")

    llm = LLM()
    if llm.is_model_exist(DEFAULT_NAME):
        console.print(f"model: {DEFAULT_NAME} is already deployed")
    else:
        path = default_chat_model()
        console.print(f"model: deploying {path.name} as {DEFAULT_NAME} ...")
        llm.deploy(path, "custom/auto", DEFAULT_NAME, {"max_model_len": 2048})
    meta = llm.get_meta(model=DEFAULT_NAME)
    console.print(
        f"       {meta.get('architectures')} on {meta.get('device')}, {meta.get('dtype')}, "
        f"constrained decoding: {meta.get('constrained_decoding')}"
    )

    question = "What is the date range of the last 2 weeks?"
    console.rule("a tool-calling step")
    console.print(f"user: {question}")
    (answer,) = llm.chat_oai(
        [{"role": "user", "content": question}],
        tools=[compute_date_range, compute_now],
        tool_choice=compute_date_range,
        execute_tool=True,
        model=DEFAULT_NAME,
        llm_config={"temperature": 0, "max_tokens": 128},
    )
    for call, value in zip(answer.tool_calls, answer.values, strict=True):
        console.print(f"model called: {call.name}({json.dumps(call.raw_arguments)})")
        console.print(f"tool result:  {value}")
    console.print(f"attempts: {answer.metadata['attempts']}, usage: {answer.metadata['usage']}")

    console.rule("a typed extraction")
    console.print(f"text: {MEETING_TEXT}")
    meeting = llm.extract(
        Meeting, MEETING_TEXT, model=DEFAULT_NAME, llm_config={"temperature": 0, "max_tokens": 256}
    )
    console.print(f"Meeting: {meeting!r}")
    console.rule(f"done in {time.perf_counter() - started:.1f} s")
