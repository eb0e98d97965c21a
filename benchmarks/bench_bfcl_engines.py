"""BFCL on the shipped tool model with each CPU engine: SmolLM2-135M-Instruct with the project's
tool-calling LoRA adapter (``default_tool_model()``), deployed once on transformers (PEFT over the
GGUF dequantized to float32) and once on llama.cpp (the adapter as a GGUF LoRA over the Q4_1
GGUF as shipped), each scored by ``byzer-agents eval bfcl`` on the same cases.

The engines must agree: the same accuracy within noise, and mostly the same calls case by case
(llama.cpp multiplies 4-bit weights by 8-bit activations, so a near tie between two tokens can
go the other way). Seconds per case say what a user waits.

Run: ``.venv/bin/python benchmarks/bench_bfcl_engines.py`` (``--limit 8`` cases per category,
evenly spaced through the five shipped categories; ``--max-tokens 128``; ``--records DIR`` keeps
the per-case JSONL files, which the eval writes case by case; ``--rewrite-from DIR`` writes the
section again from them). The engines run one after the other, each deployment alone on the
local Ray (started if none runs) and undeployed after. Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import datetime as dt
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
from byzer_agents.evals.results import CaseRecord  # noqa: E402

SECTION_HEADING = "## BFCL with each engine: the shipped tool model (bench_bfcl_engines.py)"
ENGINES = (
    # (label, infer_backend, deployment name)
    ("transformers (fp32, PEFT adapter)", "transformers", "bench-bfcl-transformers"),
    ("llama.cpp (Q4_1, GGUF LoRA)", "llama_cpp", "bench-bfcl-llamacpp"),
)


@dataclass(frozen=True)
class EngineRun:
    label: str
    command: str
    """As a user would type it, after deploying the model under the name it gives."""
    report: EvalReport


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=8, help="cases per category")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--records", type=Path, help="keep the per-case JSONL files here")
    parser.add_argument(
        "--rewrite-from",
        type=Path,
        metavar="DIR",
        help="run nothing: write the section again from the JSONL files a run kept in DIR",
    )
    args = parser.parse_args()
    if args.rewrite_from is not None:
        runs = [read_run(label, name, args, args.rewrite_from) for label, _, name in ENGINES]
    else:
        runs = run_all(args)
    write_section(SECTION_HEADING, section_text(runs, args))
    print(f"wrote {SECTION_HEADING!r} to benchmarks/RESULTS.md")


def run_all(args: argparse.Namespace) -> list[EngineRun]:
    from byzer_agents import LLM
    from byzer_agents.llm_runtime import cluster
    from byzer_agents.llm_runtime.models import default_tool_model

    cluster.connect()
    llm = LLM()
    records_dir = args.records or Path(tempfile.mkdtemp(prefix="bench_bfcl_engines_"))
    records_dir.mkdir(parents=True, exist_ok=True)
    print(f"records (written case by case) in {records_dir}", flush=True)
    for label, backend, name in ENGINES:
        print(f"{label}: deploying {name}", flush=True)
        llm.undeploy(name)
        llm.deploy(default_tool_model(), "custom/auto", name, infer_backend=backend)
        try:
            executable = Path(sys.executable).parent / "byzer-agents"
            output = records_dir / f"{name}.jsonl"
            command = [str(executable), "eval", "bfcl", *cli_options(name, args)]
            subprocess.run([*command, "--output", str(output)], check=True)
        finally:
            llm.undeploy(name)
    return [read_run(label, name, args, records_dir) for label, _, name in ENGINES]


def cli_options(name: str, args: argparse.Namespace) -> list[str]:
    return ["--model", name, "--limit", str(args.limit), "--max-tokens", str(args.max_tokens)]


def read_run(label: str, name: str, args: argparse.Namespace, directory: Path) -> EngineRun:
    shown = shlex.join(["byzer-agents", "eval", "bfcl", *cli_options(name, args)])
    report = EvalReport(
        model=name,
        constrained_decoding=True,
        tool_choice="auto",
        records=read_records(directory / f"{name}.jsonl"),
    )
    return EngineRun(label, shown, report)


def agreement(first: EvalReport, second: EvalReport) -> tuple[int, int, int]:
    """(cases both scored, cases with the same calls or the same text, cases scored alike)."""
    by_id = {record.id: record for record in second.records}
    pairs = [(a, by_id[a.id]) for a in first.records if a.id in by_id]
    same_answer = sum(_answer(a) == _answer(b) for a, b in pairs)
    same_score = sum(a.correct == b.correct for a, b in pairs)
    return len(pairs), same_answer, same_score


def _answer(record: CaseRecord) -> object:
    return record.calls if record.calls else record.output.strip()


def section_text(runs: list[EngineRun], args: argparse.Namespace) -> str:
    versions = library_versions("torch", "transformers", "llama_cpp_python", "xgrammar", "ray")
    lines = [
        SECTION_HEADING,
        "",
        f"Command: `.venv/bin/python benchmarks/bench_bfcl_engines.py --limit {args.limit} "
        f"--max-tokens {args.max_tokens}`; run on {dt.date.today().isoformat()}, on a quiet "
        f"machine (2 CPU cores, no other model running); {versions}.",
        "",
        "The shipped tool model (`default_tool_model()`: SmolLM2-135M-Instruct + the project's "
        "tool-calling LoRA) deployed on each engine in turn (`cpus_per_worker` 0.5: one thread), "
        'then scored on the same cases, constrained decoding, `tool_choice="auto"`, greedy:',
        "",
    ]
    lines += [f"- {run.label}: `{run.command}`" for run in runs]
    categories = [score.category for score in runs[0].report.categories]
    header = "| category | " + " | ".join(f"{run.label}: accuracy | s/case" for run in runs)
    lines += ["", header + " |", "|---|" + "---:|---:|" * len(runs)]
    for category in categories:
        cells = []
        for run in runs:
            score = next(s for s in run.report.categories if s.category == category)
            cells += [
                f"{score.accuracy:.1%} ({score.correct}/{score.cases})",
                f"{score.median_seconds:.2f}",
            ]
        lines.append(f"| {category} | " + " | ".join(cells) + " |")
    totals = []
    for run in runs:
        correct = sum(r.correct for r in run.report.records)
        totals += [
            f"{run.report.accuracy:.1%} ({correct}/{len(run.report.records)})",
            f"{run.report.median_seconds:.2f}",
        ]
    lines.append("| **all cases** | " + " | ".join(totals) + " |")
    if len(runs) == 2:
        both, same_answer, same_score = agreement(runs[0].report, runs[1].report)
        speed = runs[0].report.median_seconds / max(runs[1].report.median_seconds, 1e-9)
        lines += [
            "",
            f"Agreement: the two engines gave the same calls (or the same text) on "
            f"{same_answer}/{both} cases and scored alike on {same_score}/{both}; llama.cpp "
            f"answered a case in {1 / speed:.2f}x the median time of transformers "
            f"({speed:.1f}x faster). s/case: the median wall time of a case through Ray, "
            "prompt and answer.",
        ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
