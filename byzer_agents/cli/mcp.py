"""``byzer-agents mcp serve MODULE:TOOLS``: serve ``@tool`` functions to MCP hosts, over stdio
(what a host such as Claude Desktop starts) or streamable HTTP."""

from __future__ import annotations

from typing import Annotated

import typer

__all__ = ["mcp_app", "serve"]

mcp_app = typer.Typer(
    help="Serve tools over MCP (the Model Context Protocol).",
    no_args_is_help=True,
    rich_markup_mode=None,
)


@mcp_app.command()
def serve(
    module_tools: Annotated[
        str,
        typer.Argument(
            help="The module attribute holding the tools: a list or ToolSet, or one tool "
            "(the module is imported from the current directory or the installed packages).",
        ),
    ],
    transport: Annotated[
        str, typer.Option(help="stdio (a host starts this command) or http.")
    ] = "stdio",
    host: Annotated[str, typer.Option(help="With http: the address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="With http: the port to listen on.")] = 8765,
    name: Annotated[str, typer.Option(help="The server's name, as hosts show it.")] = (
        "byzer-agents"
    ),
) -> None:
    """Serve the tools MODULE:TOOLS names over MCP; stdout carries the protocol with stdio."""
    if transport not in ("stdio", "http"):
        raise typer.BadParameter(
            f"--transport must be 'stdio' or 'http'; got {transport!r}", param_hint="--transport"
        )
    try:
        from byzer_agents.mcp import load_tools
        from byzer_agents.mcp import serve as serve_tools
    except ModuleNotFoundError as missing:
        raise typer.BadParameter(str(missing)) from None
    tools = load_tools(module_tools)
    if transport == "http":  # stdout is free: with stdio it is the protocol's
        typer.echo(f"serving {tools.names} over MCP at http://{host}:{port}/mcp", err=True)
    serve_tools(tools, "http" if transport == "http" else "stdio", host, port, name=name)
