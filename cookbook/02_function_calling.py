"""Function calling: Byzer-LLM's date tools, called by a model and run with ``execute_tool=True``.

Run: python cookbook/02_function_calling.py [--model NAME] [--base-url URL --model NAME]

The model (by default the shipped SmolLM2-135M-Instruct with its tool-calling adapter, deployed on
the local Ray for the run and removed after it) sees the tools, answers with a call, the call is
validated against the tool's schema and run, and its result lands in ``.values``. A 135M model
gets some calls wrong: each answer is printed as it came.

The last step replays scripted replies instead of asking the model, because a real model's bad
call cannot be had on cue: it shows what the loop does with one (the call is refused before the
tool runs, every problem is sent back to the model, and the corrected call runs).
"""

from __future__ import annotations

import json

from _model import cookbook_model

from byzer_agents import LLM, ScriptedBackend, ToolCallError

# Byzer-LLM's two date functions ship as built-in tools; cookbook/01 shows how such tools are made.
from byzer_agents.tools import compute_date_range, compute_now

TOOLS = [compute_date_range, compute_now]
QUESTIONS = ["What time is it now?", "Which dates span the last three months?"]


def ask(llm: LLM, question: str) -> None:
    print(f"Q: {question}")
    try:
        (answer,) = llm.chat_oai(
            [{"role": "user", "content": question}],
            tools=TOOLS,
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
    print(f"   attempts: {answer.metadata['attempts']}")


def call(name: str, **arguments: object) -> str:
    return (
        "```json\n" + json.dumps({"tool_calls": [{"name": name, "arguments": arguments}]}) + "\n```"
    )


def replay_a_bad_call() -> None:
    backend = ScriptedBackend(
        [
            call("compute_date_range", count=3, unit="months"),  # not one of the enum's values
            call("compute_date_range", count=3, unit="month"),
        ]
    )
    llm = LLM.from_backend(backend, model="scripted")
    (answer,) = llm.chat_oai(
        [{"role": "user", "content": QUESTIONS[1]}], tools=TOOLS, execute_tool=True
    )
    # The second request holds the question, the refused answer, then what the loop sent back:
    # each call's outcome first, then the tools offered again with a request to correct.
    feedback = str(backend.requests[1].messages[2]["content"])
    print("Scripted replay of a bad call:")
    print("   sent back to the model:")
    for line in feedback.splitlines():
        print(f"     | {line}")
    print(f"   calls:  {[(call.name, call.arguments) for call in answer.tool_calls]}")
    print(f"   attempts: {answer.metadata['attempts']} (the refused call was fed back and fixed)")


def main() -> None:
    with cookbook_model("Byzer-LLM's date tools, called by a model.") as llm:
        for question in QUESTIONS:
            ask(llm, question)
    replay_a_bad_call()


if __name__ == "__main__":
    main()
