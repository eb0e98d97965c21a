"""What every ``byzer-agents`` command shares: the command group that turns an expected failure
into one line on stderr (exit status 1, never a traceback), ``fail`` for a command's own, the
console it prints to, and the way to the Ray cluster and the ``LLM`` on it.

Help is click's plain text: no panels padded to the terminal's width, and every option's value
named (``--name NAME``).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import typer
from rich.console import Console
from typer.core import TyperGroup

from byzer_agents.exceptions import ByzerAgentsError

__all__ = ["CommandGroup", "console", "fail", "join_cluster", "new_llm", "running_llm"]

# What the library raises for a bad input or an unreachable cluster or model; anything else is a
# bug and keeps its traceback.
_EXPECTED_ERRORS = (ByzerAgentsError, OSError, ValueError, RuntimeError)
_NO_CLUSTER = (
    "no Ray cluster runs here; `byzer-agents start` starts one "
    "(`byzer-agents quickstart` also deploys the shipped model)"
)

console = Console()


def _print_error(message: str) -> None:
    typer.secho(f"error: {' '.join(message.split())}", err=True, fg="red")


def fail(message: str) -> NoReturn:
    """End the command with ``error: MESSAGE`` on one line of stderr, exit status 1."""
    _print_error(message)
    raise typer.Exit(1)


class CommandGroup(TyperGroup):
    """The ``byzer-agents`` group: expected failures read as one line, and options show their
    value by name (``--port PORT``) where typer would print a ``<type>`` label."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _name_option_values(self)

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        """Run the command line; in standalone mode, exit with one line on stderr and status 1
        for a usage error or a failure the user can fix."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            code = super().main(args, prog_name, complete_var, False, **extra)
        except typer.TyperException as error:  # typer's usage errors: a bad value, no such command
            context = getattr(error, "ctx", None)
            message = error.format_message()
            if context is not None and message == context.get_help():
                typer.echo(message)  # a group called without a command: its help
                sys.exit(0)
            hint = f" (`{context.command_path} --help` shows the usage)" if context else ""
            _print_error(f"{message}{hint}")
            sys.exit(1)
        except typer.Abort:
            _print_error("aborted")
            sys.exit(1)
        except _EXPECTED_ERRORS as error:
            _print_error(str(error) or type(error).__name__)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


def _name_option_values(command: Any) -> None:
    for param in command.params:
        if param.param_type_name == "option" and not param.is_flag and param.metavar is None:
            param.metavar = param.name.upper()
    for subcommand in getattr(command, "commands", {}).values():
        _name_option_values(subcommand)


def new_llm() -> Any:
    """An ``LLM``, which starts the local Ray cluster when it first needs one."""
    from byzer_agents import LLM

    return LLM()


def join_cluster() -> Any:
    """Join the Ray cluster that runs here (its ClusterInfo), starting none: commands that read
    or ask deployments have nothing to do without one."""
    from byzer_agents.llm_runtime import cluster

    try:
        return cluster.connect(start=False)
    except ByzerAgentsError:
        raise  # the cluster's own reason: nothing answers at the address given, ...
    except ConnectionError:
        fail(_NO_CLUSTER)


def running_llm() -> Any:
    """An LLM on the Ray cluster that runs here (see ``join_cluster``)."""
    from byzer_agents import LLM

    join_cluster()
    return LLM()
