"""The model a job starts from: a name, a Hugging Face directory or a GGUF file, found and loaded
the way the runtime loads it, so training and serving start from the same weights and template.

GGUF files go through the runtime's checkpoint cache (``llm_runtime.checkpoints``: converted once
into a safetensors directory). The chat template is the one ``TransformersBackend`` picks (the
tokenizer's own, else ChatML): ``rendering`` writes prompts with it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from byzer_agents.exceptions import FinetuneError
from byzer_agents.llm_runtime.models import (
    DEFAULT_CHAT_MODEL,
    DEFAULT_CHAT_MODEL_NAMES,
    default_chat_model,
)
from byzer_agents.prompts.chat_templates import ChatTemplate, Templates

if TYPE_CHECKING:
    from byzer_agents.finetune.config import TrainingConfig

__all__ = ["BaseCheckpoint", "load_base_model", "load_tokenizer", "resolve_base_model"]


@dataclass(frozen=True)
class BaseCheckpoint:
    """A base model found: ``checkpoint`` is the directory transformers loads; ``reference`` is
    how the outputs name it, portable where it can be (the default model's name, not the cache
    path on this machine)."""

    checkpoint: Path
    reference: str


def resolve_base_model(base_model: str | os.PathLike[str]) -> BaseCheckpoint:
    """``base_model`` as a loadable directory: ``"SmolLM2-135M-Instruct"`` (or ``"default"``)
    is the shipped default; else a Hugging Face directory or a GGUF file."""
    from byzer_agents.llm_runtime.checkpoints import resolve_checkpoint

    if str(base_model) in DEFAULT_CHAT_MODEL_NAMES:
        return BaseCheckpoint(resolve_checkpoint(default_chat_model()), DEFAULT_CHAT_MODEL)
    path = Path(base_model).expanduser()
    if not path.exists():
        raise FinetuneError(
            f"base model {str(base_model)!r} is neither a file nor a directory; give a Hugging "
            f"Face directory, a GGUF file, or {DEFAULT_CHAT_MODEL!r} for the shipped default"
        )
    try:
        checkpoint = resolve_checkpoint(path)
    except (ValueError, OSError) as exc:
        raise FinetuneError(f"base model {str(path)!r} cannot be loaded: {exc}") from exc
    return BaseCheckpoint(checkpoint, str(path.resolve()))


def load_tokenizer(checkpoint: Path) -> tuple[Any, ChatTemplate]:
    """The tokenizer and the chat template the runtime would use for ``checkpoint``."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(checkpoint), local_files_only=True)
    template = Templates.from_tokenizer(tokenizer) or Templates.chatml()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer, template


def load_base_model(checkpoint: Path, config: TrainingConfig) -> Any:
    """The causal LM to train: full precision for LoRA and full fine-tuning, 4-bit NF4 through
    bitsandbytes for QLoRA (prepared for k-bit training)."""
    import torch
    from transformers import AutoModelForCausalLM

    dtype = getattr(torch, config.dtype)
    options: dict[str, Any] = {"dtype": dtype, "local_files_only": True}
    if config.method == "qlora":
        from transformers import BitsAndBytesConfig

        options["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_compute_dtype=dtype,
            bnb_4bit_use_double_quant=True,
        )
        options["device_map"] = {"": "cuda" if torch.cuda.is_available() else "cpu"}
    model = AutoModelForCausalLM.from_pretrained(str(checkpoint), **options)
    if config.method == "qlora":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    return model
