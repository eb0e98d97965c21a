"""``byzer-agents start``, ``stop``, ``status`` and ``quickstart``: the local Ray cluster."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from byzer_agents.cli.group import console, join_cluster

__all__ = ["quickstart", "start", "status", "stop"]


def start(
    num_cpus: Annotated[
        float | None,
        typer.Option(metavar="N", help="CPUs the cluster may use; default: all of them"),
    ] = None,
) -> None:
    """Start the local Ray cluster (loopback only, no dashboard); it outlives this command."""
    from byzer_agents.llm_runtime import cluster

    running = cluster.status()
    if running is not None:
        console.print(f"a Ray cluster already runs at {running['address']}")
        return
    address = cluster.start_local_cluster(num_cpus=num_cpus)
    console.print(f"started the local Ray cluster at {address}")


def stop() -> None:
    """Stop the local Ray cluster and every deployment on it."""
    from byzer_agents.llm_runtime import cluster

    stopped = cluster.stop_local_cluster()
    console.print("stopped the local Ray cluster" if stopped else "no Ray cluster was running")


def status() -> None:
    """Show the cluster's address, resources and deployments."""
    from byzer_agents.llm_runtime import deployment

    running = join_cluster()
    console.print(f"address: {running.address}")
    console.print(f"resources: {json.dumps(running.resources)}")
    console.print(f"deployments: {deployment.deployment_names()}")


def quickstart() -> None:
    """Start the local Ray, deploy the shipped SmolLM2, run a tool call and a typed extraction."""
    from byzer_agents.quickstart import run

    run(console)
