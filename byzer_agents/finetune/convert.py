"""Turn a DeepSpeed ZeRO checkpoint into a Hugging Face directory (Byzer-LLM's ``convert``).

A trainer running DeepSpeed ZeRO saves ``checkpoint-N/global_stepN/``: the weights partitioned
across ranks with the optimiser state, which only DeepSpeed reads. DeepSpeed's own
``zero_to_fp32`` consolidates them into one float32 state dict; here that state dict is loaded
into the model its ``config.json`` describes (the checkpoint's own, else ``base_model``'s) and
saved as safetensors with the config, generation config and tokenizer, which every engine loads.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

from byzer_agents.exceptions import FinetuneError
from byzer_agents.finetune.base_model import resolve_base_model
from byzer_agents.finetune.trainer import RUN_RECORD, latest_checkpoint

__all__ = ["convert_deepspeed", "zero_checkpoint_tag"]

_GLOBAL_STEP = re.compile(r"^global_step(\d+)$")
_TOKENIZER_FILES = ("tokenizer_config.json", "tokenizer.json", "special_tokens_map.json")


def zero_checkpoint_tag(checkpoint_dir: Path) -> str | None:
    """The ZeRO checkpoint's tag in ``checkpoint_dir``: what its ``latest`` file names, else the
    newest ``global_stepN`` directory; None when it holds neither."""
    latest = checkpoint_dir / "latest"
    if latest.is_file():
        tag = latest.read_text(encoding="utf-8").strip()
        if (checkpoint_dir / tag).is_dir():
            return tag
    steps = [
        (int(match.group(1)), entry.name)
        for entry in checkpoint_dir.iterdir()
        if entry.is_dir() and (match := _GLOBAL_STEP.match(entry.name))
    ]
    return max(steps)[1] if steps else None


def convert_deepspeed(
    checkpoint_dir: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    *,
    base_model: str | os.PathLike[str] | None = None,
) -> Path:
    """Consolidate the DeepSpeed ZeRO (stage 1, 2 or 3) checkpoint in ``checkpoint_dir`` into a
    float32 safetensors Hugging Face directory at ``output_dir``.

    ``checkpoint_dir`` is a ``checkpoint-N`` directory (holding ``global_stepN/``), or a training
    output directory, whose newest ``checkpoint-N`` is taken. The model's config and tokenizer
    come from the checkpoint when it holds them (the transformers Trainer saves them there), else
    from ``base_model`` (a name, Hugging Face directory or GGUF file, see
    ``resolve_base_model``).

    Raises:
        FinetuneError: no ZeRO checkpoint there, no config to build the model from, or weights
            that do not fit the config (naming the keys).
    """
    checkpoint, tag = _find_zero_checkpoint(Path(checkpoint_dir).expanduser())
    source = _config_source(checkpoint, base_model)

    import torch
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    state_dict = get_fp32_state_dict_from_zero_checkpoint(str(checkpoint), tag=tag)
    if any("lora_" in key for key in state_dict):
        raise FinetuneError(
            f"{str(checkpoint)!r} holds a LoRA model, not full weights: its adapter is saved "
            "beside the ZeRO shards (adapter_model.safetensors); merge that with "
            "byzer_agents.finetune.merge instead"
        )
    config = AutoConfig.from_pretrained(str(source), local_files_only=True)
    model: Any = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    _load_weights(model, state_dict, checkpoint)

    output = Path(output_dir).expanduser()
    output.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(output), safe_serialization=True)
    generation_config = source / "generation_config.json"
    if generation_config.is_file():
        shutil.copyfile(generation_config, output / "generation_config.json")
    tokenizer_source = checkpoint if _has_tokenizer(checkpoint) else source
    AutoTokenizer.from_pretrained(str(tokenizer_source), local_files_only=True).save_pretrained(
        str(output)
    )
    record = {
        "kind": "model",
        "converted_from": {"checkpoint": str(checkpoint.resolve()), "tag": tag},
        "config_from": str(source),
        "base_model": str(base_model) if base_model is not None else None,
        "parameters": sum(int(tensor.numel()) for tensor in state_dict.values()),
    }
    (output / RUN_RECORD).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return output


def _find_zero_checkpoint(directory: Path) -> tuple[Path, str]:
    if not directory.is_dir():
        raise FinetuneError(f"checkpoint_dir {str(directory)!r} is not a directory")
    tag = zero_checkpoint_tag(directory)
    if tag is None:
        newest = latest_checkpoint(directory)
        if newest is not None:
            directory, tag = newest, zero_checkpoint_tag(newest)
    if tag is None:
        raise FinetuneError(
            f"{str(directory)!r} is no DeepSpeed ZeRO checkpoint: it holds no 'latest' file and "
            "no global_stepN directory (give the checkpoint-N directory a DeepSpeed run saved)"
        )
    return directory, tag


def _config_source(checkpoint: Path, base_model: str | os.PathLike[str] | None) -> Path:
    if (checkpoint / "config.json").is_file():
        return checkpoint
    if base_model is not None:
        return resolve_base_model(base_model).checkpoint
    raise FinetuneError(
        f"{str(checkpoint)!r} holds no config.json to build the model from; pass base_model= "
        "(the model the run started from)"
    )


def _has_tokenizer(directory: Path) -> bool:
    return any((directory / name).is_file() for name in _TOKENIZER_FILES)


def _load_weights(model: Any, state_dict: dict[str, Any], checkpoint: Path) -> None:
    expected = set(model.state_dict())
    missing = sorted(expected - set(state_dict))
    # Tied weights (lm_head sharing the embeddings) may be stored once.
    tied = set(getattr(model, "all_tied_weights_keys", None) or {})
    missing = [key for key in missing if key not in tied]
    unexpected = sorted(set(state_dict) - expected)
    if missing or unexpected:
        raise FinetuneError(
            f"the weights in {str(checkpoint)!r} do not fit the model's config: missing "
            f"{missing[:5]}, unexpected {unexpected[:5]}; pass the base_model the run started from"
        )
    model.load_state_dict(state_dict, strict=False)
    if getattr(model.config, "tie_word_embeddings", False):
        model.tie_weights()
