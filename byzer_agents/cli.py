"""The ``byzer-agents`` command: manage the local Ray cluster, deploy and talk to models, and run
the quickstart (what ``make run`` shows)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console

app = typer.Typer(help="Deploy, serve and talk to models: tool-calling agents with typed answers.")
console = Console()


def _llm() -> Any:
    from byzer_agents import LLM

    return LLM()


def _params(pairs: list[str]) -> dict[str, str]:
    params = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator or not key:
            raise typer.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--param")
        params[key.strip()] = value.strip()
    return params


@app.command()
def start(
    num_cpus: Annotated[float | None, typer.Option(help="CPUs the cluster may use")] = None,
) -> None:
    """Start the local Ray cluster (loopback only, no dashboard); it outlives this command."""
    from byzer_agents.llm_runtime import cluster

    running = cluster.status()
    if running is not None:
        console.print(f"a Ray cluster already runs at {running['address']}")
        return
    address = cluster.start_local_cluster(num_cpus=num_cpus)
    console.print(f"started the local Ray cluster at {address}")


@app.command()
def stop() -> None:
    """Stop the local Ray cluster and every deployment on it."""
    from byzer_agents.llm_runtime import cluster

    stopped = cluster.stop_local_cluster()
    console.print("stopped the local Ray cluster" if stopped else "no Ray cluster was running")


@app.command()
def status() -> None:
    """Show the cluster's address, resources and deployments."""
    from byzer_agents.llm_runtime import cluster, deployment

    running = cluster.status()
    if running is None:
        console.print("no Ray cluster runs here; `byzer-agents start` starts one")
        raise typer.Exit(1)
    console.print(f"address: {running['address']}")
    console.print(f"resources: {json.dumps(running['resources'])}")
    console.print(f"deployments: {deployment.deployment_names()}")


@app.command()
def deploy(
    model_path: Annotated[
        str,
        typer.Argument(help="A model directory or GGUF file; 'default' for the shipped SmolLM2"),
    ],
    name: Annotated[str, typer.Option("--name", help="The udf_name to deploy as")],
    model_type: Annotated[str, typer.Option("--type")] = "custom/auto",
    workers: Annotated[int, typer.Option(help="num_workers")] = 1,
    cpus: Annotated[float, typer.Option(help="CPUs per worker")] = 0.5,
    gpus: Annotated[float, typer.Option(help="GPUs per worker")] = 0.0,
    param: Annotated[list[str] | None, typer.Option(help="infer_params KEY=VALUE")] = None,
) -> None:
    """Deploy a model on Ray under NAME."""
    if model_path == "default":
        from byzer_agents.llm_runtime.models import default_chat_model

        model_path = str(default_chat_model())
    llm = _llm().setup_num_workers(workers).setup_cpus_per_worker(cpus).setup_gpus_per_worker(gpus)
    try:
        llm.deploy(model_path, model_type, name, _params(param or []))
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    console.print(f"deployed {name} ({workers} worker(s))")


@app.command()
def undeploy(name: str) -> None:
    """Remove the deployment NAME."""
    removed = _llm().undeploy(name)
    console.print(f"undeployed {name}" if removed else f"no deployment named {name}")
    if not removed:
        raise typer.Exit(1)


@app.command(name="list")
def list_models() -> None:
    """List the deployments."""
    for model in _llm().list_models():
        console.print(model)


@app.command()
def meta(name: str) -> None:
    """Show what a deployment says about itself."""
    console.print_json(json.dumps(_llm().get_meta(model=name), default=str))


@app.command()
def chat(
    name: str,
    prompt: Annotated[str | None, typer.Argument(help="Ask once; leave out to chat")] = None,
    max_tokens: Annotated[int, typer.Option(help="Most tokens per answer")] = 256,
) -> None:
    """Ask NAME once, or chat with it (an empty line ends the chat); answers stream."""
    llm = _llm()
    config = {"max_tokens": max_tokens}
    conversation: list[dict[str, str]] = []
    while True:
        text = prompt if prompt is not None else console.input("[bold]you>[/bold] ")
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


@app.command()
def quickstart() -> None:
    """Start the local Ray, deploy the shipped SmolLM2, run a tool call and a typed extraction."""
    from byzer_agents.quickstart import run

    run(console)


if __name__ == "__main__":
    app()
