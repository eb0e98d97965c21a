"""``byzer-agents deploy``, ``undeploy``, ``list``, ``meta`` and ``chat``: models on the local Ray
cluster, and talking to them."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from byzer_agents.cli.group import console, fail, new_llm, running_llm

__all__ = ["chat", "deploy", "list_models", "meta", "undeploy"]


def _params(pairs: list[str]) -> dict[str, str]:
    params = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator or not key:
            raise typer.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--param")
        params[key.strip()] = value.strip()
    return params


_Name = Annotated[str, typer.Argument(metavar="NAME", help="The deployment's name")]


def deploy(
    model_path: Annotated[
        str,
        typer.Argument(
            metavar="PATH",
            help="A model directory, a GGUF file or a LoRA adapter directory; 'default' for the "
            "shipped SmolLM2",
        ),
    ],
    name: Annotated[
        str, typer.Option(metavar="NAME", help="The name to deploy as (Byzer-LLM's udf_name)")
    ],
    model_type: Annotated[
        str,
        typer.Option(
            "--type",
            metavar="TYPE",
            help="custom/auto (a local model), or saas/<provider> (no PATH needed)",
        ),
    ] = "custom/auto",
    workers: Annotated[int, typer.Option(min=1, metavar="N", help="Workers (replicas)")] = 1,
    cpus: Annotated[float, typer.Option(min=0, metavar="N", help="CPUs per worker")] = 0.5,
    gpus: Annotated[float, typer.Option(min=0, metavar="N", help="GPUs per worker")] = 0.0,
    param: Annotated[
        list[str] | None,
        typer.Option(metavar="KEY=VALUE", help="An infer_params entry (repeat for several)"),
    ] = None,
) -> None:
    """Deploy a model on Ray under NAME (the cluster is started if none runs)."""
    if model_path == "default":
        from byzer_agents.llm_runtime.models import default_chat_model

        model_path = str(default_chat_model())
    new_llm().deploy(
        model_path,
        model_type,
        name,
        _params(param or []),
        num_workers=workers,
        cpus_per_worker=cpus,
        gpus_per_worker=gpus,
    )
    console.print(f"deployed {name} ({workers} worker(s))")


def undeploy(name: _Name) -> None:
    """Remove the deployment NAME."""
    if not running_llm().undeploy(name):
        fail(f"no deployment named {name}")
    console.print(f"undeployed {name}")


def list_models() -> None:
    """List the deployments."""
    for model in running_llm().list_models():
        console.print(model)


def meta(name: _Name) -> None:
    """Show what the deployment NAME says about itself."""
    console.print_json(json.dumps(running_llm().get_meta(model=name), default=str))


def chat(
    name: _Name,
    prompt: Annotated[
        str | None, typer.Argument(metavar="PROMPT", help="Ask once; leave out to chat")
    ] = None,
    max_tokens: Annotated[
        int, typer.Option(min=1, metavar="N", help="Most tokens per answer")
    ] = 256,
) -> None:
    """Ask NAME once, or chat with it (an empty line ends the chat); answers stream."""
    llm = running_llm()
    config = {"max_tokens": max_tokens}
    conversation: list[dict[str, str]] = []
    while True:
        try:
            text = prompt if prompt is not None else console.input("[bold]you>[/bold] ")
        except EOFError:  # Ctrl-D ends the chat as an empty line does
            console.print()
            return
        if not text.strip():
            return
        conversation.append({"role": "user", "content": text})
        pieces = []
        for piece in llm.stream_chat_oai(conversation, model=name, llm_config=config):
            pieces.append(piece)
            console.print(piece, end="", markup=False, highlight=False)
        console.print()
        conversation.append({"role": "assistant", "content": "".join(pieces)})
        if prompt is not None:
            return
