"""BFCL on the shipped model: SmolLM2-135M-Instruct, deployed on the local Ray, scored by
``byzer-agents eval bfcl`` with and without constrained decoding, beside the leaderboard's
published anchors for small models.

Run: ``.venv/bin/python benchmarks/bench_bfcl.py`` (``--limit 20`` cases per category, evenly
spaced through each of the five shipped categories; ``--max-tokens 128``; ``--records DIR`` keeps
the per-case JSONL; ``--rewrite-from DIR`` writes the section again from them). Three runs:
constrained decoding and free generation with ``tool_choice="auto"`` (BFCL's way), and
constrained with a call forced. The model is deployed for the run under its own name and
undeployed after; a local Ray cluster is started if none runs (and left running, as
``byzer-agents start`` would).
"""

from __future__ import annotations

import argparse
import collections
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

from byzer_agents.core.parsing import parse_tool_calls  # noqa: E402
from byzer_agents.evals import EvalReport, read_records  # noqa: E402

SECTION_HEADING = "## BFCL function calling on the shipped model (bench_bfcl.py)"
DEPLOYMENT = "bench-bfcl-smollm2"
ANCHORS = (
    # BFCL leaderboard, non-live AST summary (see the shared evals README).
    ("Qwen2.5-0.5B-Instruct", 53.19, 62.29),
    ("Qwen2.5-1.5B-Instruct", 73.37, 79.10),
)


RUNS = (
    # (label, options): the CLI's defaults are constrained decoding and tool_choice="auto".
    ("constrained", ()),
    ("free", ("--no-constrained",)),
    (
        "constrained, call forced",
        ("--tool-choice", "required", "--category", "simple_python", "--category", "multiple",
         "--category", "parallel", "--category", "parallel_multiple"),
    ),
)  # fmt: skip


@dataclass(frozen=True)
class Run:
    label: str
    command: str
    """As a user would type it."""
    report: EvalReport


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=20, help="cases per category")
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
        runs = [read_run(label, options, args, args.rewrite_from) for label, options in RUNS]
    else:
        runs = run_all(args)
    write_section(SECTION_HEADING, section_text(runs, args))
    print(f"wrote {SECTION_HEADING!r} to benchmarks/RESULTS.md")


def run_all(args: argparse.Namespace) -> list[Run]:
    from byzer_agents import LLM
    from byzer_agents.llm_runtime import cluster
    from byzer_agents.llm_runtime.models import default_chat_model

    cluster.connect()
    llm = LLM()
    deployed_here = DEPLOYMENT not in llm.list_models()
    if deployed_here:
        llm.deploy(default_chat_model(), "custom/auto", DEPLOYMENT)
    records_dir = args.records or Path(tempfile.mkdtemp(prefix="bench_bfcl_"))
    records_dir.mkdir(parents=True, exist_ok=True)
    try:
        for label, options in RUNS:
            command = ["eval", "bfcl", *cli_options(options, args)]
            output = records_dir / records_name(label)
            executable = Path(sys.executable).parent / "byzer-agents"
            subprocess.run([str(executable), *command, "--output", str(output)], check=True)
    finally:
        if deployed_here:
            llm.undeploy(DEPLOYMENT)
    print(f"records in {records_dir}")
    return [read_run(label, options, args, records_dir) for label, options in RUNS]


def cli_options(extra: tuple[str, ...], args: argparse.Namespace) -> list[str]:
    options = ["--model", DEPLOYMENT, "--limit", str(args.limit), *extra]
    if args.max_tokens != 256:
        options += ["--max-tokens", str(args.max_tokens)]
    return options


def records_name(label: str) -> str:
    return label.replace(", ", "_").replace(" ", "_") + ".jsonl"


def read_run(label: str, extra: tuple[str, ...], args: argparse.Namespace, directory: Path) -> Run:
    """One run's report from the records it wrote, with its command as a user would type it."""
    name = records_name(label)
    shown = shlex.join(
        ["byzer-agents", "eval", "bfcl", *cli_options(extra, args), "--output", name]
    )
    report = EvalReport(
        model=DEPLOYMENT,
        constrained_decoding="--no-constrained" not in extra,
        tool_choice="required" if "required" in extra else "auto",
        records=read_records(directory / name),
    )
    return Run(label, shown, report)


def _percent(share: float | None) -> str:
    return "-" if share is None else f"{share:.1%}"


