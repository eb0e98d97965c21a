"""``byzer-agents eval``: score a model on evaluation data (``eval bfcl``: BFCL's AST rules, per
category, with a progress bar and a table)."""

from __future__ import annotations

import contextlib
import enum
import json
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from byzer_agents.cli.group import console, fail, running_llm

if TYPE_CHECKING:
    from byzer_agents.evals import EvalReport

__all__ = ["eval_app"]

eval_app = typer.Typer(
    help="Score a model on evaluation data.", no_args_is_help=True, rich_markup_mode=None
)


class _EvalToolChoice(str, enum.Enum):
    auto = "auto"
    required = "required"


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
    llm = running_llm()
    if model not in llm.list_models():
        fail(
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
