"""Eight tiny tool-calling chats and the settings that train on them in seconds: shared by the
trainer, job, distributed and CLI tests (a few steps each, short sequences)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from byzer_agents.finetune.examples import ChatExample, DatasetSplit

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
CITIES = ("Paris", "Lima", "Oslo", "Cairo", "Quito", "Perth", "Seoul", "Dakar")

TINY_SETTINGS: dict[str, Any] = {
    "max_steps": 2,
    "batch_size": 2,
    "max_length": 256,
    "logging_steps": 1,
    "save_steps": 1,
    "eval_fraction": 0.0,
    "lora_r": 4,
    "cpus_per_worker": 0.5,
}
"""Two steps of two short chats, a log and a checkpoint at every step, no eval split."""


def tiny_records() -> list[dict[str, Any]]:
    """The chats in OpenAI's fine-tuning form."""
    return [
        {
            "messages": [
                {"role": "user", "content": f"What is the weather in {city}?"},
                {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "id": f"call_{number}",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": {"city": city}},
                        }
                    ],
                },
            ],
            "tools": [WEATHER_TOOL],
        }
        for number, city in enumerate(CITIES)
    ]


def tiny_split() -> DatasetSplit:
    return DatasetSplit(train=tuple(ChatExample.from_openai(r) for r in tiny_records()))


def write_tiny_jsonl(path: Path) -> Path:
    path.write_text("".join(json.dumps(record) + "\n" for record in tiny_records()))
    return path
