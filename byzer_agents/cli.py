"""The ``byzer-agents`` command: manage the local Ray cluster, deploy and talk to models, score them
(``eval bfcl``), and run the quickstart (what ``make run`` shows).

A failure the user can fix (an unknown model, a missing file, no cluster running, a bad option
value) is one line on stderr and exit status 1, never a traceback: ``_Commands.main`` turns the
library's errors into that line, and commands call ``_fail`` for their own. Help is click's plain
text: no panels padded to the terminal's width, and every option's value named (``--name NAME``).
"""

from __future__ import annotations

import contextlib
import enum
import json
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from byzer_agents.exceptions import ByzerAgentsError
from byzer_agents.finetune.cli import finetune_app

if TYPE_CHECKING:
    from byzer_agents.evals import EvalReport

# What the library raises for a bad input or an unreachable cluster or model; anything else is a
# bug and keeps its traceback.
_EXPECTED_ERRORS = (ByzerAgentsError, OSError, ValueError, RuntimeError)
_NO_CLUSTER = (
    "no Ray cluster runs here; `byzer-agents start` starts one "
    "(`byzer-agents quickstart` also deploys the shipped model)"
)


def _print_error(message: str) -> None:
    typer.secho(f"error: {' '.join(message.split())}", err=True, fg="red")


def _fail(message: str) -> NoReturn:
    """End the command with ``error: MESSAGE`` on one line of stderr, exit status 1."""
    _print_error(message)
    raise typer.Exit(1)


class _Commands(TyperGroup):
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


app = typer.Typer(
    cls=_Commands,
    help="Deploy, serve and talk to models: tool-calling agents with typed answers.",
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)
eval_app = typer.Typer(
    help="Score a model on evaluation data.", no_args_is_help=True, rich_markup_mode=None
)
app.add_typer(eval_app, name="eval")
app.add_typer(finetune_app, name="finetune")
console = Console()


def _llm() -> Any:
    from byzer_agents import LLM

    return LLM()


def _join_cluster() -> Any:
    """Join the Ray cluster that runs here (its ClusterInfo), starting none: commands that read
    or ask deployments have nothing to do without one."""
    from byzer_agents.llm_runtime import cluster

    try:
        return cluster.connect(start=False)
    except ByzerAgentsError:
        raise  # the cluster's own reason: nothing answers at the address given, ...
    except ConnectionError:
        _fail(_NO_CLUSTER)


def _running_llm() -> Any:
    """An LLM on the Ray cluster that runs here (see ``_join_cluster``)."""
    from byzer_agents import LLM

    _join_cluster()
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


@app.command()
def stop() -> None:
    """Stop the local Ray cluster and every deployment on it."""
    from byzer_agents.llm_runtime import cluster

    stopped = cluster.stop_local_cluster()
    console.print("stopped the local Ray cluster" if stopped else "no Ray cluster was running")


@app.command()
def status() -> None:
    """Show the cluster's address, resources and deployments."""
    from byzer_agents.llm_runtime import deployment

    running = _join_cluster()
    console.print(f"address: {running.address}")
    console.print(f"resources: {json.dumps(running.resources)}")
    console.print(f"deployments: {deployment.deployment_names()}")


_Name = Annotated[str, typer.Argument(metavar="NAME", help="The deployment's name")]


@app.command()
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
    llm = _llm().setup_num_workers(workers).setup_cpus_per_worker(cpus).setup_gpus_per_worker(gpus)
    llm.deploy(model_path, model_type, name, _params(param or []))
    console.print(f"deployed {name} ({workers} worker(s))")


@app.command()
def undeploy(name: _Name) -> None:
    """Remove the deployment NAME."""
    if not _running_llm().undeploy(name):
        _fail(f"no deployment named {name}")
    console.print(f"undeployed {name}")


@app.command(name="list")
def list_models() -> None:
    """List the deployments."""
    for model in _running_llm().list_models():
        console.print(model)


@app.command()
def meta(name: _Name) -> None:
    """Show what the deployment NAME says about itself."""
    console.print_json(json.dumps(_running_llm().get_meta(model=name), default=str))


@app.command()
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
    llm = _running_llm()
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


@app.command()
def quickstart() -> None:
    """Start the local Ray, deploy the shipped SmolLM2, run a tool call and a typed extraction."""
    from byzer_agents.quickstart import run

    run(console)


class _EvalToolChoice(str, enum.Enum):
    auto = "auto"
    required = "required"


@app.command()
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
        _llm(),
        host=host,
        port=port,
        api_key=api_key,
        allow_unauthenticated_network=allow_unauthenticated_network,
        max_body_bytes=int(max_body_mb * 2**20),
    )


