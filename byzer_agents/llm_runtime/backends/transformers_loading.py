"""Loading a causal language model and its tokenizer with transformers, for the transformers
(and DeepSpeed) backends: the settings checked before anything loads (device, dtype, quantization,
positive counts), the adapter and the base it applies to, the model on its device, and the
context length the checkpoint declares.
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path
from typing import Any, Final, Literal

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from byzer_agents.exceptions import ConfigurationError
from byzer_agents.llm_runtime.peft_adapter import (
    AdapterSource,
    adapter_base,
    apply_adapter,
    is_adapter_dir,
    read_adapter,
)

__all__ = [
    "DYNAMIC_INT8",
    "Quantization",
    "adapter_and_base",
    "check_positive",
    "check_quantization",
    "check_quantization_fits",
    "context_length",
    "load_causal_lm",
    "load_tokenizer",
    "model_eos_ids",
    "pick_device",
    "pick_dtype",
    "quantize_dynamic_int8",
]

_DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}
DYNAMIC_INT8: Final = "dynamic-int8"
"""torch's dynamic int8: every ``nn.Linear`` gets int8 weights, its input is quantized per call.
A CPU path (fbgemm/onednn kernels), applied to the float32 model once it is loaded."""
Quantization = Literal["4", "8", "dynamic-int8"]
_QUANTIZATIONS = ("4", "8", DYNAMIC_INT8)
_DEFAULT_CONTEXT_LENGTH = 2048


def check_positive(name: str, value: int | None, *, allow_none: bool = False) -> None:
    """Refuse a count that is not an integer of 1 or more (None too, unless ``allow_none``)."""
    if value is None and allow_none:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        allowed = "an integer of 1 or more" + (", or None" if allow_none else "")
        raise ConfigurationError(f"{name} must be {allowed}; got {value!r}")


def check_quantization(quantization: str | None) -> Quantization | None:
    """``quantization`` as bitsandbytes bits (``"4"``, ``"8"``), ``"dynamic-int8"`` (torch) or
    None; bits are refused when bitsandbytes, which does them, is not installed."""
    if quantization is None:
        return None
    if str(quantization) not in _QUANTIZATIONS:
        raise ConfigurationError(
            f"quantization must be one of {list(_QUANTIZATIONS)} (bitsandbytes bits, or torch's "
            f"dynamic int8 on CPU) or None; got {quantization!r}"
        )
    if str(quantization) == DYNAMIC_INT8:
        return DYNAMIC_INT8
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ModuleNotFoundError(
            f"quantization={quantization!r} needs bitsandbytes, which is not installed; "
            "install it with: pip install bitsandbytes",
            name="bitsandbytes",
        )
    return "4" if str(quantization) == "4" else "8"


def check_quantization_fits(
    quantization: Quantization | None, device: torch.device, dtype: torch.dtype
) -> None:
    """Refuse dynamic int8 off the CPU or on weights other than float32: torch quantizes
    float32 ``nn.Linear`` layers only, and runs them with CPU kernels only."""
    if quantization != DYNAMIC_INT8:
        return
    if device.type != "cpu":
        raise ConfigurationError(
            f"quantization={DYNAMIC_INT8!r} runs on the CPU only, and this model would load on "
            f"{str(device)!r}; give device='cpu', or quantization '4'/'8' (bitsandbytes) on CUDA"
        )
    if dtype != torch.float32:
        raise ConfigurationError(
            f"quantization={DYNAMIC_INT8!r} quantizes float32 weights; got dtype "
            f"{str(dtype).removeprefix('torch.')!r}: give dtype 'float32' or 'auto'"
        )


def pick_device(device: str | None) -> torch.device:
    """The torch device ``device`` names; None picks CUDA when torch sees it, else the CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        picked = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigurationError(
            f"device {device!r} is not a torch device: use 'cpu', 'cuda', 'cuda:1'"
        ) from exc
    if picked.type == "cuda" and not torch.cuda.is_available():
        raise ConfigurationError(
            f"device {device!r} asks for CUDA, and torch sees no CUDA device here"
        )
    return picked


def pick_dtype(dtype: str | None, device: torch.device) -> torch.dtype:
    """The torch dtype ``dtype`` names; ``"auto"`` or None: bfloat16 (else float16) on CUDA,
    float32 on a CPU."""
    if dtype is None or dtype == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        # Measured on this project's CPU (2 cores of an AMD EPYC with avx512_bf16), SmolLM2-135M,
        # greedy decoding of 64 tokens, best of 5: float32 15.6 tok/s, bfloat16 16.8 tok/s (7%),
        # while bfloat16 moves the next-token logits by up to 0.7. Not worth it: float32.
        return torch.float32
    found = _DTYPES.get(dtype)
    if found is None:
        raise ConfigurationError(
            f"dtype {dtype!r} is not supported; use 'auto', {', '.join(map(repr, _DTYPES))}"
        )
    return found


