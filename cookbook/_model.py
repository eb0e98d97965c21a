"""How the cookbook scripts get a model: an OpenAI-compatible endpoint when one is configured,
otherwise canned replies, clearly labelled, so a script runs anywhere."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

from byzer_agents import LLM
from byzer_agents.llm_runtime.backends.scripted import Reply, ScriptedBackend


def model_from_args(canned_replies: Sequence[Reply], description: str) -> LLM:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--base-url", default=os.environ.get("BYZER_AGENTS_BASE_URL"))
    parser.add_argument("--model", default=os.environ.get("BYZER_AGENTS_MODEL", "default"))
    parser.add_argument("--api-key", default=os.environ.get("BYZER_AGENTS_API_KEY", "none"))
    args = parser.parse_args()
    if args.base_url:
        print(f"[model: {args.model} at {args.base_url}]")
        return LLM.from_openai(model=args.model, base_url=args.base_url, api_key=args.api_key)
    print("[model: canned replies; pass --base-url URL --model NAME to use a real endpoint]")
    return LLM.from_backend(ScriptedBackend(canned_replies), model="canned")