@eval_app.command("bfcl")
def eval_bfcl(
    model: Annotated[
        str,
        typer.Option(
            metavar="NAME", help="A deployment on the local Ray, or the model's name at --base-url"
        ),
    ],
    category: Annotated[
        list[str] | None,
        typer.Option(
            metavar="CATEGORY",
            help="A BFCL category (repeat the option for several); default: the five",
        ),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(
            min=1, metavar="N", help="Cases per category, evenly spaced (the same ones every run)"
        ),
    ] = None,
    output: Annotated[
        Path | None, typer.Option(metavar="FILE", help="Write one JSON line per case here")
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            metavar="DIR", help="A BFCL-format directory (bfcl_eval/data); default: the shipped one"
        ),
    ] = None,
    constrained: Annotated[
        bool,
        typer.Option(
            "--constrained/--no-constrained",
            help="Hold tool calls to the tools' schemas (local models), or let them write freely",
        ),
    ] = True,
    base_url: Annotated[
        str | None,
        typer.Option(
            metavar="URL", help="An OpenAI-compatible endpoint; without it --model is a deployment"
        ),
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(
            envvar="OPENAI_API_KEY",
            show_default=False,
            metavar="KEY",
            help="The key for --base-url (or env OPENAI_API_KEY)",
        ),
    ] = None,
    tool_choice: Annotated[
        _EvalToolChoice,
        typer.Option(
            metavar="[auto|required]",
            help="auto (BFCL's way), or required: force a call (irrelevance then fails)",
        ),
    ] = _EvalToolChoice.auto,
    max_tokens: Annotated[
        int, typer.Option(min=1, metavar="N", help="Most tokens per answer")
    ] = 256,
    concurrency: Annotated[
        int,
        typer.Option(
            min=1, metavar="N", help="Cases asked at once (a local deployment batches them)"
        ),
    ] = 1,
) -> None:
    """Score MODEL on BFCL-format data with BFCL's AST rules: accuracy per category, the share of
    answers holding no readable call, and seconds per case."""
    from byzer_agents.evals import SHIPPED_CATEGORIES, load_cases, run_bfcl

    cases = [
        case
        for name in category or SHIPPED_CATEGORIES
        for case in load_cases(name, data_dir=data_dir, limit=limit)
    ]
    llm = _eval_llm(model, base_url, api_key)
    progress = _eval_progress()
    # Each record is appended as it comes, so an interrupted run keeps what it scored; the
    # finished report rewrites the file in the cases' order.
    partial = output.open("w", encoding="utf-8") if output is not None else None
    with progress, contextlib.ExitStack() as cleanup:
        if partial is not None:
            cleanup.callback(partial.close)
        task = progress.add_task(f"{model}: 0 correct", total=len(cases))
        correct = 0
        lock = threading.Lock()

        def advance(record: Any) -> None:
            nonlocal correct
            with lock:
                correct += record.correct
                progress.update(task, advance=1, description=f"{model}: {correct} correct")
                if partial is not None:
                    partial.write(json.dumps(record.to_json(), ensure_ascii=False, default=str))
                    partial.write("\n")
                    partial.flush()

        report = run_bfcl(
            llm,
            cases,
            model=model,
            constrained_decoding=constrained,
            tool_choice="required" if tool_choice is _EvalToolChoice.required else "auto",
            llm_config={"max_tokens": max_tokens},
            on_case=advance,
            concurrency=concurrency,
        )
    console.print(_bfcl_table(report))
    if report.ast_summary is not None:
        console.print(f"AST summary (mean of the call categories): {report.ast_summary:.1%}")
    if output is not None:
        console.print(f"wrote {len(report.records)} records to {report.write_jsonl(output)}")


def _eval_llm(model: str, base_url: str | None, api_key: str | None) -> Any:
    from byzer_agents import LLM

    if base_url is not None:
        return LLM.from_openai(model=model, base_url=base_url, api_key=api_key)
    llm = _running_llm()
    if not llm.is_model_exist(model):
        _fail(
            f"no deployment named {model!r} (deployed: {llm.list_models()}); deploy one "
            f"with `byzer-agents deploy default --name {model}`, or give --base-url"
        )
    return llm


def _eval_progress() -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


def _bfcl_table(report: EvalReport) -> Table:
    mode = "constrained" if report.constrained_decoding else "unconstrained"
    table = Table(title=f"BFCL, {report.model} ({mode}, tool_choice={report.tool_choice})")
    table.add_column("category", no_wrap=True)
    for column in ("correct", "accuracy", "unparseable", "errors", "s/case"):
        table.add_column(column, justify="right", no_wrap=True)
    for score in report.categories:
        share = score.unparseable_share
        table.add_row(
            score.category,
            f"{score.correct}/{score.cases}",
            f"{score.accuracy:.1%}",
            "-" if share is None else f"{share:.1%}",
            str(score.model_errors),
            f"{score.median_seconds:.2f}",
        )
    share = report.unparseable_share
    table.add_section()
    table.add_row(
        "all",
        f"{sum(record.correct for record in report.records)}/{len(report.records)}",
        f"{report.accuracy:.1%}",
        "-" if share is None else f"{share:.1%}",
        str(sum(score.model_errors for score in report.categories)),
        f"{report.median_seconds:.2f}",
    )
    return table


if __name__ == "__main__":
    app()
