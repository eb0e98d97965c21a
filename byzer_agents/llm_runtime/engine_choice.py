"""Which engine serves a local deployment when the deploy call names none, and why.

A GGUF model on a replica without a GPU runs on llama.cpp when llama-cpp-python is installed:
it decodes the shipped SmolLM2 about six times faster than transformers does after dequantizing
it to float32 (benchmarks/RESULTS.md, "Engines side by side"). Everything else runs on
transformers, as Byzer-LLM's deployments did. The reason is kept on the spec and reported by
``get_meta`` (``infer_backend``, ``engine_reason``), so a user sees which engine answers and why
(docs/decisions.md, "The engine a deployment runs on").

A setting only transformers honours (bitsandbytes or dynamic int8 quantization, a dtype, a
device, a batch size) keeps the deployment on transformers: asking for it is asking for that
engine.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from byzer_agents.llm_runtime.deploy_config import InferParams, ModelType
from byzer_agents.llm_runtime.infer_backend import InferBackend

__all__ = ["EngineChoice", "choose_engine"]

_GGUF_MAGIC = b"GGUF"
_TRANSFORMERS_ONLY = ("quantization", "dtype", "device", "max_batch_size")


@dataclass(frozen=True)
class EngineChoice:
    """The engine a deployment runs on and the reason, in words a user reads in ``get_meta``."""

    infer_backend: InferBackend
    reason: str


def choose_engine(
    model_path: str,
    model_type: ModelType,
    params: InferParams,
    *,
    gpus_per_worker: float,
    asked: InferBackend | None,
) -> EngineChoice:
    """The engine for a deployment: ``asked`` when the call named one, else the fastest engine
    here that serves the model with the settings given."""
    if asked is not None:
        return EngineChoice(asked, f"the deployment asked for infer_backend {asked.value!r}")
    transformers = InferBackend.Transformers
    if model_type.kind == "saas":
        return EngineChoice(transformers, "a SaaS model: the provider's API serves it")
    if gpus_per_worker > 0:
        return EngineChoice(
            transformers, f"the replica has a GPU (gpus_per_worker={gpus_per_worker:g})"
        )
    given = sorted(name for name in _TRANSFORMERS_ONLY if name in params.model_fields_set)
    if given:
        return EngineChoice(transformers, f"infer_params {given} apply to transformers only")
    gguf, why_not = _gguf_of(Path(model_path).expanduser(), params)
    if gguf is None:
        return EngineChoice(transformers, why_not)
    if importlib.util.find_spec("llama_cpp") is None:
        return EngineChoice(
            transformers,
            "a GGUF model, but llama-cpp-python is not installed (`make install` builds it; "
            "transformers dequantizes the GGUF to float32 instead, about 6x slower)",
        )
    return EngineChoice(
        InferBackend.LlamaCpp,
        "a GGUF model on a replica without a GPU, and llama-cpp-python is installed: llama.cpp "
        "runs it as quantized",
    )


def _gguf_of(path: Path, params: InferParams) -> tuple[Path | None, str]:
    """The GGUF file the deployment serves (the base, for an adapter that llama.cpp can apply);
    None and the reason when there is none."""
    from byzer_agents.llm_runtime.peft_adapter import adapter_base, is_adapter_dir, read_adapter

    adapter = Path(params.adapter) if params.adapter else path if is_adapter_dir(path) else None
    base = path
    if adapter is not None and adapter == path:
        try:
            base = adapter_base(read_adapter(path))
        except (OSError, ValueError) as exc:
            return None, f"the adapter's base cannot be found ({exc})"
    if base.is_dir():
        base = base / params.gguf_file if params.gguf_file else base
    if not _is_gguf(base):
        return None, f"{str(base)!r} is a Hugging Face checkpoint, not a GGUF file"
    if adapter is not None:
        from byzer_agents.llm_runtime.gguf_lora import lora_unsupported_because

        problem = lora_unsupported_because(adapter, base)
        if problem is not None:
            return None, f"the LoRA adapter cannot be applied by llama.cpp: {problem}"
    return base, ""


def _is_gguf(path: Path) -> bool:
    if not path.is_file():
        return False
    with path.open("rb") as file:
        return file.read(len(_GGUF_MAGIC)) == _GGUF_MAGIC
