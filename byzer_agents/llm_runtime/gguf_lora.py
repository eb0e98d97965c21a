"""PEFT LoRA adapters as llama.cpp reads them: a GGUF LoRA file written once from the adapter's
``adapter_model.safetensors`` into the checkpoint cache, so the llama.cpp engine serves the same
adapter the transformers engine applies with PEFT (the fine-tune module's output, and the shipped
tool adapter) on the unchanged quantized base.

What llama.cpp expects (its ``convert_lora_to_gguf.py`` writes the same): ``general.type`` =
``adapter``, ``adapter.type`` = ``lora``, ``adapter.lora.alpha``, and per adapted weight two
float32 tensors named after the base's GGUF tensor, ``blk.<i>.attn_q.weight.lora_a`` (rank x in)
and ``.lora_b`` (out x rank); llama.cpp scales their product by alpha / rank.

What is fragile: llama.cpp stores the query and key projections of llama-architecture models with
their rows permuted for its rotary embedding, so ``lora_b`` of ``q_proj``/``k_proj`` is permuted
the same way here. Only the llama architecture (Llama, Mistral, SmolLM) is converted; another
architecture, DoRA, or an adapter that trains whole modules is refused with what to do instead
(merge it with ``byzer_agents.finetune.merge``, or serve it on infer_backend 'transformers').
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from byzer_agents.exceptions import ConfigurationError
from byzer_agents.llm_runtime.checkpoints import checkpoint_cache_root

__all__ = ["gguf_lora_file", "lora_unsupported_because"]

_PERMUTED_ARCHS = frozenset({"llama"})
"""Architectures whose GGUF stores q/k rows permuted (llama.cpp's converter does it for these)."""
_GGUF_NAMES = {
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}
_PEFT_NAME = re.compile(
    r"^(?:base_model\.model\.)?model\.layers\.(?P<layer>\d+)\.(?P<module>[a-z_]+\.[a-z_]+)"
    r"\.lora_(?P<part>[AB])\.weight$"
)
_FORMAT_VERSION = "1"
"""Part of the cache key: a change to what is written converts every adapter anew."""


def lora_unsupported_because(adapter_dir: Path, base_gguf: Path) -> str | None:
    """Why the adapter in ``adapter_dir`` cannot be served by llama.cpp on ``base_gguf``; None
    when it can (checked from the configs, without reading the weights)."""
    config = _adapter_config(adapter_dir)
    arch = _base_metadata(base_gguf)["arch"]
    if arch not in _PERMUTED_ARCHS:
        return f"its base's architecture {arch!r} is not converted (only {sorted(_PERMUTED_ARCHS)})"
    if config.get("use_dora"):
        return "it is a DoRA adapter, which llama.cpp does not apply"
    if config.get("modules_to_save"):
        return f"it trains whole modules ({config['modules_to_save']}), which a LoRA file lacks"
    if not (adapter_dir / "adapter_model.safetensors").is_file():
        return "its weights are not in adapter_model.safetensors"
    return None


def gguf_lora_file(adapter_dir: str | os.PathLike[str], base_gguf: str | os.PathLike[str]) -> Path:
    """The GGUF LoRA file of the PEFT adapter in ``adapter_dir`` for the GGUF model
    ``base_gguf``: converted on first use into ``<cache>/loras/`` (keyed by the adapter's files and
    the base), found there afterwards. A ConfigurationError says why an adapter cannot be."""
    adapter, base = Path(adapter_dir).expanduser().resolve(), Path(base_gguf).expanduser()
    problem = lora_unsupported_because(adapter, base)
    if problem is not None:
        raise ConfigurationError(
            f"the adapter {str(adapter)!r} cannot be served by llama.cpp: {problem}; merge it "
            "into its base (byzer_agents.finetune.merge) or use infer_backend 'transformers'"
        )
    target = checkpoint_cache_root().parent / "loras" / f"{adapter.name}-{_key(adapter, base)}.gguf"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with _written_atomically(target) as scratch:
        _write_lora(adapter, base, scratch)
    return target


def _key(adapter: Path, base: Path) -> str:
    digest = hashlib.sha256(_FORMAT_VERSION.encode())
    for path in (adapter / "adapter_config.json", adapter / "adapter_model.safetensors", base):
        stat = path.resolve().stat()
        digest.update(f"{path.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
    return digest.hexdigest()[:16]


@contextlib.contextmanager
def _written_atomically(target: Path) -> Iterator[Path]:
    """A scratch path beside ``target``, renamed onto it when the block ends without error: a
    reader never sees half a file, and two writers cost one conversion twice at worst."""
    handle, scratch = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(handle)
    try:
        yield Path(scratch)
        os.replace(scratch, target)
    finally:
        Path(scratch).unlink(missing_ok=True)


def _write_lora(adapter: Path, base: Path, output: Path) -> None:
    import gguf

    config = _adapter_config(adapter)
    metadata = _base_metadata(base)
    rank = int(config.get("r") or 8)
    alpha = float(config.get("lora_alpha") or rank)
    if config.get("use_rslora"):  # rsLoRA scales by alpha / sqrt(r); llama.cpp by alpha / r
        alpha *= math.sqrt(rank)
    writer = gguf.GGUFWriter(str(output), metadata["arch"])
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
    for name, tensor in _lora_tensors(_float32_weights(adapter), metadata):
        writer.add_tensor(name, tensor)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def _float32_weights(adapter: Path) -> dict[str, np.ndarray]:
    """The adapter's weights as float32 arrays (PEFT often saves bfloat16, which numpy lacks)."""
    from safetensors.torch import load_file

    weights = load_file(str(adapter / "adapter_model.safetensors"))
    return {name: tensor.float().numpy() for name, tensor in weights.items()}


def _lora_tensors(
    weights: dict[str, np.ndarray], metadata: dict[str, Any]
) -> Iterator[tuple[str, np.ndarray]]:
    """(GGUF name, float32 array) for each lora_A / lora_B weight, q/k's lora_B permuted."""
    for peft_name in sorted(weights):
        match = _PEFT_NAME.match(peft_name)
        module = match and _GGUF_NAMES.get(match["module"])
        if match is None or module is None:
            raise ConfigurationError(
                f"the adapter holds {peft_name!r}, which is no LoRA weight of a projection "
                f"llama.cpp adapts ({sorted(_GGUF_NAMES)})"
            )
        tensor = np.ascontiguousarray(weights[peft_name], dtype=np.float32)
        if match["part"] == "B" and module in ("attn_q", "attn_k"):
            heads = metadata["heads"] if module == "attn_q" else metadata["kv_heads"]
            tensor = _rope_permuted(tensor, heads)
        suffix = "lora_a" if match["part"] == "A" else "lora_b"
        yield f"blk.{match['layer']}.{module}.weight.{suffix}", tensor


def _rope_permuted(rows: np.ndarray, heads: int) -> np.ndarray:
    """The rows of a q/k projection in llama.cpp's order: within each head, the two rotary halves
    interleaved (the permutation its converter applies to the base weights)."""
    out = rows.shape[0]
    split = rows.reshape(heads, 2, out // heads // 2, *rows.shape[1:])
    return np.ascontiguousarray(split.swapaxes(1, 2).reshape(rows.shape))


def _adapter_config(adapter: Path) -> dict[str, Any]:
    try:
        config = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigurationError(
            f"{str(adapter)!r} has no readable adapter_config.json: {exc}"
        ) from exc
    if not isinstance(config, dict):
        raise ConfigurationError(f"{str(adapter)!r}: adapter_config.json holds no JSON object")
    return config


def _base_metadata(base: Path) -> dict[str, Any]:
    """The base GGUF's architecture and head counts (read from its header, not its tensors)."""
    import gguf

    reader = gguf.GGUFReader(str(base))

    def field(key: str) -> Any:
        found = reader.get_field(key)
        return None if found is None else found.contents()

    arch = str(field("general.architecture"))
    heads = int(field(f"{arch}.attention.head_count") or 0)
    return {
        "arch": arch,
        "heads": heads,
        "kv_heads": int(field(f"{arch}.attention.head_count_kv") or heads),
    }
