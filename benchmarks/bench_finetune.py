"""The shipped tool-calling adapter against its base: SmolLM2-135M-Instruct with and without the
LoRA adapter of ``make train-tool-adapter``, on data neither trained on.

Run: ``.venv/bin/python benchmarks/bench_finetune.py`` (``--records DIR`` keeps the per-case
JSONL; ``--rewrite-from DIR`` writes the section again from them). Both models are deployed on the
local Ray in turn (one worker, two threads, nothing else running) and scored by
``byzer-agents eval bfcl`` with BFCL's AST rules, ``tool_choice="auto"``, constrained and free, on:

- the held-out BFCL slice: ``HELDOUT_PER_CATEGORY`` cases per non-live category, evenly spaced
  (``byzer_agents.evals.dataset.heldout_ids``), which the recipe keeps out of training;
- the synthetic apps' eval split (``recipes/tool_adapter/data/synthetic_eval``), cases the recipe
  generated but never recorded as training traces.

The training figures (steps/s, tokens/s, the recipe's wall time) come from the adapter's own run
record, written by the recipe.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

_REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(_REPO_ROOT))  # run as a script from a checkout, without installing

from results_file import library_versions, write_section  # noqa: E402

from byzer_agents.evals import EvalReport, read_records  # noqa: E402
from byzer_agents.evals.dataset import HELDOUT_PER_CATEGORY  # noqa: E402

SECTION_HEADING = "## Fine-tuning: the shipped tool-calling adapter (bench_finetune.py)"
SYNTHETIC_EVAL = _REPO_ROOT / "recipes" / "tool_adapter" / "data" / "synthetic_eval"
MODELS = (("base", "bench-ft-base"), ("base+adapter", "bench-ft-tools"))
DATASETS = (
    ("BFCL held-out", ("--limit", "{limit}")),
    ("synthetic eval", ("--data-dir", str(SYNTHETIC_EVAL.relative_to(_REPO_ROOT)))),
)
MODES = (("constrained", ()), ("free", ("--no-constrained",)))
AIMS = {"call": 0.53, "irrelevance": 0.80, "parseable_free": 0.95}
"""The issue's aims: each call category >= Qwen2.5-0.5B's published prompt-mode 53%, irrelevance
>= 80%, free generation parseable >= 95%."""


@dataclass(frozen=True)
class Run:
    model: str
    dataset: str
    mode: str
    command: str
    report: EvalReport


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=Path, help="keep the per-case JSONL files here")
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--limit",
        type=int,
        default=HELDOUT_PER_CATEGORY,
        help="held-out BFCL cases per category, evenly spaced (a subset of the held-out slice "
        "for the divisors of its size)",
    )
    parser.add_argument(
        "--rewrite-from",
        type=Path,
        metavar="DIR",
        help="run nothing: write the section again from the JSONL files a run kept in DIR",
    )
    parser.add_argument("--only", choices=[label for label, _ in MODELS], help="one model only")
    parser.add_argument(
        "--contended",
        action="store_true",
        help="say in the section that other work shared the machine (s/case is then no figure)",
    )
    args = parser.parse_args()
    records = args.rewrite_from or args.records or Path(tempfile.mkdtemp(prefix="bench_ft_"))
    if args.rewrite_from is None:
        run_all(args, records)
    runs = [
        read_run(model, dataset, mode, args, records)
        for model, _ in MODELS
        for dataset, _ in DATASETS
        for mode, _ in MODES
        if (records / records_name(model, dataset, mode)).is_file()
    ]
    text = section_text(runs, args)
    write_section(SECTION_HEADING, text)
    print(f"wrote {SECTION_HEADING!r} to benchmarks/RESULTS.md (records in {records})")
    write_card_figures(text)


def write_card_figures(section: str) -> None:
    """The same tables in the adapter's model card, under its figures heading."""
    from byzer_agents.llm_runtime.models import TOOL_ADAPTER_DIR
    from recipes.tool_adapter.model_card import write_model_card

    if not (TOOL_ADAPTER_DIR / "byzer_agents_finetune.json").is_file():
        return
    body = section.split("\n", 1)[1].replace("\n### ", "\n### ")
    figures = (
        "Measured by `benchmarks/bench_finetune.py` (copied from benchmarks/RESULTS.md):\n"
        + body.strip()
    )
    print(f"wrote the figures into {write_model_card(TOOL_ADAPTER_DIR, figures)}")


def run_all(args: argparse.Namespace, records: Path) -> None:
    from byzer_agents import LLM
    from byzer_agents.llm_runtime import cluster
    from byzer_agents.llm_runtime.models import default_chat_model, default_tool_model

    cluster.connect()
    llm = LLM()
    records.mkdir(parents=True, exist_ok=True)
    paths = {"base": default_chat_model(), "base+adapter": default_tool_model()}
    executable = Path(sys.executable).parent / "byzer-agents"
    for label, deployment in MODELS:
        if args.only and label != args.only:
            continue
        llm.undeploy(deployment)
        llm.deploy(
            paths[label], "custom/auto", deployment, {"num_threads": 2},
            num_workers=1, cpus_per_worker=1,
        )  # fmt: skip
        try:
            for dataset, dataset_options in DATASETS:
                for mode, mode_options in MODES:
                    output = records / records_name(label, dataset, mode)
                    command = cli_options(deployment, dataset_options, mode_options, args)
                    print(f"{label} / {dataset} / {mode}", flush=True)
                    subprocess.run(
                        [str(executable), *command, "--output", str(output)],
                        check=True,
                        cwd=_REPO_ROOT,
                    )
        finally:
            llm.undeploy(deployment)