def section_text(runs: list[Run], args: argparse.Namespace) -> str:
    versions = library_versions("torch", "transformers", "xgrammar", "ray")
    first = runs[0].report
    lines = [
        SECTION_HEADING,
        "",
        f"Command: `.venv/bin/python benchmarks/bench_bfcl.py`; run on {dt.date.today()};",
        f"{versions}. It deploys SmolLM2-135M-Instruct (the shipped GGUF, on CPU, one thread) on "
        f"the local Ray as `{DEPLOYMENT}` and runs:",
        "",
        *[f"- {run.label}: `{run.command}`" for run in runs],
        "",
        f"{len(first.records)} cases: {args.limit} per category, evenly spaced through each file "
        "of the shipped BFCL V4 sample (the same cases every run). One attempt per case, no "
        f"retries; greedy decoding, at most {args.max_tokens} new tokens; the case's functions "
        "offered as tools in the framework's prompt format (`function_calling.j2`, with one "
        "example call), as SmolLM2's chat template takes no tools. *Constrained*: xgrammar holds "
        'the answer to a call that fits the schemas or, with `tool_choice="auto"`, to plain '
        "text not starting with `{`. *Free*: the model writes what it likes and the tolerant "
        'parser reads calls from it. *Call forced*: `tool_choice="required"`, the grammar '
        "allows only calls (irrelevance left out: a forced call is wrong there by construction). "
        "Scored with BFCL's AST rules (`byzer_agents.evals.checker`). Unparseable: a call was "
        "expected and none could be read (irrelevance, where no call is right, has none).",
        "",
        "| category | "
        + " | ".join(f"{run.label}: accuracy | unparseable | s/case" for run in runs)
        + " |",
        "|---|" + "---:|---:|---:|" * len(runs),
    ]
    categories = [score.category for score in first.categories]
    for category in categories:
        cells = []
        for run in runs:
            found = [s for s in run.report.categories if s.category == category]
            if not found:
                cells.append("- | - | -")
                continue
            (score,) = found
            cells.append(
                f"{score.accuracy:.1%} ({score.correct}/{score.cases}) "
                f"| {_percent(score.unparseable_share)} | {score.median_seconds:.1f}"
            )
        lines.append(f"| {category} | " + " | ".join(cells) + " |")
    lines.append(
        "| **all cases** | "
        + " | ".join(
            f"{run.report.accuracy:.1%} "
            f"({sum(r.correct for r in run.report.records)}/{len(run.report.records)}) "
            f"| {_percent(run.report.unparseable_share)} | {run.report.median_seconds:.1f}"
            for run in runs
        )
        + " |"
    )
    lines.append(
        "| **AST summary** (mean of the four call categories) | "
        + " | ".join(f"{_percent(run.report.ast_summary)} | | " for run in runs)
        + " |"
    )
    lines += [
        "",
        'Why answers were wrong (cases). With `tool_choice="auto"` the grammar\'s free-text '
        "branch takes any answer whose first character is not `{`, and the prompt format asks "
        "for the calls inside a ```` ```json ```` fence: a model that follows the prompt writes "
        "its call as text, which comes back as content, unparsed (the count in brackets).",
        "",
    ]
    lines += [f"- {run.label}: {_error_counts(run.report)}" for run in runs]
    lines += [
        "",
        "**Published anchors** (BFCL leaderboard, non-live AST summary, over BFCL's full data), "
        "and SmolLM2's AST summary here as a ratio of each anchor's prompt-mode figure (the mode "
        "SmolLM2 runs in):",
        "",
        "| model | prompt mode | function-calling mode | "
        + " | ".join(f"SmolLM2 {run.label} / prompt mode" for run in runs)
        + " |",
        "|---|---:|---:|" + "---:|" * len(runs),
    ]
    for name, prompt_mode, native_mode in ANCHORS:
        ratios = " | ".join(_ratio(run.report.ast_summary, prompt_mode) for run in runs)
        lines.append(f"| {name} | {prompt_mode:.2f} | {native_mode:.2f} | {ratios} |")
    lines += [
        "",
        "Read with care: BFCL's simple figure also averages Java and JavaScript cases, which are "
        f"not here; {args.limit} cases per category leave a 95% interval of up to about ±20 "
        "points on each category's accuracy; the anchors are models 4 and 11 times the size. "
        "The checker matches parallel calls one-to-one in any order where BFCL matches "
        "greedily, which can only score right an answer that BFCL's order would fail. Seconds "
        "are wall time per case through Ray on 2 CPU cores shared with other work in progress: "
        "inflated, indicative only.",
    ]
    return "\n".join(lines) + "\n"


def _error_counts(report: EvalReport) -> str:
    counts = collections.Counter(r.error_kind for r in report.records if not r.correct)
    said = ", ".join(f"{kind} {count}" for kind, count in counts.most_common()) or "none"
    # Text that holds a call the tolerant parser can read, returned as text all the same.
    as_text = sum(r.unparseable and _holds_calls(r.output) for r in report.records)
    if as_text:
        said += f" (of the unparseable, {as_text} hold a call written as text in the content)"
    return said


def _holds_calls(text: str) -> bool:
    calls = parse_tool_calls(text) or []
    return bool(calls) and all(isinstance(call.arguments, dict) for call in calls)


def _ratio(ours: float | None, anchor: float) -> str:
    return "-" if ours is None else f"{ours * 100 / anchor:.2f}"


if __name__ == "__main__":
    main()
