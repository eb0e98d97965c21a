"""Merge a LoRA adapter into its base: the result is a plain Hugging Face directory (safetensors,
config, generation config, tokenizer) that any engine loads, vLLM included, with no PEFT at
serving time.

The base is the one the adapter's ``adapter_config.json`` names (``base_model_name_or_path``, as
``train_sft`` writes it), found by ``resolve_base_model``: the shipped default's name, a Hugging
Face directory or a GGUF file. ``RUN_RECORD`` in the output says what was merged from what.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from byzer_agents.exceptions import FinetuneError
from byzer_agents.finetune.base_model import BaseCheckpoint, load_tokenizer, resolve_base_model
from byzer_agents.finetune.trainer import RUN_RECORD
from byzer_agents.llm_runtime.peft_adapter import ADAPTER_CONFIG, check_adapter_dir

__all__ = ["MERGE_DTYPES", "merge"]

MERGE_DTYPES = ("float32", "bfloat16", "float16")
"""The dtypes a merged model can be saved in."""


def merge(
    adapter_dir: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    *,
    dtype: str = "float32",
) -> Path:
    """Apply the LoRA adapter in ``adapter_dir`` to its base, merge it into the weights and save
    the model in ``dtype`` as a Hugging Face directory at ``output_dir``.

    Returns:
        ``output_dir``, which ``llm.deploy(path, "custom/auto", name, {})`` serves.

    Raises:
        FinetuneError: ``adapter_dir`` is no adapter (naming what is missing), its base cannot be
            found, or ``dtype`` is not one of ``MERGE_DTYPES``.
    """
    if dtype not in MERGE_DTYPES:
        raise FinetuneError(f"dtype {dtype!r} cannot be merged into; use one of {MERGE_DTYPES}")
    try:
        adapter = check_adapter_dir(adapter_dir)
    except OSError as exc:
        raise FinetuneError(f"cannot merge: {exc}") from None
    output = Path(output_dir).expanduser().resolve()
    if output == adapter:
        raise FinetuneError(f"output_dir {str(output)!r} is the adapter's own directory")
    base = _adapter_base(adapter)

    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model: Any = AutoModelForCausalLM.from_pretrained(
        str(base.checkpoint), dtype=torch.float32, local_files_only=True
    )
    # Merged in float32 whatever the output dtype, so the update is rounded once, at the end.
    merged = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    merged = merged.to(getattr(torch, dtype))
    tokenizer, _template = load_tokenizer(base.checkpoint)

    output.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(str(output), safe_serialization=True)
    tokenizer.save_pretrained(str(output))
    record = {
        "kind": "model",
        "merged_from": {"adapter": str(adapter), "base_model": base.reference},
        "base_model": base.reference,
        "dtype": dtype,
        "adapter_record": _read_json(adapter / RUN_RECORD),
    }
    (output / RUN_RECORD).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return output


def _adapter_base(adapter: Path) -> BaseCheckpoint:
    config = _read_json(adapter / ADAPTER_CONFIG)
    reference = (config or {}).get("base_model_name_or_path")
    if not isinstance(reference, str) or not reference:
        raise FinetuneError(
            f"the adapter {str(adapter)!r} names no base model: {ADAPTER_CONFIG} has no "
            "base_model_name_or_path"
        )
    try:
        return resolve_base_model(reference)
    except FinetuneError as exc:
        raise FinetuneError(
            f"the base model of the adapter {str(adapter)!r} cannot be found: {exc}; set "
            f"base_model_name_or_path in its {ADAPTER_CONFIG} to where the base is"
        ) from None


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise FinetuneError(f"{str(path)!r} is not readable JSON: {exc}") from None
    return value if isinstance(value, dict) else None