def adapter_and_base(
    model_path: str | Path, adapter: str | Path | None
) -> tuple[AdapterSource | None, str | Path]:
    """The adapter to apply (if any) and what the base model is loaded from: ``model_path``, or
    the base an adapter directory given as ``model_path`` names."""
    if adapter is not None:
        if is_adapter_dir(model_path):
            raise ConfigurationError(
                f"model_path {str(model_path)!r} is itself an adapter; give its base model as "
                f"model_path to apply the adapter {str(adapter)!r}, or drop adapter"
            )
        return read_adapter(adapter, base=str(model_path)), model_path
    if is_adapter_dir(model_path):
        found = read_adapter(model_path)
        return found, adapter_base(found)
    return None, model_path


def load_tokenizer(checkpoint: Path) -> Any:
    """The tokenizer of a local checkpoint directory (nothing is fetched)."""
    return AutoTokenizer.from_pretrained(str(checkpoint), local_files_only=True)


def load_causal_lm(
    checkpoint: Path,
    *,
    dtype: torch.dtype,
    device: torch.device,
    quantization: Quantization | None,
    adapter: AdapterSource | None,
) -> Any:
    """The model of a local checkpoint directory on ``device``, in eval mode, quantized by
    bitsandbytes (as it loads) or torch's dynamic int8 (once loaded) when asked, with ``adapter``
    applied."""
    options: dict[str, Any] = {"dtype": dtype, "local_files_only": True}
    bitsandbytes = quantization in ("4", "8")
    if bitsandbytes:
        from transformers import BitsAndBytesConfig

        options["quantization_config"] = (
            BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=dtype)
            if quantization == "4"
            else BitsAndBytesConfig(load_in_8bit=True)
        )
        options["device_map"] = {"": device}
        # bitsandbytes' int8 matmul works in float16 and warns on every call that it casts
        # float32 inputs; the cast is its design, not a problem to report per token.
        warnings.filterwarnings("ignore", message="MatMul8bitLt: inputs will be cast")
    model: Any = AutoModelForCausalLM.from_pretrained(str(checkpoint), **options)
    if adapter is not None:
        # Merged in memory: decoding then costs what the base costs (no LoRA matmuls beside
        # every adapted layer) and the model is a plain transformers model again, which
        # DeepSpeed-Inference wraps like any other. A deployment serves one adapter, so
        # PEFT's adapter switching is not needed. Quantized bases keep the adapter unmerged:
        # merging would round its update into the 4/8-bit weights. Dynamic int8 quantizes
        # after this, so the adapter is merged first and its update is in the int8 weights.
        model = apply_adapter(model, adapter.path, merge=not bitsandbytes)
    if not bitsandbytes:
        model = model.to(device)
    model.eval()
    if quantization == DYNAMIC_INT8:
        quantize_dynamic_int8(model)
    return model


def quantize_dynamic_int8(model: Any) -> None:
    """Every ``nn.Linear`` of ``model`` (on the CPU, float32) replaced in place by torch's
    dynamically quantized one: int8 weights, the input quantized per call."""
    with warnings.catch_warnings():
        # torch marks torch.ao.quantization and its qint8 tensors deprecated (torchao is their
        # successor, not a dependency here); the kernels are still torch's own, and a warning
        # per replica load says nothing the deployment can act on.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*quantized tensor creation functions")
        torch.ao.quantization.quantize_dynamic(
            model, {torch.nn.Linear}, dtype=torch.qint8, inplace=True
        )


def model_eos_ids(model: Any) -> frozenset[int]:
    """The end-of-sequence token ids the model's generation config names."""
    configured = model.generation_config.eos_token_id
    values = configured if isinstance(configured, list) else [configured]
    return frozenset(int(value) for value in values if value is not None)


def context_length(config: Any, tokenizer: Any) -> int:
    """The tokens the model takes in all, as its config (else its tokenizer) declares it."""
    for value in (
        getattr(config, "max_position_embeddings", None),
        getattr(tokenizer, "model_max_length", None),
    ):
        # Tokenizers without a limit report a huge sentinel (1e30).
        if isinstance(value, int) and 0 < value < 10_000_000:
            return value
    return _DEFAULT_CONTEXT_LENGTH
