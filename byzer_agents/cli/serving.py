"""``byzer-agents serve``: every deployed model over the OpenAI API."""

from __future__ import annotations

from typing import Annotated

import typer

from byzer_agents.cli.group import console, new_llm

__all__ = ["serve"]


def serve(
    host: Annotated[
        str, typer.Option(help="The address to listen on; beyond loopback, a key is needed.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="The port to listen on.")] = 8000,
    api_key: Annotated[
        str | None,
        typer.Option(
            envvar="BYZER_AGENTS_API_KEY",
            help="Require 'Authorization: Bearer KEY'. Better set BYZER_AGENTS_API_KEY: an "
            "argument is visible to every user in `ps`.",
            show_default=False,
        ),
    ] = None,
    allow_unauthenticated_network: Annotated[
        bool,
        typer.Option(
            "--allow-unauthenticated-network",
            help="Serve on a non-loopback --host with no API key: anyone who reaches it may call "
            "the models.",
        ),
    ] = False,
    max_body_mb: Annotated[float, typer.Option(min=0.001, help="Largest request body.")] = 8.0,
) -> None:
    """Serve every deployed model over the OpenAI API (chat, completions, embeddings, models)."""
    try:
        from byzer_agents.serve import serve as run_server
        from byzer_agents.serve.server import check_exposure, is_loopback
    except ModuleNotFoundError as missing:
        raise typer.BadParameter(
            f"the server needs {missing.name}: pip install 'byzer-agents[serve]'"
        ) from None
    check_exposure(host, api_key, allow_unauthenticated_network=allow_unauthenticated_network)
    if not is_loopback(host):
        console.print(f"[yellow]listening on {host}: reachable beyond this machine[/yellow]")
    if api_key is None:
        who = "any local process" if is_loopback(host) else f"anyone who reaches {host}:{port}"
        console.print(f"no API key: {who} may call the models")
    console.print(f"serving on http://{host}:{port}/v1")
    run_server(
        new_llm(),
        host=host,
        port=port,
        api_key=api_key,
        allow_unauthenticated_network=allow_unauthenticated_network,
        max_body_bytes=int(max_body_mb * 2**20),
    )
