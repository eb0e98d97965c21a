"""Serve deployed models over the OpenAI API, and talk to them with the official openai SDK.

Run: python cookbook/05_serve_openai_compatible.py

The same server runs from the shell as ``byzer-agents serve --port 8000``, with the key in the
environment (``BYZER_AGENTS_API_KEY``), where ``ps`` does not show it; here it runs on a thread
of this script (127.0.0.1, a port the system picks) so the example is one file.
Any OpenAI client works against it: tool calls and json_schema answers from a local model come
out of constrained decoding, so they always fit their schemas.
"""

from __future__ import annotations

import json

import openai
from _model import deployed
from pydantic import BaseModel

from byzer_agents import LLM
from byzer_agents.llm_runtime.models import default_chat_model
from byzer_agents.serve import BackgroundServer

MODEL = "cookbook-served-smollm2"
API_KEY = "sk-cookbook-local"


class City(BaseModel):
    name: str
    country: str


def main() -> None:
    llm = LLM()
    # Removed again when the script ends, also when it is interrupted (Ctrl-C).
    with (
        deployed(llm, default_chat_model(), MODEL, {"max_model_len": 2048}),
        BackgroundServer(llm, api_key=API_KEY) as server,
    ):
        print(f"serving {llm.list_models()} at {server.url}")
        client = openai.OpenAI(base_url=server.url, api_key=API_KEY)

        completion = client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "Which city is the capital of France?"}],
            temperature=0,
            max_tokens=32,
        )
        print(f"chat:   {completion.choices[0].message.content}")

        print("stream: ", end="")
        for chunk in client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "Say hello in French."}],
            max_tokens=16,
            stream=True,
        ):
            if chunk.choices and chunk.choices[0].delta.content:
                print(chunk.choices[0].delta.content, end="", flush=True)
        print()

        called = client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "What is the weather in Paris?"}],
            tools=[
                {
                    "type": "function",
                    "function": {
                        "name": "get_weather",
                        "description": "Get the current weather in a city.",
                        "parameters": {
                            "type": "object",
                            "properties": {"city": {"type": "string"}},
                            "required": ["city"],
                        },
                    },
                }
            ],
            tool_choice="required",
            temperature=0,
        )
        call = (called.choices[0].message.tool_calls or [])[0]
        print(f"tool:   {call.function.name}({json.loads(call.function.arguments)})")

        typed = client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "Paris is the capital of France."}],
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "City", "schema": City.model_json_schema()},
            },
            temperature=0,
            max_tokens=64,
        )
        print(f"typed:  {City.model_validate_json(typed.choices[0].message.content or '')!r}")

        try:
            openai.OpenAI(base_url=server.url, api_key="wrong", max_retries=0).models.list()
        except openai.AuthenticationError as refused:
            print(f"wrong key: HTTP {refused.status_code} ({refused.code})")


if __name__ == "__main__":
    main()
