"""The ``byzer-agents`` command: manage the local Ray cluster, deploy and talk to models, serve
them over the OpenAI API, score them (``eval bfcl``), fine-tune (``finetune``), and run the
quickstart (what ``make run`` shows).

A failure the user can fix (an unknown model, a missing file, no cluster running, a bad option
value) is one line on stderr and exit status 1, never a traceback: ``CommandGroup.main`` turns the
library's errors into that line, and commands call ``fail`` for their own (``cli/group.py``). Each
group of commands has its module; this one puts them together, in the order ``--help`` lists them.
"""

from __future__ import annotations

import typer

from byzer_agents.cli import cluster, models, serving
from byzer_agents.cli.evals import eval_app
from byzer_agents.cli.group import CommandGroup
from byzer_agents.cli.mcp import mcp_app
from byzer_agents.finetune.cli import finetune_app

__all__ = ["app"]

app = typer.Typer(
    cls=CommandGroup,
    help="Deploy, serve and talk to models: tool-calling agents with typed answers.",
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)
app.add_typer(eval_app, name="eval")
app.add_typer(finetune_app, name="finetune")
app.add_typer(mcp_app, name="mcp")
for _command in (
    cluster.start,
    cluster.stop,
    cluster.status,
    models.deploy,
    models.undeploy,
    models.list_models,
    models.meta,
    models.chat,
    cluster.quickstart,
    serving.serve,
):
    app.command(name="list" if _command is models.list_models else None)(_command)
