"""Rebuild the shipped tool-calling adapter for SmolLM2-135M-Instruct: ``make train-tool-adapter``.

Every step follows ``recipe.json`` beside this file, with its fixed seed:

1. the synthetic apps' cases are generated and split; the train cases run through the framework's
   real loop with a scripted teacher, which records them in a ``TraceStore``; the eval cases are
   written as a BFCL-format directory (``data/synthetic_eval``) for ``bench_finetune.py``;
2. the training data: the shipped BFCL non-live categories less the project's held-out slice
   (``evals.dataset.heldout_ids``), plus the traces read back by ``dataset_from_traces``; no live
   category is read, and no checkpoint is picked by any score: the last one ships;
3. ``finetune.sft`` trains the LoRA adapter as a job with checkpoints (an interrupted build
   resumes where it stopped when run again);
4. the adapter, its run record and its model card are copied into the package
   (``byzer_agents/llm_runtime/adapters/smollm2-tool-calling``), where ``default_tool_model()``
   finds it.

Run: ``python -m recipes.tool_adapter.build [--work-dir DIR] [--max-steps N]``.
"""

from __future__ import annotations

import argparse
import collections
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

RECIPE_DIR = Path(__file__).resolve().parent
REPO_ROOT = RECIPE_DIR.parents[1]
RECIPE_PATH = RECIPE_DIR / "recipe.json"
SYNTHETIC_EVAL_DIR = RECIPE_DIR / "data" / "synthetic_eval"
ADAPTER_FILES = ("adapter_model.safetensors", "adapter_config.json", "byzer_agents_finetune.json")


def load_recipe(path: Path = RECIPE_PATH) -> dict[str, Any]:
    return dict(json.loads(path.read_text(encoding="utf-8")))


def build_data(recipe: dict[str, Any], work_dir: Path) -> tuple[Any, dict[str, Any]]:
    """The training split and a summary of where its examples came from."""
    from byzer_agents.evals.dataset import heldout_ids
    from byzer_agents.finetune.bfcl_data import dataset_from_bfcl
    from byzer_agents.finetune.examples import split_examples
    from byzer_agents.finetune.traces_data import dataset_from_traces
    from recipes.tool_adapter.record import (
        generate_cases,
        record_traces,
        split_cases,
        write_bfcl_dir,
    )

    seed = int(recipe["seed"])
    synthetic = recipe["synthetic"]
    per_app = int(synthetic["train_per_app"]) + int(synthetic["eval_per_app"])
    cases = generate_cases(seed=seed, per_app=per_app)
    train_cases, eval_cases = split_cases(
        cases, eval_fraction=int(synthetic["eval_per_app"]) / per_app, seed=seed
    )
    store_path = work_dir / "synthetic_traces.db"
    store_path.unlink(missing_ok=True)
    record_traces(train_cases, store_path)
    if SYNTHETIC_EVAL_DIR.exists():
        shutil.rmtree(SYNTHETIC_EVAL_DIR)
    write_bfcl_dir(eval_cases, SYNTHETIC_EVAL_DIR)

    categories = list(recipe["bfcl"]["categories"])
    if any(category.startswith("live") for category in categories):
        raise SystemExit("the recipe must not train on BFCL's live categories")
    held_out = heldout_ids(categories)
    bfcl = _sampled(
        dataset_from_bfcl(None, categories, exclude_ids=held_out),
        recipe["bfcl"].get("per_category", {}),
        seed,
    )
    traces = dataset_from_traces(store_path, eval_fraction=0, seed=seed).train
    training = recipe["training"]
    split = split_examples(
        [*bfcl, *traces], eval_fraction=float(training.get("eval_fraction", 0)), seed=seed
    )
    by_category = collections.Counter(
        str(example.metadata.get("category", "?")) for example in bfcl
    )
    summary = {
        "bfcl_examples": len(bfcl),
        "bfcl_by_category": dict(sorted(by_category.items())),
        "bfcl_held_out": len(held_out),
        "synthetic_train_cases": len(train_cases),
        "synthetic_eval_cases": len(eval_cases),
        "synthetic_trace_examples": len(traces),
        "train_examples": len(split.train),
        "eval_examples": len(split.eval),
    }
    return split, summary


def _sampled(examples: list[Any], per_category: dict[str, int], seed: int) -> list[Any]:
    """At most ``per_category[c]`` examples of each category ``c``, drawn with ``seed``: the
    recipe's budget of training tokens on a 2-core CPU (categories not named are kept whole)."""
    import random

    rng = random.Random(seed)
    by_category: dict[str, list[Any]] = collections.defaultdict(list)
    for example in examples:
        by_category[str(example.metadata.get("category"))].append(example)
    kept = []
    for category, group in by_category.items():
        limit = per_category.get(category)
        kept += group if limit is None or limit >= len(group) else rng.sample(group, limit)
    return kept


def main(argv: list[str] | None = None) -> None:
    from byzer_agents.llm_runtime.models import TOOL_ADAPTER_DIR

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work-dir", type=Path, default=REPO_ROOT / ".build" / "tool_adapter")
    parser.add_argument(
        "--max-steps", type=int, default=None, help="stop early (a smoke run; not for shipping)"
    )
    parser.add_argument(
        "--install-to",
        type=Path,
        default=TOOL_ADAPTER_DIR,
        help="where the finished adapter is copied (the package's shipped adapter by default)",
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    recipe = load_recipe()
    args.work_dir.mkdir(parents=True, exist_ok=True)
    split, data_summary = build_data(recipe, args.work_dir)
    print(json.dumps(data_summary, indent=2), flush=True)

    from byzer_agents import finetune

    settings = dict(recipe["training"])
    if args.max_steps is not None:
        settings["max_steps"] = args.max_steps
    run_dir = args.work_dir / "run"
    result = finetune.sft(
        split, recipe["base_model"], run_dir, method=settings.pop("method"), **settings
    )
    wall_seconds = time.perf_counter() - started
    install(run_dir, args.install_to, recipe, data_summary, wall_seconds)
    print(
        f"trained {result.steps} steps in {result.seconds:.0f} s; the recipe took "
        f"{wall_seconds:.0f} s; adapter in {args.install_to}",
        flush=True,
    )


def install(
    run_dir: Path,
    target: Path,
    recipe: dict[str, Any],
    data_summary: dict[str, Any],
    wall_seconds: float,
) -> None:
    """Copy the adapter into ``target`` with its run record (plus the recipe and data summary)
    and a model card."""
    target.mkdir(parents=True, exist_ok=True)
    for name in ADAPTER_FILES:
        shutil.copy2(run_dir / name, target / name)
    record_path = target / "byzer_agents_finetune.json"
    record = json.loads(record_path.read_text())
    record["output_dir"] = (
        str(target.relative_to(REPO_ROOT)) if target.is_relative_to(REPO_ROOT) else str(target)
    )
    record["recipe"] = {
        "file": str(RECIPE_PATH.relative_to(REPO_ROOT)),
        "seed": recipe["seed"],
        "data": data_summary,
        "wall_seconds": round(wall_seconds, 1),
        "command": "make train-tool-adapter",
    }
    record_path.write_text(json.dumps(record, indent=2) + "\n")
    from recipes.tool_adapter.model_card import write_model_card

    write_model_card(target)


if __name__ == "__main__":
    sys.exit(main())
