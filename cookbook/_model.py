"""How the cookbook scripts get a model, and give back what they deployed.

By default a script deploys the shipped tool model (SmolLM2-135M-Instruct with the project's
tool-calling LoRA adapter) on the local Ray, and removes it when it ends, also when it is
interrupted (Ctrl-C). ``--model NAME`` uses a deployment that is already there instead (left as it
is), and ``--base-url URL --model NAME`` any OpenAI-compatible endpoint.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from byzer_agents import LLM

COOKBOOK_MODEL = "cookbook-smollm2-tools"
"""The name the scripts deploy the shipped tool model under."""


@contextmanager
def deployed(
    llm: LLM,
    model_path: Any,
    name: str,
    infer_params: Mapping[str, Any] | None = None,
    *,
    model_type: str = "custom/auto",
) -> Iterator[str]:
    """Deploy ``name`` for the length of the block, and remove it after: when the block ends, raises
    or is interrupted (KeyboardInterrupt), so a script leaves no deployment behind. A deployment of
    that name that was there before is used as it is and left alone."""
    if name in llm.list_models():
        print(f"[model: {name}, already deployed on the local Ray]")
        yield name
        return
    try:
        llm.deploy(model_path, model_type, name, dict(infer_params or {}))
        print(f"[model: deployed {name} on the local Ray]", flush=True)
        yield name
    finally:
        if llm.undeploy(name):
            print(f"undeployed {name}", flush=True)


@contextmanager
def cookbook_model(description: str) -> Iterator[LLM]:
    """Parse the script's command line and yield an LLM whose default model is the one to use."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--base-url",
        default=os.environ.get("BYZER_AGENTS_BASE_URL"),
        help="an OpenAI-compatible endpoint (needs --model)",
    )
    parser.add_argument(
        "--model",
        default=os.environ.get("BYZER_AGENTS_MODEL"),
        help="the model's name at --base-url, or a deployment on the local Ray to use",
    )
    parser.add_argument("--api-key", default=os.environ.get("BYZER_AGENTS_API_KEY", "none"))
    args = parser.parse_args()
    if args.base_url:
        if not args.model:
            parser.error("--base-url needs --model NAME")
        print(f"[model: {args.model} at {args.base_url}]")
        yield LLM.from_openai(model=args.model, base_url=args.base_url, api_key=args.api_key)
        return
    # Joins the local Ray, or starts it; calls go to the model named, found when first asked.
    llm = LLM(default_model=args.model or COOKBOOK_MODEL)
    if args.model:
        if args.model not in llm.list_models():
            parser.error(f"no deployment named {args.model!r}; deployed: {llm.list_models()}")
        print(f"[model: {args.model}, already deployed on the local Ray]")
        yield llm
        return
    from byzer_agents.models import default_tool_model

    with deployed(llm, default_tool_model(), COOKBOOK_MODEL, {"max_model_len": 2048}):
        yield llm
