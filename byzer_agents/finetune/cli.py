"""``byzer-agents finetune``: train a model on your data and follow the job.

A typer sub-app (``finetune_app``) that ``byzer_agents.cli`` mounts under ``finetune``. Add a
command with ``@command("name")`` (its docstring becomes its ``--help``). The library's errors
(``FinetuneError``) are left to ``byzer_agents.cli``, which shows them as one line, exit status 1.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

__all__ = ["finetune_app"]

finetune_app = typer.Typer(
    help="Fine-tune a model on your data (SFT with LoRA, QLoRA or all weights) and follow the "
    "jobs. Jobs run on the local Ray; `sft --detach` returns a job id at once.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
console = Console()
_Command = TypeVar("_Command", bound=Callable[..., Any])


def command(name: str) -> Callable[[_Command], _Command]:
    """Register a ``finetune`` sub-command whose ``--help`` is its docstring, paragraphs
    reflowed and ``Example:`` lines kept as written (click's ``\\b`` marks a paragraph it must
    not rewrap)."""

    def register(function: _Command) -> _Command:
        text = inspect.cleandoc(function.__doc__ or "")
        paragraphs = [
            f"\b\n{part}" if part.startswith("    ") else re.sub(r"\s*\n\s*", " ", part)
            for part in text.split("\n\n")
        ]
        return finetune_app.command(name, help="\n\n".join(paragraphs))(function)

    return register


# Options that several commands take, written once.
_BaseModel = Annotated[
    str, typer.Option(help="SmolLM2-135M-Instruct (shipped), a Hugging Face directory or a GGUF")
]
_MaxSteps = Annotated[
    int | None, typer.Option(help="Stop after this many steps (overrides --epochs)")
]
_LearningRate = Annotated[float | None, typer.Option(help="Learning rate")]
_ConfigFile = Annotated[
    Path | None, typer.Option(help="A JSON or TOML file of settings; the flags above win over it")
]
_Detach = Annotated[
    bool, typer.Option("--detach", help="Print the job id and return; the job runs on")
]
_JobId = Annotated[str, typer.Argument(metavar="JOB_ID", help="The id `sft --detach` printed")]


def _given(settings: dict[str, Any]) -> dict[str, Any]:
    """The settings whose flag was given (the others are left to the config and defaults)."""
    return {key: value for key, value in settings.items() if value is not None}


def _print_started(what: str, job_id: str) -> None:
    console.print(f"started {what} job {job_id}")
    console.print(f"follow it with: byzer-agents finetune status {job_id}")


@command("sft")
def sft_command(
    data: Annotated[
        Path,
        typer.Option(
            help="Training data: a .jsonl file (OpenAI / sharegpt / alpaca records), a trace "
            "store (.db) or a BFCL directory"
        ),
    ],
    output_dir: Annotated[
        Path,
        typer.Option(help="Where the adapter (or model), checkpoints, loss.png and logs go"),
    ],
    base_model: _BaseModel = "SmolLM2-135M-Instruct",
    method: Annotated[
        str | None, typer.Option(help="lora, qlora (4-bit base) or full; default lora")
    ] = None,
    max_steps: _MaxSteps = None,
    epochs: Annotated[float | None, typer.Option(help="Passes over the data")] = None,
    lr: _LearningRate = None,
    batch_size: Annotated[int | None, typer.Option(help="Examples per step, per worker")] = None,
    lora_r: Annotated[int | None, typer.Option(help="LoRA rank")] = None,
    max_length: Annotated[int | None, typer.Option(help="Longest sequence, in tokens")] = None,
    save_steps: Annotated[
        int | None, typer.Option(help="A checkpoint every this many steps")
    ] = None,
    deepspeed: Annotated[
        Path | None, typer.Option(help="A DeepSpeed JSON config (ZeRO stage, optimizer ...)")
    ] = None,
    num_workers: Annotated[
        int | None, typer.Option(help="Data-parallel workers (Ray Train) when above 1")
    ] = None,
    config: _ConfigFile = None,
    detach: _Detach = False,
) -> None:
    """Fine-tune a model on tool-calling chats (supervised fine-tuning).

    Runs as a job on the local Ray, with a progress bar; checkpoints, metrics.jsonl, loss.png
    and TensorBoard files go to OUTPUT_DIR. Running the same command again resumes from the
    newest checkpoint there.

    Example:

        byzer-agents finetune sft --data traces.db --output-dir runs/a --epochs 3

        byzer-agents finetune sft --data t.jsonl --output-dir runs/b --detach
    """
    from byzer_agents.finetune.api import sft

    settings: dict[str, Any] = {
        "max_steps": max_steps,
        "num_epochs": epochs,
        "learning_rate": lr,
        "batch_size": batch_size,
        "lora_r": lora_r,
        "max_length": max_length,
        "save_steps": save_steps,
        "deepspeed": str(deepspeed) if deepspeed is not None else None,
        "num_workers": num_workers,
    }
    chosen = _given(settings)
    if detach:
        job_id = sft(data, base_model, output_dir, method, config=config, detached=True, **chosen)
        _print_started("fine-tune", job_id)
        return
    result = sft(data, base_model, output_dir, method, config=config, **chosen)
    loss = f"{result.train_loss:.4f}" if result.train_loss is not None else "n/a"
    console.print(
        f"trained {result.kind} ({result.method}) for {result.steps} steps in "
        f"{result.seconds:.0f} s, train loss {loss}; saved in {result.output_dir}"
    )


@command("status")
def status_command(
    job_id: _JobId,
    as_json: Annotated[bool, typer.Option("--json", help="Print the full record as JSON")] = False,
) -> None:
    """Show where a fine-tune job stands: queued, running (step of total, last loss),
    succeeded, or failed (with its error).

    Example:

        byzer-agents finetune status sft-20261202-101500-a1b2c3
    """
    from byzer_agents.finetune.api import status

    job = status(job_id)
    if as_json:
        console.print_json(json.dumps(job.model_dump()))
        return
    console.print(f"{job.job_id}: {job.describe()}", soft_wrap=True)
    console.print(f"output_dir: {job.output_dir}", soft_wrap=True)
    if job.state == "failed":
        raise typer.Exit(1)


@command("logs")
def logs_command(
    job_id: _JobId,
    tail: Annotated[int | None, typer.Option(metavar="N", help="Only the last N lines")] = None,
) -> None:
    """Print what a fine-tune job has written to its log so far (the trainer's progress,
    warnings, the error of a failed job).

    Example:

        byzer-agents finetune logs sft-20261202-101500-a1b2c3 --tail 20
    """
    from byzer_agents.finetune.api import logs

    text = logs(job_id)
    lines = text.replace("\r", "\n").splitlines()
    if tail is not None:
        lines = lines[-tail:]
    typer.echo("\n".join(lines))


@command("pretrain")
def pretrain_command(
    text: Annotated[
        list[Path],
        typer.Option(help='Raw text: .txt files, JSONL with a "text" field, or directories'),
    ],
    output_dir: Annotated[
        Path, typer.Option(help="Where the adapter (or model), checkpoints and logs go")
    ],
    base_model: _BaseModel = "SmolLM2-135M-Instruct",
    method: Annotated[str | None, typer.Option(help="lora (default) or full")] = None,
    max_steps: _MaxSteps = None,
    epochs: Annotated[float | None, typer.Option(help="Passes over the text")] = None,
    lr: _LearningRate = None,
    max_length: Annotated[int | None, typer.Option(help="Tokens per packed block")] = None,
    config: _ConfigFile = None,
    detach: _Detach = False,
) -> None:
    """Continue pretraining a model on raw text (Byzer-LLM's sfft): the documents are packed
    into blocks of --max-length tokens. A job on the local Ray, like sft: same outputs, resume
    and status/logs.

    Example:

        byzer-agents finetune pretrain --text notes/ --output-dir runs/domain --max-steps 200
    """
    from byzer_agents.finetune.api import pretrain

    settings: dict[str, Any] = {
        "max_steps": max_steps,
        "num_epochs": epochs,
        "learning_rate": lr,
        "max_length": max_length,
    }
    chosen = _given(settings)
    outcome = pretrain(
        text, base_model, output_dir, method, config=config, detached=detach, **chosen
    )
    if isinstance(outcome, str):
        _print_started("pretraining", outcome)
        return
    console.print(
        f"pretrained {outcome.kind} ({outcome.method}) for {outcome.steps} steps in "
        f"{outcome.seconds:.0f} s; saved in {outcome.output_dir}"
    )


@command("merge")
def merge_command(
    adapter_dir: Annotated[
        Path, typer.Argument(metavar="ADAPTER_DIR", help="A LoRA adapter directory (sft's output)")
    ],
    output_dir: Annotated[
        Path, typer.Argument(metavar="OUTPUT_DIR", help="Where the merged model is written")
    ],
    dtype: Annotated[
        str, typer.Option(help="float32, bfloat16 or float16 weights in the output")
    ] = "float32",
) -> None:
    """Merge a LoRA adapter into its base model and write a safetensors Hugging Face directory
    that `byzer-agents deploy` serves like any model.

    Example:

        byzer-agents finetune merge runs/a merged/a
    """
    from byzer_agents.finetune.merging import merge

    written = merge(adapter_dir, output_dir, dtype=dtype)
    console.print(f"merged {adapter_dir} into its base: {written}", soft_wrap=True)


@command("convert")
def convert_command(
    checkpoint_dir: Annotated[
        Path,
        typer.Argument(
            metavar="CHECKPOINT_DIR",
            help="A DeepSpeed checkpoint-N directory, or a run's output directory",
        ),
    ],
    output_dir: Annotated[
        Path, typer.Argument(metavar="OUTPUT_DIR", help="Where the Hugging Face directory goes")
    ],
    base_model: Annotated[
        str | None,
        typer.Option(help="Where to take config and tokenizer from, if the checkpoint lacks them"),
    ] = None,
) -> None:
    """Consolidate a DeepSpeed ZeRO checkpoint into a safetensors Hugging Face directory
    (Byzer-LLM's convert). Runs as a job on the local Ray.

    Example:

        byzer-agents finetune convert runs/zero2/checkpoint-200 models/zero2
    """
    from byzer_agents.finetune.api import convert_deepspeed

    written = convert_deepspeed(checkpoint_dir, output_dir, base_model=base_model)
    console.print(f"converted {checkpoint_dir}: {written}", soft_wrap=True)