def cli_options(
    deployment: str,
    dataset_options: tuple[str, ...],
    mode_options: tuple[str, ...],
    args: argparse.Namespace,
) -> list[str]:
    return [
        "eval",
        "bfcl",
        "--model",
        deployment,
        *(option.format(limit=args.limit) for option in dataset_options),
        *mode_options,
        "--max-tokens",
        str(args.max_tokens),
        "--concurrency",
        str(args.concurrency),
    ]


def records_name(model: str, dataset: str, mode: str) -> str:
    slug = "_".join((model, dataset, mode)).replace("+", "_plus_").replace(" ", "-")
    return f"{slug}.jsonl"


def read_run(model: str, dataset: str, mode: str, args: argparse.Namespace, records: Path) -> Run:
    deployment = dict(MODELS)[model]
    name = records_name(model, dataset, mode)
    command = shlex.join(
        [
            "byzer-agents",
            *cli_options(deployment, dict(DATASETS)[dataset], dict(MODES)[mode], args),
            "--output",
            name,
        ]
    )
    report = EvalReport(
        model=deployment,
        constrained_decoding=mode == "constrained",
        tool_choice="auto",
        records=read_records(records / name),
    )
    return Run(model, dataset, mode, command, report)


def _percent(share: float | None) -> str:
    return "-" if share is None else f"{share:.1%}"


def _training_lines() -> list[str]:
    from byzer_agents.llm_runtime.models import default_tool_model

    try:
        record_path = default_tool_model() / "byzer_agents_finetune.json"
    except FileNotFoundError:
        return ["No shipped adapter yet: run `make train-tool-adapter`."]
    record = json.loads(record_path.read_text())
    tokens_per_second = record["train_tokens"] * record["config"]["num_epochs"] / record["seconds"]
    recipe = record.get("recipe", {})
    return [
        f"Training (from `{record_path.relative_to(_REPO_ROOT)}`): {record['method']} "
        f"r={record['config']['lora_r']} on {record['train_examples']} examples "
        f"({record['train_tokens']:,} tokens per epoch, {record['config']['num_epochs']:g} "
        f"epoch(s)), {record['steps']} steps in {record['seconds']:.0f} s: "
        f"{record['steps_per_second']:.3f} steps/s, {tokens_per_second:.0f} tokens/s "
        f"({record['config']['dtype']} base weights, batch {record['config']['batch_size']} x "
        f"{record['config']['gradient_accumulation_steps']} accumulated). "
        f"The whole recipe (`make train-tool-adapter`: synthetic traces, data, training, "
        f"saving) took {recipe.get('wall_seconds', float('nan')):.0f} s on this 2-core CPU.",
    ]


def section_text(runs: list[Run], args: argparse.Namespace) -> str:
    versions = library_versions("torch", "transformers", "peft", "trl", "xgrammar", "ray")
    lines = [
        SECTION_HEADING,
        "",
        f"Command: `.venv/bin/python benchmarks/bench_finetune.py`; run on {dt.date.today()}; "
        f"{versions}. "
        + (
            "Not a quiet machine: the test suite ran beside it, so the s/case rows are no speed "
            "figure (accuracy does not depend on it: greedy decoding). "
            if args.contended
            else "Quiet machine: nothing else decoding or training during the run. "
        )
        + "Each model is deployed alone on the local Ray (one worker, 2 threads) and each run is "
        "the CLI command below; greedy, one attempt per case, "
        f'`tool_choice="auto"`, at most {args.max_tokens} new tokens, {args.concurrency} cases '
        "in flight (the deployment batches them).",
        "",
        *[f"- {run.model}, {run.dataset}, {run.mode}: `{run.command}`" for run in runs],
        "",
        *_training_lines(),
        "",
    ]
    for dataset, _ in DATASETS:
        chosen = [run for run in runs if run.dataset == dataset]
        if not chosen:
            continue
        lines += [
            f"### {dataset}",
            "",
            "| category | "
            + " | ".join(f"{run.model}, {run.mode}: AST | unparseable" for run in chosen)
            + " |",
            "|---|" + "---:|---:|" * len(chosen),
        ]
        categories = [score.category for score in chosen[0].report.categories]
        for category in categories:
            cells = []
            for run in chosen:
                found = [s for s in run.report.categories if s.category == category]
                if not found:
                    cells.append("- | -")
                    continue
                (score,) = found
                cells.append(
                    f"{score.accuracy:.1%} ({score.correct}/{score.cases}) "
                    f"| {_percent(score.unparseable_share)}"
                )
            lines.append(f"| {category} | " + " | ".join(cells) + " |")
        lines.append(
            "| **AST summary** (mean of the call categories) | "
            + " | ".join(f"{_percent(run.report.ast_summary)} | " for run in chosen)
            + " |"
        )
        lines.append(
            "| median s/case | "
            + " | ".join(f"{run.report.median_seconds:.1f} | " for run in chosen)
            + " |"
        )
        lines.append("")
    lines += [
        "Aims (the issue's): base+adapter, constrained, each call category at least "
        f"{AIMS['call']:.0%} (Qwen2.5-0.5B-Instruct's published prompt-mode figure, a model 4x "
        f"larger), irrelevance at least {AIMS['irrelevance']:.0%}, free generation parseable at "
        f"least {AIMS['parseable_free']:.0%}. Unparseable: a call was expected and none could be "
        "read. Scored by `byzer_agents.evals.checker` (BFCL's AST rules).",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
