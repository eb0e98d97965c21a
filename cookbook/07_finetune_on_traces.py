"""Fine-tune on your own tool traces: the loop closed end to end, in a few minutes on a CPU.

Run: python cookbook/07_finetune_on_traces.py [--work-dir DIR] [--max-steps N]

1. An app's tool calls are recorded: the loop runs with a teacher (here a scripted one; in an
   app, a bigger model or people's approved answers) and every run lands in a TraceStore.
2. ``finetune.sft`` reads the traces back (``dataset_from_traces``) and trains a LoRA adapter for
   the shipped SmolLM2-135M-Instruct, as a job on the local Ray with a progress bar, checkpoints,
   ``metrics.jsonl`` and ``loss.png``.
3. The adapter directory is deployed as a model (it is recognised as an adapter on its base) and
   asked a question it never saw. A few steps on eight examples teach little: the point is the
   path, and the answer is printed as it came, right or not.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Annotated, Literal

from _model import deployed

from byzer_agents import LLM, ScriptedBackend, tool
from byzer_agents.core.protocol import Capabilities
from byzer_agents.types import ChatRequest

MODEL = "cookbook-tuned"


@tool
def get_weather(
    city: Annotated[str, "The city, e.g. Paris"],
    unit: Annotated[Literal["celsius", "fahrenheit"], "The temperature unit"] = "celsius",
) -> dict[str, object]:
    """Get the current weather in a city."""
    return {"city": city, "temperature": 21 if unit == "celsius" else 70, "unit": unit}


TEACHER = {
    "What's the weather in Paris?": {"city": "Paris"},
    "How warm is it in Oslo right now, in fahrenheit?": {"city": "Oslo", "unit": "fahrenheit"},
    "Is it cold in Berlin today?": {"city": "Berlin"},
    "Tell me the temperature in Madrid in celsius.": {"city": "Madrid", "unit": "celsius"},
    "Weather for Tokyo please.": {"city": "Tokyo"},
    "What's it like outside in Lisbon, in degrees fahrenheit?": {
        "city": "Lisbon",
        "unit": "fahrenheit",
    },
    "Do I need a coat in Vienna?": {"city": "Vienna"},
    "Current conditions in Rome?": {"city": "Rome"},
}
QUESTION = "What's the weather in Dublin, in fahrenheit?"


def teacher(request: ChatRequest) -> dict[str, object]:
    question = str(request.messages[-1]["content"])
    return {"tool_calls": [{"name": "get_weather", "arguments": TEACHER[question]}]}


def record_traces(store_path: Path) -> int:
    """Run every teacher question through the real loop; each run is traced."""
    # A teacher with native tool calls, as a SaaS model has: the traces keep the tools apart
    # from the messages, which is what training renders from.
    backend = ScriptedBackend(
        [teacher] * len(TEACHER), capabilities=Capabilities(native_tools=True)
    )
    llm = LLM.from_backend(backend, trace_store=store_path)
    for question in TEACHER:
        (answer,) = llm.chat_oai(
            [{"role": "user", "content": question}], tools=[get_weather], execute_tool=True
        )
        assert answer.values, f"the teacher's call for {question!r} did not run"
    return len(TEACHER)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work-dir", type=Path, default=None)
    parser.add_argument("--max-steps", type=int, default=4)
    args = parser.parse_args()
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="byzer_cookbook_07_"))
    work.mkdir(parents=True, exist_ok=True)

    store = work / "traces.db"
    store.unlink(missing_ok=True)
    print(f"recorded {record_traces(store)} runs in {store}")

    from byzer_agents import finetune

    result = finetune.sft(
        store,
        "SmolLM2-135M-Instruct",
        work / "adapter",
        method="lora",
        max_steps=args.max_steps,
        batch_size=2,
        learning_rate=1e-3,
        warmup_ratio=0,
        max_length=768,
        eval_fraction=0,
        save_steps=2,
    )
    print(
        f"trained {result.kind} ({result.method}) for {result.steps} steps in "
        f"{result.seconds:.0f} s, train loss {result.train_loss:.4f}"
    )
    print(f"loss curve: {work / 'adapter' / 'loss.png'}")

    llm = LLM()
    llm.undeploy(MODEL)  # left over from a run that was killed: it served another adapter
    # Removed when the script ends, also when it is interrupted (Ctrl-C).
    with deployed(llm, work / "adapter", MODEL, {"max_model_len": 2048}):
        meta = llm.get_meta(model=MODEL)
        print(f"deployed {MODEL}: adapter on {meta['adapter']['base']}")
        (answer,) = llm.chat_oai(
            [{"role": "user", "content": QUESTION}],
            tools=[get_weather],
            model=MODEL,
            llm_config={"temperature": 0, "max_tokens": 64},
            max_retries=0,
        )
        calls = [(call.name, call.raw_arguments) for call in answer.tool_calls]
        print(f"user: {QUESTION}")
        print(f"calls: {json.dumps(calls)}" if calls else f"answer: {answer.output!r}")
        right = calls == [("get_weather", {"city": "Dublin", "unit": "fahrenheit"})]
        print(f"verdict: {'right' if right else 'wrong'}")


if __name__ == "__main__":
    main()
